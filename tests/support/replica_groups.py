"""The members of one thread and fresh replicas that judge what they wrote, for the apps' rule
tests (medical, market, ledger, checklist, voting).

A rule test writes through the members' writers (honest: the writer's own replica refuses a bad
row at once) or forges what a modified node would sign (``forge_at``, ``forged``), then asks
whether every fresh replica, fed every op in shuffled orders (some twice) and judging strictly,
decides the same: a rule that read the clock or anything else of the node, or that depended on
the order ops arrive in, fails here. Each app's test file subclasses ``ReplicaGroup`` with its
members (a dataclass) and keeps only its own rows and scenarios."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar, Self

from apps.core.thread import payloads as p
from apps.core.thread.appspec import AppSpec
from apps.core.thread.hlc import Stamp
from apps.core.thread.lww import materialize
from apps.core.thread.op import Op
from apps.core.thread.policy import policy_template
from apps.core.thread.replica import Replica
from apps.core.thread.writer import ThreadWriter
from tests.core.thread.conftest import Party, auditor, forge, sync


def opened(party: Party, *, name: str, app: str, spec: AppSpec, **how: Any) -> ThreadWriter:
    """The writer of a thread ``party`` makes under ``app``'s policy, with ``spec`` enabled;
    ``how`` goes to ``ThreadWriter.create`` (a clock)."""
    owner = ThreadWriter.create(
        master_secret=party.master,
        device_key=party.device,
        name=name,
        app=app,
        policy=policy_template(app),
        **how,
    )
    owner.control(p.EnableApp(spec))
    return owner


class ReplicaGroup:
    """A thread's members, each with a writer. Subclasses give ``writers`` (the thread's owner
    first, unless they override ``owner``) and ``parties`` (whose keys the replicas trust)."""

    writers: Sequence[ThreadWriter]
    parties: Sequence[Party]
    # How many fresh replicas judge, unless a test asks for more or fewer.
    runs: ClassVar[int] = 3
    # The table a refusal's reason names when a test does not say (None: tests always say).
    table: ClassVar[str | None] = None

    @property
    def owner(self) -> ThreadWriter:
        """The writer that made the thread: the replicas judge that thread."""
        return self.writers[0]

    def settled(self) -> Self:
        """Every member's own replica judges strictly too, and everyone holds everything."""
        for writer in self.writers:
            writer.replica.ordered.strict = True
        self.share()
        return self

    def share(self, *writers: ThreadWriter) -> None:
        """Everyone (or the writers named) hears everything the others hold."""
        among = writers or self.writers
        for source in among:
            for target in among:
                if source is not target:
                    sync(source.replica, target.replica)

    def ops(self) -> list[Op]:
        """Every op some member's replica admitted, once each."""
        found: dict[bytes, Op] = {}
        for writer in self.writers:
            found.update({op.hash: op for op in writer.replica.admitted})
        return list(found.values())

    def replicas(self, runs: int | None = None) -> list[Replica]:
        """Fresh replicas fed every op in shuffled orders (some twice), judging strictly."""
        ops, made = self.ops(), []
        for seed in range(self.runs if runs is None else runs):
            shuffled = list(ops)
            random.Random(seed).shuffle(shuffled)
            replica = auditor(self.owner.thread, *self.parties)
            replica.ordered.strict = True
            for op in shuffled + shuffled[: len(shuffled) // 3]:
                replica.ingest(op.raw)
            made.append(replica)
        return made


def write(group: ReplicaGroup, writer: ThreadWriter, *changes: p.RowChange) -> Op:
    """An honest write, shared with everyone at once."""
    op = writer.write_data(list(changes))
    group.share()
    return op


def forge_at(writer: ThreadWriter, *changes: p.RowChange, at: int | None = None, **how: Any) -> Op:
    """What a modified node signs with the member's device, checked by nobody first and held by
    ``writer`` alone (nobody hears it yet); stamped ``at`` ms if given. ``how`` goes to
    ``forge`` (an epoch and its key, for a removed member)."""
    stamp = None if at is None else Stamp(at, 0)
    op = forge(writer, kind="data", payload=p.data_doc(list(changes)), hlc=stamp, **how)
    writer.replica.ingest(op.raw)
    return op


def forged(
    group: ReplicaGroup, writer: ThreadWriter, *changes: p.RowChange, at: int | None = None,
    **how: Any,
) -> Op:  # fmt: skip
    """``forge_at``, then shared with everyone."""
    op = forge_at(writer, *changes, at=at, **how)
    group.share()
    return op


def refused_everywhere(group: ReplicaGroup, op: Op, reason: str, table: str | None = None) -> None:
    """Every fresh replica refuses ``op`` with ``reason``, in ``table`` (the group's unless
    given)."""
    table = table or group.table
    assert table, "say which table the refusal is in"
    for replica in group.replicas():
        decision = replica.decision(op.hash)
        assert decision is not None
        assert (decision.status, decision.reason) == ("refused", f"{table}: {reason}")


def refused_alike(group: ReplicaGroup, op: Op) -> str:
    """The one reason every replica gives for refusing ``op``."""
    decisions = [replica.decision(op.hash) for replica in group.replicas()]
    assert all(d is not None and d.status == "refused" for d in decisions), decisions
    reasons = {d.reason for d in decisions if d is not None}
    assert len(reasons) == 1, reasons
    return reasons.pop()


def accepted_everywhere(group: ReplicaGroup, *ops: Op) -> list[Replica]:
    """Every fresh replica accepts every op in ``ops``; the replicas, for more questions."""
    replicas = group.replicas()
    for replica in replicas:
        for op in ops:
            decision = replica.decision(op.hash)
            assert decision is not None
            assert decision.status == "accepted", decision.reason
    return replicas


def rows_everywhere(group: ReplicaGroup, table: str) -> dict[str, dict[str, Any]]:
    """The table as every replica holds it (they must agree)."""
    found = [materialize(r.accepted_data()).get(table, {}) for r in group.replicas()]
    assert all(rows == found[0] for rows in found)
    return found[0]
