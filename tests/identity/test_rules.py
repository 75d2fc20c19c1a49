"""The identity app's rules through real replicas (issue 19, ADR 26). Honest members write
through their writers, whose own replica refuses a bad write at once; a modified node signs
whatever it likes with its certified device (``forged``), and every fresh replica, fed every op
in shuffled orders (some twice) and judging in strict purity mode, must refuse it with the same
reason."""

from __future__ import annotations

import json

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.lww import materialize
from apps.core.thread.ordered_data import ordered_validators
from apps.core.thread.writer import WriteError
from apps.identity import formats, rules
from apps.identity.policy import (
    ATTESTATION,
    AUTHORITY,
    CLAIM,
    KIND,
    RETRACTION,
    SETTING,
    SHARED,
    TABLES,
)
from tests.core.thread.conftest import rid
from tests.identity.rules_support import (
    Group,
    attestation,
    claim,
    claim_cols,
    club,
    kind,
    retraction,
    setting,
    shared,
    write,
)
from tests.support.replica_groups import (
    accepted_everywhere,
    forged,
    refused_alike,
    refused_everywhere,
    rows_everywhere,
)


@pytest.fixture
def group() -> Group:
    made = club()
    write(made, made.alice, kind(made.alice, "climb"))
    return made


def test_every_table_has_its_rule_registered():
    registered = ordered_validators()
    assert set(registered) >= TABLES
    assert set(rules.validators()) == TABLES
    assert all(registered[table] is rules.validators()[table] for table in TABLES)
    assert rules.ADMIN_RANK == 100
    assert (rules.DEFAULT_WITNESSES, rules.DEFAULT_FLAG_AFTER) == (2, 2)


def test_a_claim_attested_by_two_witnesses_is_accepted_everywhere(group):
    pk, change = claim(group.carol)
    made = write(group, group.carol, change)
    row = claim_cols()
    one = write(group, group.dave, attestation(group.dave, group.carol, pk, row))
    two = write(group, group.erin, attestation(group.erin, group.carol, pk, row, "disputed", "no"))
    accepted_everywhere(group, made, one, two)
    rows = rows_everywhere(group, ATTESTATION)
    assert {r["verdict"] for r in rows.values()} == {"witnessed", "disputed"}


def _refusal(group: Group, op, table: str) -> str:
    """The reason every replica gives, without the table's prefix."""
    said = refused_alike(group, op)
    assert said.startswith(f"{table}: ")
    return said.removeprefix(f"{table}: ")


# -- kinds, settings, authorities --------------------------------------------------------------


def test_only_managers_add_kinds_each_slug_once_and_only_label_and_retired_change(group):
    # A writer's kind is refused by the policy already (the rule says it again, see below).
    with pytest.raises(WriteError, match="may not insert own rows of identity_kind"):
        group.carol.write_data([kind(group.carol, "run")])
    by_writer = forged(group, group.carol, kind(group.carol, "run"))
    assert "may not insert own rows" in refused_alike(group, by_writer)
    twice = forged(group, group.bob, kind(group.bob, "climb", "Climbing again"))
    refused_everywhere(group, twice, "the thread already has a kind of that name", KIND)
    bad = forged(group, group.bob, kind(group.bob, "Climb Hard"))
    assert _refusal(group, bad, KIND).startswith("a kind's name is 1 to 40 lowercase")
    no_label = forged(group, group.bob, kind(group.bob, "swim", " "))
    assert _refusal(group, no_label, KIND).startswith("a kind has a label")
    pk = formats.kind_id(group.alice.member, "climb")
    renamed = forged(group, group.bob, p.RowChange(KIND, pk, p.UPSERT, {"slug": "hike"}))
    refused_everywhere(group, renamed, "only a kind's label and whether it is retired change", KIND)
    retired = write(group, group.bob, p.RowChange(KIND, pk, p.UPSERT, {"retired": 1}))
    accepted_everywhere(group, retired)
    _, change = claim(group.carol)
    late = forged(group, group.carol, change)
    refused_everywhere(
        group, late, "that kind of achievement is retired: claims of it are closed", CLAIM
    )


