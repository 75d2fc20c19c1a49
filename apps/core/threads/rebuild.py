"""Rows made again from the op log: the rows an equivocation took changes back from, and the
rebuild check that replays a whole log into a fresh replica and compares it with the live tables.

Both read the log and write app tables with capture off; the caller (``ThreadDatabase``) holds
the transaction and the thread's lock.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from django.db import transaction

from apps.core.replicated import replicated_tables
from apps.core.thread import payloads as p
from apps.core.thread.lww import materialize
from apps.core.thread.replica import Replica
from apps.core.thread.resolve import Keyring
from apps.core.threads import coltypes, integrity, rows

if TYPE_CHECKING:
    from apps.core.threads.database import ThreadDatabase


def rows_rebuild(connection: sqlite3.Connection, replica: Replica, keys_: list[tuple[str, Any]]):
    """Rebuild the rows ``keys_`` from the accepted changes that remain (the row index lists
    the ops that touched each)."""
    tables = replicated_tables()
    wanted = {key for key in keys_ if key[0] in tables}
    for table, pk in wanted:
        model = tables[table]
        connection.execute(
            f'DELETE FROM "{table}" WHERE "{model._meta.pk.column}" = ?',
            (pk,),
        )
        connection.execute("DELETE FROM sereus_clock WHERE tbl = ? AND pk = ?", (table, pk))
    by_op: dict[tuple[bytes, int], None] = {}
    for table, pk in wanted:
        for device, seq in connection.execute(
            "SELECT device, seq FROM sereus_rowevents WHERE tbl = ? AND pk = ?", (table, pk)
        ):
            by_op[(device, seq)] = None
    for op_id in by_op:
        op = replica.store.op(op_id)
        if op is None:
            continue
        _epoch, candidates = replica.control.timeline.epoch_in_past(op)
        payload = replica.opener.data(op, candidates)
        if not isinstance(payload, p.DataPayload):
            continue
        chosen = [
            (index, change)
            for index, change in enumerate(payload.rows)
            if (change.table, change.pk) in wanted
        ]
        rows.op_apply(connection, op, chosen, tables)


def rebuild_check(database: ThreadDatabase, *, repair: bool = False) -> integrity.RebuildReport:
    """Replay ``database``'s op log into a fresh replica and compare its rows with the live
    tables; with ``repair``, decide the data again and compare once more."""
    from apps.core.thread.store import MemoryStore

    connection = database.raw()
    member_key = database._member_key()
    fresh = Replica(
        database.thread,
        Keyring(database.thread, [member_key] if member_key else []),
        MemoryStore(),
        rules=coltypes.row_rules,
    )
    log = connection.execute("SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n").fetchall()
    for start in range(0, len(log), 512):
        fresh.ingest_many(raw for (raw,) in log[start : start + 512])
    expected = materialize(fresh.accepted_data())
    live = integrity.live_rows(connection)
    differences = integrity.rows_diff(expected, live)
    found = list(differences)
    if differences and repair:
        with transaction.atomic(using=database.alias), database.lock:
            database.wrapper.capture = False
            try:
                database.replica()._redecide_data()
            finally:
                database.wrapper.capture = True
        live = integrity.live_rows(database.raw())
        differences = integrity.rows_diff(expected, live)
    return integrity.RebuildReport(
        ops=len(log),
        rows=sum(len(rows) for rows in expected.values()),
        matches=not differences,
        differences=(differences or found)[:20],
        repaired=bool(found) and not differences,
    )
