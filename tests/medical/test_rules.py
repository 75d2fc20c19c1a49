"""A medical record's rules through real replicas (ADR 23): every replica enforces writes against
the patient's grant. Alice is the patient (owner); Dr. Lee and Dr. Ng are providers, Cara a
caregiver, Rita a reader. Honest members write through their writers, whose own replica refuses
a bad row at once; a modified node signs whatever it likes (``forge``), and every fresh replica,
fed every op in shuffled orders (some twice) and judging strictly, must refuse it with the same
reason.

Time in these rules is the ops' own stamps (``View.stamp_millis``): a forged op may carry any
stamp up to the replicas' tolerance (15 minutes ahead), which is how a write "after the grant's
end" is made here. A stamp cannot go back along a causal edge, so a provider who has seen a
change of its grant cannot write as if it had not."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.ordered_data import ordered_validators
from apps.core.thread.policy import READER
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.medical import fhir, rules
from apps.medical.policy import (
    CAREGIVER,
    CONDITION,
    GRANT,
    MEDICATION,
    OBSERVATION,
    PROVIDER,
    SHAPE,
    record_spec,
)
from tests.core.thread.conftest import Party, join, now_ms, rid
from tests.medical import samples
from tests.support.replica_groups import (
    ReplicaGroup,
    accepted_everywhere,
    forge_at,
    forged,
    opened,
    refused_alike,
    refused_everywhere,
    rows_everywhere,
    write,
)

MINUTE = 60_000
ALL_TYPES = list(fhir.TYPES)


@dataclass
class Record(ReplicaGroup):
    alice: ThreadWriter  # the patient
    lee: ThreadWriter  # a provider: writes results and problems
    ng: ThreadWriter  # a provider with no grant
    cara: ThreadWriter  # a caregiver
    rita: ThreadWriter  # a reader
    parties: tuple[Party, ...]

    @property
    def writers(self) -> tuple[ThreadWriter, ...]:
        return (self.alice, self.lee, self.ng, self.cara, self.rita)


def grant(
    record: Record, member: ThreadWriter, *, write: list[str], read: list[str] | None = None,
    **given: Any,
) -> p.RowChange:  # fmt: skip
    """The patient's grant row for ``member`` (read everything unless told)."""
    cols: dict[str, Any] = {
        "grantee": member.member.hex(),
        "label": "Dr. Lee, Riverside Clinic",
        "read": json.dumps(ALL_TYPES if read is None else read),
        "write": json.dumps(write),
        "start": None,
        "end": None,
        "status": rules.ACTIVE,
        "sensitive": 0,
    }
    cols.update(given)
    pk = rules.grant_id(record.alice.member, member.member)
    return p.RowChange(GRANT, pk, p.UPSERT, cols)


@pytest.fixture
def record() -> Record:
    alice, lee, ng, cara, rita = (Party(n) for n in ("alice", "lee", "ng", "cara", "rita"))
    owner = opened(alice, name="Alice Martin", app=SHAPE, spec=record_spec())
    made = Record(
        owner,
        join(owner, lee, PROVIDER),
        join(owner, ng, PROVIDER),
        join(owner, cara, CAREGIVER),
        join(owner, rita, READER),
        (alice, lee, ng, cara, rita),
    ).settled()
    write(made, owner, grant(made, made.lee, write=["Observation", "Condition"]))
    return made


# -- rows ----------------------------------------------------------------------------------------


def entry(
    writer: ThreadWriter, resource: dict[str, Any], seed: str = "", fhir_id: str = "", **cols: Any
) -> p.RowChange:
    """An insert of ``resource`` as the record keeps it: its id is the row's unless given, its
    columns what the resource says (``cols`` overrides any of them, for a forger). The same
    ``seed`` gives the same row id."""
    kind = fhir.TYPES[resource["resourceType"]]
    pk = rid(writer, seed or json.dumps(resource, sort_keys=True))
    checked = fhir.resource_check(kind.name, dict(resource, id=fhir_id or pk))
    row = {"fhir_id": fhir_id or pk, "resource": checked.json, **checked.columns}
    return p.RowChange(kind.table, pk, p.UPSERT, {**row, **cols})


