"""The record's pages through the test client, as the patient and as a provider (the patient on
a node of their own in this process): a record started from "Start my record"; entries added,
edited and deleted through the forms, shown in words with their history; an entry marked
sensitive kept apart and badged; bad input refused in words with nothing stored; a provider
adds what the grant allows and is told in words what it does not; the overview and lists as
their live socket sends them; the results chart; a document uploaded and downloaded. No page
shows a hex id or template syntax."""

from __future__ import annotations

import html
import io
import json
import re
import time
import uuid
from pathlib import Path

import nacl.signing
import nacl.utils
import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.thread.policy import policy_template
from apps.core.thread.rowid import row_id_new
from apps.core.thread.writer import ThreadWriter
from apps.core.threads import services as threads
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.medical import fhir, home, rules, selectors, services, views
from apps.medical.models import Grant
from apps.medical.policy import PROVIDER, SHAPE, record_spec
from apps.p2p.client import live_group
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import OtherNode, node, thread_databases_allowed  # noqa: F401
from tests.medical import samples
from tests.support import members
from tests.support.sockets import logged_in_cookies, socket

pytestmark = pytest.mark.django_db(transaction=True)

HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{12,}(?![0-9A-Za-z])")


def readable(page: bytes | str) -> str:
    """What a person reads on the page, checked: no hex id, no template syntax. The raw FHIR
    text (closed under "FHIR resource (JSON)") and the chart's drawing are not read."""
    text = page.decode() if isinstance(page, bytes) else page
    main = text.split('<main id="main"', 1)[1].split("</main>", 1)[0] if "<main" in text else text
    main = re.sub(r"<(script|textarea|svg|pre)\b.*?</\1>", " ", main, flags=re.S)
    words = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)))
    assert not HEX_ID.search(words), HEX_ID.search(words)
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in words
    return words


def did(text: str, who: str, what: str) -> bool:
    """The entry page's history says ``who`` did ``what`` (at a time between)."""
    return (
        re.search(rf"{who} [0-9]{{1,2}} [A-Z][a-z]{{2}} [0-9]{{4}}, [0-9:]{{5}} {what}", text)
        is not None
    )


def follow(client: Client, response) -> str:
    assert response.status_code == 302, readable(response.content)[:2000]
    page = client.get(response["Location"])
    assert page.status_code == 200
    return readable(page.content)


@pytest.fixture
def client(browser) -> Client:  # noqa: F811
    return browser


@pytest.fixture
def record(node) -> Thread:  # noqa: F811
    return services.record_create(name="Alice Martin", birth_date="1980-04-02", gender="female")


def base(thread: Thread) -> str:
    return f"/node/threads/{thread.id}/record/"


# -- the patient's node writing, this node a provider ------------------------------------------


class Patient(members.Member):
    """The patient's node (another node in this process) owning a record this node joined."""

    def write(self, resource: dict) -> str:
        kind = fhir.TYPES[resource["resourceType"]]
        pk = row_id_new(bytes.fromhex(self.member))
        checked = fhir.resource_check(kind.name, dict(resource, id=pk.hex))
        kind.model().objects.using(self.alias).create(
            id=pk, fhir_id=pk.hex, resource=checked.json, **checked.columns
        )
        return pk.hex

    def grant(self, member: str, write: list[str], **terms: object) -> None:
        pk = uuid.UUID(hex=rules.grant_id(bytes.fromhex(self.member), bytes.fromhex(member)))
        Grant.objects.using(self.alias).update_or_create(
            id=pk,
            defaults={
                "grantee": member,
                "label": "Dr. Lee, Riverside Clinic",
                "read": json.dumps(list(fhir.TYPES)),
                "write": json.dumps(write),
                "status": "active",
                **terms,
            },
        )


