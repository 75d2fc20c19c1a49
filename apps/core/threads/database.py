"""One thread's database in this process: schema, capture packing, remote apply, rebuild.

The SQLite file is the truth: the op log (``sereus_ops``), the row index, the clock table and the
app tables, always changed together in one transaction. The ``Replica`` held here is a cache of
what decisions need (control ops, heads); it is reloaded from the file whenever another process
wrote to it, or a transaction of ours rolled back.

- **Local writes** (ORM, admin, raw SQL) land in the app tables; the capture triggers note them in
  ``sereus_pending``; at commit the backend calls ``pack``, which turns them into one op (more
  only past the op size limits), validates it like any op, and records it in the same transaction.
  A write the policy refuses raises ``WriteRefused`` and the transaction rolls back.
- **Remote ops** go through ``ingest``: validated by the replica, accepted row changes applied with
  capture off, per column last-writer-wins by (stamp, device), deletes as tombstones.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import shutil
import sqlite3
import threading
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, transaction

from apps.core import identity
from apps.core.replicated import replicated_tables
from apps.core.thread import codec, keys, rowid
from apps.core.thread import payloads as p
from apps.core.thread.lww import materialize
from apps.core.thread.op import MAX_OP_SIZE, Op
from apps.core.thread.replica import IngestResult, Replica, Verified
from apps.core.thread.resolve import Keyring
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.core.threads import coltypes, schema
from apps.core.threads.registry import alias_register, handle_register, thread_path
from apps.core.threads.store import SQLiteOpStore, stamp_bytes

logger = logging.getLogger(__name__)

# An op carries at most 10 000 row changes (DESIGN §4); a larger transaction becomes several
# ops, chained in the same transaction. The byte budget leaves room for the op's header.
ROWS_PER_OP = 10_000
BYTES_PER_OP = MAX_OP_SIZE - 64 * 1024


class ThreadDatabaseError(DatabaseError):
    """A thread database problem, with a message that says which thread and what."""


class ThreadCorrupt(ThreadDatabaseError):
    """The thread's file failed its integrity check: it is not served until repaired."""


class WriteRefused(ThreadDatabaseError):
    """A local write that the thread's rules refuse (role, keys); nothing of it was kept."""


@dataclass(frozen=True)
class RebuildReport:
    ops: int
    rows: int
    matches: bool
    differences: list[str]
    repaired: bool = False


def _cbor_row(*values: Any) -> bytes:
    return codec.encode(list(values))


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