def test_settings_form_a_chain_and_a_concurrent_change_is_refused_alike(group):
    first = write(group, group.alice, setting(group.alice, 1, witnesses=3, flag_after=1))
    accepted_everywhere(group, first)
    # Alice and Bob change the settings at once, each after seq 1: one is ordered second.
    mine = group.alice.write_data([setting(group.alice, 2, witnesses=1)])
    theirs = group.bob.write_data([setting(group.bob, 2, witnesses=4)])
    group.share()
    outcomes = {}
    for op in (mine, theirs):
        decisions = {replica.decision(op.hash) for replica in group.replicas()}
        assert len(decisions) == 1
        outcomes[op.hash] = decisions.pop()
    assert sorted(d.status for d in outcomes.values()) == ["accepted", "refused"]
    refused = next(d for d in outcomes.values() if d.status == "refused")
    assert refused.reason == f"{SETTING}: {rules.SETTINGS_MOVED}"
    skipped = forged(group, group.bob, setting(group.bob, 9))
    refused_everywhere(group, skipped, rules.SETTINGS_MOVED, SETTING)
    by_writer = forged(group, group.carol, setting(group.carol, 3))
    refused_alike(group, by_writer)
    zero = forged(group, group.bob, setting(group.bob, 3, witnesses=0))
    refused_everywhere(group, zero, "the witnesses a claim needs are 1 to 50", SETTING)
    many = forged(group, group.bob, setting(group.bob, 3, flag_after=51))
    assert _refusal(group, many, SETTING).startswith("a witness is flagged after 1 to 50")


def test_the_managers_rule_holds_for_any_role_a_policy_lets_write_settings():
    """A thread's policy may let a role below admin write the settings tables (a custom
    template): the rules still refuse it. The policy stops every built-in role first, so this
    is judged directly, on a view of the tables."""
    from apps.core.thread.ordered import Author
    from apps.core.thread.ordered_view import RowStore, View
    from tests.identity.rules_support import authority

    view = View(RowStore(), (10,))
    helper = Author(member=b"\x01" * 32, role="helper", rank=50)
    owner = Author(member=b"\x02" * 32, role="owner", rank=1000)
    change = p.RowChange(KIND, "a" * 32, p.UPSERT, {"slug": "run", "label": "Run", "retired": 0})
    assert rules.kind_rule(view, change, helper) == rules.NOT_MANAGER
    assert rules.kind_rule(view, change, owner) is None
    cols = {"seq": 1, "witnesses": 2, "flag_after": 2}
    change = p.RowChange(SETTING, "a" * 32, p.UPSERT, cols)
    assert rules.setting_rule(view, change, helper) == rules.NOT_MANAGER
    assert rules.setting_rule(view, change, owner) is None
    group = club()
    change = authority(group.alice, "climb", group.dave)
    assert rules.authority_rule(view, change, helper) == rules.NOT_MANAGER


def test_the_settings_in_force_are_the_highest_seq_or_the_defaults():
    from apps.core.thread.ordered_view import RowStore, View

    store = RowStore()
    assert rules.settings_in_force(View(store, (10,))) == (2, 2)
    store.put(
        (SETTING, "a" * 32), (1,), {"pk": "a" * 32, "seq": 1, "witnesses": 5, "flag_after": 4}
    )
    store.put(
        (SETTING, "b" * 32), (2,), {"pk": "b" * 32, "seq": 2, "witnesses": 3, "flag_after": 1}
    )
    assert rules.settings_in_force(View(store, (10,))) == (3, 1)
    assert rules.settings_in_force(View(store, (2,))) == (5, 4)


def test_authorities_are_managers_rows_for_a_kind_and_only_ever_revoked(group):
    from tests.identity.rules_support import authority

    by_writer = forged(group, group.carol, authority(group.carol, "climb", group.dave))
    assert "may not insert own rows" in refused_alike(group, by_writer)
    unknown = forged(group, group.bob, authority(group.bob, "sail", group.dave))
    refused_everywhere(group, unknown, "the thread has no such kind", AUTHORITY)
    stranger = forged(group, group.bob, authority(group.bob, "climb", "zz" * 32))
    refused_everywhere(group, stranger, "a trusted authority is a member of the thread", AUTHORITY)
    # An authority for another kind is a row like any other: what it verifies is standing's.
    write(group, group.alice, kind(group.alice, "swim"))
    change = authority(group.bob, "swim", group.dave)
    added = write(group, group.bob, change)
    accepted_everywhere(group, added)
    moved = forged(group, group.bob, p.RowChange(AUTHORITY, change.pk, p.UPSERT, {"kind": "climb"}))
    refused_everywhere(
        group, moved, "a trusted authority only changes by being revoked, for good", AUTHORITY
    )
    revoked = write(group, group.alice, p.RowChange(AUTHORITY, change.pk, p.UPSERT, {"revoked": 1}))
    accepted_everywhere(group, revoked)
    again = forged(group, group.bob, p.RowChange(AUTHORITY, change.pk, p.UPSERT, {"revoked": 0}))
    refused_everywhere(
        group, again, "a trusted authority only changes by being revoked, for good", AUTHORITY
    )