def patients_record(tmp_path: Path, write: list[str]) -> Patient:
    """Alice's record on a node of her own, which this node joined as a provider with a grant
    to write ``write``; she has an allergy and a medication in it."""
    keys = NodeKeys(device=nacl.signing.SigningKey.generate(), master_secret=nacl.utils.random(32))
    writer = ThreadWriter.create(
        master_secret=keys.master_secret,
        device_key=keys.device,
        name="Alice Martin",
        app=SHAPE,
        policy=policy_template(SHAPE),
    )
    writer.control(p.EnableApp(record_spec()))
    database = ThreadDatabase(
        writer.thread,
        path=tmp_path / "alice.sqlite3",
        alias=f"thread_{writer.thread.hex()}_a",
        node=keys,
    )
    other = OtherNode(keys, database)
    database.ingest(op.raw for op in writer.replica.admitted)
    database.write(lambda w: w.set_name("Alice"))
    expiry = int(time.time() * 1000) + 3_600_000
    invite = database.write(
        lambda w: w.invite_create(role=PROVIDER, expiry=expiry, inviter="alice", uses=1)
    )
    invite, request = threads.invite_redeem_local(link=invite.link())
    database.write(lambda w: w.admit(request))
    log = "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
    raws = [raw for (raw,) in database.raw().execute(log)]
    patient = Patient(other, threads.thread_join(invite=invite, raws=raws))
    patient.write({"resourceType": "Patient", "name": [{"text": "Alice Martin"}]})
    patient.write(samples.allergy())
    patient.write(samples.medication())
    patient.grant(patient.thread.member_id, write)
    patient.send()
    return patient


# -- the patient ---------------------------------------------------------------------------------


def test_start_my_record_then_its_overview_and_lists(client, node):  # noqa: F811
    empty = readable(client.get("/medical/").content)
    assert "No records yet" in empty
    bad = client.post("/medical/", {"name": "Alice Martin", "birth_date": "soon"})
    assert bad.status_code == 400
    assert "Enter a valid date" in readable(bad.content)
    assert selectors.records() == []
    text = follow(
        client, client.post("/medical/", {"name": "Alice Martin", "birth_date": "1980-04-02"})
    )
    assert "Your record is ready" in text
    assert "Alice Martin" in text
    assert "Born: 2 Apr 1980" in text
    for words in (
        "Problems",
        "Allergies",
        "Medications",
        "Recent results",
        "No allergies recorded.",
    ):
        assert words in text
    (record,) = selectors.records()
    listed = readable(client.get("/medical/").content)
    assert "Alice Martin" in listed
    assert "Your record" in listed
    for slug in ("allergies", "observations", "documents", "patient", "reports"):
        page = client.get(f"{base(record)}{slug}/")
        assert page.status_code == 200, slug
        readable(page.content)
    assert "Add allergy" in readable(client.get(f"{base(record)}allergies/").content)
    assert client.get(f"{base(record)}nonsense/").status_code == 404


def test_the_patient_adds_edits_and_deletes_an_allergy_with_its_history(client, record):
    add = f"{base(record)}allergies/new/"
    form = readable(client.get(add).content)
    assert "Mark sensitive" in form
    assert "only the providers you choose can read" in form
    made = {"substance": "Penicillin", "code": "764146007", "reaction": "Hives",
            "criticality": "high", "status": "active", "recorded": "2019-05-02"}  # fmt: skip
    text = follow(client, client.post(add, made))
    assert "Added to the allergies." in text
    for words in (
        "Penicillin",
        "Hives",
        "High risk",
        "Recorded 2 May 2019",
        "764146007 (SNOMED CT)",
    ):
        assert words in text, words
    assert did(text, "you", "created")
    (entry,) = selectors.entries(record, "AllergyIntolerance")
    assert entry.resource["patient"]["reference"].startswith("Patient/")
    assert "Download as FHIR JSON" in text
    assert "Yes, delete this allergy" in text
    as_json = client.get(
        reverse("medical:resource_json", args=[record.id, "allergies", entry.fhir_id])
    )
    assert json.loads(b"".join(as_json))["id"] == entry.fhir_id
    edit = f"{base(record)}allergies/entry/{entry.fhir_id}/edit/"
    shown = client.get(edit)
    assert shown.context["form"].initial["substance"] == "Penicillin"
    assert "Mark sensitive" not in readable(shown.content)  # moving parts is not an edit
    text = follow(client, client.post(edit, {**made, "criticality": "low", "note": "Mild"}))
    assert "Saved." in text
    assert "Low risk" in text
    assert "Mild" in text
    assert did(text, "you", "changed")
    (changed,) = selectors.entries(record, "AllergyIntolerance")
    assert changed.resource["code"]["coding"][0]["code"] == "764146007"  # kept as it was
    overview = readable(client.get(base(record)).content)
    assert "Penicillin" in overview
    text = follow(client, client.post(f"{base(record)}allergies/entry/{entry.fhir_id}/delete/"))
    assert "Deleted from the allergies: Penicillin." in text
    assert selectors.entries(record, "AllergyIntolerance") == []


