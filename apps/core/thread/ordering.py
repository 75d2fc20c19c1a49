"""How a replica decides a data op, ordered tables included (a mixin of ``Replica``).

The data checker decides first; an op it accepts that changes an ordered table is then judged
in the thread's order (``ordered_data.py``). When judging it turns over the outcome of ops
decided earlier (a late row that orders before them), their decisions change in the store too,
with their rows: every replica ends with the decisions a replica that received everything at
once would make.
"""

from __future__ import annotations

from apps.core.thread import payloads as p
from apps.core.thread.op import Op
from apps.core.thread.ordered import Author
from apps.core.thread.ordered_data import OrderedData


class Ordering:
    ordered: OrderedData
    _ordered_stale: bool

    def _decide(self, op: Op) -> None:
        decision, changes = self._data.check(op, self.store.refusal(op.hash))  # type: ignore[attr-defined]
        if decision.status == "accepted" and changes:
            ordered = self.ordered
            ordered.prepare(self.control.timeline)  # type: ignore[attr-defined]
            if ordered.touches(changes):
                self._decide_ordered(op, changes)
                return
        if decision.status in ("opaque", "waiting"):
            self._undecided(op)
        self.store.decide(op, decision, changes)  # type: ignore[attr-defined]

    def _undecided(self, op: Op) -> None:
        known = self.undecided.get(op.device)  # type: ignore[attr-defined]
        if known is None or op.seq < known:
            self.undecided[op.device] = op.seq  # type: ignore[attr-defined]

    def _author(self, op: Op) -> Author:
        """The author's standing where ``op`` stands (the data checker accepted it: it has
        one)."""
        timeline = self.control.timeline  # type: ignore[attr-defined]
        member = timeline.device_member_in_past(op.device, op)
        role = timeline.role_in_past(member, op) or ""
        policy = timeline.policy_in_past(op) or self.control.state.policy  # type: ignore[attr-defined]
        return Author(member=member, role=role, rank=policy.rank(role))

    def _decide_ordered(self, op: Op, changes: list[p.RowChange]) -> None:
        author = self._author(op)
        waiting = self.ordered.missing_rules(changes)
        if waiting is not None:
            self._undecided(op)
            # The data checker indexed its rows as accepted: they are not (yet).
            self.store.redecide(op, waiting, None, author.member)  # type: ignore[attr-defined]
            return
        judge = self.ordered.judge
        assert judge is not None
        changed = judge.put([self.ordered.entry(op, changes, author)])
        decision = self.ordered.decision(op.hash)
        if decision.status == "accepted":
            self.store.decide(op, decision, changes)  # type: ignore[attr-defined]
        else:
            self.store.redecide(op, decision, None, author.member)  # type: ignore[attr-defined]
        self._turned_over(changed.outcomes - {op.hash})

    def _turned_over(self, hashes) -> None:
        """Ops judged before whose outcome changed: record their new decision and rows."""
        timeline = self.control.timeline  # type: ignore[attr-defined]
        for op_hash in sorted(hashes):
            op = self.store.op_by_hash(op_hash)  # type: ignore[attr-defined]
            if op is None or op_hash not in self.ordered.judge:  # type: ignore[operator]
                continue
            decision = self.ordered.decision(op_hash)
            changes = None
            if decision.status == "accepted":
                _epoch, candidates = timeline.epoch_in_past(op)
                payload = self.opener.data(op, candidates)  # type: ignore[attr-defined]
                if not isinstance(payload, p.DataPayload):
                    continue  # it opened when it was judged: the same keys still open it
                changes = payload.rows
            self.store.redecide(op, decision, changes, self._author(op).member)  # type: ignore[attr-defined]

    def _unjudge(self, hashes: list[bytes]) -> None:
        """Ops that no longer count at all (a forked device's): out of the order, and what
        they had decided for others decided again."""
        judge = self.ordered.judge
        if judge is None:
            return
        mine = [h for h in hashes if h in judge]
        if mine:
            changed = judge.remove(mine)
            self._turned_over(changed.outcomes)

    def _ordered_reset(self) -> None:
        self.ordered.reset()
        self._ordered_stale = False
