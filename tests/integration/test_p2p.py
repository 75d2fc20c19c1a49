"""Threads replicate between real nodes: separate ``runnode`` processes talking libp2p on
127.0.0.1, driven through their HTTP API like a person's browser or script would."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.core import identity
from apps.core.thread.op import op_decode
from apps.core.threads import invite_words
from tests.support.api import ApiError, wait_for
from tests.support.nodes import REPO, manage
from tests.support.p2p import Peer, converged
from tests.support.rogue import RoguePeer

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def peers():
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.kill()


def start(peers: list[Peer], path: Path, **kwargs) -> Peer:
    peer = Peer(path, **kwargs)
    peers.append(peer)
    return peer.start()


def titles(dump: dict) -> list[str]:
    return sorted(row[1] for row in dump["notes"])


def ops_of(peer: Peer, thread: str) -> list[dict]:
    assert peer.api is not None
    return peer.api.get(f"/api/v1/threads/{thread}/ops/?limit=1000")["ops"]


def shell(peer: Peer, code: str) -> str:
    result = manage(peer.data_dir, "shell", "-v", "0", "-c", code, env=peer.env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_three_nodes_join_by_link_write_restart_and_catch_up(peers, tmp_path):
    a = start(peers, tmp_path / "a")
    b = start(peers, tmp_path / "b")
    c = start(peers, tmp_path / "c")
    thread = a.thread_create("Book club")
    assert b.redeem(a.invite(thread))["id"] == thread
    assert c.redeem(a.invite(thread))["id"] == thread

    a.note(thread, "from a")
    b.note(thread, "from b")
    c.note(thread, "from c")
    dump = converged([a, b, c], thread)
    assert titles(dump) == ["from a", "from b", "from c"]
    assert all(status == "accepted" for _hash, status in dump["ops"])

    # B stops, the others write, B comes back on another port: it catches up, and they find it.
    b.stop()
    a.note(thread, "while b was away")
    c.note(thread, "also while b was away")
    b.process.p2p_listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
    b.start()
    dump = converged([a, b, c], thread)
    assert "while b was away" in titles(dump)
    b.note(thread, "b is back")
    assert "b is back" in titles(converged([a, b, c], thread))

    # C goes offline and writes 100 notes there; back online, everyone has them.
    c.stop()
    shell(c, f"from tests.support.offline import notes_write; notes_write('{thread}', 100)")
    a.note(thread, "a while c was offline")
    c.start()
    dump = converged([a, b, c], thread, timeout=90)
    assert len(dump["notes"]) == 7 + 100
    assert sum(title.startswith("offline ") for title in titles(dump)) == 100
    assert all(status == "accepted" for _hash, status in dump["ops"])
    status = a.network()
    (entry,) = [t for t in status["threads"] if t["thread"] == thread]
    assert entry["connected_peers"] == 2


def my_member_id(peer: Peer, thread: str) -> str:
    assert peer.api is not None
    members = peer.api.get(f"/api/v1/threads/{thread}/members/")
    return next(m["id"] for m in members if m["me"])


def log_positions(peer: Peer, thread: str) -> dict[bytes, int]:
    """The version vector of a stopped node's log (read by a shell in its data dir)."""
    lines = shell(peer, f"from tests.support.offline import log_print; log_print('{thread}')")
    return {bytes.fromhex(d): int(s) for d, s in (line.split() for line in lines.splitlines())}