def test_observations_from_the_form_list_chart_and_refuse_bad_input(client, record):
    add = f"{base(record)}observations/new/"
    taken = client.get(add).context["form"]["taken"].value()
    assert abs((timezone.now() - timezone.make_aware(taken)).total_seconds()) < 120  # now
    half = client.post(add, {"kind": "bp", "systolic": "120", "taken": "2026-03-01T08:30"})
    assert half.status_code == 400
    assert "Please give both blood pressure numbers." in readable(half.content)
    nothing = client.post(add, {"kind": "weight", "taken": "2026-03-01T08:30"})
    assert "Please give the value that was measured." in readable(nothing.content)
    assert selectors.entries(record, "Observation") == []
    for day, (high, low) in enumerate(((120, 80), (131, 85), (126, 79)), start=1):
        taken = f"2026-03-0{day}T08:30"
        reading = {"kind": "bp", "systolic": str(high), "diastolic": str(low), "taken": taken}
        follow(client, client.post(add, reading))
    text = follow(
        client, client.post(add, {"kind": "weight", "value": "72.5", "taken": "2026-03-02T07:00"})
    )
    assert "72.5 kg" in text
    listed = readable(client.get(f"{base(record)}observations/").content)
    assert "126/79 mmHg" in listed
    assert "120/80 mmHg" in listed
    overview = readable(client.get(base(record)).content)
    assert "Recent results" in overview
    assert "131/85 mmHg" in overview
    chart = client.get(f"{base(record)}chart/")
    page = readable(chart.content)
    assert "Blood pressure over time" in page
    assert "Blood pressure (3)" in page
    assert "Body weight (1)" in page
    source = chart.content.decode()
    assert source.count("<polyline") == 2
    assert "Systolic: 131 mmHg" in source
    assert "Diastolic" in page
    weight = readable(client.get(f"{base(record)}chart/29463-7/").content)
    assert "Body weight over time" in weight
    assert "72.5" in weight
    assert client.get(f"{base(record)}chart/12345-6/").status_code == 404


def test_a_sensitive_entry_is_kept_apart_and_badged(client, record):
    add = f"{base(record)}conditions/new/"
    data = {"problem": "Depression", "status": "active", "onset": "2024-01-05", "sensitive": "on"}
    text = follow(client, client.post(add, data))
    assert "Sensitive" in text
    assert "only the providers the patient chose can read" in text
    (entry,) = selectors.entries(record, "Condition")
    assert entry.sensitive
    assert entry.thread_id == selectors.sensitive_of(record).id
    assert "Sensitive" in readable(client.get(f"{base(record)}conditions/").content)


def test_a_document_is_uploaded_and_downloaded(client, record):
    scan = io.BytesIO(b"%PDF-1.4 discharge letter")
    scan.name = "letter.pdf"
    add = f"{base(record)}documents/new/"
    text = follow(
        client, client.post(add, {"file": scan, "title": "Discharge letter", "date": "2025-11-03"})
    )
    assert "Discharge letter" in text
    assert "Download the file" in text
    (entry,) = selectors.entries(record, "DocumentReference")
    got = client.get(f"{base(record)}documents/{entry.fhir_id}/file/")
    assert got.status_code == 200
    assert (
        b"".join(got.streaming_content if got.streaming else [got.content])
        == b"%PDF-1.4 discharge letter"
    )
    assert "attachment" in got["Content-Disposition"]


