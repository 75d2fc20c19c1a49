"""What a stranger (a peer that is no device of any thread of a node) learns from a real node's
invite protocol: nothing, not even whether the node is in a thread. (That strangers cannot crowd
members out of the node's sessions: ``tests/p2p/test_inbound_slots.py``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import trio
from libp2p.peer.id import ID

from apps.p2p import frames
from apps.p2p.limits import PeerLimits
from apps.p2p.protocols import INVITE_PROTOCOL
from apps.p2p.wire import FrameChannel, PeerRefused
from tests.support.api import wait_for
from tests.support.p2p import Peer
from tests.support.rogue import RoguePeer

pytestmark = pytest.mark.slow


@pytest.fixture
def peers():
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.kill()


def start(peers: list[Peer], path: Path, **kwargs: Any) -> Peer:
    peer = Peer(path, **kwargs)
    peers.append(peer)
    return peer.start()


def redeem_answer(rogue: RoguePeer, peer_id: str, thread: bytes) -> tuple[str, str] | None:
    """A redeem with a made-up invite, as a stranger: the node's error (code, words)."""

    async def ask() -> tuple[str, str] | None:
        with trio.fail_after(10):
            stream = await rogue.host.new_stream(ID.from_base58(peer_id), [INVITE_PROTOCOL])
        channel = FrameChannel(stream, peer_id, PeerLimits())
        device = bytes(rogue.key.verify_key)
        fake = nacl.signing.SigningKey.generate().verify_key
        try:
            await channel.send(
                frames.Redeem(
                    thread, bytes(fake), bytes(fake), device, bytes(64), bytes(64), bytes(64)
                )
            )
            await channel.read()
        except PeerRefused as exc:
            return exc.code, exc.detail
        finally:
            await channel.close()
        return None

    return rogue.call(ask)


def test_the_invite_protocol_tells_a_stranger_nothing(peers, tmp_path):
    """The same answer for a thread A is in (the invite unknown), a thread A was removed from
    and a thread A never heard of."""
    a = start(peers, tmp_path / "a")
    b = start(peers, tmp_path / "b")
    assert a.api is not None
    assert b.api is not None
    mine = a.thread_create("A's own")
    a.invite(mine)  # an open invite, which the stranger does not have
    theirs = b.thread_create("B's")
    a.redeem(b.invite(theirs))
    members = b.api.get(f"/api/v1/threads/{theirs}/members/")
    a_member = next(m["id"] for m in members if not m["me"])
    b.api.delete(f"/api/v1/threads/{theirs}/members/{a_member}/")
    # Setup, not the property under test: when B's push of the removal does not get through,
    # A hears of it at the next anti-entropy round (about every 30 s), so wait for more than one.
    wait_for(
        lambda: a.api.get(f"/api/v1/threads/{theirs}/")["state"] == "removed",
        timeout=90,
        what="A to learn it was removed from B's thread",
    )
    rogue = RoguePeer().start()
    try:
        rogue.call(rogue.connect, a.peer_id, a.network()["addresses"])
        answers = {
            name: redeem_answer(rogue, a.peer_id, bytes.fromhex(thread))
            for name, thread in (("in", mine), ("removed", theirs), ("never", "00" * 32))
        }
    finally:
        rogue.stop()
    assert set(answers.values()) == {("unknown", "this node knows no such invite")}, answers