def edit(table: str, pk: str, resource: dict[str, Any]) -> p.RowChange:
    """An update of row ``pk`` to ``resource`` (given its id), columns and all."""
    checked = fhir.resource_check(resource["resourceType"], dict(resource, id=pk))
    return p.RowChange(table, pk, p.UPSERT, {"resource": checked.json, **checked.columns})


def test_the_app_registers_its_rules():
    validators = ordered_validators()
    mine = rules.validators()
    assert set(mine) == {GRANT, *(kind.table for kind in fhir.TYPES.values())}
    for table, rule in mine.items():
        assert validators[table].__name__ == rule.__name__
    assert record_spec().ordered == frozenset(mine)


# -- the grant decides what a provider writes ----------------------------------------------------


def test_a_provider_writes_only_the_types_its_grant_allows(record: Record):
    pressure = entry(record.lee, samples.observation_bp(131, 84))
    problem = entry(record.lee, samples.condition())
    good = write(record, record.lee, pressure, problem)
    with pytest.raises(WriteError, match="does not let this provider write medications"):
        record.lee.write_data([entry(record.lee, samples.medication())])
    pills = forged(record, record.lee, entry(record.lee, samples.medication()))
    words = "the patient's grant does not let this provider write medications"
    refused_everywhere(record, pills, words, MEDICATION)
    # One refused row refuses its whole op: the result written beside it is not kept either.
    mixed = forged(
        record,
        record.lee,
        entry(record.lee, samples.heart_rate(70)),
        entry(record.lee, samples.medication(display="Aspirin")),
    )
    refused_everywhere(record, mixed, words, MEDICATION)
    # A provider without any grant writes nothing, whatever the policy lets its role try.
    by_ng = forged(record, record.ng, entry(record.ng, samples.observation_bp()))
    refused_everywhere(
        record, by_ng, "the patient has not granted this provider any writing", OBSERVATION
    )
    accepted_everywhere(record, good)
    assert set(rows_everywhere(record, OBSERVATION)) == {pressure.pk}
    assert rows_everywhere(record, MEDICATION) == {}


def test_a_provider_writes_only_within_the_grants_period(record: Record):
    start, end = now_ms() + 2 * MINUTE, now_ms() + 6 * MINUTE
    write(record, record.alice, grant(record, record.lee, write=["Observation"], start=start))
    early = forged(record, record.lee, entry(record.lee, samples.heart_rate(60)))
    refused_everywhere(
        record, early, "the patient's grant to this provider had not started yet", OBSERVATION
    )
    write(record, record.alice, grant(record, record.lee, write=["Observation"], end=end))
    inside = forged(record, record.lee, entry(record.lee, samples.heart_rate(61)), at=end - 1)
    late = forged(record, record.lee, entry(record.lee, samples.heart_rate(62)), at=end)
    refused_everywhere(record, late, "the patient's grant to this provider had ended", OBSERVATION)
    later = forged(record, record.lee, entry(record.lee, samples.heart_rate(63)), at=end + MINUTE)
    refused_everywhere(record, later, "the patient's grant to this provider had ended", OBSERVATION)
    accepted_everywhere(record, inside)


def test_a_stamp_cannot_go_back_to_before_a_grant_change_the_provider_saw(record: Record):
    end = now_ms() + 3 * MINUTE
    write(record, record.alice, grant(record, record.lee, write=["Observation"], end=end))
    # Past the end, Dr. Lee's node heard from the patient: a write stamped before what it has
    # seen is not a write the order can place, so no replica takes it.
    ahead = forged(record, record.alice, entry(record.alice, samples.hba1c(6.1)), at=end + 1)
    backdated = forged(record, record.lee, entry(record.lee, samples.heart_rate(66)), at=end - 1)
    assert refused_alike(record, backdated) == "its clock stamp is not after an op it depends on"
    accepted_everywhere(record, ahead)
    assert len(rows_everywhere(record, OBSERVATION)) == 1