def test_the_live_parts_are_out_of_band_swaps_with_what_arrived(record):
    services.resource_write(record, "Observation", samples.heart_rate(72))
    live = views.record_live_html(record, "token")
    assert 'id="record-live" hx-swap-oob="true"' in live
    assert "72 beats/min" in readable(live)
    listed = views.list_live_html(record, "observations", "token")
    assert 'id="list-live" hx-swap-oob="true"' in listed
    assert "Heart rate" in readable(listed)
    assert views.list_live_html(record, "nonsense", "token") == ""


async def _next_with(communicator, marker: str) -> str:
    while True:
        html = await communicator.receive_from(timeout=5)
        if marker in html:
            return html


@pytest.mark.anyio
async def test_the_overview_socket_follows_the_sensitive_part_too(owner_user):  # noqa: F811
    def start() -> tuple[Thread, Thread]:
        record = services.record_create(name="Alice Martin")
        services.resource_write(record, "Condition", samples.condition(), sensitive=True)
        return record, selectors.sensitive_of(record)

    record, part = await database_sync_to_async(start)()
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    communicator = socket(f"/ws/medical/{record.id}/", cookies=cookies)
    connected, _ = await communicator.connect()
    assert connected
    await _next_with(communicator, 'id="record-live"')

    def write() -> None:
        anxiety = samples.condition(code="197480006", display="Anxiety disorder")
        services.resource_write(record, "Condition", anxiety, sensitive=True)

    await database_sync_to_async(write)()
    # What the p2p client does after a write in the sensitive part: its own thread's group.
    await get_channel_layer().group_send(
        live_group(part.thread), {"type": "thread.changed", "thread": part.id}
    )
    html = await _next_with(communicator, "Anxiety disorder")
    assert 'id="record-live" hx-swap-oob="true"' in html
    await communicator.disconnect()


# -- a provider ----------------------------------------------------------------------------------


def test_a_provider_adds_what_the_grant_allows_and_is_told_what_it_does_not(client, node, tmp_path):  # noqa: F811
    alice = patients_record(tmp_path, write=["Observation", "Condition"])
    record = alice.thread
    assert record.role == PROVIDER
    overview = readable(client.get(base(record)).content)
    assert "You are a care provider in this record" in overview
    assert "You may add and change problems and results." in overview
    assert "Penicillin" in overview
    assert "Metformin" in overview
    assert "Share & access" not in overview
    assert "Emergency" not in overview
    listed = readable(client.get(f"{base(record)}medications/").content)
    assert "Add medication" not in listed
    refused = client.get(f"{base(record)}medications/new/")
    assert refused.status_code == 403
    assert (
        "You may not write this: the patient's grant does not let you write medications. "
        "The patient decides what each provider may write in the record."
    ) in readable(refused.content)
    posted = client.post(
        f"{base(record)}medications/new/", {"medication": "Ibuprofen", "status": "active"}
    )
    assert posted.status_code in (400, 403)
    assert "may not write" in readable(posted.content).lower()
    assert [e.display for e in selectors.entries(record, "MedicationStatement")] == [
        "Metformin hydrochloride 500 MG Oral Tablet"
    ]
    add = f"{base(record)}observations/new/"
    assert "Mark sensitive" not in readable(client.get(add).content)
    text = follow(
        client, client.post(add, {"kind": "heart", "value": "64", "taken": "2026-03-02T09:00"})
    )
    assert "64 beats/min" in text
    assert did(text, "you", "created")
    assert "delete this" not in text.lower()  # only the patient deletes
    alice.receive()
    assert "Heart rate" in " ".join(
        fhir.TYPES["Observation"]
        .model()
        .objects.using(alice.alias)
        .values_list("display", flat=True)
    )
    # The patient's entry: its history names her; the provider may not edit a medication.
    (metformin,) = selectors.entries(record, "MedicationStatement")
    page = readable(client.get(f"{base(record)}medications/entry/{metformin.fhir_id}/").content)
    assert did(page, "Alice", "created")
    assert "Edit" not in page