class ThreadDatabase:
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
        self._tombs: dict[tuple[str, Any], bytes] = {}
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
        self.open()
        wrapper = self.wrapper
        wrapper.ensure_connection()
        return wrapper.connection

    @contextmanager
    def _pin(self):
        """Within one write, the store's many statements use this thread's connection directly
        (looking it up through Django's connection handler costs more than the statement)."""
        self._pinned.connection = self.raw()
        try:
            yield
        finally:
            self._pinned.connection = None

    def open(self) -> None:
        """Check the file and bring its schema up to date, once per process.

        A new thread starts as a copy of a schema template (migrated once per data dir and
        schema version), not by running the migrations: creating or joining a thread is a file
        copy, not a migration run.
        """
        if self._opened:
            return
        with self.lock:
            if self._opened:
                return
            existed = self.path.exists()
            if not existed:
                _template_copy(self.path)
            wrapper = self.wrapper
            try:
                wrapper.ensure_connection()
                connection = wrapper.connection
                if existed:
                    self._check_integrity(connection)
                upgraded = _schema_update(connection, self.alias) and existed
            except ThreadCorrupt as exc:
                self._report_damage(exc)
                raise
            except (DatabaseError, sqlite3.DatabaseError) as exc:
                wrapper.close()
                damage = ThreadCorrupt(
                    f"thread {self.thread.hex()[:12]}: {self.path} cannot be opened: {exc}"
                )
                self._report_damage(damage)
                raise damage from exc
            connection.execute(
                "INSERT OR REPLACE INTO sereus_meta(key, value) VALUES ('thread', ?)",
                (self.thread,),
            )
            self._opened = True
        self._pack_leftovers()
        if upgraded:
            self.redecide_waiting()

    def redecide_waiting(self) -> bool:
        """Decide the ops that waited for app schema versions this code did not know (after an
        upgrade: it may know them now). True if there were any."""
        with transaction.atomic(using=self.alias), self.lock, self._pin():
            self.wrapper.capture = False
            try:
                return self.replica().redecide_waiting()
            finally:
                self.wrapper.capture = True

    def _pack_leftovers(self) -> None:
        """Start-up pass: captured changes committed without their op (only possible if
        something committed behind the backend's back) are packed now, in a transaction."""
        connection = self.wrapper.connection
        if connection.execute("SELECT 1 FROM sereus_pending LIMIT 1").fetchone() is None:
            return
        logger.warning("thread %s: packing changes left without an op", self.thread.hex()[:12])
        with transaction.atomic(using=self.alias):
            pass  # the commit packs what is pending

    def _report_damage(self, damage: ThreadCorrupt) -> None:
        logger.error("%s", damage)
        from apps.core.models import Thread

        try:
            Thread.objects.filter(pk=self.thread.hex()).update(
                state=Thread.State.DAMAGED, problem=str(damage)
            )
        except DatabaseError:
            logger.exception("could not record the damage in the node database")

    def _check_integrity(self, connection: sqlite3.Connection) -> None:
        try:
            result = connection.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            raise ThreadCorrupt(
                f"thread {self.thread.hex()[:12]}: {self.path} is not a readable database ({exc})"
            ) from exc
        if result != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in result[:3])
            raise ThreadCorrupt(
                f"thread {self.thread.hex()[:12]}: {self.path} is damaged: {problems}"
            )

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
        member = self.member_public()
        if member is None:
            raise WriteRefused(
                "this node cannot write: its master secret is missing or sealed with a "
                "passphrase (unlock it in the settings)"
            )
        return rowid.row_id_new(member)

    def replica(self) -> Replica:
        """The replica, caught up with the file (call under ``self.lock`` to write)."""
        self.raw()
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
        size = self._replica.store.log_size()
        if size != self._known_n:
            self._replica.reload()
            self._known_n = size
        return self._replica

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

    def pack(self, connection: sqlite3.Connection) -> list[Op]:
        """Turn the transaction's captured changes into ops (called at commit, inside it)."""
        pending = connection.execute(
            "SELECT tbl, pk, mask, existed, old FROM sereus_pending ORDER BY rowid"
        ).fetchall()
        if not pending:
            return []
        merged: dict[tuple[str, Any], list[Any]] = {}
        for table, pk, mask, existed, old in pending:
            entry = merged.get((table, pk))
            if entry is None:
                merged[(table, pk)] = [mask, existed, old]
            else:
                entry[0] = -1 if -1 in (entry[0], mask) else entry[0] | mask
                if old is not None:
                    entry[2] = old
        connection.execute("DELETE FROM sereus_pending")
        changes, tombs = self._changes_of(connection, merged)
        if not changes:
            return []
        with self.lock, self._pin():
            writer = self.writer()
            self._check_new_ids(merged, writer.member)
            self._packing, self._tombs = True, tombs
            try:
                written = [
                    writer.write_data(
                        chunk, schema=coltypes.schema_of({change.table for change in chunk})
                    )
                    for chunk in _chunks(changes)
                ]
            except WriteError as exc:
                self.invalidate()
                raise WriteRefused(str(exc).removeprefix("this node refused its own op: ")) from exc
            finally:
                self._packing, self._tombs = False, {}
            # The log grew by exactly our ops (we hold the write lock): no need to ask the file.
            self._known_n += len(written)
            return written

    def _check_new_ids(self, merged: dict[tuple[str, Any], list[Any]], member: bytes) -> None:
        """A new row whose id names another member: say so plainly (the replica would refuse
        it as a change of someone else's row)."""
        for (table, pk), (_mask, existed, _old) in merged.items():
            tag = rowid.row_tag(pk)
            if not existed and tag is not None and tag != rowid.member_tag(member):
                self.invalidate()
                raise WriteRefused(
                    f"{table} {pk}: a new row's id must name its author (leave the id to the "
                    "model's default, or make it with apps.core.thread.rowid.row_id_for)"
                )

    def _changes_of(
        self, connection: sqlite3.Connection, merged: dict[tuple[str, Any], list[Any]]
    ) -> tuple[list[p.RowChange], dict[tuple[str, Any], bytes]]:
        tables = replicated_tables()
        by_table: dict[str, list[Any]] = {}
        for table, pk in merged:
            by_table.setdefault(table, []).append(pk)
        current: dict[tuple[str, Any], tuple[Any, ...]] = {}
        for table, pks in by_table.items():
            model = tables[table]
            cols = schema.columns(model)
            pk_col = model._meta.pk.column
            select = ", ".join(f'+"{c}"' for c in cols)  # unary +: raw stored values
            for start in range(0, len(pks), 500):
                batch = pks[start : start + 500]
                marks = ",".join("?" * len(batch))
                for row in connection.execute(
                    f'SELECT {select} FROM "{table}" WHERE "{pk_col}" IN ({marks})', batch
                ):
                    current[(table, row[cols.index(pk_col)])] = row
        changes: list[p.RowChange] = []
        tombs: dict[tuple[str, Any], bytes] = {}
        for (table, pk), (mask, existed, old) in merged.items():
            cols = schema.columns(tables[table])
            row = current.get((table, pk))
            if row is not None:
                if mask == -1 or not existed:
                    chosen = range(len(cols))
                else:
                    chosen = [i for i in range(len(cols)) if mask & (1 << i)]
                values = {cols[i]: row[i] for i in chosen}
                if values:
                    changes.append(p.RowChange(table, pk, p.UPSERT, values))
            elif existed:
                changes.append(p.RowChange(table, pk, p.DELETE, {}))
                if old is not None:
                    tombs[(table, pk)] = codec.encode(
                        dict(zip(cols, codec.decode(old, max_size=MAX_OP_SIZE), strict=False))
                    )
        return changes, tombs

    # -- accepted changes ---------------------------------------------------------------------

    def _accepted(self, op: Op, changes: list[p.RowChange]) -> None:
        """An accepted data op: stamp our own rows, or apply another node's."""
        connection = self.raw()
        tables = replicated_tables()
        known = []
        for index, change in enumerate(changes):
            if change.table in tables:
                known.append((index, change))
            else:
                logger.warning(
                    "thread %s: op %s changes table %r, unknown to this node's apps: kept in "
                    "the log, not applied",
                    self.thread.hex()[:12],
                    op.hash.hex()[:12],
                    change.table,
                )
        if self._packing:
            self._stamp_local(connection, op, known, tables)
        else:
            _apply_op(connection, op, known, tables)

    def _stamp_local(self, connection, op: Op, changes, tables) -> None:
        """Record our own write's stamps: the rows are already in the tables."""
        full, partial, deletes = [], [], []
        for index, change in changes:
            stamp = stamp_bytes(op.hlc, op.device, index)
            if change.action == p.DELETE:
                deletes.append(
                    (change.table, change.pk, stamp, self._tombs.get((change.table, change.pk)))
                )
            elif set(change.cols) >= set(schema.columns(tables[change.table])):
                full.append((change.table, change.pk, stamp))
            else:
                partial.append((change, stamp))
        # An insert (or a save of every column) replaces the row's clock outright; a delete
        # keeps the column stamps and adds the tombstone: neither needs the old clock.
        connection.executemany(
            "INSERT INTO sereus_clock(tbl, pk, stamp) VALUES (?, ?, ?) "
            "ON CONFLICT(tbl, pk) DO UPDATE SET stamp = excluded.stamp, cols = NULL",
            full,
        )
        connection.executemany(
            "INSERT INTO sereus_clock(tbl, pk, tomb, tomb_row) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(tbl, pk) DO UPDATE SET tomb = excluded.tomb, tomb_row = excluded.tomb_row",
            deletes,
        )
        for change, stamp in partial:
            clock = _Clock.load(connection, change.table, change.pk)
            clock.set(change.cols, stamp, schema.columns(tables[change.table]))
            clock.save(connection)

    def _rebuild_tables(self) -> None:
        """Every data op is about to be decided again: start the app tables from empty."""
        connection = self.raw()
        for table in replicated_tables():
            connection.execute(f'DELETE FROM "{table}"')
        connection.execute("DELETE FROM sereus_clock")

    def _rows_rebuild(self, keys_: list[tuple[str, Any]]) -> None:
        """Some accepted changes were taken back (a device equivocated): rebuild just the rows
        they touched from the accepted changes that remain (the row index lists them)."""
        connection = self.raw()
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
        replica = self._replica
        assert replica is not None
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
            _apply_op(connection, op, chosen, tables)

    # -- control ops by this node -------------------------------------------------------------

    def write(self, action):
        """Run ``action(writer)`` (control ops, rotations) in one transaction of the thread.

        Capture is off: control ops change no app row themselves, and if one changes earlier
        decisions the rebuild it causes rewrites the app tables from the log.
        """
        self.open()
        wrapper = self.wrapper
        try:
            with transaction.atomic(using=self.alias), self.lock, self._pin():
                writer = self.writer()
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
            with transaction.atomic(using=self.alias), self.lock, self._pin():
                replica = self.replica()
                wrapper.capture = False
                try:
                    results = replica.ingest_many(raws)
                finally:
                    wrapper.capture = True
                if any(r.decided for r in results):
                    wrapper.wrote_ops = True
                    self._tags_sync(replica)
                self._known_n = replica.store.log_size()
        except Exception:
            self.invalidate()
            raise
        return results

    # -- integrity --------------------------------------------------------------------------------

    def rebuild_check(self, *, repair: bool = False) -> RebuildReport:
        """Replay the op log into a fresh replica and compare its rows with the live tables."""
        from apps.core.thread.store import MemoryStore

        connection = self.raw()
        member_key = self._member_key()
        fresh = Replica(
            self.thread,
            Keyring(self.thread, [member_key] if member_key else []),
            MemoryStore(),
            rules=coltypes.row_rules,
        )
        log = connection.execute(
            "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
        ).fetchall()
        for start in range(0, len(log), 512):
            fresh.ingest_many(raw for (raw,) in log[start : start + 512])
        expected = materialize(fresh.accepted_data())
        live = self._live_rows(connection)
        differences = _diff(expected, live)
        found = list(differences)
        if differences and repair:
            with transaction.atomic(using=self.alias), self.lock:
                self.wrapper.capture = False
                try:
                    self.replica()._redecide_data()
                finally:
                    self.wrapper.capture = True
            live = self._live_rows(self.raw())
            differences = _diff(expected, live)
        return RebuildReport(
            ops=len(log),
            rows=sum(len(rows) for rows in expected.values()),
            matches=not differences,
            differences=(differences or found)[:20],
            repaired=bool(found) and not differences,
        )

    def _live_rows(self, connection: sqlite3.Connection) -> dict[str, dict[Any, dict[str, Any]]]:
        live: dict[str, dict[Any, dict[str, Any]]] = {}
        for table, model in replicated_tables().items():
            cols = schema.columns(model)
            pk_index = cols.index(model._meta.pk.column)
            select = ", ".join(f'+"{c}"' for c in cols)
            rows = {}
            for row in connection.execute(f'SELECT {select} FROM "{table}"'):
                rows[row[pk_index]] = dict(zip(cols, row, strict=True))
            if rows:
                live[table] = rows
        return live


