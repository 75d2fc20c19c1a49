"""The record's audit log (``audit.py``, its page and ``GET /api/v1/threads/{id}/audit/``): a
provider on a node of its own in this process joins with a grant, adds a result, the patient
changes and revokes the grant; the log says each step in words, newest first, from the signed
ops: who joined, the grant given, changed and revoked, the removal and the new key, each entry
added or changed and by whom, invites made and revoked, and every try at the emergency link
(this node's own records). Filters by kind and person, and pages, give the same entries as
the whole log."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.urls import reverse

from apps.medical import audit, emergency, selectors, services, sharing
from apps.medical.emergency import EmergencyRefused
from apps.medical.policy import PROVIDER
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.medical import samples
from tests.medical.access_support import Provider, provider_joins

pytestmark = pytest.mark.django_db(transaction=True)

HEX_ID = re.compile(r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{12,}(?![0-9A-Za-z])")


def said(entries: list[audit.AuditEntry]) -> list[str]:
    return [f"{e.who} {e.what}" for e in entries]


@pytest.fixture
def record(node):  # noqa: F811 - the fixture
    return services.record_create(name="Ada Lovelace", birth_date="1985-12-10")


@pytest.fixture
def story(record, tmp_path) -> Provider:
    """The patient adds an allergy; Dr. Lee joins (read all, write results and problems) and
    adds a heart rate; the patient changes the allergy, narrows Dr. Lee's grant, then revokes
    their access."""
    allergy = services.resource_write(record, "AllergyIntolerance", samples.allergy())
    lee = provider_joins(record, tmp_path, "Dr. Lee", write=["Observation", "Condition"])
    lee.write(samples.heart_rate(72))
    services.resource_write(
        record,
        "AllergyIntolerance",
        samples.allergy(display="Penicillin G"),
        fhir_id=allergy.fhir_id,
    )
    sharing.grant_set(record, member_id=lee.member, read=["Observation"], write=["Observation"])
    sharing.access_revoke(record, member_id=lee.member)
    return lee


def test_the_log_tells_the_story_newest_first(record, story: Provider) -> None:
    entries = audit.audit_log(record)
    assert [e.at for e in entries] == sorted((e.at for e in entries), reverse=True)
    lines = said(entries)
    expected = [  # oldest last, as the log reads
        "you replaced the key of the record, so that Dr. Lee cannot read what is written from "
        "then on",
        "you removed Dr. Lee from the record: they keep what their devices already held, and "
        "nothing written from then on reaches them",
        "you revoked Dr. Lee's access",
        "you changed what Dr. Lee “Dr. Lee, Riverside Clinic” may do: reads results, adds results",
        "you changed an allergy: Penicillin G",
        "Dr. Lee added a result: Heart rate",
        "you gave Dr. Lee “Dr. Lee, Riverside Clinic” access: reads everything, adds "
        "problems and results",
        "Dr. Lee joined the record as a provider “Dr. Lee, Riverside Clinic”",
        "you made an invite for a provider “Dr. Lee, Riverside Clinic”, valid until",
        "you added an allergy: Penicillin G",
        "you started the record",
    ]
    found = iter(lines)
    for line in expected:  # each in this order, with whatever else between
        assert any(got.startswith(line) for got in found), (line, lines)
    assert not any(HEX_ID.search(line) for line in lines)
    kinds = {e.kind for e in entries}
    assert kinds == {"access", "invite", "grant", "write"}


def test_a_write_names_its_author_and_links_to_the_entry(record, story: Provider) -> None:
    [heart] = [e for e in audit.audit_log(record, kind="write") if "Heart rate" in e.what]
    assert (heart.who, heart.member, heart.slug) == ("Dr. Lee", story.member, "observations")
    assert heart.fhir_id
    assert heart.part == ""


def test_filters_by_kind_and_person(record, story: Provider) -> None:
    everything = audit.audit_log(record)
    for kind in audit.KINDS:
        assert audit.audit_log(record, kind=kind) == [e for e in everything if e.kind == kind]
    theirs = audit.audit_log(record, member=story.member)
    assert theirs == [e for e in everything if story.member in (e.member, e.about)]
    assert "Dr. Lee added a result: Heart rate" in said(theirs)
    assert "you revoked Dr. Lee's access" in said(theirs)  # about them
    assert not any("allergy" in line for line in said(theirs))
    assert said(audit.audit_log(record, kind="write", member=story.member)) == [
        "Dr. Lee added a result: Heart rate"
    ]


def test_pages_cut_the_same_log(record, story: Provider) -> None:
    everything = audit.audit_log(record)
    pages, number = [], 1
    while True:
        page = audit.audit_page(record, page=number, per_page=3)
        pages += page.entries
        if not page.has_next:
            break
        number += 1
    assert pages == everything
    assert number == -(-len(everything) // 3)
    people = dict(page.people)
    assert people[record.member_id] == "you"
    assert people[story.member] == "Dr. Lee"


def test_the_sensitive_part_is_in_the_log_under_the_same_names(record, tmp_path) -> None:
    kim = provider_joins(record, tmp_path, "Dr. Kim", sensitive=True)
    services.resource_write(record, "Condition", samples.condition(), sensitive=True)
    part = selectors.sensitive_of(record)
    assert part is not None
    kim.join_part(part, tmp_path)
    entries = audit.audit_log(record)
    lines = said(entries)
    assert "you started the sensitive part of the record" in lines
    assert (
        "Dr. Kim joined the sensitive part of the record as a provider “Dr. Kim, Riverside "
        "Clinic”" in lines
    )
    [problem] = [e for e in entries if e.kind == "write" and e.part]
    assert problem.who == "you"
    assert problem.what.endswith("(in the sensitive part)")
    assert any(
        line.startswith("you made an invite to the sensitive part for a provider “Dr. Kim")
        for line in lines
    ), [line for line in lines if "invite" in line]
    theirs = said(audit.audit_log(record, member=kim.member))
    assert (
        "Dr. Kim joined the sensitive part of the record as a provider “Dr. Kim, Riverside "
        "Clinic”" in theirs
    )
    assert "Dr. Kim joined the record as a provider “Dr. Kim, Riverside Clinic”" in theirs


def test_revoked_invites_are_in_the_log(record) -> None:
    made = sharing.share_invite(
        record, role=PROVIDER, label="Dr. Kim", read=["Observation"], write=[],
        expires_in=timedelta(hours=1),
    )  # fmt: skip
    from apps.core.threads import services as threads

    threads.invite_revoke(thread=record, invite_id=made.record.invite_id)
    lines = said(audit.audit_log(record, kind="invite"))
    assert lines[0] == "you revoked the invite “Dr. Kim”: it no longer lets anyone in"
    assert lines[1].startswith("you made an invite for a provider “Dr. Kim”, valid until")


def test_every_try_at_the_emergency_link_is_in_the_log(record) -> None:
    link, path = emergency.emergency_create(
        record, passcode="246810", expires_in=timedelta(days=1), max_attempts=3
    )
    key = path.split("#", 1)[1]
    with pytest.raises(EmergencyRefused):
        emergency.emergency_open(link.id, key, "000000", "203.0.113.7")
    emergency.emergency_open(link.id, key, "246810", "198.51.100.2")
    lines = said(audit.audit_log(record, kind="emergency"))
    assert (
        lines[0]
        == "someone opened your emergency summary with the right passcode from 198.51.100.2"
    )
    assert lines[1] == "someone tried a wrong passcode on your emergency link from 203.0.113.7"
    assert lines[2].startswith("you made an emergency link, valid until")


def test_the_audit_page_filters_and_shows_no_keys(browser, record, story) -> None:  # noqa: F811
    url = reverse("medical:audit", args=[record.id])
    page = browser.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    main = text.split('<main id="main"', 1)[1].split("</main>", 1)[0]
    words = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main)))
    assert not HEX_ID.search(words)
    assert "Dr. Lee added a result: Heart rate" in words
    assert "You revoked Dr. Lee's access" in words
    assert "When each device last synced" not in words  # nobody else holds it now
    writes = browser.get(url, {"kind": "write", "person": story.member}).content.decode()
    assert "Heart rate" in writes
    assert "revoked" not in re.sub(r"<[^>]+>", " ", writes.split('id="audit"', 1)[1])
    [heart] = [e for e in audit.audit_log(record, kind="write") if "Heart rate" in e.what]
    assert reverse("medical:entry", args=[record.id, "observations", heart.fhir_id]) in writes
    for junk in ({"kind": "nonsense"}, {"person": "zz"}, {"page": "abc"}, {"page": "999"}):
        assert browser.get(url, junk).status_code == 200


def test_the_audit_api(browser, record, story) -> None:  # noqa: F811
    url = f"/api/v1/threads/{record.id}/audit/"
    answer = browser.get(url, {"per_page": 2})
    assert answer.status_code == 200
    body = answer.json()
    assert (len(body["entries"]), body["page"], body["next_page"]) == (2, 1, 2)
    assert body["entries"][0]["what"].startswith("replaced the key")
    writes = browser.get(url, {"kind": "write", "member": story.member}).json()["entries"]
    assert [(e["who"], e["what"], e["resource_type"]) for e in writes] == [
        ("Dr. Lee", "added a result: Heart rate", "Observation")
    ]
    assert body["devices"] == []  # Dr. Lee's device is out of the record now
    bad = browser.get(url, {"kind": "nonsense"})
    assert bad.status_code == 400
    assert browser.get("/api/v1/threads/" + "ab" * 32 + "/audit/").status_code == 404


def test_the_log_says_when_each_device_last_synced(browser, record, provider) -> None:  # noqa: F811
    page = browser.get(reverse("medical:audit", args=[record.id])).content.decode()
    assert "When each device last synced" in page
    assert "Dr. Lee&#x27;s device" in page
    assert "has not synced with this node yet" in page
    [device] = browser.get(f"/api/v1/threads/{record.id}/audit/").json()["devices"]
    assert (device["who"], device["label"], device["last_synced"]) == (
        "Dr. Lee", "Dr. Lee's device", None,
    )  # fmt: skip


def test_the_schema_documents_the_audit_api(browser) -> None:  # noqa: F811
    paths = browser.get("/api/schema/?format=json").json()["paths"]
    audit_get = paths["/api/v1/threads/{thread_id}/audit/"]["get"]
    assert audit_get["operationId"] == "medical_audit"
    assert {p["name"] for p in audit_get["parameters"]} >= {"kind", "member", "page", "per_page"}