def test_a_provider_whose_grant_was_revoked_is_told_so(client, node, tmp_path):  # noqa: F811
    alice = patients_record(tmp_path, write=["Observation"])
    alice.receive()
    alice.grant(alice.thread.member_id, ["Observation"], status="revoked")
    alice.send()
    record = alice.thread
    overview = readable(client.get(base(record)).content)
    assert "The patient has not given you access to write in this record." in overview
    refused = client.get(f"{base(record)}observations/new/")
    assert refused.status_code == 403
    assert "You may not write this: the patient revoked" in readable(refused.content)


# -- Home ----------------------------------------------------------------------------------------


def test_home_says_the_newest_entry_and_what_waits(node, tmp_path):  # noqa: F811
    from datetime import UTC, datetime, timedelta

    alice = patients_record(tmp_path, write=["Observation"])
    alice.receive()
    soon = int((datetime.now(UTC) + timedelta(days=3, hours=1)).timestamp() * 1000)
    alice.grant(alice.thread.member_id, ["Observation"], end=soon)
    alice.write(samples.observation_bp(140, 90, when="2026-03-04T08:00:00Z"))
    alice.send()
    assert home.waiting(alice.thread) == ["your access ends in 3 days"]
    latest = home.latest(alice.thread)
    assert latest is not None
    assert latest.text.startswith("Alice: result")
    assert "140/90 mmHg" in latest.text
    assert home.card_text() == "1 record shared with you."


FORMS = (
    ("medications", {"medication": "Metformin 500 mg", "dose": "Twice a day", "status": "active",
                     "start": "2024-01-10"},
     ["Metformin 500 mg", "Twice a day", "Taken 10 Jan 2024"]),
    ("immunizations", {"vaccine": "Tetanus booster", "given": "2023-03-03", "lot": "AB12"},
     ["Tetanus booster", "Given 3 Mar 2023", "Batch AB12", "Status Completed"]),
    ("procedures", {"procedure": "Appendectomy", "done": "2001-02-02", "status": "completed"},
     ["Appendectomy", "Done 2 Feb 2001", "Status Completed"]),
    ("encounters", {"visit": "AMB", "reason": "Yearly check-up", "start": "2026-02-02",
                    "where": "Riverside Clinic"},
     ["Clinic visit", "When 2 Feb 2026", "Reason Yearly check-up", "Where Riverside Clinic"]),
    ("conditions", {"problem": "Asthma", "status": "remission", "onset": "2010-06-01"},
     ["Asthma", "Status Remission", "Since 1 Jun 2010"]),
    ("observations", {"kind": "other", "name": "Cholesterol", "unit": "mmol/L", "value": "5.2",
                      "taken": "2026-03-01T07:00"}, ["Cholesterol", "Result 5.2 mmol/L"]),
)  # fmt: skip


def test_every_form_writes_its_kind_in_words_and_edits_keep_it(client, record):
    for slug, data, words in FORMS:
        text = follow(client, client.post(f"{base(record)}{slug}/new/", data))
        for said in words:
            assert said in text, (slug, said)
        kind = views.TYPE_BY_SLUG[slug]
        (entry,) = selectors.entries(record, kind.name)
        # Saving the edit form as it comes changes nothing the resource says.
        edit = f"{base(record)}{slug}/entry/{entry.fhir_id}/edit/"
        shown = client.get(edit).context["form"]
        unchanged = {k: v for k, v in shown.initial.items() if v not in (None, "")}
        for name, value in unchanged.items():
            if hasattr(value, "isoformat"):
                unchanged[name] = value.strftime(
                    "%Y-%m-%dT%H:%M" if name == "taken" else "%Y-%m-%d"
                )
        follow(client, client.post(edit, unchanged))
        (again,) = selectors.entries(record, kind.name)
        assert again.resource == entry.resource, slug
    patient = selectors.entries(record, "Patient")[0]
    edit = f"{base(record)}patient/entry/{patient.fhir_id}/edit/"
    text = follow(
        client, client.post(edit, {"name": "Alice B. Martin", "birth_date": "1980-04-02"})
    )
    assert "Name Alice B. Martin" in text
    assert "Alice B. Martin" in readable(client.get(base(record)).content)
