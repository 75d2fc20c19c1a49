"""``OpStore`` on a thread's SQLite file: the op log, decisions and row index of the core.

Works on the raw ``sqlite3`` connection of the thread's Django database, inside whatever
transaction is open on it, so an op, its decision and the rows it changes commit together.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from apps.core.thread.hlc import Stamp
from apps.core.thread.op import KIND_DATA, Op, OpId, op_decode
from apps.core.thread.payloads import RowChange
from apps.core.thread.store import Decision, RowEvent, RowKey, row_events_of

CACHE_OPS = 4096

# The writes a batch (``SQLiteOpStore.batched``) holds back, in the order they are flushed: each
# decision and refusal names an op admitted before it (in the file, or earlier in the batch), and
# row events touch no other table, so the order within each statement is all that matters.
# An op decided in the batch that admits it has its decision (and static refusal) written with
# it. A row already there is a pending op or fork evidence: never decided, so NULL (not decided
# yet) leaves its columns as they are.
_ADMIT = (
    "INSERT INTO sereus_ops(hash, device, seq, kind, raw, place, status, reason, refusal) "
    "VALUES (?, ?, ?, ?, ?, 'log', ?, ?, ?) ON CONFLICT(hash) DO UPDATE SET place = 'log', "
    "n = (SELECT max(n) + 1 FROM sereus_ops), status = coalesce(excluded.status, status), "
    "reason = coalesce(excluded.reason, reason), refusal = coalesce(excluded.refusal, refusal)"
)
_DECIDE = "UPDATE sereus_ops SET status = ?, reason = ? WHERE hash = ?"
_REFUSAL = "UPDATE sereus_ops SET refusal = ? WHERE hash = ?"
_ROW_EVENTS = (
    "INSERT OR REPLACE INTO sereus_rowevents(tbl, pk, hlc, device, seq, member, action) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_HELD_BACK = (_ADMIT, _DECIDE, _REFUSAL, _ROW_EVENTS)


def stamp_bytes(hlc: Stamp, device: bytes, index: int | None = None) -> bytes:
    """A stamp as bytes whose byte order is the stamp order (millis, counter, device, index)."""
    head = hlc.millis.to_bytes(8, "big") + hlc.counter.to_bytes(4, "big") + device
    return head if index is None else head + index.to_bytes(4, "big")


def stamp_parse(blob: bytes) -> tuple[Stamp, bytes]:
    return Stamp(int.from_bytes(blob[:8], "big"), int.from_bytes(blob[8:12], "big")), blob[12:44]


class SQLiteOpStore:
    def __init__(self, connection: Callable[[], sqlite3.Connection]) -> None:
        # Django gives each Python thread its own connection (and transaction): look it up on
        # every use, so a store shared by threads always writes in the caller's transaction.
        self._connection = connection
        self._cache: OrderedDict[bytes, Op] = OrderedDict()
        self._slots: OrderedDict[OpId, Op] = OrderedDict()
        # Decisions and static refusals this process wrote (read back for every op it admits).
        self._decisions: OrderedDict[bytes, Decision] = OrderedDict()
        self._refusals: OrderedDict[bytes, str | None] = OrderedDict()
        # Set by the thread database: called with every accepted data op's changes that did
        # not come from this node's own write (those are in the app tables already).
        self.on_accepted = None
        self.on_rebuild = None
        # Called with the (table, pk) of rows whose accepted changes were taken back (a forked
        # device's ops refused): the database rebuilds just those rows.
        self.on_rows_rebuild = None
        # Within ``batched``: the held-back writes, by statement.
        self._held: dict[str, list] | None = None
        # The held-back admissions by op hash: [hash, device, seq, kind, raw, status, reason,
        # refusal], completed in place by the decision and refusal that follow in the batch.
        self._admitting: dict[bytes, list] = {}

    @property
    def connection(self) -> sqlite3.Connection:
        """The connection for a statement that reads or writes in order: what the batch held
        back is written first, so every statement sees the store as if nothing was."""
        if self._held:
            self.flush()
        return self._connection()

    @contextmanager
    def batched(self) -> Iterator[None]:
        """Hold back the writes of many ops (admission, decisions, refusals, row events) and
        write them with one ``executemany`` per statement: when the block ends, or before any
        other statement runs. On an exception they are dropped (the transaction they belong to
        rolls back; its caller forgets the cache)."""
        outer = self._held is not None
        if not outer:
            self._held = {sql: [] for sql in _HELD_BACK}
        try:
            yield
            if not outer:
                self.flush()
        finally:
            if not outer:
                self._held = None
                self._admitting.clear()

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        connection = self._connection()
        self._admitting.clear()
        for sql, rows in held.items():
            if rows:
                connection.executemany(sql, rows)
                rows.clear()

    def _write(self, sql: str, params: tuple) -> None:
        if self._held is not None:
            self._held[sql].append(params)
        else:
            self._connection().execute(sql, params)

    def _remember(self, op: Op, *, in_log: bool = False) -> Op:
        self._cache[op.hash] = op
        if len(self._cache) > CACHE_OPS:
            self._cache.popitem(last=False)
        if in_log:
            self._slots[op.id] = op
            if len(self._slots) > CACHE_OPS:
                self._slots.popitem(last=False)
        return op

    def forget_cached(self) -> None:
        """Another process wrote, or a transaction rolled back: the file is the truth again."""
        self._cache.clear()
        self._slots.clear()
        self._decisions.clear()
        self._refusals.clear()

    @staticmethod
    def _known(cache: OrderedDict) -> OrderedDict:
        # Bounded, dropping the oldest: a miss costs a query (and, within a batch, writing
        # what it held back), so the ops of the batch being decided must stay.
        while len(cache) >= CACHE_OPS:
            cache.popitem(last=False)
        return cache

    def _decode(self, raw: bytes) -> Op:
        return self._remember(op_decode(raw))

    # -- ops ---------------------------------------------------------------------------------

    def op(self, op_id: OpId) -> Op | None:
        cached = self._slots.get(op_id)
        if cached is not None:
            return cached
        row = self.connection.execute(
            "SELECT raw FROM sereus_ops WHERE device = ? AND seq = ? AND place = 'log'", op_id
        ).fetchone()
        if row is None:
            return None
        return self._remember(op_decode(row[0]), in_log=True)

    def op_by_hash(self, op_hash: bytes) -> Op | None:
        cached = self._cache.get(op_hash)
        if cached is not None:
            return cached
        row = self.connection.execute(
            "SELECT raw FROM sereus_ops WHERE hash = ?", (op_hash,)
        ).fetchone()
        return None if row is None else self._decode(row[0])

    def admit(self, op: Op) -> None:
        # A pending op joining the log moves to the end: the log's order is admission order.
        row = [op.hash, op.device, op.seq, op.kind, op.raw, None, None, None]
        if self._held is not None:
            self._held[_ADMIT].append(row)
            self._admitting[op.hash] = row
        else:
            self._connection().execute(_ADMIT, row)
        self._remember(op, in_log=True)
        if op.hash not in self._refusals:
            # Admitted without a static refusal: there is none until set_refusal says so.
            self._known(self._refusals)[op.hash] = None

    def keep(self, op: Op, *, place: str = "pending") -> None:
        self.connection.execute(
            "INSERT INTO sereus_ops(hash, device, seq, kind, raw, place) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(hash) DO UPDATE SET place = excluded.place WHERE place != 'log'",
            (op.hash, op.device, op.seq, op.kind, op.raw, place),
        )
        self._remember(op)

    def heads(self) -> dict[bytes, int]:
        return dict(
            self.connection.execute(
                "SELECT device, max(seq) FROM sereus_ops WHERE place = 'log' GROUP BY device"
            ).fetchall()
        )

    def control_log(self) -> list[Op]:
        return [
            op_decode(raw)
            for (raw,) in self.connection.execute(
                "SELECT raw FROM sereus_ops WHERE place = 'log' AND kind != ? ORDER BY n",
                (KIND_DATA,),
            ).fetchall()
        ]

    def admitted(self, *, data_only: bool = False) -> Iterator[Op]:
        sql = "SELECT raw FROM sereus_ops WHERE place = 'log'"
        if data_only:
            sql += f" AND kind = '{KIND_DATA}'"
        for (raw,) in self.connection.execute(sql + " ORDER BY n").fetchall():
            yield op_decode(raw)

    def data_after(self, device: bytes, seq: int) -> bool:
        return (
            self.connection.execute(
                "SELECT 1 FROM sereus_ops WHERE device = ? AND seq > ? AND place = 'log' "
                "AND kind = ? LIMIT 1",
                (device, seq, KIND_DATA),
            ).fetchone()
            is not None
        )

    def held(self, place: str) -> Iterator[Op]:
        for (raw,) in self.connection.execute(
            "SELECT raw FROM sereus_ops WHERE place = ? ORDER BY n", (place,)
        ).fetchall():
            yield op_decode(raw)

    def log_size(self, connection: sqlite3.Connection | None = None) -> int:
        """The log's last position; ``connection``: the caller's, already looked up."""
        if connection is None or self._held:
            connection = self.connection
        return connection.execute("SELECT coalesce(max(n), 0) FROM sereus_ops").fetchone()[0]

    def log_after(self, n: int) -> list[tuple[int, Op, str]]:
        """Ops written after position ``n`` (by this or another process), with their place."""
        return [
            (row_n, op_decode(raw), place)
            for row_n, raw, place in self.connection.execute(
                "SELECT n, raw, place FROM sereus_ops WHERE n > ? ORDER BY n", (n,)
            ).fetchall()
        ]

    # -- decisions ---------------------------------------------------------------------------

    def decide(self, op: Op, decision: Decision, changes: list[RowChange] | None) -> None:
        row = self._admitting.get(op.hash)
        if row is not None:
            row[5], row[6] = decision.status, decision.reason
        elif self._decisions.get(op.hash) != decision:
            # The same decision again (a refold of the control log decides every op anew) is
            # not written: the UPDATE rewrites the op's whole row, raw bytes included.
            self._write(_DECIDE, (decision.status, decision.reason, op.hash))
        self._known(self._decisions)[op.hash] = decision
        if changes is not None and decision.status == "accepted" and self.on_accepted:
            self.on_accepted(op, changes)

    def decision(self, op_hash: bytes) -> Decision | None:
        known = self._decisions.get(op_hash)
        if known is not None:
            return known
        row = self.connection.execute(
            "SELECT status, reason FROM sereus_ops WHERE hash = ?", (op_hash,)
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return Decision(row[0], row[1] or "")

    def changes(self, op_hash: bytes) -> list[RowChange] | None:
        return None  # not kept: the app tables hold the rows, the log holds the ops

    def refusal(self, op_hash: bytes) -> str | None:
        if op_hash in self._refusals:
            return self._refusals[op_hash]
        row = self.connection.execute(
            "SELECT refusal FROM sereus_ops WHERE hash = ?", (op_hash,)
        ).fetchone()
        return None if row is None else row[0]

    def set_refusal(self, op_hash: bytes, reason: str | None) -> None:
        row = self._admitting.get(op_hash)
        if row is not None:
            row[7] = reason
        else:
            self._write(_REFUSAL, (reason, op_hash))
        self._known(self._refusals)[op_hash] = reason

    # -- row index ---------------------------------------------------------------------------

    def row_events(self, key: RowKey) -> list[RowEvent]:
        events = []
        for hlc, seq, member, action in self.connection.execute(
            "SELECT hlc, seq, member, action FROM sereus_rowevents "
            "WHERE tbl = ? AND pk = ? ORDER BY hlc",
            key,
        ):
            stamp, device = stamp_parse(hlc)
            events.append(RowEvent(stamp, device, seq, member, action))
        return events

    def row_events_many(self, keys: list[RowKey]) -> dict[RowKey, list[RowEvent]]:
        """``row_events`` of several rows in one query per table."""
        found: dict[RowKey, list[RowEvent]] = {key: [] for key in keys}
        by_table: dict[str, list] = {}
        for table, pk in found:
            by_table.setdefault(table, []).append(pk)
        for table, pks in by_table.items():
            for start in range(0, len(pks), 500):
                batch = pks[start : start + 500]
                marks = ",".join("?" * len(batch))
                for pk, hlc, seq, member, action in self.connection.execute(
                    "SELECT pk, hlc, seq, member, action FROM sereus_rowevents "
                    f"WHERE tbl = ? AND pk IN ({marks}) ORDER BY pk, hlc",
                    (table, *batch),
                ):
                    stamp, device = stamp_parse(hlc)
                    found[(table, pk)].append(RowEvent(stamp, device, seq, member, action))
        return found

    def row_events_add_many(self, events: list[tuple[RowKey, RowEvent]]) -> None:
        rows = [
            (key[0], key[1], stamp_bytes(e.hlc, e.device), e.device, e.seq, e.member, e.action)
            for key, e in events
        ]
        if self._held is not None:
            self._held[_ROW_EVENTS].extend(rows)
        else:
            self._connection().executemany(_ROW_EVENTS, rows)

    def row_event_add(self, key: RowKey, event: RowEvent) -> None:
        self.row_events_add_many([(key, event)])

    def row_events_clear(self) -> None:
        self.connection.execute("DELETE FROM sereus_rowevents")
        if self.on_rebuild:
            self.on_rebuild()

    # -- held ops, undecided ops, forks ------------------------------------------------------

    def drop(self, op_hash: bytes) -> None:
        self.connection.execute(
            "DELETE FROM sereus_ops WHERE hash = ? AND place != 'log'", (op_hash,)
        )
        self._cache.pop(op_hash, None)

    def undecided_data(self) -> dict[bytes, int]:
        return dict(
            self.connection.execute(
                "SELECT device, min(seq) FROM sereus_ops WHERE status IN ('opaque', 'waiting') "
                "AND kind = 'data' AND place = 'log' GROUP BY device"
            ).fetchall()
        )

    def has_waiting(self) -> bool:
        return (
            self.connection.execute(
                "SELECT 1 FROM sereus_ops WHERE status IN ('opaque', 'waiting') "
                "AND kind = 'data' AND place = 'log' AND status = 'waiting' LIMIT 1"
            ).fetchone()
            is not None
        )

    def statically_refused(self) -> Iterator[Op]:
        for (raw,) in self.connection.execute(
            "SELECT raw FROM sereus_ops WHERE refusal IS NOT NULL AND place = 'log' ORDER BY n"
        ).fetchall():
            yield op_decode(raw)

    def redecide(
        self, op: Op, decision: Decision, changes: list[RowChange] | None, member: bytes
    ) -> None:
        connection = self.connection
        keys = connection.execute(
            "SELECT DISTINCT tbl, pk FROM sereus_rowevents WHERE device = ? AND seq = ?",
            (op.device, op.seq),
        ).fetchall()
        connection.execute(
            "DELETE FROM sereus_rowevents WHERE device = ? AND seq = ?", (op.device, op.seq)
        )
        if decision.status == "accepted" and changes is not None:
            self.row_events_add_many(row_events_of(op, changes, member))
            self.decide(op, decision, changes)  # applies them (column clocks order them)
            return
        self.decide(op, decision, None)
        if keys and self.on_rows_rebuild:
            self.on_rows_rebuild([(tbl, pk) for tbl, pk in keys])

    def refuse_data_from(self, device: bytes, seq: int, decision: Decision) -> None:
        connection = self.connection
        keys = connection.execute(
            "SELECT DISTINCT tbl, pk FROM sereus_rowevents WHERE device = ? AND seq >= ?",
            (device, seq),
        ).fetchall()
        connection.execute(
            "DELETE FROM sereus_rowevents WHERE device = ? AND seq >= ?", (device, seq)
        )
        connection.execute(
            "UPDATE sereus_ops SET status = ?, reason = ? WHERE device = ? AND seq >= ? "
            "AND kind = 'data' AND place = 'log'",
            (decision.status, decision.reason, device, seq),
        )
        self._decisions.clear()
        if keys and self.on_rows_rebuild:
            self.on_rows_rebuild([(tbl, pk) for tbl, pk in keys])
