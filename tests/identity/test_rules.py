"""The identity app's rules through real replicas (issue 19, ADR 26). Honest members write
through their writers, whose own replica refuses a bad write at once; a modified node signs
whatever it likes with its certified device (``forged``), and every fresh replica, fed every op
in shuffled orders (some twice) and judging in strict purity mode, must refuse it with the same
reason."""

from __future__ import annotations

import json

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.ordered_data import ordered_validators
from apps.core.thread.writer import WriteError
from apps.identity import formats, rules
from apps.identity.policy import (
    ATTESTATION,
    AUTHORITY,
    CLAIM,
    KIND,
    SETTING,
    TABLES,
)
from tests.identity.rules_support import (
    Group,
    attestation,
    claim,
    claim_cols,
    club,
    kind,
    setting,
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
    # Dave makes a claim under Carol's id: refused before any rule (the id names Carol).
    squat = forged(group, group.dave, p.RowChange(CLAIM, pk, p.UPSERT, claim_cols(title="Mine")))
    refused_alike(group, squat)
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