# -- claims ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ({"kind": "sail"}, "the thread has no such kind of achievement"),
        ({"title": "  "}, "a claim has a title of 1 to 120 characters"),
        ({"title": "x" * 121}, "a claim has a title of 1 to 120 characters"),
        ({"place": "x" * 201}, "a claim's place holds at most 200 characters"),
        ({"event_date": "June 1st"}, "the event's date is a day written YYYY-MM-DD"),
        ({"event_date": "2026-02-30"}, "the event's date is not a day of the calendar"),
        ({"evidence": "{"}, "a claim's evidence is not readable"),
        ({"evidence": "{}"}, "a claim's evidence is a list of files"),
        ({"withdrawn": 1}, "a new claim is not withdrawn"),
        ({"subject": "ab" * 32}, "a claim names its own author as its subject"),
    ],
)
def test_a_malformed_claim_is_refused_everywhere(group, given, reason):
    _, change = claim(group.carol, **given)
    with pytest.raises(WriteError):
        group.carol.write_data([change])
    op = forged(group, group.carol, change)
    refused_everywhere(group, op, reason, CLAIM)


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (["x"] * 11, "a claim carries at most 10 evidence files"),
        (["x"], "each evidence file is described by its name, type, size, key and chunks"),
        (
            [{"name": "a"}],
            "each evidence file is described by its name, type, size, key and chunks",
        ),
        ([{"key": "AB" * 32}], "an evidence file's key is not readable"),
        ([{"chunks": "cd" * 31}], "an evidence file's chunks are not readable"),
        ([{"chunks": ""}], "an evidence file's chunks are not readable"),
        ([{"size": -1}], "an evidence file's size is not readable"),
        ([{"size": True}], "an evidence file's size is not readable"),
        ([{"mime": "jpeg"}], "an evidence file's type is not readable"),
        ([{"name": ""}], "an evidence file has a name of 1 to 200 characters"),
    ],
)
def test_malformed_evidence_is_refused_everywhere(group, files, reason):
    from tests.identity.rules_support import evidence

    # A dict of given columns is a well-formed description with those changed, except the
    # one that leaves out all but a name.
    described = [evidence(**f) if isinstance(f, dict) and f != {"name": "a"} else f for f in files]
    _, change = claim(group.carol, evidence=json.dumps(described))
    op = forged(group, group.carol, change)
    refused_everywhere(group, op, reason, CLAIM)


def test_ten_evidence_files_are_accepted(group):
    from tests.identity.rules_support import evidence

    files = [evidence(name=f"{n}.jpg", chunks="cd" * 64) for n in range(10)]
    _, change = claim(group.carol, evidence=json.dumps(files))
    accepted_everywhere(group, write(group, group.carol, change))


def test_a_claim_is_its_subjects_never_edited_and_only_withdrawn_by_them(group):
    pk, change = claim(group.carol)
    write(group, group.carol, change)
    # Dave writes a claim under Carol's id: it is Carol's claim, and claims are never edited.
    squat = forged(group, group.dave, p.RowChange(CLAIM, pk, p.UPSERT, claim_cols(title="Mine")))
    refused_everywhere(
        group, squat, "a claim is never edited: withdraw it and make a new one", CLAIM
    )
    edited = forged(group, group.carol, p.RowChange(CLAIM, pk, p.UPSERT, {"title": "Better"}))
    refused_everywhere(
        group, edited, "a claim is never edited: withdraw it and make a new one", CLAIM
    )
    by_admin = forged(group, group.bob, p.RowChange(CLAIM, pk, p.UPSERT, {"withdrawn": 1}))
    refused_everywhere(group, by_admin, "only a claim's subject withdraws it", CLAIM)
    deleted = forged(group, group.carol, p.RowChange(CLAIM, pk, p.DELETE, {}))
    refused_alike(group, deleted)
    withdrawn = write(group, group.carol, p.RowChange(CLAIM, pk, p.UPSERT, {"withdrawn": 1}))
    accepted_everywhere(group, withdrawn)
    back = forged(group, group.carol, p.RowChange(CLAIM, pk, p.UPSERT, {"withdrawn": 0}))
    refused_everywhere(group, back, "a withdrawn claim stays withdrawn", CLAIM)
    late = forged(group, group.dave, attestation(group.dave, group.carol, pk, claim_cols()))
    refused_everywhere(group, late, "the claim was withdrawn", ATTESTATION)


# -- attestations and retractions --------------------------------------------------------------


@pytest.fixture
def claimed(group) -> tuple[Group, str, dict]:
    pk, change = claim(group.carol)
    write(group, group.carol, change)
    return group, pk, claim_cols()


