"""Opening a thread's file, once per process: its integrity check, its schema brought up to
date, a file busy at open tried again, damage reported. A mixin of ``ThreadDatabase``, whose
state (``path``, ``lock``, ``wrapper``) it uses.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from django.db import DatabaseError, transaction

from apps.core.threads.errors import ThreadCorrupt
from apps.core.threads.template import schema_update, template_copy

# Its lines say they come from the thread database, as they did before this module was split off.
logger = logging.getLogger("apps.core.threads.database")

# Pauses between tries when a thread file is busy at open (each try already waits for the
# connection's busy timeout).
OPEN_BUSY_PAUSES = (0.05, 0.2, 0.5)


def _busy(exc: BaseException) -> bool:
    """Whether a database error says another connection holds a lock (SQLITE_BUSY/LOCKED)."""
    words = str(exc).lower()
    return "database is locked" in words or "database table is locked" in words or "busy" in words


class Opening:
    """``open`` and what it needs; ``ThreadDatabase`` provides the attributes below."""

    thread: bytes
    path: Path
    alias: str
    lock: threading.RLock
    _opened: bool
    wrapper: Any  # the thread's Django connection (``DatabaseWrapper``)

    def open(self) -> None:
        """Check the file and bring its schema up to date, once per process.

        A new thread starts as a copy of a schema template (migrated once per data dir and
        schema version), not by running the migrations: creating or joining a thread is a file
        copy, not a migration run.
        """
        if self._opened:
            return
        for pause in (*OPEN_BUSY_PAUSES, None):
            with self.lock:
                if self._opened:
                    return
                existed = self.path.exists()
                if not existed:
                    template_copy(self.path)
                try:
                    upgraded = self._open_file(existed)
                    self._opened = True
                    break
                except (DatabaseError, sqlite3.DatabaseError) as exc:
                    # Another connection holding the write lock (a writer at start-up, a WAL
                    # recovery after kill -9) is not damage: a thread marked damaged stops
                    # syncing. _open_file closed the connection already.
                    if pause is None or not _busy(exc):
                        raise
            # The lock is let go while waiting: the connection holding the file may be a
            # writer of this thread waiting for it.
            time.sleep(pause)
        self._pack_leftovers()
        if upgraded:
            self.redecide_waiting()

    def _open_file(self, existed: bool) -> bool:
        """Connect, check and bring the schema up to date; True if it was upgraded. A file
        that cannot be read is reported damaged; a busy one raises for open() to try again."""
        wrapper = self.wrapper
        try:
            wrapper.ensure_connection()
            connection = wrapper.connection
            if existed:
                self._check_integrity(connection)
            upgraded = schema_update(connection, self.alias) and existed
            # Written only when it differs: an open that writes nothing cannot wait for a
            # writer of this thread that is itself waiting for the handle's lock.
            said = connection.execute(
                "SELECT value FROM sereus_meta WHERE key = 'thread'"
            ).fetchone()
            if said is None or bytes(said[0]) != self.thread:
                connection.execute(
                    "INSERT OR REPLACE INTO sereus_meta(key, value) VALUES ('thread', ?)",
                    (self.thread,),
                )
        except ThreadCorrupt as exc:
            self._report_damage(exc)
            raise
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            wrapper.close()
            if _busy(exc):
                raise
            damage = ThreadCorrupt(
                f"thread {self.thread.hex()[:12]}: {self.path} cannot be opened: {exc}"
            )
            self._report_damage(damage)
            raise damage from exc
        return upgraded

    def redecide_waiting(self) -> bool:
        """Decide the ops that waited for app schema versions this code did not know (after an
        upgrade: it may know them now). True if there were any."""
        with transaction.atomic(using=self.alias), self.lock, self._pin():  # type: ignore[attr-defined]
            self.wrapper.capture = False
            try:
                return self.replica().redecide_waiting()  # type: ignore[attr-defined]
            finally:
                self.wrapper.capture = True

    def _pack_leftovers(self) -> None:
        """Start-up pass: captured changes committed without their op are packed now, in a
        transaction. Only a file written by an older version of this code can have them (its
        triggers noted changes in ``sereus_pending``, and something committed behind the
        backend's back); changes are noted in the connection's memory now."""
        connection = self.wrapper.connection
        if connection.execute("SELECT 1 FROM sereus_pending LIMIT 1").fetchone() is None:
            return
        logger.warning("thread %s: packing changes left without an op", self.thread.hex()[:12])
        with transaction.atomic(using=self.alias):
            self.wrapper.leftovers = True  # the commit packs what is pending

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
            if _busy(exc):
                raise
            raise ThreadCorrupt(
                f"thread {self.thread.hex()[:12]}: {self.path} is not a readable database ({exc})"
            ) from exc
        if result != [("ok",)]:
            problems = "; ".join(str(r[0]) for r in result[:3])
            raise ThreadCorrupt(
                f"thread {self.thread.hex()[:12]}: {self.path} is damaged: {problems}"
            )