_schema_lock = threading.Lock()
_fingerprint_cache: bytes | None = None


def _fingerprint() -> bytes:
    """What the thread schema is made of in this code: changes exactly when it needs updating."""
    global _fingerprint_cache
    if _fingerprint_cache is None:
        from django.apps import apps
        from django.db.migrations.loader import MigrationLoader

        replicated = {a.label for a in apps.get_app_configs() if getattr(a, "replicated", False)}
        loader = MigrationLoader(None, ignore_no_migrations=True)
        leaves = sorted(f"{a}.{n}" for a, n in loader.graph.leaf_nodes() if a in replicated)
        material = [str(schema.SCHEMA_VERSION), *leaves, *schema.all_trigger_sql()]
        _fingerprint_cache = hashlib.blake2b("\n".join(material).encode(), digest_size=16).digest()
    return _fingerprint_cache


def _schema_update(connection: sqlite3.Connection, alias: str) -> bool:
    """Create the sereus tables, migrate the replicated apps' tables and (re)install the capture
    triggers, unless the file already has this code's schema."""
    connection.executescript(schema.TABLES)
    fingerprint = _fingerprint()
    row = connection.execute("SELECT value FROM sereus_meta WHERE key = 'fingerprint'").fetchone()
    if row is not None and row[0] == fingerprint:
        return False
    from django.core.management import call_command

    call_command("migrate", database=alias, interactive=False, verbosity=0)
    for sql in schema.all_trigger_sql():
        connection.execute(sql)
    connection.execute(
        "INSERT OR REPLACE INTO sereus_meta(key, value) VALUES ('fingerprint', ?)", (fingerprint,)
    )
    if connection.in_transaction:
        connection.commit()
    return True


