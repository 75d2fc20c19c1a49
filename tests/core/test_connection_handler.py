"""``connections.all(initialized_only=True)`` (``sereus_web.db.connection_handler``) answers from
the calling thread's own connections: exactly the list Django's loop over every alias gives, in
a sync thread, in an event loop, after a close, with aliases added while running."""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections
from django.db.utils import ConnectionHandler

from apps.core.threads.registry import alias_register
from sereus_web.db.connection_handler import NodeConnectionHandler, held_connections


def _django() -> list[str]:
    return [c.alias for c in ConnectionHandler.all(connections, initialized_only=True)]


def _ours() -> list[str]:
    return [c.alias for c in connections.all(initialized_only=True)]


@pytest.fixture
def aliases():
    """Extra configured aliases (as the registry adds thread databases), removed afterwards."""
    added: list[str] = []

    def add(count: int) -> list[str]:
        base = dict(connections.settings["default"])
        new = [f"test_alias_{len(added) + i}" for i in range(count)]
        for alias in new:
            connections.settings[alias] = dict(base)
        added.extend(new)
        return new

    yield add
    for alias in added:
        if hasattr(connections._connections, alias):
            del connections[alias]
        connections.settings.pop(alias, None)


def test_installed_and_taking_its_fast_path():
    assert type(connections) is NodeConnectionHandler
    # asgiref's private storage is as the module reads it (asgiref 3.13.0): if this fails after
    # an upgrade, Django's own loop runs (correct, slower); update the module for the new layout.
    assert held_connections(connections._connections) is not None

    async def in_loop():
        return held_connections(connections._connections)

    assert asyncio.run(in_loop()) is not None


def test_the_same_connections_as_djangos_loop(aliases):
    first = aliases(50)
    for alias in first[::7]:
        connections[alias]
    assert _ours() == _django()
    assert {"test_alias_0", "test_alias_7"} <= set(_ours())
    connections["test_alias_7"].close()  # closed, still held: both list it
    assert _ours() == _django()
    more = aliases(20)  # added while running, one used at once
    connections[more[3]]
    assert _ours() == _django()
    assert more[3] in _ours()
    del connections["test_alias_14"]
    assert _ours() == _django()
    assert "test_alias_14" not in _ours()
    connections.settings.pop("test_alias_21")  # held but no longer configured: neither lists it
    assert _ours() == _django()
    assert "test_alias_21" not in _ours()


def test_other_threads_and_event_loops_see_their_own(aliases):
    names = aliases(10)
    connections[names[0]]
    seen: dict[str, tuple[list[str], list[str]]] = {}

    def other() -> None:
        connections[names[1]]
        seen["thread"] = (_ours(), _django())

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen["thread"][0] == seen["thread"][1]
    assert names[1] in seen["thread"][0]
    assert names[0] not in seen["thread"][0]

    async def in_loop() -> tuple[list[str], list[str]]:
        connections[names[2]]
        return _ours(), _django()

    ours, django = asyncio.run(in_loop())
    assert ours == django
    assert names[2] in ours

    def sync_in_loop_thread() -> tuple[list[str], list[str]]:
        return _ours(), _django()

    async def hop() -> tuple[list[str], list[str]]:
        return await sync_to_async(sync_in_loop_thread)()

    ours, django = async_to_sync(hop)()
    assert ours == django
    assert _ours() == _django()
    assert names[0] in _ours()


def test_a_thread_database_registered_while_running(tmp_path):
    alias = alias_register(b"\x42" * 32, path=tmp_path / "t.sqlite3")
    try:
        assert alias not in _ours()
        connections[alias]
        assert _ours() == _django()
        assert alias in _ours()
    finally:
        del connections[alias]
        connections.settings.pop(alias, None)