def test_a_subject_attesting_their_own_claim_is_refused_everywhere(claimed):
    group, pk, row = claimed
    own = attestation(group.carol, group.carol, pk, row)
    with pytest.raises(WriteError, match="you cannot attest your own claim"):
        group.carol.write_data([own])
    refused_everywhere(group, forged(group, group.carol, own), rules.OWN_CLAIM, ATTESTATION)


def test_a_witness_attesting_twice_is_refused_everywhere(claimed):
    group, pk, row = claimed
    first = write(group, group.dave, attestation(group.dave, group.carol, pk, row))
    again = attestation(group.dave, group.carol, pk, row, "disputed", "changed my mind")
    with pytest.raises(WriteError):
        group.dave.write_data([again])
    second = forged(group, group.dave, again)
    refused_alike(group, second)  # the policy refuses a change of a written-once row
    # The same attestation under an id of Dave's choosing is a second word all the same.
    other = p.RowChange(ATTESTATION, rid(group.dave, "again"), p.UPSERT, dict(again.cols))
    refused_everywhere(
        group,
        forged(group, group.dave, other),
        "a witness gives one word per claim, under the id that follows from both",
        ATTESTATION,
    )
    replicas = accepted_everywhere(group, first)
    rows = materialize(replicas[0].accepted_data())[ATTESTATION]
    assert [r["verdict"] for r in rows.values()] == ["witnessed"]


def test_an_attestation_over_a_different_claim_hash_is_refused_everywhere(claimed):
    group, pk, row = claimed
    other = {**row, "title": "Climbed the south face"}
    # The digest column names another version of the claim (and the endorsement with it).
    change = attestation(group.dave, group.carol, pk, other)
    with pytest.raises(WriteError, match="over another version of the claim"):
        group.dave.write_data([change])
    refused_everywhere(
        group,
        forged(group, group.dave, change),
        "the attestation is over another version of the claim",
        ATTESTATION,
    )
    # The right digest in the column, but the endorsement signed over another one.
    change = attestation(group.dave, group.carol, pk, row, signed_row=other)
    refused_everywhere(
        group,
        forged(group, group.dave, change),
        "the endorsement says something else than the attestation",
        ATTESTATION,
    )


def test_an_endorsement_not_the_witnesses_own_or_not_its_columns_is_refused(claimed):
    group, pk, row = claimed
    # Erin's signature under Dave's attestation.
    change = attestation(group.dave, group.carol, pk, row, signer=group.erin)
    refused_everywhere(
        group,
        forged(group, group.dave, change),
        "the endorsement's signature does not verify",
        ATTESTATION,
    )
    # The endorsement says "witnessed", the column "disputed".
    change = attestation(group.dave, group.carol, pk, row)
    cols = {**change.cols, "verdict": "disputed"}
    refused_everywhere(
        group,
        forged(group, group.dave, p.RowChange(ATTESTATION, change.pk, p.UPSERT, cols)),
        "the endorsement says something else than the attestation",
        ATTESTATION,
    )
    # An endorsement naming another member as the subject.
    change = attestation(group.dave, group.erin, pk, row)
    refused_everywhere(
        group,
        forged(group, group.dave, change),
        "the endorsement does not name the claim's subject",
        ATTESTATION,
    )
    bad = {**attestation(group.dave, group.carol, pk, row).cols, "verdict": "maybe"}
    refused_everywhere(
        group,
        forged(group, group.dave, p.RowChange(ATTESTATION, change.pk, p.UPSERT, bad)),
        "a witness says the claim is witnessed or disputed",
        ATTESTATION,
    )


def test_a_retracted_attestation_is_never_given_again(claimed):
    group, pk, row = claimed
    change = attestation(group.dave, group.carol, pk, row)
    given = write(group, group.dave, change)
    taken = write(group, group.dave, retraction(group.dave, change.pk, "I was not there"))
    accepted_everywhere(group, given, taken)
    with pytest.raises(WriteError):
        group.dave.write_data([change])
    again = forged(group, group.dave, change)
    # Its id is the one already given: a change of a written-once row, which the policy
    # refuses (the rule says "you retracted your word" to one that escapes the policy).
    assert refused_alike(group, again) == "role writer may not update own rows of " + ATTESTATION
    twice = forged(group, group.dave, retraction(group.dave, change.pk, "really"))
    refused_alike(group, twice)
    # Erin takes back Dave's word: refused, whatever id she writes it under.
    for pk_of in (group.erin, group.dave):
        stolen = retraction(group.erin, change.pk)
        if pk_of is group.dave:
            stolen = p.RowChange(stolen.table, rid(group.erin, "take"), p.UPSERT, stolen.cols)
        refused_everywhere(
            group,
            forged(group, group.erin, stolen),
            "a witness retracts only their own word",
            RETRACTION,
        )
    nothing = retraction(group.erin, rid(group.erin, "none"))
    refused_everywhere(
        group, forged(group, group.erin, nothing), "there is no such attestation", RETRACTION
    )


