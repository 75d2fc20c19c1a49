"""A request thread keeps the thread-database connections it used last, not one to every thread
database its requests ever opened (each costs three file descriptors)."""

from __future__ import annotations

import os
from pathlib import Path

from django.db import connections

from apps.core.threads.registry import alias_register
from sereus_web.db.backends.thread.base import KEPT_PER_THREAD, connections_trim


def _opened(tmp_path: Path, count: int) -> list:
    wrappers = []
    run = os.urandom(4).hex()  # aliases of this test alone (Django guards those it saw before)
    folder = tmp_path / run
    folder.mkdir()
    for i in range(count):
        alias = alias_register(
            os.urandom(32), alias=f"thread_trim_{run}_{i}", path=folder / f"{i}.db"
        )
        wrapper = connections[alias]
        wrapper.ensure_connection()
        wrappers.append(wrapper)
    return wrappers


def test_only_the_connections_used_last_stay_open(tmp_path, thread_databases_allowed):
    wrappers = _opened(tmp_path, KEPT_PER_THREAD + 4)
    assert [w for w in wrappers if w.connection is not None] == wrappers[4:]
    wrappers[4].ensure_connection()  # used again: now the newest
    with wrappers[0].cursor() as cursor:  # a closed one opens again when asked for
        cursor.execute("SELECT 1")
    assert [w for w in wrappers if w.connection is not None] == [
        wrappers[0],
        *wrappers[4:5],
        *wrappers[6:],
    ]
    connections_trim(2)
    assert [w for w in wrappers if w.connection is not None] == [wrappers[0], wrappers[4]]


def test_a_connection_in_a_transaction_is_never_closed(tmp_path, thread_databases_allowed):
    wrappers = _opened(tmp_path, 1)
    busy = wrappers[0].connection
    busy.execute("BEGIN IMMEDIATE")
    busy.execute("CREATE TABLE t (x)")
    more = _opened(tmp_path, KEPT_PER_THREAD + 1)
    assert wrappers[0].connection is busy
    assert more[0].connection is None
    busy.execute("ROLLBACK")
