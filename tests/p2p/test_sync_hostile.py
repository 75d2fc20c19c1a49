"""The sync protocol's defences against a hostile peer, piece by piece: the first frame of an
inbound stream read under small limits (real libp2p hosts on 127.0.0.1), what a side lacks
(forks included) before it may end a session, and what a departed member's device may send."""

from __future__ import annotations

import time
from functools import partial

import multiaddr
import nacl.signing
import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import PeerInfo
from libp2p.utils import encode_uvarint, encode_varint_prefixed

from apps.core.thread import payloads as p
from apps.core.thread.replica import IngestResult, Verified
from apps.core.thread.writer import ThreadWriter
from apps.p2p import frames, threads_io
from apps.p2p.host import host_build, quiet_libp2p_logs
from apps.p2p.limits import PeerLimits
from apps.p2p.protocols.sync import admissible, lacks
from apps.p2p.wire import FIRST_IDLE, FrameChannel, PeerFault

PROBE = TProtocol("/sereus/test/first-frame")
A, B, C = b"\xaa" * 32, b"\xbb" * 32, b"\xcc" * 32
HASH = b"\x11" * 32

# -- the first frame of an inbound stream ---------------------------------------------------------


async def _first_read(
    send: bytes, *, idle: float = FIRST_IDLE
) -> tuple[frames.Frame | Exception, float, int]:
    """Open a stream between two real hosts, write ``send`` on it, and read the first frame on
    the other side with ``read_first``: what it gave (or raised), how long it took, and how many
    bytes the reading side took off the stream."""
    quiet_libp2p_logs()
    server = host_build(nacl.signing.SigningKey.generate())
    client = host_build(nacl.signing.SigningKey.generate())
    outcome: list = []
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]

    async def handler(stream) -> None:
        channel = FrameChannel(stream, "client", PeerLimits())
        started = time.monotonic()
        try:
            outcome.append(await channel.read_first(idle=idle))
        except Exception as exc:  # what the reading side makes of it is the point
            outcome.append(exc)
        outcome.extend([time.monotonic() - started, channel.bytes_in])
        await channel.reset()

    server.set_stream_handler(PROBE, handler)
    async with server.run(listen_addrs=listen), client.run(listen_addrs=listen):
        with trio.fail_after(20):
            await client.connect(PeerInfo(server.get_id(), server.get_addrs()))
            stream = await client.new_stream(server.get_id(), [PROBE])
            if send:
                await stream.write(send)
            while len(outcome) < 3:
                await trio.sleep(0.01)
    return outcome[0], outcome[1], outcome[2]


def test_a_small_first_frame_is_read():
    hello = frames.Hello(b"\x01" * 32)
    frame, _seconds, _taken = trio.run(_first_read, encode_varint_prefixed(frames.encode(hello)))
    assert frame == hello


def test_a_first_frame_announced_over_4_kib_is_refused_before_it_is_read():
    # The peer announces 4 MiB (and sends 64 KiB of it): refused on the announced length.
    announced = encode_uvarint(frames.MAX_FRAME) + b"\x00" * 65536
    refusal, seconds, taken = trio.run(_first_read, announced)
    assert isinstance(refusal, PeerFault)
    assert f"the limit is {frames.FIRST_FRAME}" in str(refusal)
    assert taken == 0, "nothing of its body was read"
    assert seconds < 1


def test_a_first_frame_that_does_not_come_is_given_up_on_soon():
    assert FIRST_IDLE == 5.0
    timeout, seconds, _taken = trio.run(partial(_first_read, b"", idle=0.3))
    assert isinstance(timeout, trio.TooSlowError)
    assert 0.25 < seconds < 2


# -- what a side lacks before it may end a session ------------------------------------------------


def _flight(mine: dict, forks: dict | None = None) -> threads_io.Flight:
    return threads_io.Flight([], {}, mine, {}, forks or {})


@pytest.mark.parametrize(
    ("mine", "my_forks", "theirs", "lacking"),
    [
        ({A: 3}, {}, frames.VersionVector({A: 3}), False),
        ({A: 3}, {}, frames.VersionVector({A: 2, B: 1}), True),
        ({A: 3, B: 1}, {}, frames.VersionVector({A: 2, B: 1}), False),
        # a fork the peer knows and this side does not (or only at a later seq)
        ({A: 3}, {}, frames.VersionVector({A: 3}, {}, {A: 3}), True),
        ({A: 3}, {A: 5}, frames.VersionVector({A: 3}, {}, {A: 3}), True),
        ({A: 3}, {A: 3}, frames.VersionVector({A: 3}, {}, {A: 3}), False),
        ({A: 3}, {A: 2}, frames.VersionVector({A: 3}, {}, {A: 3}), False),
        # past a device's fork, its ops are refused everywhere: the other branch is not lacked
        ({A: 5}, {A: 5}, frames.VersionVector({A: 9}, {}, {A: 5}), False),
        ({A: 3}, {A: 5}, frames.VersionVector({A: 9}, {}, {A: 5}), True),
        ({A: 4}, {A: 5}, frames.VersionVector({A: 9}, {}, {A: 5}), False),
    ],
)
def test_a_side_lacks_ops_it_could_take_and_forks_it_does_not_know(mine, my_forks, theirs, lacking):
    assert lacks(_flight(mine, my_forks), theirs) is lacking


# -- what a departed member's device may send -----------------------------------------------------


@pytest.fixture
def chain() -> list:
    """A thread's first ops, all by one device: creation, then notes."""
    writer = ThreadWriter.create(
        master_secret=b"\x07" * 32, device_key=nacl.signing.SigningKey.generate(), name="t"
    )
    cols = {"title": "x", "body": "", "pinned": False, "stars": 0, "created": "2026-01-01"}
    for i in range(3):
        writer.write_data([p.RowChange("replicated_app_note", f"{i:032x}", p.UPSERT, cols)])
    return list(writer.replica.admitted)


def test_a_departed_device_may_send_only_its_departures_past(chain):
    departure = chain[-2]
    checked = Verified((*chain, IngestResult("malformed", "bad signature")))
    kept, dropped = admissible(checked, "until", departure)
    assert kept.items == (*chain[:-1], checked.items[-1])
    assert dropped == 1, "the op after the departure"
    assert admissible(checked, "full", None) == (checked, 0)
