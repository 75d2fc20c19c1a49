"""Thread databases known to this process: registered with Django on first use, never all at once.

Each thread is a SQLite file ``<data>/threads/<thread-hex>.sqlite3`` and a Django database alias
``thread_<thread-hex>``. Nothing is opened at start-up: a thread's alias is added to
``django.db.connections`` the first time something uses the thread, and its Django connections
close like any other (after each request, or when a worker is done), so a node with a thousand
threads has files open only for the threads in use.
"""

from __future__ import annotations

import threading
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

ENGINE = "sereus_web.db.backends.thread"
_lock = threading.RLock()
_handles: dict[bytes, object] = {}  # this node's threads, by thread id
_by_alias: dict[str, object] = {}  # every handle, by Django alias (tests run several "nodes")


def thread_alias(thread: bytes) -> str:
    return "thread_" + thread.hex()


def thread_from_alias(alias: str) -> bytes:
    return bytes.fromhex(alias.removeprefix("thread_"))


def thread_path(thread: bytes) -> Path:
    return Path(settings.DATA_DIR) / "threads" / f"{thread.hex()}.sqlite3"


def alias_register(
    thread: bytes, *, alias: str | None = None, path: Path | None = None, engine: str = ENGINE
) -> str:
    """Make the thread's database known to Django (idempotent, no file opened)."""
    alias = alias or thread_alias(thread)
    if alias in connections.settings:
        return alias
    with _lock:
        if alias in connections.settings:
            return alias
        path = path or thread_path(thread)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = {
            "ENGINE": engine,
            "NAME": str(path),
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30},
            "THREAD": thread,
        }
        full = connections.configure_settings({DEFAULT_DB_ALIAS: {}, alias: config})[alias]
        connections.settings[alias] = full
    return alias


def thread_database(thread: bytes):
    """The process-wide handle of a thread's database (opened, checked and migrated once)."""
    from apps.core.threads.database import ThreadDatabase

    handle = _handles.get(thread)
    if handle is None:
        with _lock:
            handle = _handles.get(thread)
            if handle is None:
                handle = ThreadDatabase(thread)
                _handles[thread] = handle
    return handle


def handle_register(handle) -> None:
    _by_alias[handle.alias] = handle


def handle_for_alias(alias: str):
    handle = _by_alias.get(alias)
    if handle is None:
        return thread_database(thread_from_alias(alias))
    return handle


def forget(thread: bytes) -> None:
    """Drop the process's handle (the thread was left, or its file is being replaced)."""
    with _lock:
        handle = _handles.pop(thread, None)
        alias = thread_alias(thread)
        _by_alias.pop(alias, None)
        del handle
        if alias in connections.settings:
            connections[alias].close()