def _template_copy(path: Path) -> None:
    """Start a new thread file as a copy of the schema template (built on first need)."""
    template = path.parent / f".template-{_fingerprint().hex()}.sqlite3"
    with _schema_lock:
        if not template.exists():
            building = template.with_suffix(".building")
            building.unlink(missing_ok=True)
            # Plain sqlite3: the template is only migrated, never written through, and the
            # router lets migrations of replicated apps run on "thread_" aliases.
            alias = f"thread_template_{_fingerprint().hex()}"
            from apps.core.threads.registry import alias_register

            alias_register(
                b"\0" * 32, alias=alias, path=building, engine="django.db.backends.sqlite3"
            )
            wrapper = connections[alias]
            try:
                wrapper.ensure_connection()
                _schema_update(wrapper.connection, alias)
            finally:
                wrapper.close()
                del connections[alias]
                del connections.settings[alias]
            building.replace(template)
    shutil.copyfile(template, path)
    path.chmod(0o600)


def _diff(expected: dict, live: dict) -> list[str]:
    out = []
    for table in sorted(set(expected) | set(live)):
        want, have = expected.get(table, {}), live.get(table, {})
        for pk in sorted(set(want) | set(have), key=repr):
            if pk not in have:
                out.append(f"{table} {pk!r}: missing from the live table")
            elif pk not in want:
                out.append(f"{table} {pk!r}: in the live table but not in the log")
            else:
                for column, value in want[pk].items():
                    if have[pk].get(column) != value:
                        out.append(
                            f"{table} {pk!r}.{column}: log says {value!r}, table has "
                            f"{have[pk].get(column)!r}"
                        )
    return out


