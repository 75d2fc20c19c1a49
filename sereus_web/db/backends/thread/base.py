"""Django's sqlite3 backend, plus what makes a file a thread database (DESIGN §7).

Overrides only what differs:

- a connection is kept between requests (``CONN_MAX_AGE`` None);
- each connection runs in WAL mode with ``synchronous=FULL`` (an acknowledged write survives
  kill -9 and power loss), without enforced foreign keys (replicated rows arrive in any order),
  and with the ``sereus_capture()`` / ``sereus_row()`` functions the capture triggers call:
  ``sereus_row`` notes the change in this connection's memory (``pending``), which costs no
  page of the file; a Django savepoint that rolls back takes its notes back with it;
- ``_commit`` packs the transaction's captured changes into an op inside the transaction, before
  committing, so a change never exists without its op;
- a write statement outside any transaction (Django's autocommit) runs in an implicit atomic
  block, so it is packed the same way (any statement that is not plainly a read, comments
  before it skipped);
- an insert binds a provisional row id to this node's member of the thread (``compiler``);
- ``_rollback`` tells the thread's handle to reload, since its cached state may hold what was
  rolled back.
"""

from __future__ import annotations

import itertools
import logging
import re

from django.db import connections
from django.db.backends.sqlite3 import base as sqlite3_base
from django.db.backends.sqlite3.operations import DatabaseOperations as SQLiteOperations

logger = logging.getLogger(__name__)

# Statements that only read, or control transactions themselves: everything else runs in a
# transaction of its own when Django is in autocommit mode. Leading comments are skipped first
# (a write hidden behind "-- note" or "/* */" must not commit without its op).
READ_VERBS = (
    "SELECT",
    "EXPLAIN",
    "PRAGMA",
    "VALUES",
    "BEGIN",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
)
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*", re.DOTALL)


def is_read_only(query: str) -> bool:
    return query[_LEADING.match(query).end() :][:9].upper().startswith(READ_VERBS)


class DatabaseOperations(SQLiteOperations):
    compiler_module = "sereus_web.db.backends.thread.compiler"


class CaptureOutsideTransaction(Exception):
    """A replicated row written through the raw connection outside any transaction: it would
    commit at once, without its op. Every write of the backend runs in a transaction."""


class ThreadCursorWrapper(sqlite3_base.SQLiteCursorWrapper):
    """Runs a write made in autocommit mode inside an implicit transaction (bound per
    connection, see ``DatabaseWrapper.create_cursor``).

    A statement's results (``INSERT ... RETURNING``) must be read before its transaction can
    commit, so they are read inside it and served from a buffer afterwards.
    """

    database: DatabaseWrapper
    _buffer: list | None = None

    def _needs_transaction(self, query: str) -> bool:
        database = self.database
        return (
            not database.in_atomic_block and database.get_autocommit() and not is_read_only(query)
        )

    def _in_transaction(self, run):
        """Run ``run()`` in a transaction of its own and commit it (packing its changes)."""
        database = self.database
        connection = database.connection
        connection.execute(f"BEGIN {database.transaction_mode or 'IMMEDIATE'}")
        try:
            result = run()
            database._commit()
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            database.pending.clear()
            database.handle().invalidate()
            raise
        return result

    def execute(self, query, params=None):
        self._buffer = None
        if not self._needs_transaction(query):
            return super().execute(query, params)

        def run():
            super(ThreadCursorWrapper, self).execute(query, params)
            return super(ThreadCursorWrapper, self).fetchall() if self.description else []

        # Cheaper than transaction.atomic(): nothing here needs savepoints or on-commit hooks.
        self._buffer = self._in_transaction(run)
        return self

    def executemany(self, query, param_list):
        self._buffer = None
        if not self._needs_transaction(query):
            return super().executemany(query, param_list)
        self._in_transaction(
            lambda: super(ThreadCursorWrapper, self).executemany(query, param_list)
        )
        self._buffer = []
        return self

    def fetchone(self):
        if self._buffer is None:
            return super().fetchone()
        return self._buffer.pop(0) if self._buffer else None

    def fetchmany(self, size=None):
        if self._buffer is None:
            return super().fetchmany(size) if size is not None else super().fetchmany()
        size = self.arraysize if size is None else size
        rows, self._buffer = self._buffer[:size], self._buffer[size:]
        return rows

    def fetchall(self):
        if self._buffer is None:
            return super().fetchall()
        rows, self._buffer = self._buffer, []
        return rows

    def __next__(self):
        if self._buffer is None:
            return super().__next__()
        if not self._buffer:
            raise StopIteration
        return self._buffer.pop(0)


