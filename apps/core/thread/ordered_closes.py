"""Closes in force: deadlines decided by what a close saw, not by a clock (APPS.md §0 "Time
without trusting clocks"; the judge is ``ordered.py``).

A close table's rows close scopes of its target table: a close row names, in its column
``scope``, a value of the target's scope column (an item, a poll). A change to a target row of a
closed scope (the scope it had, or the one it is given) is refused unless the close's op has the
change's op in its causal past, or is the same op. That is decided by the causal graph alone, so
it does not matter where the two stand in the order or which arrived first: a row concurrent with
the close is refused even when it orders before it. A close is an event: deleting its row does
not reopen the scope.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

from apps.core.thread.appspec import Closing
from apps.core.thread.hlc import Stamp
from apps.core.thread.ordered_view import CLOSED, ReadKey, State, View
from apps.core.thread.payloads import UPSERT, RowChange

CLOSE_SCOPE = "scope"  # the column of a close row that names the scope it closes
_ABSENT = object()


class OrderedOp(Protocol):
    """What the judge needs of an op (``op.Op`` has it)."""

    @property
    def hash(self) -> bytes: ...

    @property
    def hlc(self) -> Stamp: ...

    @property
    def device(self) -> bytes: ...

    @property
    def seq(self) -> int: ...

    def in_past(self, device: bytes, seq: int) -> bool: ...


def _scopes(cols: Mapping[str, Any], current: State, column: str) -> tuple[Any, ...]:
    """The scopes a change touches: the one it gives the row and the one the row had."""
    new = cols.get(column, _ABSENT)
    old = current.get(column, _ABSENT) if current is not None else _ABSENT
    if old is _ABSENT or old == new:
        return () if new is _ABSENT else (new,)
    return (old,) if new is _ABSENT else (new, old)


class Closes:
    """A judge's close tables, and the closes in force: scope key -> the ops of its closes.

    A scope key is ``(close table, scope, CLOSED)``, the read key of rows that asked whether the
    scope is closed: the judge judges them again when a close there comes or goes.
    """

    def __init__(self, closes: Mapping[str, Closing], ordered: Collection[str]) -> None:
        self.tables = dict(closes)
        self._by_target: dict[str, list[tuple[str, str]]] = {}
        for table, closing in self.tables.items():
            if closing.target not in ordered:
                raise ValueError(f"close table {table} closes {closing.target}: not ordered")
            self._by_target.setdefault(closing.target, []).append((table, closing.scope))
        self._in_force: dict[ReadKey, dict[bytes, OrderedOp]] = {}

    def refusal(self, change: RowChange) -> str | None:
        """A close row that does not say what it closes (it depends on the change alone)."""
        if (
            change.table in self.tables
            and change.action == UPSERT
            and CLOSE_SCOPE not in change.cols
        ):
            return f"{change.table}: a close row names the scope it closes (column scope)"
        return None

    def named(self, changes: Iterable[RowChange]) -> tuple[ReadKey, ...]:
        """The scope keys an op's close rows close (each names its scope: ``refusal``)."""
        return tuple(
            (change.table, change.cols[CLOSE_SCOPE], CLOSED)
            for change in changes
            if change.table in self.tables and change.action == UPSERT
        )

    def force(self, op: OrderedOp, keys: Iterable[ReadKey], on: bool) -> None:
        """Put an op's closes in force, or take them out."""
        for key in keys:
            closers = self._in_force.setdefault(key, {})
            if on:
                closers[op.hash] = op
            else:
                closers.pop(op.hash, None)
                if not closers:
                    del self._in_force[key]

    def closed(self, view: View, op: OrderedOp, change: RowChange) -> str | None:
        """Why the change is refused if a close in force that did not see its op closes the
        row's scope; None if none does. Every scope asked about is recorded as read."""
        closings = self._by_target.get(change.table)
        if not closings:
            return None
        current = view.get(change.table, change.pk)
        for close_table, column in closings:
            for scope in _scopes(change.cols, current, column):
                key = (close_table, scope, CLOSED)
                view.reads.append(key)
                closers = self._in_force.get(key)
                if closers and self.unseen(op, closers):
                    return f"the {column} was closed before this row was seen"
        return None

    def unseen(self, op: OrderedOp, closers: Mapping[bytes, OrderedOp]) -> bool:
        """Whether one of the closes did not see ``op``."""
        device, seq = op.device, op.seq
        return any(
            closer_hash != op.hash and not closer.in_past(device, seq)
            for closer_hash, closer in closers.items()
        )