def test_a_removed_member_gets_nothing_new_and_its_late_ops_are_dropped(peers, tmp_path):
    a = start(peers, tmp_path / "a")
    b = start(peers, tmp_path / "b")
    c = start(peers, tmp_path / "c")
    thread = a.thread_create("Council")
    b.redeem(a.invite(thread))
    c.redeem(a.invite(thread))
    c.note(thread, "c before removal")
    converged([a, b, c], thread)

    a.api.delete(f"/api/v1/threads/{thread}/members/{my_member_id(c, thread)}/")
    # C's node learns that it was removed: the removal is the last thing it may receive.
    wait_for(
        lambda: c.api.get(f"/api/v1/threads/{thread}/")["state"] == "removed",
        what="C to learn of its removal",
    )
    removal_n = max(op["n"] for op in ops_of(a, thread))
    a.note(thread, "secret after removal")
    b.note(thread, "also secret")
    converged([a, b], thread)
    after_removal = {op["hash"] for op in ops_of(a, thread) if op["n"] > removal_n}
    assert len(after_removal) >= 2
    assert not {op["hash"] for op in ops_of(c, thread)} & after_removal

    # A modified C (its device key, the last key epoch it has) asks A for more, and sends a
    # note it wrote after seeing its removal.
    c.stop()
    forged = shell(
        c, f"from tests.support.offline import late_note_forge as f; print(f('{thread}'))"
    )
    late = bytes.fromhex(forged)
    late_op = op_decode(late)
    c_vv = log_positions(c, thread) | {late_op.device: late_op.seq}
    rogue = RoguePeer(identity.device_key_load(c.data_dir).signing_key).start()
    try:
        rogue.call(rogue.connect, a.peer_id, a.network()["addresses"])
        outcome = rogue.call(rogue.sync, a.peer_id, bytes.fromhex(thread), c_vv, [late])
    finally:
        rogue.stop()
    assert outcome.refused is None  # it may learn what led to its removal...
    assert not {op_decode(raw).hash.hex() for raw in outcome.received} & after_removal  # no more
    # ...and what it signed after its removal is dropped unseen: never in any member's log (A
    # ingests a session's ops before it answers, so they would be there by now).
    assert late_op.hash.hex() not in {op["hash"] for op in ops_of(a, thread)}
    a.note(thread, "after the late op")
    assert "written after removal" not in titles(converged([a, b], thread))
    for peer in (a, b):
        assert late_op.hash.hex() not in {op["hash"] for op in ops_of(peer, thread)}


def test_a_stranger_that_knows_the_address_and_thread_id_gets_nothing(peers, tmp_path):
    a = start(peers, tmp_path / "a")
    thread = a.thread_create("Private")
    a.note(thread, "private note")
    rogue = RoguePeer().start()
    try:
        rogue.call(rogue.connect, a.peer_id, a.network()["addresses"])
        asked = rogue.call(rogue.sync, a.peer_id, bytes.fromhex(thread), {}, [])
        unknown = rogue.call(rogue.sync, a.peer_id, bytes(32), {}, [])
        redeemed = rogue.call(rogue.redeem_junk, a.peer_id, bytes.fromhex(thread))
    finally:
        rogue.stop()
    assert (asked.refused, asked.received, asked.their_vv) == ("refused", [], {})
    # The same answer as for a thread the node does not have: not even existence leaks.
    assert (unknown.refused, unknown.received) == ("refused", [])
    assert redeemed == "unknown"
    assert [m["me"] for m in a.api.get(f"/api/v1/threads/{thread}/members/")] == [True]


def test_redeeming_says_clearly_why_an_invite_does_not_work(peers, tmp_path):
    a = start(peers, tmp_path / "a")
    b = start(peers, tmp_path / "b")
    c = start(peers, tmp_path / "c")
    thread = a.thread_create("Club")

    def refused(peer: Peer, link: str) -> tuple[int, str]:
        with pytest.raises(ApiError) as failure:
            peer.redeem(link)
        return failure.value.status, failure.value.body["error"]

    def said(peer: Peer, link: str) -> str:
        with pytest.raises(ApiError) as failure:
            peer.redeem(link)
        return failure.value.body["detail"]

    link = a.invite(thread)
    b.redeem(link)
    assert refused(c, link) == (409, "used")
    assert said(c, link) == invite_words.USED  # in plain words, the joining node's own
    revoked = a.invite_create(thread)
    a.api.delete(f"/api/v1/threads/{thread}/invites/{revoked['id']}/")
    assert refused(c, revoked["link"]) == (410, "revoked")
    assert said(c, revoked["link"]) == invite_words.REVOKED
    assert refused(c, "sereus:invite/broken") == (400, "malformed")
    offline = a.invite(thread)
    a.stop()
    assert refused(c, offline) == (503, "unreachable")
    assert thread not in [t["id"] for t in c.api.get("/api/v1/threads/")]


