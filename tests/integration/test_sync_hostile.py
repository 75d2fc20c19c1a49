"""A hostile member cannot break replication between honest nodes (issue 9): real ``runnode``
processes on 127.0.0.1, and a member's node modified to send whatever it likes, played by the
rogue peer with that member's own device key.

- A member that signs two different ops at one place, one delivered to each honest node, does
  not leave them divergent: sync compares head hashes, both record the fork, both decide every
  op alike, and they keep replicating.
- A member flooding ops of throw-away keys (or of another thread) is cut after the junk cap,
  with a strike, and honest notes still sync.
- The first frame of every inbound stream is read under small limits: one announced bigger than
  4 KiB is refused unread, one that does not come is given up on after 5 s.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nacl.signing
import pytest
from libp2p.utils import encode_uvarint

from apps.core import identity
from apps.core.thread.op import Op, op_decode
from apps.p2p import frames
from apps.p2p.protocols.sync import MAX_JUNK
from tests.integration.hostile_ops import junk_ops
from tests.support.api import wait_for
from tests.support.nodes import manage
from tests.support.p2p import Peer, converged
from tests.support.rogue import PROTOCOLS, RoguePeer, SyncOutcome

pytestmark = pytest.mark.slow
HOSTILE = "from tests.integration.hostile_ops import equivocating_ops, forks_print"
FUTURE = "from tests.integration.hostile_ops import future_op"


@dataclass
class Members:
    """Three member nodes of one thread; C's node is stopped, its key is the rogue's."""

    a: Peer
    b: Peer
    c: Peer
    thread: str
    c_key: nacl.signing.SigningKey


def shell(peer: Peer, code: str) -> str:
    result = manage(peer.data_dir, "shell", "-v", "0", "-c", code, env=peer.env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> Iterator[Members]:
    base: Path = tmp_path_factory.mktemp("hostile")
    started = [Peer(base / name) for name in ("a", "b", "c")]
    try:
        with ThreadPoolExecutor(len(started)) as pool:  # a node takes seconds to start
            a, b, c = pool.map(Peer.start, started)
        thread = a.thread_create("Hostile member")
        b.redeem(a.invite(thread))
        c.redeem(a.invite(thread))
        c.note(thread, "c is a member")
        converged([a, b, c], thread)
        c.stop()  # from now on its device key is the rogue's
        yield Members(a, b, c, thread, identity.device_key_load(c.data_dir).signing_key)
    finally:
        for peer in started:
            peer.kill()


def push(members: Members, target: Peer, ops: list[bytes]) -> SyncOutcome:
    """A sync session from C's modified node to ``target`` that sends ``ops``."""
    rogue = RoguePeer(members.c_key).start()
    try:
        rogue.call(rogue.connect, target.peer_id, target.network()["addresses"])
        return rogue.call(rogue.sync, target.peer_id, bytes.fromhex(members.thread), {}, ops)
    finally:
        rogue.stop()


def ops_of(peer: Peer, thread: str) -> list[dict]:
    assert peer.api is not None
    return peer.api.get(f"/api/v1/threads/{thread}/ops/?limit=1000")["ops"]


def decisions(peer: Peer, thread: str) -> dict[tuple[str, int], tuple[str, str]]:
    """Each place of the log (device, seq) and the decision on the op there."""
    return {(op["device"], op["seq"]): (op["status"], op["reason"]) for op in ops_of(peer, thread)}


def titles(peer: Peer, thread: str) -> set[str]:
    return {note["title"] for note in peer.notes(thread)}


def note_reaches(writer: Peer, reader: Peer, thread: str, title: str) -> None:
    writer.note(thread, title)
    wait_for(lambda: title in titles(reader, thread), what=f"{title!r} to reach the other node")


def test_an_equivocating_member_does_not_split_two_honest_nodes(members):
    a, b, c, thread = members.a, members.b, members.c, members.thread
    forged = shell(c, f"{HOSTILE}; equivocating_ops('{thread}')")
    one, other = (op_decode(bytes.fromhex(line)) for line in forged.splitlines())
    assert (one.id, one.hash != other.hash) == (other.id, True)

    # Each honest node gets one side of the fork while the other node is down, so neither can
    # pass its side on before the other has taken the other side.
    b.stop()
    assert push(members, a, [one.raw]).refused is None
    a.stop()
    b.start()
    assert push(members, b, [other.raw]).refused is None
    assert decisions(b, thread)[(other.device.hex(), other.seq)][0] == "accepted"
    a.start()

    # They meet: same seq, different hashes. Each sends its op there; both record the fork.
    place = (one.device.hex(), one.seq)

    def forked(peer: Peer) -> bool:
        status, reason = decisions(peer, thread).get(place, ("", ""))
        return status == "refused" and "equivocated" in reason

    for peer in (a, b):
        wait_for(lambda peer=peer: forked(peer), what=f"{peer.data_dir.name} to record the fork")
    logged = {peer.data_dir.name: _op_at(peer, thread, place) for peer in (a, b)}
    assert logged == {"a": one.hash.hex(), "b": other.hash.hex()}, "each keeps its own side"
    wait_for(lambda: decisions(a, thread) == decisions(b, thread), what="the same decisions")
    converged_notes(a, b, thread)

    # And they keep replicating.
    note_reaches(a, b, thread, "after the fork, from a")
    note_reaches(b, a, thread, "after the fork, from b")
    assert decisions(a, thread) == decisions(b, thread)
    for peer in (a, b):
        forks = shell(peer, f"{HOSTILE}; forks_print('{thread}')")
        assert forks == f"{one.device.hex()} {one.seq}", peer.data_dir.name


