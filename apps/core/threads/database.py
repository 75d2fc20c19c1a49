"""One thread's database in this process: opening it, its replica, local writes and remote ops,
each in one transaction of the file, and the rebuild check.

The SQLite file is the truth: the op log (``sereus_ops``), the row index, the clock table and the
app tables, always changed together in one transaction. The ``Replica`` held here is a cache of
what decisions need (control ops, heads); it is reloaded from the file whenever another process
wrote to it, or a transaction of ours rolled back.

- **Local writes** (ORM, admin, raw SQL) land in the app tables; the capture triggers note them in
  the connection's memory (``sereus_row()``, kept by the backend until the transaction ends); at
  commit the backend calls ``pack``, which turns them into one op (more
  only past the op size limits), validates it like any op, and records it in the same transaction.
  A write the policy refuses raises ``WriteRefused`` and the transaction rolls back.
- **Remote ops** go through ``ingest``: validated by the replica, accepted row changes applied with
  capture off, per column last-writer-wins by (stamp, device), deletes as tombstones.

The parts with no state of their own are modules beside this one: ``template`` (a file's schema
and the template new files are copied from), ``packing`` (captured changes into row changes and
op-sized chunks), ``rows`` (row changes into the tables, with their clocks), ``rebuild`` (rows
made again from the log, and the rebuild check) and ``integrity`` (the live tables against the
log). Opening the file (its check, schema upgrade, busy retries) is the ``Opening`` mixin
(``opening``); the errors are in ``errors``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections, transaction

from apps.core import identity
from apps.core.replicated import replicated_tables
from apps.core.thread import keys, rowid
from apps.core.thread import payloads as p
from apps.core.thread.gcpause import gc_paused
from apps.core.thread.op import Op
from apps.core.thread.replica import IngestResult, Replica, Verified
from apps.core.thread.resolve import Keyring
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.core.threads import coltypes, integrity, packing, rebuild, rows
from apps.core.threads.errors import ThreadCorrupt, ThreadDatabaseError, WriteRefused
from apps.core.threads.opening import Opening
from apps.core.threads.registry import alias_register, handle_register, thread_path
from apps.core.threads.store import SQLiteOpStore

# Importers of this module name the errors from here.
__all__ = ["NodeKeys", "ThreadCorrupt", "ThreadDatabase", "ThreadDatabaseError", "WriteRefused"]

logger = logging.getLogger(__name__)

# Rows captured in a transaction from which its packing runs with the cyclic collector paused.
GC_PAUSE_ROWS = 256


@dataclass(frozen=True)
class NodeKeys:
    """Whose node this database belongs to: its device key and its party's master secret."""

    device: Any  # nacl.signing.SigningKey
    master_secret: bytes | None

    @classmethod
    def of_this_node(cls) -> NodeKeys:
        data_dir = Path(settings.DATA_DIR)
        device = identity.device_key_ensure(data_dir).signing_key
        secret = None
        if identity.master_secret_exists(data_dir):
            try:
                secret = identity.master_secret_load(data_dir)
            except identity.PassphraseRequired:
                secret = None
        return cls(device, secret)