def test_a_revoked_provider_writes_nothing_and_a_removed_one_is_not_heard(record: Record):
    kept = write(record, record.lee, entry(record.lee, samples.heart_rate(58)))
    revoked = grant(record, record.lee, write=["Observation", "Condition"], status=rules.REVOKED)
    write(record, record.alice, revoked)
    with pytest.raises(WriteError, match="revoked this provider's access"):
        record.lee.write_data([entry(record.lee, samples.heart_rate(59))])
    after = forged(record, record.lee, entry(record.lee, samples.heart_rate(59)))
    refused_everywhere(record, after, "the patient revoked this provider's access", OBSERVATION)
    # Even an update of its own earlier entry.
    (own,) = rows_everywhere(record, OBSERVATION)
    touched = forged(record, record.lee, edit(OBSERVATION, own, samples.heart_rate(99)))
    refused_everywhere(record, touched, "the patient revoked this provider's access", OBSERVATION)
    # Removed (with new keys): what it writes having seen the removal, and what it writes
    # without having seen it (concurrently), counts nowhere.
    blind = forge_at(record.lee, entry(record.lee, samples.condition(display="Gout")))
    record.share(record.alice, record.ng, record.cara, record.rita)
    epoch, keys = record.lee._usable_epoch()  # the last key its node was given
    record.alice.remove_member(record.lee.member)
    record.share()
    seen = forged(
        record,
        record.lee,
        entry(record.lee, samples.condition(display="Asthma")),
        epoch=epoch,
        key=keys.data,
    )
    for op in (blind, seen):
        assert refused_alike(record, op) == "the author is not a member where this op stands"
    accepted_everywhere(record, kept)
    assert rows_everywhere(record, CONDITION) == {}


def test_caregivers_and_readers_write_nothing_even_with_a_grant(record: Record):
    write(record, record.alice, grant(record, record.cara, write=["Observation"]))
    for writer, role in ((record.cara, CAREGIVER), (record.rita, READER)):
        with pytest.raises(WriteError):
            writer.write_data([entry(writer, samples.heart_rate(70))])
        op = forged(record, writer, entry(writer, samples.heart_rate(70)))
        assert refused_alike(record, op) == f"role {role} may not insert own rows of {OBSERVATION}"
        (pk,) = rows_everywhere(record, GRANT).keys() - {
            rules.grant_id(record.alice.member, record.lee.member)
        }
        # Nor change a provider's entry, nor their own grant.
        shared = entry(record.lee, samples.heart_rate(71), role)
        write(record, record.lee, shared)
        changed = forged(record, writer, edit(OBSERVATION, shared.pk, samples.heart_rate(1)))
        assert refused_alike(record, changed) == (
            f"role {role} may not update others' rows of {OBSERVATION}"
        )
        own = forged(record, writer, p.RowChange(GRANT, pk, p.UPSERT, {"write": '["Condition"]'}))
        assert refused_alike(record, own) == f"role {role} may not update others' rows of {GRANT}"


def test_a_provider_cannot_grant_itself_more(record: Record):
    mine = grant(record, record.lee, write=ALL_TYPES)
    wider = forged(record, record.lee, mine)
    assert refused_alike(record, wider) == f"role provider may not update others' rows of {GRANT}"
    # A grant row of its own making (any id) is refused before its rule is asked.
    made = p.RowChange(GRANT, rid(record.lee, "grant"), p.UPSERT, mine.cols)
    own = forged(record, record.lee, made)
    assert refused_alike(record, own) == f"role provider may not insert own rows of {GRANT}"
    # Nor one for a colleague (a row the patient's key names: the core calls it an update).
    for_ng = forged(record, record.lee, grant(record, record.ng, write=["Observation"]))
    assert refused_alike(record, for_ng) == f"role provider may not update others' rows of {GRANT}"
    # The grant still says what the patient wrote, and it still decides.
    (row,) = rows_everywhere(record, GRANT).values()
    assert json.loads(row["write"]) == ["Observation", "Condition"]
    pills = forged(record, record.lee, entry(record.lee, samples.medication()))
    refused_everywhere(
        record,
        pills,
        "the patient's grant does not let this provider write medications",
        MEDICATION,
    )