def flood_start(target: Peer, frames: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.support.rogue", "flood", "--frames", str(frames)]
    command += ["--target", f"{target.peer_id}@{target.network()['addresses'][0]}"]
    return subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def catch_up_seconds(a: Peer, b: Peer, thread: str, notes: int) -> float:
    """B stops, A gets ``notes`` new notes, B starts: seconds from B's host running to B
    holding A's database."""
    b.stop()
    shell(a, f"from tests.support.offline import notes_write; notes_write('{thread}', {notes})")
    expected = a.dump(thread)
    b.start()
    started = time.monotonic()
    wait_for(lambda: b.dump(thread) == expected, timeout=120, interval=0.02, what="B's catch-up")
    return time.monotonic() - started


def _flooded_catch_up(a: Peer, b: Peer, thread: str) -> float:
    """A catch-up of B from A while a hostile peer sends A 10 000 junk frames."""
    flood = flood_start(a, 10_000)
    try:
        wait_for(lambda: a.network()["stats"]["refused_streams"] > 0, what="the flood to begin")
        seconds = catch_up_seconds(a, b, thread, 600)
        out, err = flood.communicate(timeout=300)
    finally:
        flood.kill()
    assert flood.returncode == 0, err
    assert json.loads(out)["frames"] >= 10_000
    return seconds


@pytest.mark.alone  # compares two catch-up times: other tests beside it skew one of them
def test_a_flood_of_junk_does_not_crash_a_node_or_stall_an_honest_sync(peers, tmp_path):
    a = start(peers, tmp_path / "a")
    b = start(peers, tmp_path / "b")
    thread = a.thread_create("Busy")
    b.redeem(a.invite(thread))
    converged([a, b], thread)
    # The same statistic both ways (the best of two), over catch-ups long enough that a
    # scheduling hiccup on this shared machine is not half of one.
    usual = min(catch_up_seconds(a, b, thread, 600) for _ in range(2))
    flooded = min(_flooded_catch_up(a, b, thread) for _ in range(2))
    status = a.network()
    assert status["running"]
    assert status["stats"]["refused_streams"] > 0
    assert flooded <= 2 * usual, f"catch-up took {flooded:.2f}s under flood, {usual:.2f}s usually"
    # A still serves its honest peer afterwards.
    a.note(thread, "after the storm")
    converged([a, b], thread)


REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.skipif(not redis_available(), reason="no Redis on 127.0.0.1:6379")
def test_scale_out_nodes_sync_with_a_separate_p2p_worker(peers, tmp_path):
    """runnode serves the web side only; ``runworker sereus-p2p`` runs the host; Redis between."""
    a = start(peers, tmp_path / "a", redis_url=REDIS_URL)
    b = start(peers, tmp_path / "b", redis_url=REDIS_URL)
    status = a.network()
    assert status.get("mode") == "worker process", status
    thread = a.thread_create("Scaled")
    assert b.redeem(a.invite(thread))["id"] == thread  # the web process asks the worker
    a.note(thread, "from a")
    b.note(thread, "from b")  # written by daphne's process, pushed by the worker's
    assert titles(converged([a, b], thread)) == ["from a", "from b"]


def test_the_dht_finds_a_member_that_moved_through_a_common_contact(peers, tmp_path):
    """B and C share a thread; both restart on new ports while apart, so what the thread says of
    them is stale. A, a member of a thread with each of them, knows both new addresses: C finds
    B through A's DHT (A cannot carry their thread's ops: it is not in that thread)."""
    fast = {"SEREUS_P2P_SYNC_INTERVAL": "3"}
    a = start(peers, tmp_path / "a", env=fast)
    b = start(peers, tmp_path / "b", env=fast)
    c = start(peers, tmp_path / "c", env=fast)
    theirs = b.thread_create("B and C")
    c.redeem(b.invite(theirs))
    for other in (b, c):
        other.redeem(a.invite(a.thread_create(f"A and {other.data_dir.name}")))
    converged([b, c], theirs)

    for moved in (b, c):
        moved.stop()
    for moved in (b, c):
        moved.process.p2p_listen = f"/ip4/127.0.0.1/tcp/{free_port()}"
        moved.start()
    c.note(theirs, "found you")
    assert "found you" in titles(converged([b, c], theirs, timeout=90))
    assert c.peer_id in b.network()["connections"]
