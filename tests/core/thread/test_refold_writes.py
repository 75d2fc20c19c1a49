"""A refold of the control log writes only the decisions it changes: each write rewrites the
op's row in the thread database, bytes included, and a refold decides most ops as before."""

from __future__ import annotations

from apps.core.thread.replica import Replica
from apps.core.thread.store import MemoryStore
from apps.core.thread.writer import ThreadWriter
from tests.core.thread.conftest import Party, join


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.decided: list[bytes] = []

    def decide(self, op, decision, changes) -> None:
        self.decided.append(op.hash)
        super().decide(op, decision, changes)


def test_a_refold_that_changes_nothing_writes_no_decision(alice: Party, bob: Party) -> None:
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="refold")
    join(owner, bob)
    owner.rotate()
    store = CountingStore()
    replica = Replica.for_members(owner.thread, [alice.member_key(owner.thread)], store=store)
    replica.ingest_many(op.raw for op in owner.replica.admitted)
    before = {h: store.decision(h) for h in store.decisions()}
    assert len(replica._control_ops) >= 3
    store.decided.clear()
    replica.control = replica._resolve()
    assert store.decided == []
    assert {h: store.decision(h) for h in store.decisions()} == before


def test_a_refold_writes_the_decisions_it_changes(alice: Party) -> None:
    owner = ThreadWriter.create(master_secret=alice.master, device_key=alice.device, name="refold")
    store = CountingStore()
    replica = Replica.for_members(owner.thread, [alice.member_key(owner.thread)], store=store)
    replica.ingest_many(op.raw for op in owner.replica.admitted)
    genesis = replica._control_ops[0]
    store._decisions.pop(genesis.hash)  # as if never decided (a store that lost it)
    store.decided.clear()
    replica.control = replica._resolve()
    assert store.decided == [genesis.hash]