class DatabaseWrapper(sqlite3_base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def __init__(self, settings_dict, *args, **kwargs):
        # Kept open from one request to the next (request threads are reused, see
        # sereus_web.http_handler): opening one and setting it up (PRAGMAs, functions) cost a
        # small request more than its queries. Django still closes a connection that errored
        # or was left in a transaction; a thread's file is never replaced under a running node.
        # How many stay open per OS thread is bounded (``connections_trim``).
        super().__init__({**settings_dict, "CONN_MAX_AGE": None}, *args, **kwargs)
        self.used = 0  # when this wrapper last handed out its connection (``_uses``)
        # Capture is on except while this node applies other nodes' ops.
        self.capture = True
        # The open transaction's captured changes, in order: (table, pk, column mask (-1:
        # every column), whether the row existed, *the values of a deleted row). Kept in
        # memory, not in a table: the capture of a one-row commit wrote and emptied a page
        # of the file every time. Emptied when packed, and on rollback.
        self.pending: list[tuple] = []
        # len(pending) when each open Django savepoint was made: rolling back to it drops
        # what was captured after it, as SQLite drops the rows.
        self._pending_marks: dict[str, int] = {}
        # Set by ``ThreadDatabase.open`` when the file holds changes of an older version of
        # this code in ``sereus_pending`` (committed without their op): the commit packs them.
        self.leftovers = False
        # Set when the open transaction added ops to the log: announced once it commits.
        self.wrote_ops = False
        # ...and whether they came from other nodes (``ThreadDatabase.ingest``), not this one.
        self.received_ops = False
        self._cursor_class = type("BoundThreadCursor", (ThreadCursorWrapper,), {"database": self})

    @property
    def thread(self) -> bytes:
        return self.settings_dict["THREAD"]

    def handle(self):
        from apps.core.threads.registry import handle_for_alias

        return handle_for_alias(self.alias)

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        connection.execute("PRAGMA foreign_keys = OFF")
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.create_function("sereus_capture", 0, self._capture_asked)
        pending = self.pending
        pending.clear()
        self._pending_marks.clear()

        def note(*change) -> None:
            """``sereus_row(table, pk, mask, existed, OLD.a, OLD.b, ...)``: the capture
            triggers' note of one row change (the old values only for a delete)."""
            if not connection.in_transaction:
                raise CaptureOutsideTransaction
            pending.append(change)

        connection.create_function("sereus_row", -1, note)
        return connection

    def _capture_asked(self) -> bool:
        """``sereus_capture()``: whether the trigger notes the change (and so it is packed)."""
        return self.capture

    def _savepoint(self, sid):
        super()._savepoint(sid)
        self._pending_marks[sid] = len(self.pending)

    def _savepoint_rollback(self, sid):
        super()._savepoint_rollback(sid)
        mark = self._pending_marks.get(sid)
        if mark is not None:
            del self.pending[mark:]

    def _savepoint_commit(self, sid):
        super()._savepoint_commit(sid)
        self._pending_marks.pop(sid, None)

    def connect(self):
        super().connect()
        self.used = next(_uses)
        connections_trim(KEPT_PER_THREAD)

    def ensure_connection(self):
        super().ensure_connection()
        self.used = next(_uses)

    def sqlite_connection(self):
        """The open sqlite3 connection (opened if need be): ``ensure_connection`` without its
        checks when the connection is there, which every statement of a write asks for."""
        connection = self.connection
        if connection is None:
            self.ensure_connection()
            return self.connection
        self.used = next(_uses)
        return connection

    def create_cursor(self, name=None):
        return self.connection.cursor(factory=self._cursor_class)

    def _commit(self):
        if (
            (self.pending or self.leftovers)
            and self.connection is not None
            and self.connection.in_transaction
        ):
            try:
                if self.handle().pack(self.connection, self):
                    self.wrote_ops = True
            except Exception:
                self.handle().invalidate()
                raise
        result = super()._commit()
        if self.wrote_ops:
            received, self.wrote_ops, self.received_ops = self.received_ops, False, False
            from apps.core.threads.signals import ops_written

            # The ops are committed: a receiver that fails (an app's index, the p2p push) must
            # not make the write look failed to whoever made it. Logged, not raised.
            for receiver, error in ops_written.send_robust(
                sender=type(self),
                thread=self.thread,
                alias=self.alias,
                received=received,
                state=self.handle().state_known(),
            ):
                if isinstance(error, Exception):
                    logger.error("ops_written: %r failed: %r", receiver, error)
        return result

    def _rollback(self):
        self.wrote_ops = self.received_ops = self.leftovers = False
        self.pending.clear()
        self._pending_marks.clear()
        try:
            return super()._rollback()
        finally:
            self.handle().invalidate()


_uses = itertools.count(1)
# Thread-database connections one OS thread keeps open: a request, a page's render or a sync
# session uses one or a few; one more is opened by closing the one used longest ago.
KEPT_PER_THREAD = 8


def connections_trim(keep: int) -> None:
    """Close this OS thread's thread-database connections but the ``keep`` used last.

    Connections are kept between requests and threads live on (``sereus_web.http_handler``,
    the sockets' and the p2p node's threads): without a bound a thread would hold a connection
    (three file descriptors) to every thread database it ever opened, and a node of a few
    hundred conversations would run out of descriptors. One in a transaction is never closed.
    """
    mine = [
        wrapper
        for wrapper in connections.all(initialized_only=True)
        if isinstance(wrapper, DatabaseWrapper) and wrapper.connection is not None
    ]
    if len(mine) <= keep:
        return
    mine.sort(key=lambda wrapper: wrapper.used, reverse=True)
    for wrapper in mine[keep:]:
        if not wrapper.in_atomic_block and not wrapper.connection.in_transaction:
            wrapper.close()