def _op_at(peer: Peer, thread: str, place: tuple[str, int]) -> str:
    (op,) = [op for op in ops_of(peer, thread) if (op["device"], op["seq"]) == place]
    return op["hash"]


def converged_notes(a: Peer, b: Peer, thread: str) -> list[dict]:
    return wait_for(lambda: (n := a.notes(thread)) == b.notes(thread) and n, what="the same notes")


def _junk(members: Members, kind: str) -> list[Op]:
    a, thread = members.a, bytes.fromhex(members.thread)
    heads: dict[bytes, int] = {}
    for op in ops_of(a, members.thread):
        device = bytes.fromhex(op["device"])
        heads[device] = max(heads.get(device, 0), op["seq"])
    if kind == "another thread":
        thread = os.urandom(32)
    return junk_ops(thread, heads, 1000)


@pytest.mark.parametrize("kind", ["throw-away keys", "another thread"])
def test_a_member_flooding_junk_is_cut_at_the_cap_and_honest_notes_still_sync(members, kind):
    a, b, thread = members.a, members.b, members.thread
    junk = _junk(members, kind)
    outcome = push(members, a, [op.raw for op in junk])
    assert outcome.refused == "malformed" or outcome.ended, "the session was cut"
    c_peer = str(identity.peer_id_from_public_key(bytes(members.c_key.verify_key)))
    limited = a.network()["limited"]
    assert limited[c_peer]["strikes"] >= 1
    assert f"the limit is {MAX_JUNK}" in limited[c_peer]["reason"]
    kept = {op["hash"] for op in ops_of(a, thread)} & {op.hash.hex() for op in junk}
    assert not kept, f"{len(kept)} junk ops entered the log"

    note_reaches(a, b, thread, f"after {kind}, from a")
    note_reaches(b, a, thread, f"after {kind}, from b")


def test_the_first_frame_of_every_protocol_is_small_and_soon(members):
    a = members.a
    rogue = RoguePeer().start()  # a stranger: nothing is read from it before its first frame
    try:
        rogue.call(rogue.connect, a.peer_id, a.network()["addresses"])
        oversized = encode_uvarint(frames.FIRST_FRAME + 1) + b"\x00" * 65536
        refused = rogue.call(rogue.first_frames, a.peer_id, oversized)
        silent = rogue.call(rogue.first_frames, a.peer_id, b"")
    finally:
        rogue.stop()
    assert set(refused) == set(silent) == set(PROTOCOLS)
    assert max(refused.values()) < 3, refused
    strikes = a.network()["limited"][str(rogue.host.get_id())]
    assert strikes["strikes"] == len(PROTOCOLS)
    assert f"(the limit is {frames.FIRST_FRAME})" in strikes["reason"]
    assert all(4 < seconds < 10 for seconds in silent.values()), silent  # FIRST_IDLE: 5 s


def test_junk_a_future_stamp_and_a_fork_together_leave_honest_sync_fast(members):
    """The acceptance test of issue 9 on real nodes: with a fork already recorded (above), a
    member pushing an op stamped a day ahead, then 10 000 ops of throw-away keys, does not stop
    two honest nodes from syncing a new note within 2 s of each other."""
    a, b, c, thread = members.a, members.b, members.c, members.thread
    future = op_decode(bytes.fromhex(shell(c, f"{FUTURE}; future_op('{thread}')")))
    push(members, a, [future.raw])
    assert future.hash.hex() not in {op["hash"] for op in ops_of(a, thread)}, "held, not kept"
    heads: dict[bytes, int] = {}
    for op in ops_of(a, thread):
        device = bytes.fromhex(op["device"])
        heads[device] = max(heads.get(device, 0), op["seq"])
    junk = junk_ops(bytes.fromhex(thread), heads, 10_000)
    push(members, a, [op.raw for op in junk])
    started = time.monotonic()
    note_reaches(a, b, thread, "through the noise")
    assert time.monotonic() - started < 2.0
    assert not {op["hash"] for op in ops_of(b, thread)} & {op.hash.hex() for op in junk}
