"""A bare libp2p peer that speaks the Sereus protocols by hand, for tests: a stranger asking for a
thread, a removed member trying its luck, a member pushing junk or equivocating ops (with the
member's own device key), a stream whose first frame is too big or never comes, or a flooder
sending junk.

It runs its own host (the node's real configuration, ``apps.p2p.host.host_build``) in a trio
thread, in the test process or as ``python -m tests.support.rogue flood ...`` in a process of
its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import nacl.signing
import trio
from libp2p.custom_types import TProtocol
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.utils import encode_uvarint, encode_varint_prefixed

from apps.core.thread import codec
from apps.p2p import frames
from apps.p2p.bridge import TrioThread
from apps.p2p.host import host_build, quiet_libp2p_logs
from apps.p2p.limits import PeerLimits
from apps.p2p.protocols import BLOB_PROTOCOL, INVITE_PROTOCOL, LIVE_PROTOCOL, SYNC_PROTOCOL
from apps.p2p.wire import FrameChannel, PeerRefused, StreamEnded

TIMEOUT = 10.0
PING_PROTOCOL = TProtocol("/ipfs/ping/1.0.0")
PROTOCOLS = (SYNC_PROTOCOL, INVITE_PROTOCOL, BLOB_PROTOCOL, LIVE_PROTOCOL)
MAX_FLIGHTS = 12


@dataclass
class SyncOutcome:
    received: list[bytes] = field(default_factory=list)
    refused: str | None = None  # the error code, if the node refused
    ended: bool = False  # the node ended the stream before the session did
    their_vv: dict[bytes, int] = field(default_factory=dict)


def batches(ops: list[bytes]) -> list[list[bytes]]:
    """``ops`` cut into the frames a node would send: at most 256 ops and about 2 MiB each."""
    out: list[list[bytes]] = []
    size = 0
    for op in ops:
        if (
            not out
            or len(out[-1]) >= frames.MAX_OPS_PER_FRAME
            or size + len(op) > frames.BATCH_BYTES
        ):
            out.append([])
            size = 0
        out[-1].append(op)
        size += len(op)
    return out


class RoguePeer:
    def __init__(self, key: nacl.signing.SigningKey | None = None) -> None:
        self.key = key or nacl.signing.SigningKey.generate()
        self.host: Any = None
        self.bridge = TrioThread("rogue")

    def start(self) -> RoguePeer:
        quiet_libp2p_logs()
        self.bridge.start(self._run)
        return self

    async def _run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.host = host_build(self.key)
        listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
        async with self.host.run(listen_addrs=[listen]):
            task_status.started()
            await trio.sleep_forever()

    def stop(self) -> None:
        self.bridge.stop()

    def call(self, fn, *args: Any, timeout: float = 120.0) -> Any:
        return self.bridge.submit(fn, *args).result(timeout)

    # -- in the trio thread -------------------------------------------------------------------

    async def connect(self, peer_id: str, addrs: list[str]) -> None:
        info = PeerInfo(ID.from_base58(peer_id), [multiaddr.Multiaddr(a) for a in addrs])
        with trio.fail_after(TIMEOUT):
            await self.host.connect(info)

    async def sync(
        self, peer_id: str, thread: bytes, vv: dict[bytes, int], ops: list[bytes]
    ) -> SyncOutcome:
        """One sync session as initiator: send ``ops`` (in frames of at most 256 ops and 2 MiB,
        as a node would) and ``vv``, take whatever comes back."""
        with trio.fail_after(TIMEOUT):
            stream = await self.host.new_stream(ID.from_base58(peer_id), [SYNC_PROTOCOL])
        channel = FrameChannel(stream, peer_id, PeerLimits())
        outcome = SyncOutcome()
        try:
            await channel.send(frames.Hello(thread))
            for batch in batches(ops):
                await channel.send(frames.Ops(batch))
            await channel.send(frames.VersionVector(vv))
            for _ in range(MAX_FLIGHTS):
                frame = await channel.read()
                if isinstance(frame, frames.Ops):
                    outcome.received.extend(frame.ops)
                elif isinstance(frame, frames.VersionVector):
                    outcome.their_vv = frame.vv
                    await channel.send(frames.Done(vv))
                    break
                elif isinstance(frame, frames.Done):
                    outcome.their_vv = frame.vv
                    break
        except PeerRefused as exc:
            outcome.refused = exc.code
        except (StreamEnded, StreamError):  # the node cut the session (perhaps mid-send)
            outcome.ended = True
        finally:
            await channel.close()
        return outcome

    async def first_frames(self, peer_id: str, data: bytes) -> dict[str, float]:
        """Open a stream of each Sereus protocol at once, write ``data`` on it (a first frame,
        or nothing) and wait for the node to end it: seconds until it did, by protocol."""
        ended: dict[str, float] = {}

        async def probe(protocol: TProtocol) -> None:
            with trio.fail_after(TIMEOUT):
                stream = await self.host.new_stream(ID.from_base58(peer_id), [protocol])
            started = time.monotonic()
            if data:
                await stream.write(data)
            with trio.fail_after(3 * TIMEOUT):
                try:
                    while await stream.read(1 << 16):
                        pass  # whatever the node answers, until it ends the stream
                except Exception:  # noqa: S110 - an ended or reset stream: what we wait for
                    pass
            ended[protocol] = time.monotonic() - started

        async with trio.open_nursery() as nursery:
            for protocol in PROTOCOLS:
                nursery.start_soon(probe, protocol)
        return ended

    async def ping(self, peer_id: str, count: int) -> list[float]:
        """Round trips of 32 bytes on one libp2p ping stream, in seconds."""
        with trio.fail_after(TIMEOUT):
            stream = await self.host.new_stream(ID.from_base58(peer_id), [PING_PROTOCOL])
        rtts = []
        try:
            for _ in range(count):
                payload = os.urandom(32)
                started = time.perf_counter()
                await stream.write(payload)
                echoed = b""
                with trio.fail_after(TIMEOUT):
                    while len(echoed) < len(payload):
                        echoed += await stream.read(len(payload) - len(echoed))
                rtts.append(time.perf_counter() - started)
                assert echoed == payload
        finally:
            await stream.close()
        return rtts

    async def redeem_junk(self, peer_id: str, thread: bytes) -> str | None:
        """A redeem with a made-up invite: the error code the node answers."""
        with trio.fail_after(TIMEOUT):
            stream = await self.host.new_stream(ID.from_base58(peer_id), [INVITE_PROTOCOL])
        channel = FrameChannel(stream, peer_id, PeerLimits())
        device = bytes(self.key.verify_key)
        try:
            await channel.send(
                frames.Redeem(
                    thread, os.urandom(32), os.urandom(32), device, bytes(64), bytes(64), bytes(64)
                )
            )
            await channel.read()
        except PeerRefused as exc:
            return exc.code
        finally:
            await channel.close()
        return None


# -- flooding --------------------------------------------------------------------------------


def junk_frames(rng: random.Random) -> list[bytes]:
    """Wire bytes a hostile peer might send: garbage, lies about sizes, wrong frames."""
    huge = rng.randrange(frames.MAX_FRAME + 1, 1 << 40)
    return [
        encode_varint_prefixed(os.urandom(rng.randrange(1, 200))),  # not CBOR
        encode_uvarint(huge) + os.urandom(64),  # an oversized frame announced
        encode_varint_prefixed(codec.encode({"t": "nope"})),  # unknown frame type
        encode_varint_prefixed(codec.encode({"t": "hello", "v": 9, "thread": os.urandom(32)})),
        encode_varint_prefixed(codec.encode([1, 2, 3])),  # not a map
        encode_varint_prefixed(  # a hello for a thread that is not there, then junk ops
            frames.encode(frames.Hello(os.urandom(32)))
        )
        + encode_varint_prefixed(frames.encode(frames.Ops([os.urandom(300)] * 200))),
    ]


async def flood(targets: list[tuple[str, list[str]]], total_frames: int, identities: int) -> dict:
    """Send ``total_frames`` junk frames to the targets from ``identities`` fresh peer ids."""
    rng = random.Random(7)
    sent = refused_streams = failed_dials = 0
    started = time.monotonic()

    async def one_identity(budget: int) -> None:
        nonlocal sent, refused_streams, failed_dials
        host = host_build(nacl.signing.SigningKey.generate())
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            for peer_id, addrs in targets:
                try:
                    with trio.fail_after(TIMEOUT):
                        await host.connect(
                            PeerInfo(
                                ID.from_base58(peer_id), [multiaddr.Multiaddr(a) for a in addrs]
                            )
                        )
                except Exception:  # the target may refuse us: that is the point
                    failed_dials += 1
            done = 0
            while done < budget:
                peer_id, _ = targets[done % len(targets)]
                protocol = SYNC_PROTOCOL if done % 3 else INVITE_PROTOCOL
                try:
                    with trio.fail_after(2):
                        stream = await host.new_stream(ID.from_base58(peer_id), [protocol])
                except Exception:
                    refused_streams += 1
                    done += 1
                    sent += 1
                    await trio.sleep(0)
                    continue
                for data in junk_frames(rng):
                    if done >= budget:
                        break
                    done += 1
                    sent += 1
                    try:
                        with trio.fail_after(1):
                            await stream.write(data)
                    except Exception:
                        break
                try:
                    with trio.fail_after(1):
                        await stream.reset()
                except Exception:  # noqa: S110 - the target already dropped it
                    pass

    per_identity = -(-total_frames // identities)
    async with trio.open_nursery() as nursery:
        for _ in range(identities):
            nursery.start_soon(one_identity, per_identity)
    return {
        "frames": sent,
        "refused_streams": refused_streams,
        "failed_dials": failed_dials,
        "seconds": round(time.monotonic() - started, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A hostile peer, for tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    flood_cmd = sub.add_parser("flood")
    flood_cmd.add_argument("--target", action="append", required=True, help="peer_id@multiaddr")
    flood_cmd.add_argument("--frames", type=int, default=10_000)
    flood_cmd.add_argument("--identities", type=int, default=20)
    args = parser.parse_args(argv)
    quiet_libp2p_logs()
    targets = [(t.split("@", 1)[0], [t.split("@", 1)[1]]) for t in args.target]
    result = trio.run(flood, targets, args.frames, args.identities)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
