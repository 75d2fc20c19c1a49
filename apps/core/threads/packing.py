"""A local transaction into ops: the changes the capture triggers noted (in the connection's
memory, ``DatabaseWrapper.pending``) become row changes, cut into chunks that each fit in one op.

The thread database calls these at commit, inside the transaction (``ThreadDatabase.pack``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from functools import cache
from operator import itemgetter
from typing import Any

from django.db.models import Model

from apps.core.replicated import replicated_tables
from apps.core.thread import codec
from apps.core.thread import payloads as p
from apps.core.thread.op import MAX_OP_SIZE
from apps.core.threads import schema

# An op carries at most 10 000 row changes (DESIGN §4); a larger transaction becomes several
# ops, chained in the same transaction. The byte budget leaves room for the op's header.
ROWS_PER_OP = 10_000
BYTES_PER_OP = MAX_OP_SIZE - 64 * 1024


def pending_merge(
    noted: list[tuple], legacy: sqlite3.Connection | None = None
) -> dict[tuple[str, Any], list[Any]]:
    """The transaction's captured changes, one entry per row: [column mask (-1: every column),
    whether the row existed before, its values before (a deleted row's, else None)].

    ``noted``: the capture triggers' notes, in order: (table, pk, mask, existed, *old values).
    ``legacy``: also take what an older version of this code left in ``sereus_pending`` (the
    connection to read it from; it is emptied), older than anything noted."""
    merged: dict[tuple[str, Any], list[Any]] = {}
    if legacy:
        for table, pk, mask, existed, old in _legacy_take(legacy):
            old = None if old is None else codec.decode(old, max_size=MAX_OP_SIZE)
            _merge(merged, table, pk, mask, existed, old)
    if len(noted) == 1 and not merged:  # a one-row write: nothing to merge
        table, pk, mask, existed, *old = noted[0]
        return {(table, pk): [mask, existed, old or None]}
    for table, pk, mask, existed, *old in noted:
        _merge(merged, table, pk, mask, existed, old or None)
    return merged


def _merge(merged: dict, table: str, pk: Any, mask: int, existed: int, old: Any) -> None:
    entry = merged.get((table, pk))
    if entry is None:
        merged[(table, pk)] = [mask, existed, old]
    else:
        entry[0] = -1 if -1 in (entry[0], mask) else entry[0] | mask
        if old is not None:
            entry[2] = old


def _legacy_take(connection: sqlite3.Connection) -> list[tuple]:
    # Read and cleared in one statement. RETURNING has no order: the capture order is the
    # rowid's.
    pending = connection.execute(
        "DELETE FROM sereus_pending RETURNING rowid, tbl, pk, mask, existed, old"
    ).fetchall()
    pending.sort(key=itemgetter(0))
    return [row[1:] for row in pending]


def changes_of(
    connection: sqlite3.Connection, merged: dict[tuple[str, Any], list[Any]]
) -> tuple[list[p.RowChange], dict[tuple[str, Any], bytes]]:
    """The row changes of the captured rows, as they stand now (the columns that changed, or
    the whole row if it is new), and the old values of the deleted ones (their tombstones)."""
    tables = replicated_tables()
    by_table: dict[str, list[Any]] = {}
    for table, pk in merged:
        by_table.setdefault(table, []).append(pk)
    current: dict[tuple[str, Any], tuple[Any, ...]] = {}
    # The columns once per table, not once per row: a bulk insert packs 100 000 rows of one
    # table, and asking the model for its columns each time cost more than reading the row.
    cols_of: dict[str, tuple[str, ...]] = {}
    for table, pks in by_table.items():
        select, pk_index, cols_of[table] = _select_of(tables[table])
        for start in range(0, len(pks), 500):
            batch = pks[start : start + 500]
            current.update(
                ((table, row[pk_index]), row)
                for row in connection.execute(f"{select}({','.join('?' * len(batch))})", batch)
            )
    changes: list[p.RowChange] = []
    append = changes.append
    row_change, upsert = p.RowChange, p.UPSERT
    tombs: dict[tuple[str, Any], bytes] = {}
    for key, (mask, existed, old) in merged.items():
        table = key[0]
        cols = cols_of[table]
        row = current.get(key)
        if row is not None:
            if mask == -1 or not existed:
                append(row_change(table, key[1], upsert, dict(zip(cols, row, strict=True))))
            else:
                values = {cols[i]: row[i] for i in range(len(cols)) if mask & (1 << i)}
                if values:
                    append(row_change(table, key[1], upsert, values))
        elif existed:
            append(row_change(table, key[1], p.DELETE, {}))
            if old is not None:
                tombs[key] = codec.encode(dict(zip(cols, old, strict=False)))
    return changes, tombs


@cache
def _select_of(model: type[Model]) -> tuple[str, int, tuple[str, ...]]:
    """The statement that reads rows of ``model`` by primary key (up to its IN list), where
    the key is in its rows, and the columns it reads: made once per model (a model's columns
    are fixed once loaded)."""
    cols = tuple(schema.columns(model))
    pk_col = model._meta.pk.column
    select = ", ".join(f'+"{c}"' for c in cols)  # unary +: raw stored values
    return (
        f'SELECT {select} FROM "{model._meta.db_table}" WHERE "{pk_col}" IN ',
        cols.index(pk_col),
        cols,
    )


def chunks(changes: list[p.RowChange]) -> Iterable[list[p.RowChange]]:
    """The changes in order, cut where an op would exceed its row count or byte budget."""
    chunk: list[p.RowChange] = []
    size = 0
    for change in changes:
        cost = _size_estimate(change)
        if chunk and (len(chunk) >= ROWS_PER_OP or size + cost > BYTES_PER_OP):
            yield chunk
            chunk, size = [], 0
        chunk.append(change)
        size += cost
    if chunk:
        yield chunk


def _size_estimate(change: p.RowChange) -> int:
    """An upper bound of a change's encoded size, without encoding it: the column names, a
    str's UTF-8 (at most 4 bytes a character), a bytes' length; the 12 bytes a column also
    count hold its framing and any other value (an int, float, bool or None: at most 9)."""
    pk = change.pk
    cols = change.cols
    size = 80 + len(change.table) + (len(pk) if type(pk) is str or type(pk) is bytes else 9)
    size += sum(map(len, cols)) + 12 * len(cols)
    for value in cols.values():
        kind = type(value)
        if kind is str:
            size += 4 * len(value)
        elif kind is bytes:
            size += len(value)
    return size