def test_grants_are_the_patients_and_well_formed(record: Record):
    alice, lee = record.alice, record.lee
    pk = rules.grant_id(alice.member, lee.member)
    cases = [
        ({"grantee": "lee"}, "a grant names its member by key"),
        ({"write": '["Observation"'}, "a grant's write list must be a list of resource types"),
        ({"read": json.dumps(["Consent"])}, "the record keeps no Consent resources"),
        (
            {"read": '["Condition"]', "write": '["Observation"]'},
            "a grant cannot let someone write what it does not let them read",
        ),
        ({"start": -5}, "a grant's period is given in milliseconds"),
        ({"start": 2_000, "end": 1_000}, "a grant's period must end after it starts"),
        ({"status": "paused"}, "a grant is active or revoked"),
        ({"label": "Dr. Lee\nClinic"}, "a grant's label is plain text of at most 120 characters"),
    ]
    for cols, reason in cases:
        refused_everywhere(record, forged(record, alice, p.RowChange(GRANT, pk, p.UPSERT, cols)),
                           reason, GRANT)  # fmt: skip
    # A grant's id follows from the patient and the member it names: one per member.
    moved = p.RowChange(GRANT, rid(alice, "another"), p.UPSERT, grant(record, lee, write=[]).cols)
    refused_everywhere(
        record,
        forged(record, alice, moved),
        "a grant's id must follow from the patient and the member it names",
        GRANT,
    )
    gone = forged(record, alice, p.RowChange(GRANT, pk, p.DELETE, {}))
    refused_everywhere(record, gone, "a grant is never deleted: it is revoked", GRANT)
    (row,) = rows_everywhere(record, GRANT).values()
    assert (row["grantee"], row["status"]) == (lee.member.hex(), rules.ACTIVE)


def test_providers_change_what_they_may_write_and_only_the_patient_deletes(record: Record):
    pressure = entry(record.alice, samples.observation_bp(150, 95))
    pills = entry(record.alice, samples.medication())
    write(record, record.alice, pressure, pills)
    # Dr. Lee may change any result (the grant is about types, not authors) ...
    wrong = dict(samples.observation_bp(150, 95), status="entered-in-error")
    corrected = write(record, record.lee, edit(OBSERVATION, pressure.pk, wrong))
    # ... but not a medication, nor delete anything, even an entry of its own.
    stopped = dict(samples.medication(), status="stopped")
    changed = forged(record, record.lee, edit(MEDICATION, pills.pk, stopped))
    refused_everywhere(
        record, changed, "the patient's grant does not let this provider write medications",
        MEDICATION,
    )  # fmt: skip
    own = entry(record.lee, samples.heart_rate(80))
    write(record, record.lee, own)
    for pk, whose in ((pressure.pk, "others'"), (own.pk, "own")):
        with pytest.raises(WriteError):
            record.lee.write_data([p.RowChange(OBSERVATION, pk, p.DELETE, {})])
        gone = forged(record, record.lee, p.RowChange(OBSERVATION, pk, p.DELETE, {}))
        assert refused_alike(record, gone) == (
            f"role provider may not delete {whose} rows of {OBSERVATION}"
        )
    deleted = write(record, record.alice, p.RowChange(OBSERVATION, own.pk, p.DELETE, {}))
    accepted_everywhere(record, corrected, deleted)
    rows = rows_everywhere(record, OBSERVATION)
    assert set(rows) == {pressure.pk}
    assert rows[pressure.pk]["status"] == "entered-in-error"
    assert rows_everywhere(record, MEDICATION)[pills.pk]["status"] == "active"


# -- what a row holds ----------------------------------------------------------------------------