# -- shared profile fields ---------------------------------------------------------------------


def test_a_shared_field_with_its_proof_is_accepted_and_deleted_only_by_its_owner(group):
    fields = {"name": "Carol Weiss", "location": "Bern"}
    change = shared(group.carol, group.party("carol"), "name", fields)
    given = write(group, group.carol, change)
    accepted_everywhere(group, given)
    taken = forged(group, group.dave, p.RowChange(SHARED, change.pk, p.DELETE, {}))
    refused_alike(group, taken)
    # A reader shares too.
    reader = shared(group.gail, group.party("gail"), "location", {"location": "Thun"})
    accepted_everywhere(group, write(group, group.gail, reader))
    gone = write(group, group.carol, p.RowChange(SHARED, change.pk, p.DELETE, {}))
    accepted_everywhere(group, gone)
    assert set(rows_everywhere(group, SHARED)) == {reader.pk}


def test_a_shared_field_copied_from_another_member_is_refused_everywhere(group):
    fields = {"name": "Carol Weiss"}
    carols = shared(group.carol, group.party("carol"), "name", fields)
    write(group, group.carol, carols)
    # Dave writes Carol's proof, binding and all, as his own copy.
    copied = p.RowChange(
        SHARED, formats.shared_id(group.dave.member, "name"), p.UPSERT, carols.cols
    )
    with pytest.raises(WriteError, match="not bound to the member"):
        group.dave.write_data([copied])
    refused_everywhere(
        group,
        forged(group, group.dave, copied),
        "the profile is not bound to the member who shares it",
        SHARED,
    )


def test_a_shared_leaf_not_in_the_commitment_is_refused_everywhere(group):
    change = shared(group.carol, group.party("carol"), "x-rank", {"name": "Carol Weiss"})
    refused_everywhere(
        group,
        forged(group, group.carol, change),
        "the shared field is not part of the profile's commitment",
        SHARED,
    )


def test_a_members_shared_fields_come_from_one_profile_at_their_own_ids(group):
    write(group, group.carol, shared(group.carol, group.party("carol"), "name", {"name": "C"}))
    # Erin's profile, honestly bound to Carol's key, is still a second profile for Carol.
    second = shared(group.carol, group.party("erin"), "location", {"location": "Bern"})
    refused_everywhere(
        group,
        forged(group, group.carol, second),
        "all of a member's shared fields come from one profile",
        SHARED,
    )
    # A field shared under another name's id.
    change = shared(group.carol, group.party("carol"), "location", {"location": "Bern"})
    moved = p.RowChange(
        SHARED, formats.shared_id(group.carol.member, "contact"), p.UPSERT, change.cols
    )
    refused_everywhere(
        group,
        forged(group, group.carol, moved),
        "a member shares a field only as their own copy, under the id its name gives",
        SHARED,
    )


def test_the_rules_refuse_a_second_word_even_where_the_policy_did_not_see_the_first(claimed):
    """The policy refuses a written-once row's change when the author's first write is in the
    op's causal past; a second device of the witness writing concurrently escapes it, so the
    rule refuses too. Judged on the view a replica built from the real ops."""
    from apps.core.thread.ordered import Author
    from apps.core.thread.ordered_view import RowStore, View

    group, pk, row = claimed
    change = attestation(group.dave, group.carol, pk, row)
    write(group, group.dave, change)
    taken = retraction(group.dave, change.pk)
    write(group, group.dave, taken)
    store = RowStore()
    for position, (table, rows) in enumerate(
        (t, r) for t, r in materialize(group.owner.replica.accepted_data()).items()
    ):
        for key, values in rows.items():
            store.put((table, key), (position,), {**values, "pk": key})
    view = View(store, (99,))
    dave = Author(member=group.dave.member, role="writer", rank=50)
    said = rules.attestation_rule(view, change, dave)
    assert said == "you retracted your word on this claim: it cannot be given again"
    assert rules.retraction_rule(view, taken, dave) == (
        "a retraction is final: it is never changed or undone"
    )
    erin = Author(member=group.erin.member, role="writer", rank=50)
    assert rules.attestation_rule(view, attestation(group.erin, group.carol, pk, row), erin) is None