def _chunks(changes: list[p.RowChange]) -> Iterable[list[p.RowChange]]:
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
    """An upper bound of a change's encoded size, without encoding it."""
    size = (
        64 + len(change.table) + 16 + (len(change.pk) if isinstance(change.pk, str | bytes) else 9)
    )
    for column, value in change.cols.items():
        size += (
            len(column)
            + 12
            + (
                len(value) * 4
                if isinstance(value, str)
                else len(value)
                if isinstance(value, bytes)
                else 0
            )
        )
    return size


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


def _apply_op(connection: sqlite3.Connection, op: Op, changes, tables) -> None:
    """Apply another node's accepted op: per-column last-writer-wins, row by row, with the rows'
    clocks and current values fetched in one query per table."""
    by_table: dict[str, list] = {}
    for _index, change in changes:
        by_table.setdefault(change.table, []).append(change.pk)
    clocks: dict[tuple[str, Any], _Clock] = {}
    rows: dict[tuple[str, Any], tuple] = {}
    for table, pks in by_table.items():
        model = tables[table]
        columns = schema.columns(model)
        pk_col = model._meta.pk.column
        pk_index = columns.index(pk_col)
        select = ", ".join(f'+"{c}"' for c in columns)
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
                f'SELECT {select} FROM "{table}" WHERE "{pk_col}" IN ({marks})', batch
            ):
                rows[(table, row[pk_index])] = row
    # The common case when catching up: a new row, written whole, once in the op. Those are
    # inserted with one statement per table; everything else goes row by row.
    seen: dict[tuple[str, Any], int] = {}
    for _index, change in changes:
        key = (change.table, change.pk)
        seen[key] = seen.get(key, 0) + 1
    fresh: dict[str, list[tuple]] = {}
    fresh_clocks: list[tuple] = []
    rest = []
    for index, change in changes:
        key = (change.table, change.pk)
        columns = schema.columns(tables[change.table])
        if (
            change.action == p.UPSERT
            and seen[key] == 1
            and key not in clocks
            and key not in rows
            and set(change.cols) >= set(columns)
        ):
            fresh.setdefault(change.table, []).append(tuple(change.cols[c] for c in columns))
            fresh_clocks.append((change.table, change.pk, stamp_bytes(op.hlc, op.device, index)))
        else:
            rest.append((index, change))
    for table, values in fresh.items():
        columns = schema.columns(tables[table])
        names = ", ".join(f'"{c}"' for c in columns)
        marks = ", ".join("?" * len(columns))
        connection.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', values)
    connection.executemany(
        "INSERT INTO sereus_clock(tbl, pk, stamp) VALUES (?, ?, ?)", fresh_clocks
    )
    for index, change in rest:
        key = (change.table, change.pk)
        clock = clocks.get(key) or _Clock(change.table, change.pk)
        clocks[key] = clock
        current = _apply(
            connection,
            tables[change.table],
            change,
            stamp_bytes(op.hlc, op.device, index),
            clock,
            rows.get(key),
        )
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
