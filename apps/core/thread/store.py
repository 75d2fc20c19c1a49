"""Where a replica keeps its ops, decisions and row index: the storage interface of the core.

A ``Replica`` keeps in memory only what every decision needs at hand (the control ops, the
version vector, ops waiting for their past, forks); everything that grows with the log is behind
``OpStore``. ``MemoryStore`` is the reference implementation (tests, tools); the thread database
backend implements the same protocol on the thread's SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from apps.core.thread.hlc import Stamp
from apps.core.thread.op import KIND_DATA, Op, OpId
from apps.core.thread.payloads import RowChange

RowKey = tuple[str, str | bytes | int]


@dataclass(frozen=True)
class Decision:
    status: str  # accepted | refused | opaque
    reason: str = ""


class RowEvent(NamedTuple):
    """One accepted change of a row, as much as authorization needs: who, when, what. A named
    tuple, not a frozen dataclass: one is made per row an op changes, at a third of the cost."""

    hlc: Stamp
    device: bytes
    seq: int
    member: bytes
    action: str  # upsert | delete


def row_events_of(op: Op, changes: list[RowChange], member: bytes) -> list[tuple[RowKey, RowEvent]]:
    """One event per row an accepted op changed: the row's state after the op."""
    hlc, device, seq = op.hlc, op.device, op.seq
    if len(changes) == 1:  # the common op: one row
        change = changes[0]
        return [((change.table, change.pk), RowEvent(hlc, device, seq, member, change.action))]
    last = {(change.table, change.pk): change.action for change in changes}
    return [(key, RowEvent(hlc, device, seq, member, action)) for key, action in last.items()]


class OpStore(Protocol):
    def op(self, op_id: OpId) -> Op | None:
        """The admitted op at (device, seq)."""

    def op_by_hash(self, op_hash: bytes) -> Op | None:
        """Any op held: admitted, pending or kept as fork evidence."""

    def admit(self, op: Op) -> None:
        """Append an op to the log (the DAG), in admission order."""

    def keep(self, op: Op, *, place: str = "pending") -> None:
        """Hold an op that is not (or not yet) in the log: "pending", or fork "evidence"."""

    def held(self, place: str) -> Iterator[Op]:
        """The ops kept at ``place``."""

    def heads(self) -> dict[bytes, int]:
        """The version vector of the log: each device's highest seq."""

    def control_log(self) -> list[Op]:
        """The control and keys ops of the log, in admission order."""

    def admitted(self, *, data_only: bool = False) -> Iterator[Op]:
        """The log in admission order (a causal order)."""

    def data_after(self, device: bytes, seq: int) -> bool:
        """Whether the log has a data op of ``device`` with a higher seq."""

    def decide(self, op: Op, decision: Decision, changes: list[RowChange] | None) -> None: ...

    def decision(self, op_hash: bytes) -> Decision | None: ...

    def changes(self, op_hash: bytes) -> list[RowChange] | None:
        """The row changes of an accepted data op."""

    def refusal(self, op_hash: bytes) -> str | None:
        """The static-rule refusal of an admitted op (see ``Replica``), if any."""

    def set_refusal(self, op_hash: bytes, reason: str | None) -> None: ...

    def row_events(self, key: RowKey) -> list[RowEvent]:
        """Accepted changes of one row in stamp order."""

    def row_event_add(self, key: RowKey, event: RowEvent) -> None: ...

    def row_events_many(self, keys: list[RowKey]) -> dict[RowKey, list[RowEvent]]:
        """``row_events`` of several rows (one round trip where the store can)."""

    def row_events_add_many(self, events: list[tuple[RowKey, RowEvent]]) -> None: ...

    def row_events_clear(self) -> None:
        """Forget the row index (before every data op is decided again)."""

    def drop(self, op_hash: bytes) -> None:
        """Forget an op held outside the log (pending, or evidence no longer needed)."""

    def undecided_data(self) -> dict[bytes, int]:
        """device -> lowest seq of its data ops decided opaque or waiting."""

    def has_waiting(self) -> bool:
        """Whether some data op waits for an app schema version this node does not know."""

    def statically_refused(self) -> Iterator[Op]:
        """The admitted ops with a static-rule refusal."""

    def refuse_data_from(self, device: bytes, seq: int, decision: Decision) -> None:
        """Refuse every data op of ``device`` from ``seq`` on, forgetting the row changes of
        those that were accepted (and, in a database, the rows they made)."""

    def redecide(
        self, op: Op, decision: Decision, changes: list[RowChange] | None, member: bytes
    ) -> None:
        """Change a data op's decision after the fact (an ordered row a late row turned over):
        accepted, its row changes count (and, in a database, apply); otherwise the changes it
        made are forgotten and, in a database, the rows it touched are rebuilt."""


