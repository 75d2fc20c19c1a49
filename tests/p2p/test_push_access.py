"""A push's hello comes in one write with its flight, and the responder looks the peer's access up
in the same trip to the database as the ingest of its ops (``sync.respond``): one trip on the
push's way, not two. A peer with no access gets the answer it got at its hello before ("refused",
nothing about the thread), and nothing it sent is checked, kept or remembered."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
import trio
from libp2p.network.stream.exceptions import StreamEOF
from libp2p.utils import encode_varint_prefixed

from apps.core.threads.database import ThreadDatabase
from apps.p2p import frames
from apps.p2p.limits import PeerLimits
from apps.p2p.protocols import sync
from apps.p2p.wire import FrameChannel, PeerRefused
from tests.core.threads.conftest import OtherNode, admit, other_node
from tests.p2p.test_threads_io import device_of, log, write_note

pytestmark = pytest.mark.django_db(transaction=True)


class Stream:
    """An inbound stream whose peer wrote ``data`` in one write and then closed it; what this
    side writes is kept."""

    def __init__(self, data: bytes) -> None:
        self.data = bytearray(data)
        self.written = bytearray()

    async def read(self, n: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self.data:
            raise StreamEOF
        taken = bytes(self.data[: n or len(self.data)])
        del self.data[: len(taken)]
        return taken

    async def write(self, data: bytes) -> None:
        self.written += data

    async def close(self) -> None:
        return None

    async def reset(self) -> None:
        return None


class Node:
    """What ``sync.respond`` asks of its node: the database trips (named, in order), the
    vectors it hears and the sessions it ends."""

    def __init__(self) -> None:
        self.trips: list[str] = []
        self.seen: list[bytes] = []
        self.stats = {"ops_received": 0}
        self.limits = PeerLimits()

    async def db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.trips.append(fn.__name__)
        return fn(*args, **kwargs)

    async def cpu(self, fn: Any, *args: Any) -> Any:
        return fn(*args)

    def channel(self, stream: Stream, device: bytes) -> FrameChannel:
        return FrameChannel(stream, "peer", self.limits)  # type: ignore[arg-type]

    def vv_seen(self, thread: bytes, device: bytes, vv: dict[bytes, int]) -> None:
        self.seen.append(device)

    def synced(self, thread: bytes, device: bytes, sent: int, received: int) -> None:
        return None

    def session_allowed(self, device: bytes) -> bool:
        return True


@pytest.fixture
def bob(tdb: ThreadDatabase, tmp_path_factory) -> OtherNode:
    folder = tmp_path_factory.getbasetemp() / "p2p-push-access"
    folder.mkdir(exist_ok=True)
    joiner = other_node(folder, tdb.thread, f"bob_{uuid.uuid4().hex[:8]}")
    admit(tdb, joiner, "writer")
    return joiner


def push(thread: bytes, raws: list[bytes], vv: dict[bytes, int] | None = None) -> bytes:
    """A push as a node writes it: hello, the ops and the vector, in one write."""
    items = (frames.Hello(thread), frames.Ops(raws), frames.VersionVector(vv or {}))
    return b"".join(encode_varint_prefixed(frames.encode(item)) for item in items)


def answers(stream: Stream) -> list[frames.Frame | tuple[str, str]]:
    """The frames this side wrote; an error frame as (code, detail)."""
    channel = FrameChannel(Stream(bytes(stream.written)), "us", PeerLimits())  # type: ignore[arg-type]

    async def main() -> list:
        out: list = []
        while True:
            try:
                out.append(await channel.read())
            except PeerRefused as refused:
                out.append((refused.code, refused.detail))
            except Exception:
                return out

    return trio.run(main)


def respond(node: Node, stream: Stream, device: bytes) -> None:
    trio.run(sync.respond, node, stream, device)


def test_a_members_push_is_taken_in_and_answered_in_one_trip(thread, tdb, bob, monkeypatch):
    op = write_note(bob.database, "from bob")
    with bob.database.lock:
        holds = bob.database.replica().version_vector()
    node, stream = Node(), Stream(push(thread.thread, [op.raw], holds))

    respond(node, stream, device_of(bob.database))

    assert op.hash in {o.hash for o in log(tdb)}
    # The access is looked up in the ingest's own trip, and the answer to the push is read in
    # it too: the push costs the responder one trip to its database thread, not three.
    assert node.trips == ["_ingest_and_flight"]
    assert node.seen == [device_of(bob.database)]
    assert isinstance(answers(stream)[-1], frames.Done)


def test_a_stranger_pushing_in_one_write_is_refused_and_nothing_is_kept(
    thread, tdb, bob, monkeypatch
):
    op = write_note(bob.database, "from bob, sent on by a stranger")
    checked: list[int] = []
    monkeypatch.setattr(sync, "verified", lambda raws: checked.append(len(raws)))
    node, stream = Node(), Stream(push(thread.thread, [op.raw]))

    respond(node, stream, os.urandom(32))

    assert answers(stream) == [("refused", sync.NOT_HERE)], "as at its hello: nothing else"
    assert op.hash not in {o.hash for o in log(tdb)}
    assert checked == [], "no signature checked for a peer with no access"
    assert node.seen == [], "nothing it said is remembered"


def test_a_stranger_sending_a_vector_in_one_write_is_refused(thread, tdb):
    node, stream = Node(), Stream(b"")
    hello_vv = (frames.Hello(thread.thread), frames.VersionVector({os.urandom(32): 5}))
    stream.data += b"".join(encode_varint_prefixed(frames.encode(f)) for f in hello_vv)

    respond(node, stream, os.urandom(32))

    assert answers(stream) == [("refused", sync.NOT_HERE)]
    assert node.seen == []
