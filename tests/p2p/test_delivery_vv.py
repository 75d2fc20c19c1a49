"""The vectors member devices say in sync sessions reach the node database, coalesced (never one
write per frame), and with them delivery: between two real nodes, the other node's device is
listed as holding a row once it synced, and not before."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from apps.p2p import sessions
from apps.p2p.sessions import SyncSessions
from tests.support.api import wait_for
from tests.support.nodes import manage
from tests.support.p2p import Peer

THREAD, OTHER = b"\x01" * 32, b"\x02" * 32
ANN, BOB = b"\x0a" * 32, b"\x0b" * 32


class Recording(SyncSessions):
    """The vector bookkeeping of a node, its database writes recorded instead of made."""

    def __init__(self) -> None:
        self._known_vv: dict[tuple[bytes, bytes], dict[bytes, int]] = {}
        self._nursery: trio.Nursery | None = None
        self.writes: list[list[tuple[bytes, bytes, dict[bytes, int]]]] = []
        self.told: list[bytes] = []
        self.pages_tell = self.told.append

    async def db(self, fn: Callable[..., Any], entries: list, at: float) -> int:
        self.writes.append(entries)
        return len(entries)


def run(script: Callable[[Recording], Any]) -> Recording:
    node = Recording()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            await script(node)

    trio.run(main)
    return node


def test_a_burst_of_vectors_is_one_write_of_the_newest(monkeypatch):
    monkeypatch.setattr(sessions, "VV_SAVE_EVERY", 0.05)

    async def burst(node: Recording) -> None:
        for seq in range(1, 201):  # a catch-up: a vector per flight, two devices
            node.vv_seen(THREAD, BOB, {ANN: seq})
            node.vv_seen(OTHER, BOB, {ANN: 1, BOB: seq})
            await trio.sleep(0)
        await trio.sleep(0.2)

    node = run(burst)
    assert len(node.writes) == 1
    assert sorted(node.writes[0]) == [(THREAD, BOB, {ANN: 200}), (OTHER, BOB, {ANN: 1, BOB: 200})]


def test_an_unchanged_vector_is_not_written_again_soon_and_a_new_one_is(monkeypatch):
    monkeypatch.setattr(sessions, "VV_SAVE_EVERY", 0.01)

    async def sessions_(node: Recording) -> None:
        node.vv_seen(THREAD, BOB, {ANN: 3})
        await trio.sleep(0.05)
        node.vv_seen(THREAD, BOB, {ANN: 3})  # an anti-entropy round: nothing new
        node.vv_seen(THREAD, BOB, {ANN: 2})  # older news (a stale flight): nothing new either
        await trio.sleep(0.05)
        node.vv_seen(THREAD, BOB, {ANN: 4})
        await trio.sleep(0.05)

    node = run(sessions_)
    assert node.writes == [[(THREAD, BOB, {ANN: 3})], [(THREAD, BOB, {ANN: 4})]]
    # Open pages are told after each write that says more is held, never for old news.
    assert node.told == [THREAD, THREAD]


def test_pages_hear_of_a_thread_only_when_its_vectors_advance(monkeypatch):
    monkeypatch.setattr(sessions, "VV_SAVE_EVERY", 0.01)
    monkeypatch.setattr(sessions, "VV_SEEN_REFRESH", 0.0)

    async def sessions_(node: Recording) -> None:
        node.vv_seen(THREAD, BOB, {ANN: 3})
        node.vv_seen(OTHER, BOB, {ANN: 3})
        await trio.sleep(0.05)
        node.told.clear()
        node.vv_seen(THREAD, BOB, {ANN: 3})  # written again (refresh), nothing new held
        node.vv_seen(OTHER, BOB, {ANN: 5})
        await trio.sleep(0.05)

    node = run(sessions_)
    assert len(node.writes) == 2
    assert node.told == [OTHER]


# -- two real nodes -------------------------------------------------------------------------------

DELIVERY = """
import json
from apps.core.models import Thread
from apps.core.threads.delivery import row_delivery
thread = Thread.objects.get(pk={thread!r})
print(json.dumps([[h.name, h.holds, h.seen_at is not None]
                  for h in row_delivery(thread, "replicated_app_note", {note!r})]))
"""


def delivery(peer: Peer, thread: str, note: str) -> list[list[Any]]:
    """Delivery of a note, as a shell beside the running node reads it."""
    code = DELIVERY.format(thread=thread, note=note)
    result = manage(peer.data_dir, "shell", "-v", "0", "-c", code, env=peer.env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Peer, Peer]]:
    made = (Peer(tmp_path / "a"), Peer(tmp_path / "b"))
    try:
        yield made
    finally:
        for peer in made:
            peer.kill()


@pytest.mark.slow
def test_the_other_nodes_device_holds_a_row_once_synced_and_not_before(nodes):
    a, b = (peer.start() for peer in nodes)
    thread = a.thread_create("Stall")
    b.redeem(a.invite(thread))

    b.stop()
    note = a.note(thread, "an offer written while b is away")["id"]
    ((name, holds, _seen),) = delivery(a, thread, note)
    assert not holds
    assert name.endswith("'s device")
    assert not re.search(r"[0-9a-f]{12}", name)  # in words, never a key

    b.start()
    wait_for(lambda: any(n["id"] == note for n in b.notes(thread)), timeout=30, what="the sync")
    found = wait_for(
        lambda: (rows := delivery(a, thread, note))[0][1] and rows,
        timeout=20,
        interval=0.2,
        what="b's vector to reach a's database",
    )
    assert found == [[name, True, True]]
