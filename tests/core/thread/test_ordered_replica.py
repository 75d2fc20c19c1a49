"""Ordered tables in a replica (issue 10): rows an app declares ordered are judged one by one in
the thread's order by the app's rule, the same way on every replica whatever the arrival order;
a late row that orders earlier turns over what it must; a close refuses every row of its scope
that its author had not seen, whenever it arrives; a node without the app's rules waits."""

from __future__ import annotations

import random

import pytest

from apps.core.thread import ordered_data
from apps.core.thread import payloads as p
from apps.core.thread.appspec import AppSpec, Closing
from apps.core.thread.lww import materialize
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter, WriteError
from tests.core.thread.conftest import Party, auditor, forge, join, rid, sync
from tests.core.thread.simulation import claim_rule

ANYONE = {"insert": "any", "update": "any"}
TODO = AppSpec(
    app="todo",
    tables=frozenset({"todo_item", "todo_close"}),
    rules={
        "owner": {"todo_item": ANYONE, "todo_close": {"insert": "any"}},
        "admin": {"todo_item": ANYONE, "todo_close": {"insert": "any"}},
        "writer": {"todo_item": ANYONE},
    },
    ordered=frozenset({"todo_item", "todo_close"}),
    closes={"todo_close": Closing(target="todo_item", scope="list")},
)


@pytest.fixture(autouse=True)
def todo_rules(monkeypatch):
    factories = dict(ordered_data._VALIDATORS._factories)
    monkeypatch.setattr(ordered_data._VALIDATORS, "_factories", factories)
    ordered_data.validators_register("todo", lambda: {"todo_item": claim_rule})


def add(writer: ThreadWriter, name: str, todo_list: str = "l1") -> str:
    pk = rid(writer, name)
    writer.write_data([p.RowChange("todo_item", pk, p.UPSERT, {"text": name, "list": todo_list})])
    return pk


def claim(writer: ThreadWriter, pk: str):
    return writer.write_data(
        [p.RowChange("todo_item", pk, p.UPSERT, {"claimed_by": writer.member.hex()})]
    )


def group(alice: Party, bob: Party, carol: Party):
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="g")
    owner.control(p.EnableApp(TODO))
    b, c = join(owner, bob), join(owner, carol)
    for writer in (b, c):
        sync(owner.replica, writer.replica)
    return owner, b, c


