"""A member that signs whatever it likes with the keys it legitimately holds (issue 9): row
ownership, values of every type, policies at their causal place. Every forged op here is
impolite: it leaves out of its deps whatever would give it away."""

from __future__ import annotations

import pytest

from apps.core.thread import payloads as p
from apps.core.thread import rowid
from apps.core.thread.lww import materialize
from apps.core.thread.policy import ANY_TABLE, Policy, RoleRules
from apps.core.thread.writer import ThreadWriter, WriteError
from tests.core.thread.conftest import Party, auditor, forge, join, rid, sync


@pytest.fixture
def thread(alice: Party) -> ThreadWriter:
    return ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="Club")


def post(writer: ThreadWriter, name: str, text: str, pk: str | None = None) -> p.RowChange:
    return p.RowChange("notes", pk or rid(writer, name), p.UPSERT, {"text": text})


def observers(thread: ThreadWriter, *parties: Party):
    """The owner's replica and a fresh one holding everyone's keys, both caught up."""
    fresh = auditor(thread.thread, *parties)
    sync(thread.replica, fresh)
    return [thread.replica, fresh]


def test_a_forged_insert_of_another_members_row_is_refused_whatever_its_deps_omit(
    thread: ThreadWriter, alice: Party, bob: Party, carol: Party
):
    b = join(thread, bob)
    c = join(thread, carol)
    sync(thread.replica, b.replica)
    sync(thread.replica, c.replica)
    # Carol's past before Bob's message: causally closed, and without Bob's insert in it.
    before = [(d, s) for d, s in c.replica.heads.items() if d != c.device]
    victim = b.write_data([post(b, "m1", "Bob's words")])
    for replica in (thread.replica, c.replica):
        replica.ingest(victim.raw)
    pk = rid(b, "m1")
    # In its own causal view, the row does not exist: the forged upsert claims to insert it.
    rewrite = forge(c, kind="data", payload=p.data_doc([post(c, "", "defaced", pk)]), deps=before)
    c.replica.ingest(rewrite.raw)
    erase = forge(
        c, kind="data", payload=p.data_doc([p.RowChange("notes", pk, p.DELETE, {})]), deps=before
    )
    for replica in observers(thread, alice, bob, carol):
        for forged in (rewrite, erase):
            result = replica.ingest(forged.raw)
            if result.status == "duplicate":
                result = replica.decision(forged.hash)
            assert result.status == "refused", result
            assert "others' rows" in result.reason
        rows = materialize(replica.accepted_data())
        assert rows["notes"][pk]["text"] == "Bob's words"


def test_a_row_id_names_its_owner_and_only_that_member_may_insert_it(
    thread: ThreadWriter, bob: Party, carol: Party
):
    b = join(thread, bob)
    c = join(thread, carol)
    with pytest.raises(WriteError, match="others' rows"):
        c.write_data([post(c, "", "squatting", rid(b, "future-row"))])
    # Ids that name nobody: only a role that may insert and update any row writes them.
    with pytest.raises(WriteError, match="others' rows"):
        c.write_data([post(c, "", "anonymous", "no-owner")])
    thread.write_data([post(thread, "", "the owner may", "no-owner")])
    assert rowid.is_owned_by(rid(b, "x"), b.member)
    assert not rowid.is_owned_by(rid(b, "x"), c.member)
    assert rowid.row_tag("no-owner") is None
    # Version digit or variant wrong: not an owned id, whatever its tail says.
    bad = rid(b, "x")
    assert rowid.row_tag(bad[:12] + "7" + bad[13:]) is None
    assert rowid.row_tag(bad[:16] + "0" + bad[17:]) is None


def test_insert_only_tables_count_the_owners_history_and_a_reader_without_it_waits(
    alice: Party, bob: Party, carol: Party
):
    """An insert-only table (insert own, no update): a second write of one's own row is an
    update, refused. A member admitted without history cannot tell: it leaves it opaque."""
    ledger = {"chits": {"insert": "any", "update": "none", "delete": "none"}}
    policy = Policy(
        roles={
            "owner": RoleRules(
                rank=1000,
                invite=frozenset({"writer", "reader"}),
                manage=True,
                tables={ANY_TABLE: {"insert": "any", "update": "any", "delete": "any"}},
                rotate=True,
            ),
            "admin": RoleRules(rank=100, manage=True, rotate=True),
            "writer": RoleRules(rank=50, tables=ledger, rotate=True),
            "reader": RoleRules(rank=10, history=False),
        }
    )
    owner = ThreadWriter.create(
        master_secret=alice.master, device_key=alice.device, name="Tally", policy=policy
    )
    b = join(owner, bob)
    chit = p.RowChange("chits", rid(b, "c1"), p.UPSERT, {"amount": 5})
    b.write_data([chit])
    with pytest.raises(WriteError, match="may not update own rows of chits"):
        b.write_data([p.RowChange("chits", rid(b, "c1"), p.UPSERT, {"amount": 500})])
    sync(b.replica, owner.replica)
    c = join(owner, carol, role="reader")  # admitted without history: a new epoch
    sync(owner.replica, b.replica)
    twice = forge(
        b,
        kind="data",
        payload=p.data_doc([p.RowChange("chits", rid(b, "c1"), p.UPSERT, {"amount": 9})]),
    )
    sync(owner.replica, c.replica)
    assert owner.replica.ingest(twice.raw).status == "refused"
    # The reader has no key for Bob's first write: it cannot know whether this one updates it.
    result = c.replica.ingest(twice.raw)
    assert result.status == "opaque", result
    assert "earlier writes" in result.reason


def test_values_of_any_type_never_break_the_core_and_ids_keep_their_owner(
    thread: ThreadWriter, bob: Party
):
    b = join(thread, bob)
    odd = [
        p.RowChange("notes", rid(b, "1"), p.UPSERT, {"text": b"\x00bytes", "n": None}),
        p.RowChange("notes", rid(b, "2"), p.UPSERT, {"n": 2**64 - 1, "f": 1.5, "t": True}),
    ]
    op = b.write_data(odd)
    assert thread.replica.ingest(op.raw).status == "accepted"


def test_a_policy_change_applies_from_its_place_not_to_history(
    thread: ThreadWriter, alice: Party, bob: Party
):
    b = join(thread, bob)
    sync(thread.replica, b.replica)
    # Bob writes without having seen the owner's new policy: his op stands before it.
    concurrent = b.write_data([post(b, "before", "written under the old rules")])
    stricter = thread.replica.control.state.policy.to_doc()
    stricter["roles"]["writer"]["tables"] = {}
    thread.control(p.SetPolicy(policy=Policy.from_doc(stricter)))
    sync(thread.replica, b.replica)
    with pytest.raises(WriteError, match="may not"):
        b.write_data([post(b, "after", "written after seeing them")])
    late = forge(b, kind="data", payload=p.data_doc([post(b, "after", "forged")]))
    for replica in observers(thread, alice, bob):
        sync(b.replica, replica)  # Bob's ops, his own refused write included
        assert replica.ingest(concurrent.raw).status in ("accepted", "duplicate")
        assert replica.decision(concurrent.hash).status == "accepted"
        assert replica.ingest(late.raw).status == "refused"
