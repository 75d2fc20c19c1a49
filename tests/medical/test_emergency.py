"""The emergency link (issue 16 §4) on one node: the right passcode shows the summary and its IPS
download; wrong passcodes are counted per link and lock it; an expired, revoked or incomplete
link refuses in words; every try is recorded with its address and shown to the patient; the node
database holds neither the summary in clear nor the link's key, and no file of the node holds
the key; the patient's page shows a new link once; the API makes, lists and revokes links."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.core.threads.services import ThreadServiceError
from apps.medical import emergency, services, sharing
from apps.medical.emergency import emergency_create, emergency_open, emergency_opens
from apps.medical.models import EmergencyLink
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.medical import samples

pytestmark = pytest.mark.django_db(transaction=True)

ALLERGY = "Quinolinic acid"  # a text nothing else on the node holds
PASSCODE = "Qx7 plum"


@pytest.fixture
def record(node):  # noqa: F811
    thread = services.record_create(name="Alice Martin", birth_date="1980-04-02")
    services.resource_write(thread, "AllergyIntolerance", samples.allergy(display=ALLERGY))
    services.resource_write(thread, "MedicationStatement", samples.medication())
    services.resource_write(thread, "Condition", samples.condition())
    return thread


def made(record, **given) -> tuple[str, str]:
    """A new link: its id and its key (the text after '#')."""
    link, url = emergency_create(record, passcode=given.pop("passcode", PASSCODE), **given)
    name = emergency.link_name(link.id)
    assert url.startswith(f"/e/{name}/#")
    return name, url.partition("#")[2]


def try_open(client: Client, link: str, key: str, passcode: str, **extra):
    return client.post(f"/e/{link}/", {"key": key, "passcode": passcode, **extra})


def private(answer) -> None:
    assert answer["Cache-Control"] == "no-store"
    assert answer["Referrer-Policy"] == "same-origin"


def test_the_right_passcode_shows_the_summary_and_its_ips(record):
    link, key = made(record)
    visitor = Client()
    form = visitor.get(f"/e/{link}/")
    assert form.status_code == 200
    private(form)
    page = form.content.decode()
    assert "Passcode" in page
    assert ALLERGY not in page
    assert "Alice" not in page
    assert 'href="/node/' not in page  # none of the node's private navigation

    # Spaces and letter case do not count: a phone capitalises on its own.
    shown = try_open(visitor, link, key, " qx7PLUM ")
    assert shown.status_code == 200, shown.content
    private(shown)
    page = shown.content.decode()
    for words in (ALLERGY, "Metformin", "Diabetes mellitus type 2", "Alice Martin", "1980-04-02"):
        assert words in page
    assert "Download the IPS" in page

    download = try_open(visitor, link, key, PASSCODE, download="1")
    private(download)
    assert download["Content-Type"].startswith("application/fhir+json")
    bundle = json.loads(download.content)
    assert (bundle["resourceType"], bundle["type"]) == ("Bundle", "document")
    kinds = [e["resource"]["resourceType"] for e in bundle["entry"]]
    assert kinds[:2] == ["Composition", "Patient"]
    assert "AllergyIntolerance" in kinds
    assert [o.ok for o in emergency_opens(record)] == [True, True]


def test_the_summary_is_the_record_as_it_stands_when_opened(record):
    link, key = made(record)
    services.resource_write(record, "AllergyIntolerance", samples.allergy(display="Latex"))
    opened = emergency_open(link, key, PASSCODE, "198.51.100.4")
    assert {i.text for i in opened.summary.allergies} == {ALLERGY, "Latex"}


def test_a_record_this_node_no_longer_reads_shows_the_copy_sealed_last(record):
    link, key = made(record)
    emergency_open(link, key, PASSCODE, "")  # sealed again as the record stands
    services.resource_write(record, "AllergyIntolerance", samples.allergy(display="Latex"))
    Thread.objects.filter(pk=record.pk).update(state=Thread.State.LEFT)
    opened = emergency_open(link, key, PASSCODE, "")
    assert [i.text for i in opened.summary.allergies] == [ALLERGY]


def test_wrong_passcodes_are_counted_and_lock_the_link(record):
    link, key = made(record, max_attempts=3)
    visitor = Client(REMOTE_ADDR="203.0.113.9")
    first = try_open(visitor, link, key, "000000")
    assert first.status_code == 403
    assert "Wrong passcode: 2 tries left." in first.content.decode()
    assert ALLERGY not in first.content.decode()
    # Another address does not start again: tries count per link.
    other = Client(REMOTE_ADDR="192.0.2.77")
    assert "1 try left" in try_open(other, link, key, "111111").content.decode()
    locked = try_open(visitor, link, key, "222222")
    assert locked.status_code == 423
    assert "locked" in locked.content.decode()
    # Locked: even the right passcode no longer opens it.
    right = try_open(visitor, link, key, PASSCODE)
    assert right.status_code == 423
    assert ALLERGY not in right.content.decode()
    assert "locked" in Client().get(f"/e/{link}/").content.decode()
    opens = emergency_opens(record)
    assert [o.ok for o in opens] == [False] * 4
    assert {o.address for o in opens} == {"203.0.113.9", "192.0.2.77"}
    assert EmergencyLink.objects.get().attempts == 3


def test_a_right_passcode_costs_no_try_and_a_wrong_key_is_a_wrong_try(record):
    link, key = made(record, max_attempts=2)
    emergency_open(link, key, PASSCODE, "")
    other_key = base64.urlsafe_b64encode(bytes(32)).rstrip(b"=").decode()
    with pytest.raises(emergency.EmergencyRefused) as wrong:
        emergency_open(link, other_key, PASSCODE, "")
    assert wrong.value.kind == "wrong"
    assert wrong.value.tries_left == 1
    emergency_open(link, key, PASSCODE, "")
    assert EmergencyLink.objects.get().attempts == 1


def test_expired_revoked_incomplete_and_unknown_links_refuse_in_words(record, browser):  # noqa: F811
    link, key = made(record)
    visitor = Client()
    cut = try_open(visitor, link, key[:20], PASSCODE)
    assert cut.status_code == 400
    assert "incomplete" in cut.content.decode()

    EmergencyLink.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert "has expired" in visitor.get(f"/e/{link}/").content.decode()
    late = try_open(visitor, link, key, PASSCODE)
    assert late.status_code == 410
    assert "has expired" in late.content.decode()
    assert ALLERGY not in late.content.decode()

    second, second_key = made(record)
    revoked = browser.post(f"/node/threads/{record.id}/record/emergency/{second}/revoke/")
    assert revoked.status_code == 302
    refused = try_open(visitor, second, second_key, PASSCODE)
    assert refused.status_code == 410
    assert "revoked" in refused.content.decode()

    assert visitor.get(f"/e/{'ab' * 16}/").status_code == 404
    assert visitor.get("/e/not-a-link/").status_code == 404
    assert [o.ok for o in emergency_opens(record)] == [False, False, False]


def test_the_node_keeps_no_summary_in_clear_and_no_key_anywhere(record):
    link, key = made(record)
    emergency_open(link, key, PASSCODE, "")  # opening seals the summary again
    raw_key = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    connection.close()  # everything written reaches the files
    database = Path(connection.settings_dict["NAME"])
    node_files = [p for p in database.parent.glob(database.name + "*") if p.is_file()]
    assert node_files
    for file in node_files:
        data = file.read_bytes()
        assert ALLERGY.encode() not in data, file
        assert b"Metformin" not in data, file
    secrets = [raw_key, key.encode(), raw_key.hex().encode()]
    secrets += [PASSCODE.encode(), emergency.passcode_normal(PASSCODE).encode()]
    everywhere = [p for root in (database.parent, Path(settings.DATA_DIR)) for p in root.rglob("*")]
    for file in (p for p in everywhere if p.is_file()):
        data = file.read_bytes()
        for secret in secrets:
            assert secret not in data, file


def test_the_patients_page_shows_a_new_link_once_and_every_try(record, browser):  # noqa: F811
    page_url = f"/node/threads/{record.id}/record/emergency/"
    page = browser.get(page_url)
    assert page.status_code == 200
    private(page)
    assert "No emergency links yet" in page.content.decode()

    form = {"once": "f1", "passcode": "12", "expires_in": "604800", "max_attempts": 5}
    bad = browser.post(page_url, form)
    assert "4 to 12 characters" in bad.content.decode()
    assert not EmergencyLink.objects.exists()

    form = {"once": "f1", "passcode": "246 810", "expires_in": "3600", "max_attempts": 4}
    answer = browser.post(page_url, form)
    private(answer)
    shown = answer.content.decode()
    link = EmergencyLink.objects.get()
    name = emergency.link_name(link.id)
    assert f"http://testserver/e/{name}/#" in shown
    assert "<svg" in shown
    assert "246810" in shown
    assert "shown only once" in shown
    assert link.expires_at - link.created_at < timedelta(hours=1, seconds=5)
    key = shown.split(f"/e/{name}/#", 1)[1].split("<", 1)[0].split('"', 1)[0]
    assert try_open(Client(REMOTE_ADDR="203.0.113.5"), name, key, "1").status_code == 403
    assert try_open(Client(), name, key, "246810").status_code == 200

    # The same form posted again (a reload) makes no second link, and says why.
    reloaded = browser.post(page_url, form, follow=True).content.decode()
    assert EmergencyLink.objects.count() == 1
    assert "made already" in reloaded
    assert key not in reloaded
    again = browser.get(page_url).content.decode()
    assert key not in again
    assert "#" + key not in again
    assert "1 of 4 wrong passcodes" in again
    assert "from 203.0.113.5" in again
    assert "refused" in again
    assert "opened" in again


def test_the_api_makes_lists_and_revokes_links(record, browser):  # noqa: F811
    base = f"/api/v1/threads/{record.id}/emergency/"

    def post(body: dict):
        return browser.post(base, json.dumps(body), content_type="application/json")

    for body, words in (
        ({"passcode": "abc"}, "4 to 12 characters"),
        ({"passcode": "abcd", "expires_in": 60}, "at least one hour"),
        ({"passcode": "abcd", "max_attempts": 0}, "wrong passcodes allowed"),
    ):
        refused = post(body)
        assert refused.status_code == 400, body
        assert words in refused.content.decode(), body
    created = post({"passcode": "4711", "expires_in": 86400, "max_attempts": 3})
    assert created.status_code == 201, created.content
    body = created.json()
    link, key = body["id"], body["url"].partition("#")[2]
    assert body["url"].startswith(f"http://testserver/e/{link}/#")
    assert body["max_attempts"] == 3
    with pytest.raises(emergency.EmergencyRefused):
        emergency_open(link, key, "4712", "192.0.2.1")

    listed = browser.get(base).json()
    assert [(x["id"], x["state"], x["attempts"]) for x in listed] == [(link, "active", 1)]
    assert [(o["ok"], o["address"]) for o in listed[0]["opens"]] == [(False, "192.0.2.1")]
    assert key not in browser.get(base).content.decode()

    assert browser.delete(f"{base}{link}/").status_code == 204
    assert browser.get(base).json()[0]["state"] == "revoked"
    assert browser.delete(f"{base}{'cd' * 16}/").status_code == 404
    plain = threads.thread_create(name="Not a record")
    assert browser.get(f"/api/v1/threads/{plain.id}/emergency/").status_code == 404


def test_only_a_record_itself_gets_emergency_links(record):
    plain = threads.thread_create(name="Not a record")
    with pytest.raises(ThreadServiceError, match="not a medical record"):
        emergency_create(plain, passcode=PASSCODE)
    part = sharing.sensitive_create(record)
    with pytest.raises(ThreadServiceError, match="from the record itself"):
        emergency_create(part, passcode=PASSCODE)


def test_the_schema_documents_the_emergency_api(browser):  # noqa: F811
    paths = browser.get("/api/schema/?format=json").json()["paths"]
    base = "/api/v1/threads/{thread_id}/emergency/"
    assert paths[base]["get"]["operationId"] == "medical_emergency_list"
    assert paths[base]["post"]["operationId"] == "medical_emergency_create"
    assert paths[base + "{link_id}/"]["delete"]["operationId"] == "medical_emergency_revoke"


def test_a_try_through_the_nodes_own_proxy_is_logged_from_where_the_proxy_saw_it(record):
    link, key = made(record)
    proxied = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.50")
    try_open(proxied, link, key, "000000")
    # From elsewhere, a forwarded address is the sender's own claim: not believed.
    direct = Client(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="192.0.2.1")
    try_open(direct, link, key, "000000")
    assert [o.address for o in emergency_opens(record)] == ["198.51.100.7", "203.0.113.50"]


def test_a_provider_makes_no_emergency_link(record, browser):  # noqa: F811
    # This node as a provider in someone's record: the links are the patient's alone.
    Thread.objects.filter(pk=record.pk).update(role="provider")
    record.refresh_from_db()
    with pytest.raises(ThreadServiceError, match="only the patient"):
        emergency_create(record, passcode=PASSCODE)
    page_url = f"/node/threads/{record.id}/record/emergency/"
    page = browser.get(page_url).content.decode()
    assert "Only the patient makes emergency links" in page
    assert "Make the link" not in page
    form = {"once": "p1", "passcode": "123456", "expires_in": "3600", "max_attempts": 5}
    refused = browser.post(page_url, form)
    assert refused.status_code == 403
    assert "Only the patient makes emergency links" in refused.content.decode()
    assert not EmergencyLink.objects.exists()
    answer = browser.post(
        f"/api/v1/threads/{record.id}/emergency/", {"passcode": "123456"}, "application/json"
    )
    assert answer.status_code == 403


def test_sensitive_entries_only_when_the_patient_said_so(record, browser):  # noqa: F811
    services.resource_write(
        record, "Condition", samples.condition(display="Panic disorder"), sensitive=True
    )
    left_out, key = made(record)
    problems = [i.text for i in emergency_open(left_out, key, PASSCODE, "").summary.problems]
    assert problems == ["Diabetes mellitus type 2"]
    shown, key = made(record, sensitive=True)
    problems = [i.text for i in emergency_open(shown, key, PASSCODE, "").summary.problems]
    assert sorted(problems) == ["Diabetes mellitus type 2", "Panic disorder"]
    # The page's and the API's choice reach the link too.
    form = {"once": "s1", "passcode": "2468", "expires_in": "3600", "max_attempts": 5}
    page = browser.post(f"/node/threads/{record.id}/record/emergency/", {**form, "sensitive": "on"})
    assert "Shown" in page.content.decode()
    url = page.content.decode().split('id="share-link"', 1)[1].split(">", 1)[1].split("<", 1)[0]
    name, key = url.split("/e/", 1)[1].split("/#")
    assert "Panic disorder" in str(emergency_open(name, key, "2468", "").summary.problems)
    answer = browser.post(
        f"/api/v1/threads/{record.id}/emergency/", {"passcode": "1357"}, "application/json"
    ).json()
    name, key = answer["url"].split("/e/", 1)[1].split("/#")
    assert "Panic disorder" not in str(emergency_open(name, key, "1357", "").summary.problems)
