"""Django's ``connections.all(initialized_only=True)`` without a look-up per configured alias.

Every thread database is a database alias (``apps.core.threads.registry``), and Django asks
``connections.all(initialized_only=True)`` at the start and the end of every request
(``close_old_connections``, ``reset_queries``): it tests each configured alias against the
calling thread's connections, each test an asgiref ``Local`` look-up that, in a sync thread,
costs an ``asyncio.get_running_loop()`` raising. With 200 thread databases that was 0.7 ms
before each request's view and 0.35 ms after it; with 1 000, 4 ms and 2 ms. Here the calling
thread's (or, in an event loop, the task context's) connections are read once and kept in the
order of the configured aliases: the list Django's loop makes.

It reads asgiref's storage (asgiref 3.13.0, pinned in constraints.txt; Django 5.2): a
``_ThreadCriticalLocal`` whose ``_get_storage()`` is a ``threading.local`` in a sync thread and a
``_CVar`` (``_storage().data``, a dict) in an event loop. Those are private: if the storage is
not what this module knows, Django's own loop runs (``tests/core/test_connection_handler.py``
fails loudly if the fast path stops being taken).
"""

from __future__ import annotations

import threading
from typing import Any

from django.db.utils import ConnectionHandler


def held_connections(local: Any) -> dict[str, Any] | None:
    """The connections the calling thread (or task context) holds, by alias; None if asgiref's
    storage is not as described above."""
    get_storage = getattr(local, "_get_storage", None)
    if get_storage is None:
        return None
    storage = get_storage()
    if isinstance(storage, threading.local):
        return vars(storage)
    cvar_storage = getattr(storage, "_storage", None)
    data = getattr(cvar_storage(), "data", None) if callable(cvar_storage) else None
    return data if isinstance(data, dict) else None


class NodeConnectionHandler(ConnectionHandler):
    def all(self, initialized_only: bool = False) -> list[Any]:
        if initialized_only:
            held = held_connections(self._connections)
            if held is not None:
                # Only configured aliases, in their order (the storage also holds asgiref's own
                # ``cvar`` attribute, and a connection of an alias no longer configured).
                return [held[alias] for alias in self.settings if alias in held]
        return super().all(initialized_only=initialized_only)


def install() -> None:
    """Make Django's ``connections`` answer ``all()`` this way (once, at startup)."""
    from django.db import connections

    if type(connections) is ConnectionHandler:
        connections.__class__ = NodeConnectionHandler
