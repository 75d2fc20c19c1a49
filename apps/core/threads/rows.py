"""Row changes into the app tables: the per-column last-writer-wins clocks (``sereus_clock``).

Another node's accepted op is applied with ``op_apply``: each column keeps the value with the
highest stamp (hlc, device, index), a delete leaves a tombstone that an older update cannot get
past and a newer one brings the row back from. This node's own writes are already in the tables
when their op is accepted: ``stamps_record`` only records their stamps. ``apps.core.thread.lww``
is the reference these are tested against.
"""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from typing import Any

from apps.core.thread import codec
from apps.core.thread import payloads as p
from apps.core.thread.op import MAX_OP_SIZE, Op
from apps.core.threads import coltypes, schema
from apps.core.threads.store import stamp_bytes


class _Clock:
    """The last-writer-wins record of one row (``sereus_clock``)."""

    __slots__ = ("cols", "exists", "pk", "stamp", "table", "tomb", "tomb_row")

    def __init__(self, table: str, pk: Any) -> None:
        self.table, self.pk = table, pk
        self.stamp: bytes | None = None
        self.cols: dict[str, bytes] = {}
        self.tomb: bytes | None = None
        self.tomb_row: bytes | None = None
        self.exists = False

    @classmethod
    def load(cls, connection: sqlite3.Connection, table: str, pk: Any) -> _Clock:
        row = connection.execute(
            "SELECT stamp, cols, tomb, tomb_row FROM sereus_clock WHERE tbl = ? AND pk = ?",
            (table, pk),
        ).fetchone()
        return cls(table, pk) if row is None else cls.from_row(table, pk, *row)

    @classmethod
    def from_row(cls, table, pk, stamp, cols, tomb, tomb_row) -> _Clock:
        clock = cls(table, pk)
        clock.exists = True
        clock.stamp, clock.tomb, clock.tomb_row = stamp, tomb, tomb_row
        clock.cols = codec.decode(cols, max_size=MAX_OP_SIZE) if cols else {}
        return clock

    def of(self, column: str) -> bytes | None:
        return self.cols.get(column, self.stamp)

    def newest(self) -> bytes | None:
        stamps = [s for s in (self.stamp, *self.cols.values()) if s is not None]
        return max(stamps) if stamps else None

    def set(self, values: dict[str, Any], stamp: bytes, all_columns: list[str]) -> None:
        if set(values) >= set(all_columns):
            self.stamp, self.cols = stamp, {}
        else:
            for column in values:
                self.cols[column] = stamp

    def save(self, connection: sqlite3.Connection) -> None:
        connection.execute(
            "INSERT OR REPLACE INTO sereus_clock(tbl, pk, stamp, cols, tomb, tomb_row) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                self.table,
                self.pk,
                self.stamp,
                codec.encode(self.cols) if self.cols else None,
                self.tomb,
                self.tomb_row,
            ),
        )


def stamps_record(connection, op: Op, changes, tables, tombs: dict[tuple[str, Any], bytes]) -> None:
    """Record the stamps of this node's own write: its rows are already in the tables
    (``tombs``: the values of the rows it deleted)."""
    full, partial, deletes = [], [], []
    head = stamp_bytes(op.hlc, op.device)  # each change's stamp is this and its index
    for index, change in changes:
        stamp = head + index.to_bytes(4, "big")
        if change.action == p.DELETE:
            deletes.append((change.table, change.pk, stamp, tombs.get((change.table, change.pk))))
        elif _column_set(tables[change.table]).issubset(change.cols):
            full.append((change.table, change.pk, stamp))
        else:
            partial.append((change, stamp))
    # An insert (or a save of every column) replaces the row's clock outright; a delete
    # keeps the column stamps and adds the tombstone: neither needs the old clock. A statement
    # with no rows is not run (a one-row write has one kind of change).
    if full:
        connection.executemany(
            "INSERT INTO sereus_clock(tbl, pk, stamp) VALUES (?, ?, ?) "
            "ON CONFLICT(tbl, pk) DO UPDATE SET stamp = excluded.stamp, cols = NULL",
            full,
        )
    if deletes:
        connection.executemany(
            "INSERT INTO sereus_clock(tbl, pk, tomb, tomb_row) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(tbl, pk) DO UPDATE SET tomb = excluded.tomb, "
            "tomb_row = excluded.tomb_row",
            deletes,
        )
    for change, stamp in partial:
        clock = _Clock.load(connection, change.table, change.pk)
        clock.set(change.cols, stamp, schema.columns(tables[change.table]))
        clock.save(connection)


def op_apply(connection: sqlite3.Connection, op: Op, changes, tables) -> None:
    """Apply another node's accepted op (see ``ops_apply``)."""
    ops_apply(connection, [(op, changes)], tables)


@dataclass(frozen=True)
class _TableSql:
    """A replicated table's column list and statements, made once per model."""

    columns: tuple[str, ...]
    column_set: frozenset[str]
    pk_col: str
    pk_index: int
    select: str  # the row's columns, prefixed with + so that SQLite keeps to the pk index
    insert: str  # every column


@functools.cache
def _sql(model) -> _TableSql:
    columns = tuple(schema.columns(model))
    pk_col = model._meta.pk.column
    table = model._meta.db_table
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" * len(columns))
    return _TableSql(
        columns=columns,
        column_set=frozenset(columns),
        pk_col=pk_col,
        pk_index=columns.index(pk_col),
        select=", ".join(f'+"{c}"' for c in columns),
        insert=f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
    )


