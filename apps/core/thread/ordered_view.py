"""The state of ordered tables at every position of the order, and the read-only view of it that
an app's validator is given (``ordered.py`` is the judge that uses them).

Every accepted write is kept as a **version** of its row at the order key of the op that made
it: the state just before any position is a bisect in the row's versions, never a replay. That
is what makes judging a late row cheap: it slots its versions in at its own place, and only the
rows ordered after it that read what it wrote are judged again.

The view records what a validator reads (rows by key, scans by one column's value, whole
tables, closed scopes): those reads are the rule's whole input besides the row change and its
author, so a later change to anything else cannot change its verdict.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from apps.core.thread.payloads import UPSERT, RowChange

Pk = str | bytes | int
RowKey = tuple[str, Pk]
# A row's values after a write ("pk" included), immutable; None: the write deleted the row.
State = Mapping[str, Any] | None
OrderKey = tuple[Any, ...]

_PK_RANK = {int: 0, bytes: 1, str: 2}


def pk_order(pk: Pk) -> tuple[int, Pk]:
    """The order rows are listed in: by primary key, so that a validator iterating over rows
    sees them in the same order on every replica, whatever order they were written in."""
    return (_PK_RANK.get(type(pk), 3), pk)


# What one judgment read, in the order it read it: its verdict is a function of these (and of
# the op itself). Keys of different kinds never collide, so one index serves them all:
#   (table, pk)               a row
#   (table, column, value)    a scan of the rows with that value
#   table                     a scan of the whole table
#   (close table, scope, CLOSED)  whether a close in force closes that scope
#                                 (``ordered_closes.py``)
ReadKey = Any
Reads = list[ReadKey]
CLOSED = object()


class RowStore:
    """Every version of every ordered row, and scan indexes over them.

    A row's versions are a list of ``(order key, state)`` sorted by key (bisected with a
    one-element tuple, which sorts before any pair with the same key). A column gets an index
    (value -> rows that have that value in some version) the first time a validator scans by
    it; from then on every version written is indexed. The index may name a row whose version at
    the position asked has another value: scans check each candidate.
    """

    def __init__(self) -> None:
        self._versions: dict[RowKey, list[tuple[OrderKey, State]]] = {}
        self._pks: dict[str, set[Pk]] = {}
        # table -> column -> value -> pk -> how many of the row's versions have that value
        self._indexes: dict[str, dict[str, dict[Any, dict[Pk, int]]]] = {}

    def state_at(self, key: RowKey, position: OrderKey) -> State:
        """The row's state just before ``position`` (None: absent or deleted)."""
        versions = self._versions.get(key)
        if versions is None:
            return None
        index = bisect_left(versions, (position,))
        return versions[index - 1][1] if index else None

    def written_at(self, key: RowKey, position: OrderKey) -> OrderKey | None:
        """Where the row's version in force just before ``position`` was written (None: absent
        or deleted)."""
        versions = self._versions.get(key)
        if versions is None:
            return None
        index = bisect_left(versions, (position,))
        if not index or versions[index - 1][1] is None:
            return None
        return versions[index - 1][0]

    def put(self, key: RowKey, position: OrderKey, state: State) -> None:
        """Add the version written at ``position``, or replace it."""
        versions = self._versions.get(key)
        if versions is None:
            self._versions[key] = [(position, state)]
            self._pks.setdefault(key[0], set()).add(key[1])
            self._index(key, state, 1)
            return
        index = bisect_left(versions, (position,))
        if index < len(versions) and versions[index][0] == position:
            self._index(key, versions[index][1], -1)
            versions[index] = (position, state)
        else:
            versions.insert(index, (position, state))
        self._index(key, state, 1)

    def drop(self, key: RowKey, position: OrderKey) -> None:
        """Remove the version written at ``position`` (there must be one)."""
        versions = self._versions[key]
        index = bisect_left(versions, (position,))
        self._index(key, versions[index][1], -1)
        del versions[index]
        if not versions:
            del self._versions[key]
            pks = self._pks[key[0]]
            pks.discard(key[1])
            if not pks:
                del self._pks[key[0]]

    def _index(self, key: RowKey, state: State, delta: int) -> None:
        columns = self._indexes.get(key[0])
        if not columns or state is None:
            return
        pk = key[1]
        for column, by_value in columns.items():
            if column not in state:
                continue
            value = state[column]
            holders = by_value.get(value)
            if holders is None:
                holders = by_value[value] = {}
            count = holders.get(pk, 0) + delta
            if count:
                holders[pk] = count
            else:
                del holders[pk]
                if not holders:
                    del by_value[value]

    def candidates(self, table: str, column: str, value: Any) -> Iterable[Pk]:
        """Rows of ``table`` that have ``column == value`` in at least one version."""
        columns = self._indexes.setdefault(table, {})
        by_value = columns.get(column)
        if by_value is None:
            by_value = columns[column] = {}
            for pk in self._pks.get(table, ()):
                for _position, state in self._versions[(table, pk)]:
                    if state is not None and column in state:
                        holders = by_value.setdefault(state[column], {})
                        holders[pk] = holders.get(pk, 0) + 1
        holders = by_value.get(value)
        return holders.keys() if holders else ()

    def indexed_columns(self, table: str) -> Iterable[str]:
        return self._indexes.get(table, {}).keys()

    def table_pks(self, table: str) -> Iterable[Pk]:
        return self._pks.get(table, ())

    def final(self) -> dict[str, dict[Pk, dict[str, Any]]]:
        """Every row's last state (without its "pk"), table -> pk -> values."""
        rows: dict[str, dict[Pk, dict[str, Any]]] = {}
        for (table, pk), versions in self._versions.items():
            state = versions[-1][1]
            if state is not None:
                values = {column: v for column, v in state.items() if column != "pk"}
                rows.setdefault(table, {})[pk] = values
        return rows