def bad_rows(lee: ThreadWriter) -> dict[str, tuple[p.RowChange, str]]:
    """Results a modified node might write, each with why every replica refuses it."""
    out: dict[str, tuple[p.RowChange, str]] = {}

    def case(name: str, reason: str, **cols: Any) -> None:
        good = entry(lee, samples.heart_rate(72), name)
        out[name] = (p.RowChange(OBSERVATION, good.pk, p.UPSERT, {**good.cols, **cols}), reason)

    def text(name: str, resource: dict[str, Any], indent: int | None = None) -> str:
        return json.dumps(dict(resource, id=rid(lee, name)), indent=indent)

    case("not JSON", "This Observation is not JSON", resource="{not json")
    case("a number", "a result row must hold its FHIR resource", resource=5)
    condition = fhir.resource_check("Condition", text("condition", samples.condition()))
    case("condition", "This is a Condition, not an Observation",
         resource=condition.json, **condition.columns)  # fmt: skip
    bare = {"resourceType": "Observation", "status": "final"}
    case("no code", "This Observation is not valid FHIR: code: Field required",
         resource=text("no code", bare))  # fmt: skip
    case("spaced", "the result is not stored in its canonical form",
         resource=json.dumps(json.loads(text("spaced", samples.heart_rate(72))), indent=1,
                             sort_keys=True))  # fmt: skip
    case("another id", "the result's id does not match its row", fhir_id="pulse-2")
    for column, value in (("display", "Resting pulse"), ("value", 40.0), ("date", "2020-01-01"),
                          ("unit", "bpm"), ("code", "http://loinc.org|1-8")):  # fmt: skip
        case(column, f"its {column} column does not say what the resource says", **{column: value})
    huge = dict(samples.heart_rate(72), note=[{"text": "x" * fhir.MAX_RESOURCE}])
    case("huge", "This Observation is larger than 256 KiB", resource=text("huge", huge))
    return out


def test_a_row_must_hold_valid_fhir_that_its_columns_and_id_agree_with(record: Record):
    lee = record.lee
    for name, (change, reason) in bad_rows(lee).items():
        op = forged(record, lee, change)
        assert refused_alike(record, op) == f"{OBSERVATION}: {reason}", name
    # The patient's node is held to the same: the rules are about the row, not its author.
    odd = forged(record, record.alice, entry(record.alice, samples.allergy(), display="Pollen"))
    refused_everywhere(
        record, odd, "its display column does not say what the resource says",
        "medical_record_allergy",
    )  # fmt: skip
    good = entry(lee, samples.heart_rate(72), "pulse")
    kept = write(record, lee, good)
    # An update keeps the row's id, and its columns true to its resource.
    renamed = forged(record, lee, p.RowChange(OBSERVATION, good.pk, p.UPSERT, {"fhir_id": "x"}))
    refused_everywhere(record, renamed, "the result's id does not match its row", OBSERVATION)
    bare = forged(record, lee, p.RowChange(OBSERVATION, good.pk, p.UPSERT, {"status": "amended"}))
    refused_everywhere(
        record, bare, "its status column does not say what the resource says", OBSERVATION
    )
    accepted_everywhere(record, kept)
    (row,) = rows_everywhere(record, OBSERVATION).values()
    assert (row["resource"], row["value"]) == (good.cols["resource"], 72.0)


def test_one_row_per_id_in_a_table(record: Record):
    first = entry(record.alice, samples.heart_rate(60), "first", fhir_id="pulse-1")
    write(record, record.alice, first)
    # A row (an id of its own) claiming the same FHIR id: refused, for the patient too.
    for writer in (record.lee, record.alice):
        twin = entry(writer, samples.heart_rate(61), "twin", fhir_id="pulse-1")
        with pytest.raises(WriteError, match="already has a result with this id"):
            writer.write_data([twin])
        op = forged(record, writer, twin)
        refused_everywhere(record, op, "the record already has a result with this id", OBSERVATION)
    # Two at once, in one op or in two concurrent ones: one of them, the same everywhere.
    pair = [
        entry(record.lee, samples.heart_rate(n), f"pair {n}", fhir_id="pulse-2") for n in (1, 2)
    ]
    both = forged(record, record.lee, *pair)
    refused_everywhere(record, both, "the record already has a result with this id", OBSERVATION)
    by_lee = forge_at(record.lee, pair[0], at=now_ms() + 1_000)
    by_alice = forge_at(
        record.alice, entry(record.alice, samples.heart_rate(3), "x", fhir_id="pulse-2"),
        at=now_ms() + 2_000,
    )  # fmt: skip
    record.share()
    accepted_everywhere(record, by_lee)
    refused_everywhere(
        record, by_alice, "the record already has a result with this id", OBSERVATION
    )
    assert record.alice.replica.decision(by_alice.hash).status == "refused"
    # The same id in another table is another entry.
    change = entry(record.lee, samples.condition(), "c", fhir_id="pulse-1")
    accepted_everywhere(record, write(record, record.lee, change))
    rows = rows_everywhere(record, OBSERVATION)
    assert sorted((r["fhir_id"], r["value"]) for r in rows.values()) == [
        ("pulse-1", 60.0),
        ("pulse-2", 1.0),
    ]


