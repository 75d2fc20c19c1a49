"""The medical record between three real nodes (``runnode`` processes, each in a network namespace
of its own: ``tests/support/faults.py``'s cluster), through the HTTP API only (issue 16,
Acceptance).

A patient creates a record with an allergy, a medication and 20 blood-pressure readings. Dr. A
joins by an invite link whose grant reads everything and writes Observation and Condition; the
condition and reading she adds reach the patient; her MedicationStatement is refused by her own
node in words, and the same write forged by a modified node (signed with her device key,
bypassing the service) is refused by every replica, Dr. B's included, which decides it when it
joins later. Dr. B joins and sees the history, Dr. A's entries with their provenance. The
patient revokes Dr. A: what the patient writes afterwards never reaches her node (its API nor
its data folder), and her node refuses her later writes. An entry the patient marks sensitive
never reaches Dr. B, who is not invited to the sensitive part, while Dr. A, who is, reads it.
The patient's audit tells all of it.

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_market_nodes import join  # redeem, wait until active
from tests.medical import samples
from tests.support.api import Api, ApiError, wait_for
from tests.support.faults import Cluster
from tests.support.nodes import manage
from tests.support.quiet_cluster import node_api, quiet_cluster

pytestmark = pytest.mark.slow

NAMES = ["patient", "dra", "drb"]
REFUSED = (403, 409)
ALL_TYPES = [
    "Patient",
    "AllergyIntolerance",
    "Condition",
    "MedicationStatement",
    "Immunization",
    "Observation",
    "Procedure",
    "DiagnosticReport",
    "DocumentReference",
    "Encounter",
]
FORGED_ID = "forged-med"
FORGED_DRUG = "Oxycodone 80 MG forged"
SECRET = "Sensitive-marker-7f3a"  # a sensitive condition's words
AFTER = "After-revoke-marker-c41d"  # a reading the patient adds once Dr. A is revoked
SECRET_AFTER = "Sensitive-after-revoke-2d8e"  # a sensitive entry written once she is revoked
LATE = "Late-from-dra-9b2e"  # what Dr. A's node tries to write once revoked


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    with quiet_cluster(NAMES, tmp_path_factory.mktemp("medical-nodes")) as made:
        yield made


# -- helpers --------------------------------------------------------------------------------------


def refusal(call: Any) -> str:
    """The words of a refused call (refused as a person's mistake, with a reason)."""
    with pytest.raises(ApiError) as refused:
        call()
    body = refused.value.body
    detail = body.get("detail", "") if isinstance(body, dict) else str(body)
    assert refused.value.status in REFUSED, body
    assert detail, body
    return str(detail)


def listed(api: Api, record: str, kind: str) -> list[dict[str, Any]]:
    """The resources of ``kind`` this node shows in the record (a searchset Bundle's entries)."""
    try:
        found = api.get(f"/api/v1/threads/{record}/fhir/{kind}/?_count=1000")
    except ApiError as exc:
        if exc.status == 404:  # not joined (yet), or no longer
            return []
        raise
    return [entry["resource"] for entry in found.get("entry", [])]


def ids(api: Api, record: str, kind: str) -> set[str]:
    return {resource["id"] for resource in listed(api, record, kind)}


def words_in(api: Api, record: str, kind: str, text: str) -> bool:
    return any(text in json.dumps(r) for r in listed(api, record, kind))


def member_id(api: Api, thread: str) -> str:
    return api.get(f"/api/v1/threads/{thread}/")["member_id"]


def invite(api: Api, record: str, label: str, write: list[str], **more: Any) -> str:
    """A single-use provider invite with a grant: reads everything, writes ``write``."""
    grant = {"label": label, "read": ALL_TYPES, "write": write, **more}
    body = {"role": "provider", "expires_in": 3600, "uses": 1, "grant": grant}
    return api.post(f"/api/v1/threads/{record}/invites/", body)["link"]


def op_status(api: Api, thread: str, op_hash: str) -> tuple[str, str] | None:
    """The decision this node's replica took on an op, once it holds it."""
    after = 0
    while True:
        page = api.get(f"/api/v1/threads/{thread}/ops/?after={after}&limit=1000")
        for op in page["ops"]:
            if op["hash"] == op_hash:
                return op["status"], op["reason"] or ""
        if not page["ops"]:
            return None
        after = page["next"]


def folder_holds(folder: Path, text: str) -> list[str]:
    """The files under a node's data folder whose bytes contain ``text`` (its databases, their
    write-ahead logs, blobs): what a person with the disk could read."""
    needle, found = text.encode(), []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(str(path.relative_to(folder)))
        except FileNotFoundError:  # a journal the running node just removed
            continue
    return found


def shell(cluster: Cluster, name: str, code: str) -> str:
    peer = cluster.nodes[name].peer
    result = manage(peer.data_dir, "shell", "-v", "0", "-c", code, env=peer.env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def medication_forge(thread_hex: str) -> None:
    """Run by ``manage.py shell`` in Dr. A's data folder while her node is stopped: the
    MedicationStatement her grant does not allow, as a modified node would write it (a valid
    resource and columns, signed by her device, the service's checks skipped). Her replica
    takes it into its log as if her node had written it, and decides it; her node sends it on
    when it runs again. Prints the op's hash and her replica's decision."""
    from apps.core.replicated import replicated_tables
    from apps.core.thread import payloads as p
    from apps.core.thread.rowid import row_id_new
    from apps.core.threads import coltypes, schema
    from apps.core.threads.registry import thread_database
    from apps.medical import fhir
    from tests.core.thread.conftest import forge

    kind = fhir.TYPES["MedicationStatement"]
    model = replicated_tables()[kind.table]
    columns = schema.columns(model)
    resource = samples.medication(id=FORGED_ID, code="1049683", display=FORGED_DRUG)
    checked = fhir.resource_check(kind.name, resource)
    database = thread_database(bytes.fromhex(thread_hex))
    database.open()
    with database.lock:
        writer = database.writer()
        pk = row_id_new(writer.member).hex
        fields = model._meta.concrete_fields
        values = {f.column: f.get_default() for f in fields if not f.primary_key}
        values |= checked.columns | {"fhir_id": FORGED_ID, "resource": checked.json}
        values[model._meta.pk.column] = pk
        values = {column: values[column] for column in columns}
        change = p.RowChange(kind.table, pk, p.UPSERT, values)
        payload = p.data_doc([change], coltypes.schema_of({kind.table}))
        op = forge(writer, kind="data", payload=payload)
    (result,) = database.ingest([op.raw])
    print(op.hash.hex(), result.status)


# -- the acceptance -------------------------------------------------------------------------------


def test_a_record_shared_with_two_providers_grant_revoke_sensitive_and_audit(
    cluster: Cluster,
) -> None:
    patient, dra, drb = (node_api(cluster, name) for name in NAMES)

    # The patient's record: an allergy, a medication, 20 blood-pressure readings.
    record = patient.post("/api/v1/threads/", {"name": "Ada's record", "app": "medical"})["id"]
    fhir = f"/api/v1/threads/{record}/fhir"
    patient.post(f"{fhir}/AllergyIntolerance/", samples.allergy())
    patient.post(f"{fhir}/MedicationStatement/", samples.medication())
    for i in range(20):
        reading = samples.observation_bp(
            120 + i, 75 + i % 10, when=f"2026-03-{i + 1:02d}T08:30:00Z"
        )
        patient.post(f"{fhir}/Observation/", reading)
    assert len(listed(patient, record, "Observation")) == 20
    # A sensitive entry, in the record's sensitive part (made on this first use).
    secret = samples.condition(code="35489007", display=f"Depressive disorder {SECRET}")
    secret_id = patient.post(f"{fhir}/Condition/?sensitive=true", secret)["id"]
    assert secret_id in ids(patient, record, "Condition")

    # Dr. A joins by link: reads everything, writes Observation and Condition, and is invited
    # to the sensitive part too.
    writes_a = ["Observation", "Condition"]
    join(dra, invite(patient, record, "Dr. A, Riverside Clinic", writes_a, sensitive=True))
    a_member = member_id(dra, record)
    wait_for(
        lambda: len(listed(dra, record, "Observation")) == 20,
        timeout=60,
        what="the history on Dr. A's node",
    )
    wait_for(
        lambda: any(
            g["member"] == a_member and sorted(g["write"]) == sorted(writes_a)
            for g in dra.get(f"/api/v1/threads/{record}/grants/")
        ),
        what="Dr. A's grant on her node",
    )
    wait_for(
        lambda: secret_id in ids(dra, record, "Condition"),
        timeout=60,
        what="the sensitive entry on Dr. A's node (she is invited to the sensitive part)",
    )

    # Her condition and reading reach the patient; her medication is refused in words.
    hypertension = samples.condition(code="38341003", display="Hypertensive disorder")
    condition_a = dra.post(f"{fhir}/Condition/", hypertension)["id"]
    reading_a = dra.post(f"{fhir}/Observation/", samples.observation_bp(162, 101))["id"]
    for kind, made in (("Condition", condition_a), ("Observation", reading_a)):
        wait_for(
            lambda k=kind, m=made: m in ids(patient, record, k),
            what=f"Dr. A's {kind} on the patient's node",
        )
    words = refusal(lambda: dra.post(f"{fhir}/MedicationStatement/", samples.medication()))
    assert "medication" in words.lower(), words

    # The same write from a modified node (her device key, no service): refused by her replica
    # and, once her node runs again and syncs, by the patient's.
    node_a = cluster.nodes["dra"]
    node_a.peer.stop()
    node_a.state = "down"
    forged = shell(
        cluster,
        "dra",
        "from tests.integration.test_medical_nodes import medication_forge; "
        f"medication_forge('{record}')",
    )
    forged_hash, _status_on_a = forged.split()[-2:]
    cluster.restart("dra")
    dra = node_api(cluster, "dra")  # on another port now
    reasons = {}
    for api, name in ((dra, "Dr. A"), (patient, "the patient")):
        decided = wait_for(
            lambda a=api: (s := op_status(a, record, forged_hash)) and s[0] != "waiting" and s,
            timeout=60,
            what=f"the forged medication decided on {name}'s node",
        )
        assert decided[0] == "refused", (name, decided)
        reasons[name] = decided[1]
    assert "not let this provider write medications" in reasons["the patient"], reasons
    assert reasons["Dr. A"] == reasons["the patient"]
    assert FORGED_ID not in ids(patient, record, "MedicationStatement")
    assert FORGED_ID not in ids(dra, record, "MedicationStatement")

    # Dr. B joins (reads everything, writes Observation; not the sensitive part) and sees the
    # history, Dr. A's entries with who wrote them; it decides the forged write alike.
    join(drb, invite(patient, record, "Dr. B, Hillside Practice", ["Observation"]))
    wait_for(
        lambda: (
            {condition_a} <= ids(drb, record, "Condition")
            and len(listed(drb, record, "Observation")) == 21
        ),
        timeout=60,
        what="the history with Dr. A's entries on Dr. B's node",
    )
    history = drb.get(f"{fhir}/Condition/{condition_a}/_history/")
    versions = history["versions"] if isinstance(history, dict) else history
    assert [(v["member"], v["action"]) for v in versions] == [(a_member, "insert")], history
    decided = wait_for(
        lambda: op_status(drb, record, forged_hash), what="the forged op on Dr. B's node"
    )
    assert decided == ("refused", reasons["the patient"]), decided
    assert FORGED_ID not in ids(drb, record, "MedicationStatement")
    # The sensitive entry is nowhere on Dr. B's node: not through its API, not on its disk.
    assert secret_id not in ids(drb, record, "Condition")

    # The patient revokes Dr. A; her node learns it.
    patient.delete(f"/api/v1/threads/{record}/grants/{a_member}/")
    wait_for(
        lambda: dra.get(f"/api/v1/threads/{record}/")["state"] == "removed",
        timeout=60,
        what="Dr. A's node to learn of the revocation",
    )
    # The patient writes on: Dr. B gets it, Dr. A never does.
    after = samples.observation_bp(131, 84, when="2026-04-01T08:30:00Z")
    after["note"] = [{"text": AFTER}]
    after_id = patient.post(f"{fhir}/Observation/", after)["id"]
    wait_for(lambda: after_id in ids(drb, record, "Observation"), what="the reading on Dr. B")
    # Dr. A's later writes are refused by her own node; nothing of hers reaches the others.
    late = samples.observation_bp(140, 90, when="2026-04-02T08:30:00Z")
    late["note"] = [{"text": LATE}]
    refusal(lambda: dra.post(f"{fhir}/Observation/", late))
    # A later sensitive entry reaches neither Dr. B nor Dr. A (revoked from that part too).
    secret2 = samples.condition(code="191736004", display=f"Alcohol use {SECRET} {SECRET_AFTER}")
    secret2_id = patient.post(f"{fhir}/Condition/?sensitive=true", secret2)["id"]
    probe = patient.post(f"{fhir}/Observation/", samples.observation_bp(118, 77))["id"]
    wait_for(lambda: probe in ids(drb, record, "Observation"), what="the probe on Dr. B")
    assert after_id not in ids(dra, record, "Observation")
    assert not {secret_id, secret2_id} & ids(drb, record, "Condition")
    for api in (patient, drb):
        assert not words_in(api, record, "Observation", LATE)
    folders = {name: cluster.nodes[name].peer.data_dir for name in NAMES}
    assert folder_holds(folders["dra"], AFTER) == []
    assert folder_holds(folders["dra"], SECRET_AFTER) == []
    assert folder_holds(folders["drb"], SECRET) == []
    # (The search can see: the patient's own disk holds both.)
    assert folder_holds(folders["patient"], SECRET_AFTER)
    assert folder_holds(folders["patient"], AFTER)

    # The patient's audit tells it all: the joins, the grants, the writes, the revocation.
    entries = patient.get(f"/api/v1/threads/{record}/audit/?per_page=500")["entries"]
    told = "\n".join(f"{e['kind']}: {e['who']} {e['what']}" for e in entries)

    def said(kind: str, words: str, **fields: str) -> bool:
        return any(
            e["kind"] == kind and words in e["what"] and all(e[k] == v for k, v in fields.items())
            for e in entries
        )

    b_member = member_id(drb, record)
    assert said("access", "joined the record", member=a_member), told
    assert said("access", "joined the record", member=b_member), told
    assert said("access", "joined the sensitive part", member=a_member), told
    assert not said("access", "joined the sensitive part", member=b_member), told
    assert said("access", "removed", about=a_member), told
    assert said("grant", "gave", about=a_member), told
    assert said("grant", "gave", about=b_member), told
    assert said("grant", "revoked", about=a_member), told
    by_a = {(e["resource_type"], e["id"]) for e in entries if e["kind"] == "write"
            and e["member"] == a_member}  # fmt: skip
    assert by_a == {("Condition", condition_a), ("Observation", reading_a)}, told
    assert not [e for e in entries if e["id"] == FORGED_ID], told