class ThreadDatabase(Opening):
    def __init__(
        self,
        thread: bytes,
        *,
        path: Path | None = None,
        alias: str | None = None,
        node: NodeKeys | None = None,
    ) -> None:
        """This node's database of ``thread``; ``path``, ``alias`` and ``node`` let tests run
        several nodes in one process."""
        self.thread = thread
        self.path: Path = path or thread_path(thread)
        self.alias = alias_register(thread, alias=alias, path=self.path)
        self._node = node
        handle_register(self)
        self.lock = threading.RLock()
        self._opened = False
        self._replica: Replica | None = None
        self._writer: ThreadWriter | None = None
        self._known_n = -1
        self._packing = False
        # Whether the app tables were emptied while packing (every data op decided again, as a
        # thread with ordered tables does after a reload): the rows are then rebuilt by applying
        # every accepted op, this write's own included, not by stamping rows already there.
        self._rebuilt_in_pack = False
        self._tombs: dict[tuple[str, Any], bytes] = {}
        # While ``ingest`` runs: other nodes' accepted ops, applied together when it ends (or
        # before anything reads the app tables), one query per table instead of per op.
        self._to_apply: list[tuple[Op, list[tuple[int, p.RowChange]]]] | None = None
        self._pinned = threading.local()
        self._member_public: bytes | None = None
        self._tags_known = -1

    # -- connections ---------------------------------------------------------------------------

    @property
    def wrapper(self):
        return connections[self.alias]

    def raw(self) -> sqlite3.Connection:
        pinned = getattr(self._pinned, "connection", None)
        if pinned is not None:
            return pinned
        if not self._opened:
            self.open()
        return connections[self.alias].sqlite_connection()

    @contextmanager
    def _pin(self):
        """Within one write, the store's many statements use this thread's connection directly
        (looking it up through Django's connection handler costs more than the statement)."""
        self._pinned.connection = self.raw()
        try:
            yield
        finally:
            self._pinned.connection = None

    @contextmanager
    def _uncaptured(self):
        """Rows this node applies from the log (a reload, a rebuild, its own op's decision) are
        not this node's new writes: keep the capture triggers quiet meanwhile. Without this, a
        reload that rebuilt the tables inside a local write left every rebuilt row pending, and
        the next write packed them as changes of other members' rows (refused)."""
        wrapper = self.wrapper
        before = wrapper.capture
        wrapper.capture = False
        try:
            yield
        finally:
            wrapper.capture = before

    # -- the replica ---------------------------------------------------------------------------

    @property
    def node(self) -> NodeKeys:
        if self._node is None:
            self._node = NodeKeys.of_this_node()
        return self._node

    def _member_key(self):
        secret = self.node.master_secret
        return None if secret is None else keys.member_key(secret, self.thread)

    def member_public(self) -> bytes | None:
        """This node's member key in the thread (None while the master secret is sealed)."""
        if self._member_public is None:
            member_key = self._member_key()
            if member_key is not None:
                self._member_public = bytes(member_key.verify_key)
        return self._member_public

    def row_id_new(self):
        """A new row id owned by this node's member of the thread."""
        return rowid.row_id_new(self._writing_member())

    def row_tag(self) -> bytes:
        """The owner tag of the row ids of this node's member of the thread."""
        return rowid.member_tag(self._writing_member())

    def _writing_member(self) -> bytes:
        member = self.member_public()
        if member is None:
            raise WriteRefused(
                "this node cannot write: its master secret is missing or sealed with a "
                "passphrase (unlock it in the settings)"
            )
        return member

    def replica(self) -> Replica:
        """The replica, caught up with the file (call under ``self.lock`` to write)."""
        connection = self.raw()
        if self._replica is None:
            member_key = self._member_key()
            store = SQLiteOpStore(self.raw)
            store.on_accepted = self._accepted
            store.on_rebuild = self._rebuild_tables
            store.on_rows_rebuild = self._rows_rebuild
            self._replica = Replica(
                self.thread,
                Keyring(self.thread, [member_key] if member_key else []),
                store,
                rules=coltypes.row_rules,
            )
        # Never wait for the lock here: a writer holds the file's write lock while it waits
        # for this one, and a reader waiting the other way round would stall them both. A
        # writer in its locked section reloads for itself if it must.
        if self._stale(self._replica.store.log_size(connection)) and self.lock.acquire(
            blocking=False
        ):
            try:
                size = self._replica.store.log_size()
                if self._stale(size):
                    # What this process cached of the file (decisions among it) may be what
                    # the other writer changed: read again, as after a rollback.
                    self._replica.store.forget_cached()  # type: ignore[attr-defined]
                    with self._uncaptured():
                        self._replica.reload()
                    self._known_n = size
            finally:
                self.lock.release()
        return self._replica

    def state_known(self) -> Any | None:
        """The thread's resolved control state as this process holds it, without a query: the
        replica's after this process's last write or ingest in the thread (None once a rollback
        or another process's write made it untrusted). For ``ops_written``, sent right after
        such a commit."""
        if self._replica is None or self._known_n < 0:
            return None
        return self._replica.control.state

    def _stale(self, size: int) -> bool:
        """Whether the file holds ops the replica in memory does not: another process wrote
        (the log is longer than this process knows), or a rollback made the memory untrusted.
        A shorter log is a write of this process that another thread has not committed yet:
        its ops are in memory already, and reloading from the file would lose them."""
        return self._known_n < 0 or size > self._known_n

    def writer(self) -> ThreadWriter:
        replica = self.replica()
        if self._writer is None or self._writer.replica is not replica:
            member_key = self._member_key()
            if member_key is None:
                raise WriteRefused(
                    "this node cannot write: its master secret is missing or sealed with a "
                    "passphrase (unlock it in the settings)"
                )
            self._writer = ThreadWriter(replica, device_key=self.node.device, member_key=member_key)
        return self._writer

    def invalidate(self) -> None:
        """Forget the cached replica state (after a rollback: the file is the truth)."""
        self._known_n = -1
        self._tags_known = -1
        if self._replica is not None:
            self._replica.store.forget_cached()  # type: ignore[attr-defined]

    # -- local writes ----------------------------------------------------------------------------

    def pack(self, connection: sqlite3.Connection, wrapper) -> list[Op]:
        """Turn the transaction's captured changes (``wrapper.pending``, and what an older
        version left in ``sereus_pending``) into ops (called at commit, inside it)."""
        if len(wrapper.pending) < GC_PAUSE_ROWS:
            return self._pack(connection, wrapper)
        # A big transaction makes several objects a row (row changes, their payload, events)
        # that live until the op is written: the collector, set off by allocation counts, ran
        # over them again and again, as ``ingest`` found for a frame of other nodes' ops.
        with gc_paused():
            return self._pack(connection, wrapper)

    def _pack(self, connection: sqlite3.Connection, wrapper) -> list[Op]:
        merged = packing.pending_merge(wrapper.pending, wrapper.leftovers and connection)
        wrapper.pending.clear()
        wrapper.leftovers = False
        if not merged:
            return []
        changes, tombs = packing.changes_of(connection, merged)
        if not changes:
            return []
        with self.lock:
            # ``_pin`` and ``_uncaptured`` inline (this runs on every commit): the store's
            # statements use the committing connection; the op's own rows are not captured.
            self._pinned.connection, capture, wrapper.capture = connection, wrapper.capture, False
            try:
                writer = self.writer()
                self._check_new_ids(merged, writer.member)
                return self._pack_written(writer, changes, tombs)
            finally:
                wrapper.capture = capture
                self._pinned.connection = None

    def _pack_written(
        self, writer: ThreadWriter, changes: list[p.RowChange], tombs: dict[tuple[str, Any], bytes]
    ) -> list[Op]:
        self._packing, self._tombs, self._rebuilt_in_pack = True, tombs, False
        try:
            # The op's admission, decision and row events are written together when the
            # block ends (one INSERT with its decision, not an INSERT then an UPDATE).
            with writer.replica.store.batched():  # type: ignore[attr-defined]
                written = [
                    writer.write_data(
                        chunk, schema=coltypes.schema_of({change.table for change in chunk})
                    )
                    for chunk in packing.chunks(changes)
                ]
        except WriteError as exc:
            self.invalidate()
            raise WriteRefused(str(exc).removeprefix("this node refused its own op: ")) from exc
        finally:
            self._packing, self._tombs, self._rebuilt_in_pack = False, {}, False
        # The log grew by exactly our ops (we hold the write lock): no need to ask the file.
        self._known_n += len(written)
        return written

    def _check_new_ids(self, merged: dict[tuple[str, Any], list[Any]], member: bytes) -> None:
        """A new row whose id names another member: say so plainly (the replica would refuse
        it as a change of someone else's row)."""
        mine = rowid.member_tag(member)
        # An id of ours ends in our tag's hex digits, as the backend stores it: those need no
        # parsing (a bulk insert checks 100 000 of them), and their tag is ours or none.
        mine_hex = mine.hex()
        for (table, pk), (_mask, existed, _old) in merged.items():
            if existed or (type(pk) is str and pk[20:] == mine_hex):
                continue
            tag = rowid.row_tag(pk)
            if tag is not None and tag != mine:
                self.invalidate()
                raise WriteRefused(
                    f"{table} {pk}: a new row's id must name its author (leave the id to the "
                    "model's default, or make it with apps.core.thread.rowid.row_id_for)"
                )

    # -- accepted changes ---------------------------------------------------------------------

    def _accepted(self, op: Op, changes: list[p.RowChange]) -> None:
        """An accepted data op: stamp our own rows, or apply another node's."""
        connection = self.raw()
        tables = replicated_tables()
        # One pass in a comprehension (an op of a bulk insert holds 10 000 changes); the
        # unknown tables, rare, are found again for the warning.
        known = [(index, change) for index, change in enumerate(changes) if change.table in tables]
        if len(known) != len(changes):
            for change in changes:
                if change.table not in tables:
                    logger.warning(
                        "thread %s: op %s changes table %r, unknown to this node's apps: kept "
                        "in the log, not applied",
                        self.thread.hex()[:12],
                        op.hash.hex()[:12],
                        change.table,
                    )
        if self._packing and not self._rebuilt_in_pack:
            rows.stamps_record(connection, op, known, tables, self._tombs)
        elif self._to_apply is not None:
            self._to_apply.append((op, known))
        else:
            rows.op_apply(connection, op, known, tables)

    def _apply_held(self) -> None:
        """Apply the accepted ops held back by ``ingest`` (with the op log's writes first, so
        whatever runs next reads a consistent file)."""
        if self._replica is not None:
            self._replica.store.flush()  # type: ignore[attr-defined]
        if self._to_apply:
            held, self._to_apply = self._to_apply, []
            rows.ops_apply(self.raw(), held, replicated_tables())

    def _rebuild_tables(self) -> None:
        """Every data op is about to be decided again: start the app tables from empty."""
        self._apply_held()
        connection = self.raw()
        self._rebuilt_in_pack = self._packing
        for table in replicated_tables():
            connection.execute(f'DELETE FROM "{table}"')
        connection.execute("DELETE FROM sereus_clock")

    def _rows_rebuild(self, keys_: list[tuple[str, Any]]) -> None:
        """Some accepted changes were taken back (a device equivocated): rebuild just the rows
        they touched from the accepted changes that remain."""
        self._apply_held()
        assert self._replica is not None
        rebuild.rows_rebuild(self.raw(), self._replica, keys_)

    # -- control ops by this node -------------------------------------------------------------

    def write(self, action, *, device_key=None):
        """Run ``action(writer)`` (control ops, rotations) in one transaction of the thread.

        Capture is off: control ops change no app row themselves, and if one changes earlier
        decisions the rebuild it causes rewrites the app tables from the log. ``device_key``:
        write as another device of this party (a restored node writes once as the party's
        standby key, to certify its own device).
        """
        self.open()
        wrapper = self.wrapper
        try:
            with transaction.atomic(using=self.alias), self.lock, self._pin():
                writer = self.writer()
                if device_key is not None:
                    writer = ThreadWriter(
                        writer.replica, device_key=device_key, member_key=writer.member_key
                    )
                wrapper.capture = False
                try:
                    result = action(writer)
                finally:
                    wrapper.capture = True
                wrapper.wrote_ops = True
                if self._replica is not None:
                    self._tags_sync(self._replica)
                self._known_n = self._replica.store.log_size() if self._replica else -1
        except WriteError as exc:
            self.invalidate()
            raise WriteRefused(str(exc).removeprefix("this node refused its own op: ")) from exc
        except Exception:
            self.invalidate()
            raise
        return result

    def _tags_sync(self, replica: Replica) -> None:
        """Record the row tags of members admitted since last time (``sereus_members``)."""
        tags = replica.control.state.tags
        if len(tags) == self._tags_known:
            return
        self.raw().executemany(
            "INSERT OR IGNORE INTO sereus_members(tag, member) VALUES (?, ?)",
            [(tag.hex(), member) for tag, member in tags.items()],
        )
        self._tags_known = len(tags)

    # -- remote ops -----------------------------------------------------------------------------

    def ingest(self, raws: Iterable[bytes] | Verified) -> list[IngestResult]:
        """Validate ops from other nodes and apply what they change, in one transaction."""
        raws = raws if isinstance(raws, Verified) else list(raws)
        wrapper = self.wrapper
        self.open()
        try:
            with transaction.atomic(using=self.alias), self.lock, self._pin(), gc_paused():
                replica = self.replica()
                wrapper.capture = False
                self._to_apply = []
                try:
                    with replica.store.batched():  # type: ignore[attr-defined]
                        results = replica.ingest_many(raws)
                    self._apply_held()
                finally:
                    wrapper.capture = True
                    self._to_apply = None
                if any(r.decided for r in results):
                    wrapper.wrote_ops = wrapper.received_ops = True
                    self._tags_sync(replica)
                self._known_n = replica.store.log_size()
        except Exception:
            self.invalidate()
            raise
        return results

    # -- integrity --------------------------------------------------------------------------------

    def rebuild_check(self, *, repair: bool = False) -> integrity.RebuildReport:
        """Replay the op log into a fresh replica and compare its rows with the live tables."""
        return rebuild.rebuild_check(self, repair=repair)