class View:
    """The ordered tables as they stand just before the row being judged, read-only.

    ``get`` and ``rows`` return immutable mappings that include the row's ``"pk"``. Changes
    earlier in the same op are seen (an op's changes apply in sequence). Every read is recorded
    in ``reads``; the judge re-judges this row when something it read changes.
    """

    __slots__ = ("_overlay", "_position", "_store", "reads")

    def __init__(self, store: RowStore, position: OrderKey) -> None:
        self._store = store
        self._position = position
        self._overlay: dict[RowKey, State] | None = None  # made by the op's first write
        self.reads: Reads = []

    @property
    def stamp_millis(self) -> int:
        """The millisecond of the judged op's own stamp (its author's hybrid clock, never ahead
        of a replica's clock by more than ``replica.MAX_AHEAD_MS``): data of the op, the same on
        every replica, so a rule may compare it with a deadline a row states. Not a clock."""
        first = self._position[0] if self._position else 0
        return first if type(first) is int else 0

    def stamp_of(self, table: str, pk: Pk) -> int | None:
        """The millisecond stamp of the op that wrote the row as it stands here (None if it does
        not exist): data of the ops, the same on every replica, so a rule may fold the stamps of
        earlier rows (an auction's soft close moves its end by each bid's stamp)."""
        key = (table, pk)
        self.reads.append(key)
        overlay = self._overlay
        if overlay and key in overlay:
            return self.stamp_millis if overlay[key] is not None else None
        position = self._store.written_at(key, self._position)
        if position is None:
            return None
        first = position[0]
        return first if type(first) is int else 0

    def get(self, table: str, pk: Pk) -> Mapping[str, Any] | None:
        """The row's values, or None if it does not exist here."""
        key = (table, pk)
        self.reads.append(key)
        overlay = self._overlay
        if overlay and key in overlay:
            return overlay[key]
        return self._store.state_at(key, self._position)

    def rows(self, table: str, **equal: Any) -> list[Mapping[str, Any]]:
        """The rows of ``table`` whose one named column equals the value given (all of the
        table's rows if none is named), in primary key order."""
        if len(equal) > 1:
            raise TypeError("rows() filters on at most one column")
        if equal:
            ((column, value),) = equal.items()
            self.reads.append((table, column, value))
            pks: Iterable[Pk] = self._store.candidates(table, column, value)
        else:
            column, value = None, None
            self.reads.append(table)
            pks = self._store.table_pks(table)
        found = self._collect(table, pks, column, value)
        if len(found) > 1:
            found.sort(key=lambda row: pk_order(row["pk"]))
        return found

    def _collect(
        self, table: str, pks: Iterable[Pk], column: str | None, value: Any
    ) -> list[Mapping[str, Any]]:
        """The rows among ``pks`` (and the op's own writes) that have ``column == value`` here
        (every row if ``column`` is None)."""
        overlay, state_at, position = self._overlay, self._store.state_at, self._position
        found = []
        for pk in pks:
            key = (table, pk)
            if overlay and key in overlay:
                continue
            state = state_at(key, position)
            if state is not None and (column is None or state.get(column, _MISSING) == value):
                found.append(state)
        for (written, _pk), state in overlay.items() if overlay else ():
            if (
                written == table
                and state is not None
                and (column is None or state.get(column, _MISSING) == value)
            ):
                found.append(state)
        return found

    def _apply(self, change: RowChange) -> None:
        """Apply one change of the op being judged (the judge calls this, never a validator):
        an upsert merges its columns into the row, a delete removes it."""
        key = (change.table, change.pk)
        if change.action == UPSERT:
            before = self.get(change.table, change.pk)
            values = dict(before) if before is not None else {"pk": change.pk}
            values.update(change.cols)
            state: State = MappingProxyType(values)
        else:
            self.reads.append(key)
            state = None
        if self._overlay is None:
            self._overlay = {}
        self._overlay[key] = state

    def _written(self) -> dict[RowKey, State]:
        """The op's writes so far: each row it changed, and its state after the op."""
        return self._overlay if self._overlay is not None else {}


_MISSING = object()


class Readers(dict[ReadKey, Any]):
    """Who read what: read key -> the hash of the one entry whose last judgment read it, or the
    set of their hashes (most keys have one reader: a set each would double the judge's
    allocations, and with them the garbage collector's work)."""

    def add(self, reader: bytes, reads: Sequence[ReadKey]) -> None:
        for key in reads:
            holders = self.get(key)
            if holders is None:
                self[key] = reader
            elif type(holders) is set:
                holders.add(reader)
            elif holders != reader:
                self[key] = {holders, reader}

    def discard(self, reader: bytes, reads: Sequence[ReadKey]) -> None:
        for key in reads:
            holders = self.get(key)
            if type(holders) is set:
                holders.discard(reader)
                if not holders:
                    del self[key]
            elif holders == reader:
                del self[key]

    def of(self, key: ReadKey) -> Iterable[bytes]:
        holders = self.get(key)
        if holders is None:
            return ()
        return holders if type(holders) is set else (holders,)