class MemoryStore:
    """``OpStore`` in dictionaries."""

    def __init__(self) -> None:
        self._slots: dict[OpId, Op] = {}
        self._by_hash: dict[bytes, Op] = {}
        self._log: list[Op] = []
        # Each device's highest data op seq in the log (the log only grows).
        self._data_top: dict[bytes, int] = {}
        self._decisions: dict[bytes, Decision] = {}
        self._changes: dict[bytes, list[RowChange]] = {}
        self._refusals: dict[bytes, str] = {}
        self._rows: dict[RowKey, list[RowEvent]] = {}
        self._places: dict[bytes, str] = {}

    def op(self, op_id: OpId) -> Op | None:
        return self._slots.get(op_id)

    def op_by_hash(self, op_hash: bytes) -> Op | None:
        return self._by_hash.get(op_hash)

    def admit(self, op: Op) -> None:
        self._slots[op.id] = op
        self._by_hash[op.hash] = op
        self._places.pop(op.hash, None)
        self._log.append(op)
        if op.kind == KIND_DATA and op.seq > self._data_top.get(op.device, 0):
            self._data_top[op.device] = op.seq

    def keep(self, op: Op, *, place: str = "pending") -> None:
        self._by_hash[op.hash] = op
        if self._slots.get(op.id) is not op:
            self._places[op.hash] = place

    def held(self, place: str) -> Iterator[Op]:
        for op_hash, op_place in list(self._places.items()):
            op = self._by_hash[op_hash]
            if op_place == place and self._slots.get(op.id) is not op:
                yield op

    def heads(self) -> dict[bytes, int]:
        heads: dict[bytes, int] = {}
        for op in self._log:
            heads[op.device] = max(heads.get(op.device, 0), op.seq)
        return heads

    def control_log(self) -> list[Op]:
        return [op for op in self._log if op.kind != KIND_DATA]

    def admitted(self, *, data_only: bool = False) -> Iterator[Op]:
        for op in self._log:
            if not data_only or op.kind == KIND_DATA:
                yield op

    def data_after(self, device: bytes, seq: int) -> bool:
        return self._data_top.get(device, 0) > seq

    def all_ops(self) -> Iterator[Op]:
        return iter(self._by_hash.values())

    def decide(self, op: Op, decision: Decision, changes: list[RowChange] | None) -> None:
        self._decisions[op.hash] = decision
        if changes is not None:
            self._changes[op.hash] = changes
        else:
            self._changes.pop(op.hash, None)

    def decision(self, op_hash: bytes) -> Decision | None:
        return self._decisions.get(op_hash)

    def decisions(self) -> dict[bytes, Decision]:
        return self._decisions

    def changes(self, op_hash: bytes) -> list[RowChange] | None:
        return self._changes.get(op_hash)

    def refusal(self, op_hash: bytes) -> str | None:
        return self._refusals.get(op_hash)

    def set_refusal(self, op_hash: bytes, reason: str | None) -> None:
        if reason is None:
            self._refusals.pop(op_hash, None)
        else:
            self._refusals[op_hash] = reason

    def row_events(self, key: RowKey) -> list[RowEvent]:
        return self._rows.get(key, [])

    def row_event_add(self, key: RowKey, event: RowEvent) -> None:
        events = [
            e for e in self._rows.get(key, []) if (e.device, e.seq) != (event.device, event.seq)
        ]
        self._rows[key] = events
        order = (event.hlc, event.device)
        i = len(events)
        while i > 0 and (events[i - 1].hlc, events[i - 1].device) > order:
            i -= 1
        events.insert(i, event)

    def row_events_many(self, keys: list[RowKey]) -> dict[RowKey, list[RowEvent]]:
        return {key: self.row_events(key) for key in keys}

    def row_events_add_many(self, events: list[tuple[RowKey, RowEvent]]) -> None:
        for key, event in events:
            self.row_event_add(key, event)

    def row_events_clear(self) -> None:
        self._rows.clear()

    def drop(self, op_hash: bytes) -> None:
        op = self._by_hash.get(op_hash)
        if op is not None and self._slots.get(op.id) is not op:
            del self._by_hash[op_hash]
            self._places.pop(op_hash, None)

    def undecided_data(self) -> dict[bytes, int]:
        found: dict[bytes, int] = {}
        for op in self._log:
            decision = self._decisions.get(op.hash)
            if op.kind == KIND_DATA and decision and decision.status in ("opaque", "waiting"):
                found[op.device] = min(found.get(op.device, op.seq), op.seq)
        return found

    def has_waiting(self) -> bool:
        return any(d.status == "waiting" for d in self._decisions.values())

    def statically_refused(self) -> Iterator[Op]:
        for op in self._log:
            if op.hash in self._refusals:
                yield op

    def redecide(
        self, op: Op, decision: Decision, changes: list[RowChange] | None, member: bytes
    ) -> None:
        for key, events in list(self._rows.items()):
            self._rows[key] = [e for e in events if (e.device, e.seq) != (op.device, op.seq)]
        if decision.status == "accepted" and changes is not None:
            self.row_events_add_many(row_events_of(op, changes, member))
        self.decide(op, decision, changes if decision.status == "accepted" else None)

    def refuse_data_from(self, device: bytes, seq: int, decision: Decision) -> None:
        for op in self._log:
            if op.device == device and op.seq >= seq and op.kind == KIND_DATA:
                self._decisions[op.hash] = decision
                self._changes.pop(op.hash, None)
        for key, events in list(self._rows.items()):
            self._rows[key] = [e for e in events if not (e.device == device and e.seq >= seq)]