# -- concurrency ---------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["patient", "provider"])
def test_a_narrowed_grant_and_a_concurrent_write_have_one_outcome_everywhere(
    record: Record, first: str
):
    """The patient takes results out of Dr. Lee's grant while Dr. Lee, not having heard it,
    adds one: whichever the order places first decides, on every replica."""
    soon = now_ms() + 1_000
    narrow_at, write_at = (soon, soon + 500) if first == "patient" else (soon + 500, soon)
    narrowed = forge_at(record.alice, grant(record, record.lee, write=["Condition"]), at=narrow_at)
    pulse = entry(record.lee, samples.heart_rate(77))
    added = forge_at(record.lee, pulse, at=write_at)
    assert record.lee.replica.decision(added.hash).status == "accepted"  # on its own node
    record.share()
    replicas = record.replicas(runs=5)
    for replica in replicas:
        assert replica.decision(narrowed.hash).status == "accepted"
    if first == "patient":
        refused_everywhere(
            record, added, "the patient's grant does not let this provider write results",
            OBSERVATION,
        )  # fmt: skip
        # Dr. Lee's node turned its write over, and says why.
        decision = record.lee.replica.decision(added.hash)
        assert (decision.status, decision.reason) == (
            "refused",
            f"{OBSERVATION}: the patient's grant does not let this provider write results",
        )
        assert rows_everywhere(record, OBSERVATION) == {}
    else:
        accepted_everywhere(record, added)
        assert record.lee.replica.decision(added.hash).status == "accepted"
        assert set(rows_everywhere(record, OBSERVATION)) == {pulse.pk}
    # From now on, having heard it, Dr. Lee's node refuses a result at once.
    with pytest.raises(WriteError, match="does not let this provider write results"):
        record.lee.write_data([entry(record.lee, samples.heart_rate(78))])


def test_a_revocation_and_a_concurrent_write_have_one_outcome_everywhere(record: Record):
    """The patient revokes (the grant, then the member, with new keys). Dr. Lee's write stamped
    before the revocation, not having heard of it, would pass the grant; the removal it did not
    see refuses it everywhere, its own node included."""
    at = now_ms() + 1_000
    revoked = forge_at(
        record.alice, grant(record, record.lee, write=[], status=rules.REVOKED), at=at
    )
    removal, rotation = record.alice.remove_member(record.lee.member)
    early = forge_at(record.lee, entry(record.lee, samples.heart_rate(90)), at=at - 500)
    record.share()
    accepted_everywhere(record, revoked, removal, rotation)
    assert refused_alike(record, early) == "the author is not a member where this op stands"
    assert record.lee.replica.decision(early.hash).status == "refused"
    assert rows_everywhere(record, OBSERVATION) == {}


# -- documents, patient details, required codes --------------------------------------------------


def document_row(writer: ThreadWriter, seed: str, **file: Any) -> p.RowChange:
    """A DocumentReference with a sealed PDF of 2 048 bytes, as ``document_add`` writes it
    (``file`` overrides its file columns, for a forger)."""
    resource = samples.document(title="Scan")
    resource["content"] = [
        {"attachment": {"contentType": "application/pdf", "size": 2048, "title": "scan.pdf"}}
    ]
    columns = {"name": "scan.pdf", "mime": "application/pdf", "size": 2048}
    columns |= {"key": "ab" * 32, "chunks": "cd" * 64, **file}
    return entry(writer, resource, seed, **columns)