def every_order(thread: bytes, parties, ops, runs: int = 6) -> list[Replica]:
    replicas = []
    for seed in range(runs):
        shuffled = list(ops)
        random.Random(seed).shuffle(shuffled)
        replica = auditor(thread, *parties)
        for op in shuffled + shuffled[: len(shuffled) // 3]:
            replica.ingest(op.raw)
        replicas.append(replica)
    return replicas


def everything(*writers: ThreadWriter):
    ops = {}
    for writer in writers:
        ops.update({op.hash: op for op in writer.replica.admitted})
    return list(ops.values())


def test_two_concurrent_claims_one_wins_the_same_on_every_replica(alice, bob, carol):
    owner, b, c = group(alice, bob, carol)
    pk = add(owner, "milk")
    sync(owner.replica, b.replica)
    sync(owner.replica, c.replica)
    # Partitioned: both claim the item, each on its own node (accepted there).
    mine, theirs = claim(b, pk), claim(c, pk)
    ops = everything(owner, b, c)
    first, second = sorted([mine, theirs], key=lambda op: (op.hlc, op.device))
    for replica in every_order(owner.thread, (alice, bob, carol), ops):
        assert replica.decision(first.hash).status == "accepted"
        decision = replica.decision(second.hash)
        reason = "todo_item: the item is already claimed"
        assert (decision.status, decision.reason) == ("refused", reason)
        claimer = materialize(replica.accepted_data())["todo_item"][pk]["claimed_by"]
        assert claimer == {b.device: b, c.device: c}[first.device].member.hex()
    # The loser's own node turns its claim over once it hears of the other.
    loser = b if second is mine else c
    winner = c if loser is b else b
    sync(winner.replica, loser.replica)
    assert loser.replica.decision(second.hash).status == "refused"
    rows = materialize(loser.replica.accepted_data())["todo_item"][pk]
    assert rows["claimed_by"] == winner.member.hex()


def test_a_late_claim_that_orders_first_turns_an_accepted_claim_over(alice, bob, carol):
    owner, b, c = group(alice, bob, carol)
    pk = add(owner, "bread")
    sync(owner.replica, b.replica)
    sync(owner.replica, c.replica)
    early = claim(c, pk)  # ordered first (earlier stamp), arrives last at the auditor
    late = claim(b, pk)
    if (early.hlc, early.device) > (late.hlc, late.device):
        early, late = late, early
    replica = auditor(owner.thread, alice, bob, carol)
    for op in everything(owner, b, c):
        if op.hash != early.hash:
            replica.ingest(op.raw)
    assert replica.decision(late.hash).status == "accepted"
    result = replica.ingest(early.raw)
    assert result.status == "accepted"
    assert replica.decision(late.hash).status == "refused"
    assert replica.decision(late.hash).reason == "todo_item: the item is already claimed"


def test_a_forged_claim_for_someone_else_is_refused_everywhere(alice, bob, carol):
    owner, b, c = group(alice, bob, carol)
    pk = add(owner, "eggs")
    sync(owner.replica, b.replica)
    # A modified node claims the item in carol's name.
    change = p.RowChange("todo_item", pk, p.UPSERT, {"claimed_by": c.member.hex()})
    forged = forge(b, kind="data", payload=p.data_doc([change]))
    b.replica.ingest(forged.raw)
    for replica in every_order(owner.thread, (alice, bob, carol), everything(owner, b, c), 3):
        decision = replica.decision(forged.hash)
        assert (decision.status, decision.reason) == (
            "refused",
            "todo_item: a member claims items only for themself",
        )
    with pytest.raises(WriteError, match="claims items only for themself"):
        b.write_data([change])


def test_a_close_refuses_the_rows_its_author_had_not_seen_whenever_they_arrive(alice, bob, carol):
    owner, b, c = group(alice, bob, carol)
    seen = add(b, "seen")
    sync(b.replica, owner.replica)
    unseen = add(c, "unseen")  # concurrent with the close: its author had not seen it
    close = owner.write_data(
        [p.RowChange("todo_close", rid(owner, "close l1"), p.UPSERT, {"scope": "l1"})]
    )
    other_list = add(c, "elsewhere", todo_list="l2")
    ops = everything(owner, b, c)
    for replica in every_order(owner.thread, (alice, bob, carol), ops):
        assert replica.decision(close.hash).status == "accepted"
        rows = materialize(replica.accepted_data())["todo_item"]
        assert seen in rows
        assert other_list in rows
        assert unseen not in rows
    # Arriving before the close, the unseen row counted, then stopped counting.
    replica = auditor(owner.thread, alice, bob, carol)
    for op in ops:
        if op.hash != close.hash:
            replica.ingest(op.raw)
    assert unseen in materialize(replica.accepted_data())["todo_item"]
    replica.ingest(close.raw)
    assert unseen not in materialize(replica.accepted_data())["todo_item"]
    # And after the close nobody adds to the closed list, not even its closer.
    with pytest.raises(WriteError, match="closed"):
        add(owner, "after")


def test_a_node_without_the_apps_rules_waits_and_decides_after_an_upgrade(alice, bob, carol):
    owner, _b, _c = group(alice, bob, carol)
    pk = add(owner, "tea")
    claim_op = claim(owner, pk)
    old = Replica.for_members(owner.thread, [alice.member_key(owner.thread)], validators={})
    for op in owner.replica.admitted:
        old.ingest(op.raw)
    decision = old.decision(claim_op.hash)
    assert decision.status == "waiting"
    assert "does not have the rules of todo_item" in decision.reason
    assert "todo_item" not in materialize(old.accepted_data())
    old.ordered.validators = {"todo_item": claim_rule}
    assert old.redecide_waiting()
    assert old.decision(claim_op.hash).status == "accepted"
    assert materialize(old.accepted_data())["todo_item"][pk]["claimed_by"] == owner.member.hex()
