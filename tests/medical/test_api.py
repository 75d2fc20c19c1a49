"""The medical record's REST API, with the other side on a node of its own in this process: a
record made through the threads API takes FHIR resources (create, read, search, update or create
by id, history, delete); bad types, invalid FHIR and unknown ids are refused in words; Bundles
in and out, the patient summary; an invite with a grant (through the core's invites API) gives
the provider who redeems it that grant, which the patient then changes and revokes; and this
node as a provider or caregiver in another patient's record writes only what its grant allows.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import nacl.utils
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.thread.invite import invite_parse
from apps.core.thread.policy import policy_template
from apps.core.thread.writer import ThreadWriter, redemption_request
from apps.core.threads import services as threads
from apps.core.threads.app_kit import app_enabled
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.core.threads.registry import thread_database
from apps.core.threads.signals import ops_written
from apps.medical import duties, fhir, rules, selectors
from apps.medical.models import Grant
from apps.medical.policy import CAREGIVER, PROVIDER, RULES_APP, SHAPE, record_spec
from tests.checklist.conftest import browser, owner_user  # noqa: F401
from tests.core.threads.conftest import OtherNode, exchange, node, thread_databases_allowed  # noqa: F401
from tests.medical import samples
from tests.support.members import Member

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_duties() -> Iterator[None]:
    """Grants follow invites when the test says so (``duties.grants_follow_invites``)."""
    ops_written.disconnect(dispatch_uid="medical-duties")
    yield
    ops_written.connect(duties.on_ops_written, dispatch_uid="medical-duties")


@pytest.fixture
def api(browser) -> Client:  # noqa: F811
    return browser


def send(api: Client, method: str, url: str, body=None, kind: str = "application/json", **extra):
    data = json.dumps(body) if body is not None else ""
    return getattr(api, method)(url, data, content_type=kind, **extra)


def refused(answer, status: int, words: str) -> None:
    assert answer.status_code == status, answer.content
    body = answer.json()
    assert body["error"], body
    assert words in body["detail"], body


@pytest.fixture
def record(api) -> str:
    made = send(api, "post", "/api/v1/threads/", {"name": "Ada Lovelace", "app": SHAPE})
    assert made.status_code == 201, made.content
    return made.json()["id"]


def test_a_record_made_through_the_threads_api_keeps_fhir_resources(api, record):
    thread = Thread.objects.get(pk=record)
    assert app_enabled(thread, RULES_APP)
    base = f"/api/v1/threads/{record}/fhir/"
    patients = api.get(base + "Patient/").json()
    assert patients["type"] == "searchset"
    assert patients["total"] == 1

    made = send(api, "post", base + "Observation/", samples.observation_bp(128, 82))
    assert made.status_code == 201, made.content
    stored = made.json()
    rid = stored["id"]
    assert made["Location"].endswith(f"{base}Observation/{rid}/")
    assert stored["resourceType"] == "Observation"
    assert stored["component"][0]["valueQuantity"]
    assert api.get(f"{base}Observation/{rid}/").json() == stored

    changed = samples.observation_bp(140, 90)
    updated = send(api, "put", f"{base}Observation/{rid}/", changed, kind="application/fhir+json")
    assert updated.status_code == 200, updated.content
    assert updated.json()["component"][0]["valueQuantity"]["value"] == 140
    created = send(api, "put", f"{base}Observation/bp-2/", samples.observation_bp(id="bp-2"))
    assert created.status_code == 201
    assert created.json()["id"] == "bp-2"
    again = send(api, "post", base + "Observation/", samples.observation_bp(id="bp-2"))
    refused(again, 409, "PUT changes it")

    history = api.get(f"{base}Observation/{rid}/_history/").json()
    assert [v["action"] for v in history["versions"]] == ["insert", "update"]
    assert {v["name"] for v in history["versions"]} == {"you"}

    as_fhir = api.get(f"{base}Observation/{rid}/", HTTP_ACCEPT="application/fhir+json")
    assert as_fhir["Content-Type"].startswith("application/fhir+json")
    assert send(api, "delete", f"{base}Observation/{rid}/").status_code == 204
    refused(api.get(f"{base}Observation/{rid}/"), 404, "no result with this id")
    assert api.get(base + "Observation/").json()["total"] == 1


def test_bad_requests_are_refused_in_words_and_store_nothing(api, record):
    base = f"/api/v1/threads/{record}/fhir/"
    refused(send(api, "post", base + "Spaceship/", {"resourceType": "Spaceship"}), 404, "keeps")
    refused(api.get(base + "Observation/nope/"), 404, "no result with this id")
    refused(api.get(base + "Condition/nope/_history/"), 404, "no problem with this id")
    invalid = send(api, "post", base + "Condition/", {"resourceType": "Condition"})
    refused(invalid, 400, "not valid FHIR")
    assert "subject" in invalid.json()["detail"]
    wrong = send(api, "post", base + "Condition/", samples.allergy())
    refused(wrong, 400, "not a Condition")
    refused(send(api, "post", base + "Condition/", [1, 2]), 400, "JSON object")
    mismatch = send(api, "put", base + "Condition/c-1/", samples.condition(id="c-2"))
    refused(mismatch, 400, "not the one in its address")
    refused(api.get(base + "Observation/?_count=many"), 400, "_count")
    refused(api.get(base + "Observation/?date=soon"), 400, "date")
    assert api.get(base + "Condition/").json()["total"] == 0
    other = threads.thread_create(name="Book club")
    refused(api.get(f"/api/v1/threads/{other.id}/fhir/Condition/"), 404, "not a medical record")
    refused(api.get(f"/api/v1/threads/{'ab' * 32}/ips/"), 404, "no such thread")


def test_hostile_requests_are_answered_in_words_never_a_crash(api, record):
    base = f"/api/v1/threads/{record}/"
    refused(api.get(base + "fhir/" + "X" * 300 + "/"), 404, "keeps")
    refused(api.get(base + "fhir/Observation/a%20b%3Cscript%3E/"), 404, "no result")
    bad = send(api, "post", base + "fhir/Observation/?sensitive=maybe", samples.heart_rate())
    refused(bad, 400, "sensitive: true or false")
    refused(send(api, "post", base + "fhir/Observation/", samples.heart_rate(id="no spaces")),
            400, "id")  # fmt: skip
    broken = api.post(base + "fhir/Observation/", "{not json", content_type="application/json")
    assert broken.status_code == 400
    assert broken.json()["error"]
    huge = {"resourceType": "Bundle", "type": "collection", "note": "x" * 3_000_000}
    too_big = send(api, "post", base + "fhir/", huge)
    refused(too_big, 400, "send a large Bundle as a file")
    for method in ("put", "delete"):
        refused(send(api, method, base + "grants/not-hex/", {"read": []}), 404, "hold the record")
    assert Client().get(base + "fhir/Observation/").status_code in (401, 403)
    assert api.get(base + "fhir/Observation/").json()["total"] == 0


def test_search_by_code_date_and_status_with_a_count(api, record):
    base = f"/api/v1/threads/{record}/fhir/"
    for day, value in (("2026-01-05", 6.1), ("2026-02-10", 6.8), ("2026-03-15", 7.2)):
        made = send(api, "post", base + "Observation/", samples.hba1c(value, when=day))
        assert made.status_code == 201, made.content
    send(api, "post", base + "Observation/", samples.heart_rate(when="2026-02-11T08:00:00Z"))

    def ids(query: str) -> tuple[int, list[str]]:
        found = api.get(base + "Observation/" + query).json()
        dates = [e["resource"]["effectiveDateTime"][:10] for e in found["entry"]]
        return found["total"], dates

    assert ids("") == (4, ["2026-03-15", "2026-02-11", "2026-02-10", "2026-01-05"])
    a1c = samples.hba1c(6.0)["code"]["coding"][0]
    assert ids(f"?code={a1c['system']}|{a1c['code']}")[0] == 3
    assert ids(f"?code={a1c['code']}&date=ge2026-02&date=le2026-02-28") == (1, ["2026-02-10"])
    assert ids("?date=gt2026-02-10&_count=1") == (2, ["2026-03-15"])
    assert ids("?status=final,amended")[0] == 4
    assert ids("?status=cancelled") == (0, [])
    first = api.get(base + "Observation/?_count=1").json()["entry"][0]
    assert first["search"] == {"mode": "match"}
    assert first["fullUrl"].endswith(f"Observation/{first['resource']['id']}/")


def test_the_patient_keeps_an_entry_in_the_sensitive_part(api, record):
    base = f"/api/v1/threads/{record}/fhir/"
    made = send(api, "post", base + "Condition/?sensitive=true", samples.condition(id="mh"))
    assert made.status_code == 201, made.content
    entry = selectors.entry_get(Thread.objects.get(pk=record), "Condition", "mh")
    assert entry is not None
    assert entry.sensitive
    listed = api.get(base + "Condition/").json()["entry"]
    assert [e["resource"]["id"] for e in listed] == ["mh"]
    assert listed[0]["extension"]
    part = selectors.sensitive_of(Thread.objects.get(pk=record))
    refused(api.get(f"/api/v1/threads/{part.id}/fhir/Condition/"), 404, "sensitive part")
    moved = send(api, "put", base + "Condition/mh/?sensitive=false", samples.condition(id="mh"))
    refused(moved, 409, "sensitive part")


def test_bundles_in_and_out_and_the_patient_summary(api, record):
    base = f"/api/v1/threads/{record}/fhir/"
    data = samples.bundle(6, bad=2)
    report = send(api, "post", base, data, kind="application/fhir+json")
    assert report.status_code == 200, report.content
    body = report.json()
    assert (body["total"], len(body["imported"]), len(body["refused"])) == (8, 6, 2)
    assert all(r["reason"] for r in body["refused"])
    assert sorted(r["index"] for r in body["refused"]) == samples.bad_entries(data)

    upload = SimpleUploadedFile("clinic.json", json.dumps(samples.bundle(3, seed=7)).encode())
    filed = api.post(base, {"bundle": upload})
    assert filed.status_code == 200, filed.content
    assert len(filed.json()["imported"]) == 3
    refused(send(api, "post", base, {"resourceType": "Patient"}), 400, "Bundle")

    exported = api.get(base + "$export")
    assert exported.status_code == 200, exported.content
    assert api.get(base + "export").json()["entry"] == exported.json()["entry"]
    assert exported.json()["type"] == "collection"
    assert len(exported.json()["entry"]) == 1 + 6 + 3  # the patient, both imports
    summary = api.get(f"/api/v1/threads/{record}/ips/").json()
    assert summary["resourceType"] == "Bundle"
    assert summary["type"] == "document"


# -- invites with grants, and grants --------------------------------------------------------------


def redeems(record: Thread, link: str, tmp_path: Path, name: str) -> Member:
    """Someone on a node of their own redeems ``link``; this node admits them and writes the
    grant the invite carried (its duty, run here at once)."""
    keys = NodeKeys(nacl.signing.SigningKey.generate(), nacl.utils.random(32))
    database = ThreadDatabase(
        record.thread, path=tmp_path / f"{name}.sqlite3", alias=f"thread_{record.id}_{name}",
        node=keys,
    )  # fmt: skip
    joined = Member(OtherNode(keys, database), record)
    request = redemption_request(
        invite_parse(link), master_secret=keys.master_secret, device_key=keys.device
    )
    threads.invite_admit(thread=record, request=request)
    assert duties.grants_follow_invites(record) == [joined.member]
    joined.receive()
    return joined


def invite(api: Client, record: str, **body):
    body.setdefault("expires_in", 3600)
    return send(api, "post", f"/api/v1/threads/{record}/invites/", body)


def test_an_invite_with_a_grant_gives_it_to_whoever_redeems_it(api, record, tmp_path):
    grant = {"read": ["Observation", "Condition"], "write": ["Observation"], "label": "Dr. Lee"}
    refused(invite(api, record, role=PROVIDER), 400, "give a grant")
    refused(invite(api, record, role=PROVIDER, grant=grant, uses=3), 400, "one person")
    refused(invite(api, record, role=PROVIDER, grant={"write": []}), 400, "read")
    refused(invite(api, record, role=PROVIDER, grant={"read": ["Spaceship"]}), 400, "Spaceship")
    made = invite(api, record, role=PROVIDER, grant=grant)
    assert made.status_code == 201, made.content

    thread = Thread.objects.get(pk=record)
    lee = redeems(thread, made.json()["link"], tmp_path, "lee")
    grants = api.get(f"/api/v1/threads/{record}/grants/").json()
    assert [(g["member"], g["role"], g["label"]) for g in grants] == [
        (lee.member, PROVIDER, "Dr. Lee")
    ]
    assert grants[0]["write"] == ["Observation"]
    assert grants[0]["status"] == "active"
    assert set(grants[0]["read"]) == {"Observation", "Condition"}

    url = f"/api/v1/threads/{record}/grants/{lee.member}/"
    changed = send(api, "put", url, {"read": ["Observation"], "write": [], "end": "2027-01-31"})
    assert changed.status_code == 200, changed.content
    assert changed.json()["write"] == []
    assert changed.json()["end"].startswith("2027-02-01")
    refused(send(api, "put", url, {"read": [], "end": "2026-01-01", "start": "2026-02-01"}),
            400, "end after it starts")  # fmt: skip
    refused(send(api, "put", f"/api/v1/threads/{record}/grants/{'cd' * 32}/", {"read": []}),
            404, "does not hold the record")  # fmt: skip

    assert send(api, "delete", url).status_code == 204
    assert selectors.role_of(thread, lee.member) is None
    assert [g["status"] for g in api.get(f"/api/v1/threads/{record}/grants/").json()] == ["revoked"]
    refused(send(api, "delete", url), 404, "does not hold the record")


# -- this node in another patient's record --------------------------------------------------------


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def patients_record(tmp_path: Path, role: str, write: list[str]) -> Member:
    """Ada's record on a node of her own, which this node joined at ``role``, with the grant
    Ada wrote for it (reading everything, writing ``write``)."""
    keys = NodeKeys(nacl.signing.SigningKey.generate(), nacl.utils.random(32))
    writer = ThreadWriter.create(
        master_secret=keys.master_secret, device_key=keys.device, name="Ada Lovelace",
        app=SHAPE, policy=policy_template(SHAPE),
    )  # fmt: skip
    writer.control(p.EnableApp(record_spec()))
    database = ThreadDatabase(
        writer.thread, path=tmp_path / "ada.sqlite3", alias=f"thread_{writer.thread.hex()}_ada",
        node=keys,
    )  # fmt: skip
    database.ingest(op.raw for op in writer.replica.admitted)
    database.write(lambda w: w.set_name("Ada"))
    made = database.write(lambda w: w.invite_create(role=role, expiry=now_ms() + 60_000,
                                                    inviter="ada"))  # fmt: skip
    invite, request = threads.invite_redeem_local(link=made.link())
    database.write(lambda w: w.admit(request))
    ada = database.member_public()
    Grant.objects.using(database.alias).create(
        id=uuid.UUID(hex=rules.grant_id(ada, request.member)), grantee=request.member.hex(),
        label="Dr. Me", read=json.dumps(list(fhir.TYPES)), write=json.dumps(write),
        status=rules.ACTIVE,
    )  # fmt: skip
    log = "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
    joined = threads.thread_join(invite=invite, raws=[r for (r,) in database.raw().execute(log)])
    return Member(OtherNode(keys, database), joined)


def test_a_provider_writes_only_what_its_grant_allows(api, tmp_path):
    ada = patients_record(tmp_path, PROVIDER, ["Observation"])
    base = f"/api/v1/threads/{ada.thread.id}/fhir/"
    made = send(api, "post", base + "Observation/", samples.heart_rate())
    assert made.status_code == 201, made.content
    refused(send(api, "post", base + "MedicationStatement/", samples.medication()), 403,
            "not let you write medications")  # fmt: skip
    rid = made.json()["id"]
    refused(send(api, "delete", f"{base}Observation/{rid}/"), 403, "Only the patient")
    refused(send(api, "post", base + "Condition/?sensitive=true", samples.condition()), 403,
            "Only the patient")  # fmt: skip
    refused(send(api, "delete", f"/api/v1/threads/{ada.thread.id}/grants/{ada.member}/"), 403,
            "Only the patient")  # fmt: skip
    ada.receive()
    assert selectors.entries(ada.thread, "MedicationStatement") == []
    exchange(thread_database(ada.thread.thread), ada.node.database)


def test_a_caregiver_reads_and_writes_nothing(api, tmp_path):
    ada = patients_record(tmp_path, CAREGIVER, [])
    base = f"/api/v1/threads/{ada.thread.id}/fhir/"
    assert api.get(base + "Observation/").status_code == 200
    refused(send(api, "post", base + "Observation/", samples.heart_rate()), 403,
            "caregiver reads the record and writes nothing")  # fmt: skip
    refused(send(api, "put", base + "Observation/x-1/", samples.heart_rate(id="x-1")), 403,
            "writes nothing")  # fmt: skip


def test_the_schema_lists_every_route(api):
    schema = api.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    thread = "/api/v1/threads/{thread_id}/"
    for path in (
        "fhir/", "fhir/export", "fhir/{resource_type}/", "fhir/{resource_type}/{rid}/",
        "fhir/{resource_type}/{rid}/_history/", "ips/", "grants/", "grants/{member}/",
    ):  # fmt: skip
        assert thread + path in paths, path
    ids = {op["operationId"] for item in paths.values() for op in item.values()}
    assert {"medical_fhir_search", "medical_fhir_import", "medical_grant_revoke"} <= ids
    grant = schema["components"]["schemas"]["InviteCreateInputRequest"]["properties"]["grant"]
    assert "medical record" in grant["description"]