def test_a_documents_file_is_what_its_attachment_says(record: Record):
    write(record, record.alice, grant(record, record.lee, write=["DocumentReference"]))
    good = document_row(record.lee, "good")
    cases = {
        "key": ({"key": "zz"}, "a document's file is named by its key and chunk hashes"),
        "chunks": ({"chunks": "cd" * 33}, "a document's file is named by its key and chunk hashes"),
        "no chunks": ({"chunks": ""}, "a document's file is named by its key and chunk hashes"),
        "size": ({"size": -1}, "a document's size is a whole number of bytes"),
        "name": (
            {"name": "scan\n.pdf"},
            "a document's file name is plain text of at most 200 characters",
        ),
        "html": ({"mime": "text/html"}, "a document's file is a PDF, an image or a text file"),
        "png": ({"mime": "image/png"}, "a document's file must be what its attachment says"),
        "bigger": ({"size": 99_999}, "a document's file must be what its attachment says"),
    }
    for name, (file, reason) in cases.items():
        op = forged(record, record.lee, document_row(record.lee, name, **file))
        assert refused_alike(record, op) == f"medical_record_document: {reason}", name
    # A later change cannot swap the file under the reference either.
    kept = write(record, record.lee, good)
    swapped = forged(record, record.lee, p.RowChange(good.table, good.pk, p.UPSERT, {"key": "z"}))
    assert refused_alike(record, swapped) == (
        "medical_record_document: a document's file is named by its key and chunk hashes"
    )
    # A reference without a file (its content inline) names none.
    inline = write(record, record.lee, entry(record.lee, samples.document(), "inline"))
    accepted_everywhere(record, kept, inline)
    assert len(rows_everywhere(record, "medical_record_document")) == 2


def test_only_the_patient_adds_patient_details_a_provider_may_correct_them(record: Record):
    details = entry(record.alice, samples.patient(name="Alice Martin"), "me")
    write(record, record.alice, details)
    write(record, record.alice, grant(record, record.lee, write=["Patient"]))
    impostor = entry(record.lee, samples.patient(name="Mallory", birth_date="2020-01-01"))
    with pytest.raises(WriteError, match="only the patient adds patient details"):
        record.lee.write_data([impostor])
    op = forged(record, record.lee, impostor)
    refused_everywhere(
        record, op, "only the patient adds patient details (a provider may correct them)",
        "medical_record_patient",
    )  # fmt: skip
    fixed = samples.patient(name="Alice Martin", birth_date="1980-04-02")
    corrected = write(record, record.lee, edit("medical_record_patient", details.pk, fixed))
    accepted_everywhere(record, corrected)
    (row,) = rows_everywhere(record, "medical_record_patient").values()
    assert (row["display"], row["date"]) == ("Alice Martin", "1980-04-02")


def test_codes_the_library_leaves_unchecked_are_checked_on_every_replica(record: Record):
    cases = [
        (dict(samples.heart_rate(), status="bogus"), OBSERVATION, "status"),
        (dict(samples.patient(), gender="robot"), "medical_record_patient", "gender"),
        (dict(samples.allergy(), criticality="deadly"), "medical_record_allergy", "criticality"),
        (dict(samples.medication(), status="maybe"), MEDICATION, "status"),
    ]
    for resource, table, element in cases:
        kind = resource["resourceType"]
        with pytest.raises(fhir.FhirInvalid, match=f"not valid FHIR: {element}: "):
            fhir.resource_check(kind, resource)
        # Forged as the row a library that took it would make: refused everywhere, in words.
        pk = rid(record.alice, f"{kind} {element}")
        text = fhir.canonical(dict(resource, id=pk))
        cols = {"fhir_id": pk, "resource": text, **fhir.columns_of(kind, json.loads(text))}
        op = forged(record, record.alice, p.RowChange(table, pk, p.UPSERT, cols))
        reason = refused_alike(record, op)
        assert reason.startswith(f"{table}: This {kind} is not valid FHIR: {element}: "), reason
        assert "is not one of" in reason