def ops_apply(connection: sqlite3.Connection, items, tables) -> None:
    """Apply other nodes' accepted ops, in order: ``items`` is ``[(op, [(index, change)])]``.

    Per-column last-writer-wins, row by row, exactly as applying the ops one after another: the
    rows' clocks and current values are fetched once for all the ops (one query per table and
    500 rows), and kept up to date in memory as each change is applied. The common case when
    catching up, a new row written whole once in all the ops, is inserted with one statement
    per table."""
    stamped = []  # (table, pk, change, stamp) in application order
    by_table: dict[str, dict[Any, None]] = {}
    seen: dict[tuple[str, Any], int] = {}
    for op, changes in items:
        head = stamp_bytes(op.hlc, op.device)
        for index, change in changes:
            key = (change.table, change.pk)
            stamped.append((key, change, head + index.to_bytes(4, "big")))
            by_table.setdefault(change.table, {})[change.pk] = None
            seen[key] = seen.get(key, 0) + 1
    clocks: dict[tuple[str, Any], _Clock] = {}
    rows: dict[tuple[str, Any], tuple] = {}
    for table, wanted in by_table.items():
        sql = _sql(tables[table])
        pks = list(wanted)
        for start in range(0, len(pks), 500):
            batch = pks[start : start + 500]
            marks = ",".join("?" * len(batch))
            for pk, stamp, cols, tomb, tomb_row in connection.execute(
                "SELECT pk, stamp, cols, tomb, tomb_row FROM sereus_clock "
                f"WHERE tbl = ? AND pk IN ({marks})",
                (table, *batch),
            ):
                clocks[(table, pk)] = _Clock.from_row(table, pk, stamp, cols, tomb, tomb_row)
            for row in connection.execute(
                f'SELECT {sql.select} FROM "{table}" WHERE "{sql.pk_col}" IN ({marks})', batch
            ):
                rows[(table, row[sql.pk_index])] = row
    fresh: dict[str, list[tuple]] = {}
    fresh_clocks: list[tuple] = []
    rest = []
    for key, change, stamp in stamped:
        sql = _sql(tables[key[0]])
        if (
            change.action == p.UPSERT
            and seen[key] == 1
            and key not in clocks
            and key not in rows
            and sql.column_set.issubset(change.cols)
        ):
            cols = change.cols
            fresh.setdefault(key[0], []).append(tuple([cols[c] for c in sql.columns]))
            fresh_clocks.append((key[0], key[1], stamp))
        else:
            rest.append((key, change, stamp))
    for table, values in fresh.items():
        connection.executemany(_sql(tables[table]).insert, values)
    if fresh_clocks:
        connection.executemany(
            "INSERT INTO sereus_clock(tbl, pk, stamp) VALUES (?, ?, ?)", fresh_clocks
        )
    for key, change, stamp in rest:
        clock = clocks.get(key)
        if clock is None:
            clock = clocks[key] = _Clock(*key)
        current = _apply(connection, tables[key[0]], change, stamp, clock, rows.get(key))
        if current is None:
            rows.pop(key, None)
        else:
            rows[key] = current


@functools.cache
def _column_set(model) -> frozenset[str]:
    return frozenset(schema.columns(model))


@functools.cache
def _fills(model) -> dict[str, Any]:
    """A row's columns that a partial first write leaves unset, and what they hold."""
    return {
        field.column: coltypes.fill_value(field)
        for field in model._meta.local_concrete_fields
        if not field.primary_key
    }


def _apply(connection, model, change: p.RowChange, stamp: bytes, clock: _Clock, current):
    """Apply one row change against the row's clock and current values; returns the row's
    values afterwards (None: no row)."""
    table = model._meta.db_table
    pk_col = model._meta.pk.column
    all_columns = schema.columns(model)
    if change.action == p.DELETE:
        if clock.tomb is not None and clock.tomb >= stamp:
            return current
        clock.tomb = stamp
        newest = clock.newest()
        if current is not None and (newest is None or newest < stamp):
            clock.tomb_row = codec.encode(dict(zip(all_columns, current, strict=True)))
            connection.execute(f'DELETE FROM "{table}" WHERE "{pk_col}" = ?', (change.pk,))
            current = None
        clock.save(connection)
        return current
    known = _column_set(model)
    winners = {
        column: value
        for column, value in change.cols.items()
        if column in known and ((previous := clock.of(column)) is None or stamp > previous)
    }
    if not winners:
        return current
    clock.set(winners, stamp, all_columns)
    alive = clock.tomb is None or clock.newest() > clock.tomb
    if current is not None:
        assignments = ", ".join(f'"{c}" = ?' for c in winners)
        connection.execute(
            f'UPDATE "{table}" SET {assignments} WHERE "{pk_col}" = ?',
            (*winners.values(), change.pk),
        )
        values = dict(zip(all_columns, current, strict=True)) | winners
        current = tuple(values[c] for c in all_columns)
    elif alive:
        base = codec.decode(clock.tomb_row, max_size=MAX_OP_SIZE) if clock.tomb_row else {}
        row = {**base, **winners, pk_col: change.pk}
        for column, value in _fills(model).items():
            row.setdefault(column, value)  # never written: the same value on every replica
        names = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" * len(row))
        connection.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', tuple(row.values()))
        clock.tomb_row = None
        current = tuple(row.get(c) for c in all_columns)
    else:
        base = codec.decode(clock.tomb_row, max_size=MAX_OP_SIZE) if clock.tomb_row else {}
        clock.tomb_row = codec.encode({**base, **winners})
    clock.save(connection)
    return current
