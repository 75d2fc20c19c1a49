"""The first flights of a push to many member devices, read in one trip (``openings``): each
device's opening is what ``threads_io.opening`` gives it alone, and devices in the same place
share one flight."""

from __future__ import annotations

import os
import uuid
from types import SimpleNamespace

import pytest
import trio

from apps.core.threads import services
from apps.core.threads.database import ThreadDatabase
from apps.p2p import client, threads_io
from apps.p2p.openings import Openings, openings_read
from apps.p2p.protocols import sync
from tests.core.threads.conftest import OtherNode, admit, other_node
from tests.p2p.test_threads_io import device_of, member_of, write_note

pytestmark = pytest.mark.django_db(transaction=True)

LIMITS = {"limit_ops": 4, "limit_bytes": 10**9}


@pytest.fixture
def writers(tdb: ThreadDatabase, tmp_path_factory) -> tuple[OtherNode, OtherNode]:
    """Bob and Carol, writers on nodes of their own, admitted by this node."""
    folder = tmp_path_factory.getbasetemp() / "p2p-other-nodes"
    folder.mkdir(exist_ok=True)
    joined = []
    for name in ("bob", "carol"):
        joiner = other_node(folder, tdb.thread, f"{name}_{uuid.uuid4().hex[:8]}")
        admit(tdb, joiner, "writer")
        joined.append(joiner)
    return joined[0], joined[1]


def test_each_device_gets_the_opening_it_would_get_alone(thread, tdb, writers):
    bob, carol = writers
    known = threads_io.version_vector(thread.thread)
    write_note(tdb, "news")
    stranger = os.urandom(32)
    requests = [
        (device_of(bob.database), known),
        (device_of(carol.database), dict(known)),
        (stranger, known),
        (device_of(bob.database), None),
    ]

    found = openings_read(thread.thread, requests, **LIMITS)

    alone = [threads_io.opening(thread.thread, d, k, **LIMITS) for d, k in requests]
    assert found == alone
    assert found[0][2].page, "the note"
    assert found[0][2] is found[1][2], "one flight for one place"
    assert found[2] == ("none", None, None), "a stranger gets no flight"


def test_a_removed_members_device_gets_its_own_flight(thread, tdb, writers):
    bob, carol = writers
    known = threads_io.version_vector(thread.thread)
    services.member_remove(thread=thread, member_id=member_of(bob).hex())

    requests = [(device_of(bob.database), known), (device_of(carol.database), known)]
    found = openings_read(thread.thread, requests, **LIMITS)

    assert found == [threads_io.opening(thread.thread, d, k, **LIMITS) for d, k in requests]
    assert found[0][0] == "until"
    assert found[1][0] == "full"
    assert found[0][2] is not found[1][2]
    assert len(found[0][2].page) < len(found[1][2].page), "not the new epoch's keys"


def test_a_session_takes_its_opening_once_and_without_a_batch_none():
    async def main() -> None:
        calls = []

        async def db(fn, thread, requests, **limits):
            calls.append([device for device, _known in requests])
            await trio.sleep(0.01)
            return [("full", None, device) for device, _known in requests]

        openings = Openings()
        async with trio.open_nursery() as nursery:
            openings.start(nursery, db, b"t", [(b"a", None), (b"b", None)], LIMITS)
            # One alone is read ahead too: its session sends the hello meanwhile.
            openings.start(nursery, db, b"t", [(b"c", None)], LIMITS)
            assert openings.take_ready(b"t", b"a") is None, "not read yet: left for take"
            assert await openings.take(b"t", b"a") == ("full", None, b"a")
            assert await openings.take(b"t", b"a") is None, "taken once"
            assert await openings.take(b"t", b"c") == ("full", None, b"c")
            assert await openings.take(b"t", b"c") is None, "taken once"
            assert await openings.take(b"t", b"z") is None, "no batch: the session reads its own"
            openings.start(nursery, db, b"t", [(b"d", None), (b"e", None)], LIMITS)
            await trio.sleep(0.05)
            assert openings.take_ready(b"t", b"d") == ("full", None, b"d")
            assert await openings.take(b"t", b"e") == ("full", None, b"e")
            assert await openings.take(b"t", b"b") == ("full", None, b"b")
        assert sorted(calls) == [[b"a", b"b"], [b"c"], [b"d", b"e"]]

    trio.run(main)


class _Bridge:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def call_soon(self, fn, *args) -> bool:
        self.calls.append(args)
        return True


@pytest.mark.parametrize("pushed", [True, False])
def test_ops_a_peer_pushed_itself_are_told_as_its_own(thread, tdb, writers, monkeypatch, pushed):
    bob, _carol = writers
    op = write_note(bob.database, "from bob")
    bridge = _Bridge()
    monkeypatch.setattr(client, "_local", (bridge, SimpleNamespace(notify=None)))
    bob_device = device_of(bob.database)

    outcome, dropped, grant, _removal = sync._ingest(
        thread.thread, [op.raw], "full", None, bob_device, pushed
    )

    assert (outcome.accepted, dropped, grant) == (1, 0, "full")
    assert bridge.calls == [(thread.thread, (bob_device, pushed), None)]
    client.notify(thread.thread)  # a write of this node's own after it: no source
    assert bridge.calls[-1] == (thread.thread, None, None)


def test_a_local_write_hands_the_node_the_openings_read_in_the_writers_thread(
    thread, tdb, writers, monkeypatch
):
    bob, carol = writers
    known = threads_io.version_vector(thread.thread)
    requests = [(device_of(bob.database), known), (device_of(carol.database), None)]
    node = SimpleNamespace(notify=None, push_requests=lambda t: requests)
    bridge = _Bridge()
    monkeypatch.setattr(client, "_local", (bridge, node))

    write_note(tdb, "news")  # ops_written: this node's own write

    ((told, source, ready),) = bridge.calls
    assert (told, source) == (thread.thread, None)
    devices = [device for device, _known in requests]
    found = openings_read(thread.thread, requests, **sync.LIMITS)
    assert ready == dict(zip(devices, found, strict=True))
    assert ready[device_of(bob.database)][2].page, "the note, read with the write"


def test_ops_taken_in_are_not_read_ahead_for_a_push(thread, tdb, writers, monkeypatch):
    bob, _carol = writers
    op = write_note(bob.database, "from bob")
    asked: list[bytes] = []
    node = SimpleNamespace(notify=None, push_requests=lambda t: asked.append(t) or [])
    monkeypatch.setattr(client, "_local", (_Bridge(), node))

    sync._ingest(thread.thread, [op.raw], "full", None, device_of(bob.database), True)

    assert asked == [], "the node decides whom to pass a peer's ops on to"
