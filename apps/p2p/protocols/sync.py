"""``/sereus/sync/1.0.0``: two devices of a thread bring each other's logs up to date.

A session starts with ``hello(thread)`` from the initiator. The responder checks, by the
Noise-authenticated peer id, that the initiator is a certified device of the thread (or a removed
member's device, which may learn of its removal and nothing after it) and otherwise answers
``err refused``, the same answer as for a thread it does not have: a stranger learns nothing, not
even whether the thread exists here.

Then the two sides take turns sending **flights**: the ops the other lacks by its last version
vector (``ops`` frames, in admission order, which is causal order, at most 256 ops / 2 MiB each),
then ``vv`` with their own vector. Whoever receives a flight, has nothing the other lacks, and
lacks nothing the other has, ends the session with ``done(vv)``. The initiator's first flight
already carries the ops the responder lacked at their last session (a push costs one round
trip); without that knowledge it is just the vector. The cost follows what is missing: the ops
come from the (device, seq) index, page by page, while the receiver ingests the previous pages.

A stream may carry one session after another: after ``done`` the initiator may send the next
``hello`` (a push then skips opening a stream, which costs more than the push itself). The
responder waits ``STREAM_IDLE`` seconds for it, then closes; the initiator stops reusing a stream
well before that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio
from libp2p.abc import INetStream

from apps.core.thread.replica import Verified, verified
from apps.p2p import frames, threads_io
from apps.p2p.bridge import unwrap
from apps.p2p.protocols import SYNC_PROTOCOL
from apps.p2p.wire import FrameChannel, PeerFault, PeerRefused, StreamEnded

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

PROTOCOL = SYNC_PROTOCOL
MAX_FLIGHTS = 12  # an honest session needs 2-4; a session that does not settle is cut
INGEST_QUEUE = 4  # frames received ahead of the database (back-pressure beyond that)
INGEST_BATCH = 1024  # ops per database transaction while catching up
STREAM_IDLE = 30.0  # how long a responder keeps an idle stream open for the next session
NOT_HERE = "this node has nothing for you under that thread id"
LIMITS = {"limit_bytes": frames.BATCH_BYTES, "limit_ops": frames.MAX_OPS_PER_FRAME}


async def send_ops(
    node: SereusNode,
    channel: FrameChannel,
    thread: bytes,
    grant: threads_io.Access,
    removal,
    flight: threads_io.Flight,
) -> int:
    """Send the flight's first page and every page after it (``ops_page`` from its cursor),
    reading the next page from the database while the current one is on the wire."""
    if not flight.page:
        return 0
    pages_send, pages_recv = trio.open_memory_channel[list[bytes]](1)
    sent = 0

    async def produce(page: list[bytes], cursor: dict[bytes, int]) -> None:
        async with pages_send:
            while page:
                await pages_send.send(page)
                page, cursor = await node.db(
                    threads_io.ops_page, thread, cursor, grant, removal, **LIMITS
                )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce, flight.page, flight.cursor)
        async with pages_recv:
            async for ops in pages_recv:
                await channel.send(frames.Ops(ops))
                sent += len(ops)
    return sent


async def receive_ops(
    node: SereusNode, channel: FrameChannel, apply: Callable[[Verified], Awaitable[None]]
) -> tuple[frames.Frame, int]:
    """Read ``ops`` frames and apply them until another frame comes; return it and the count.

    Three stages overlap: reading frames, checking signatures (C code, outside the GIL, in its
    own thread) and applying the checked ops (a database thread), with bounded queues between
    them: a slow database slows the reading, and yamux's flow control slows the sender."""
    batches_send, batches_recv = trio.open_memory_channel[list[bytes]](INGEST_QUEUE)
    checked_send, checked_recv = trio.open_memory_channel[Verified](1)
    received = 0

    async def check() -> None:
        async with batches_recv, checked_send:
            async for batch in batches_recv:
                while len(batch) < INGEST_BATCH:
                    try:
                        batch = batch + batches_recv.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await checked_send.send(await node.cpu(verified, batch))

    async def ingest() -> None:
        async with checked_recv:
            async for checked in checked_recv:
                await apply(checked)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(check)
        nursery.start_soon(ingest)
        async with batches_send:
            while True:
                frame = await channel.read()
                if not isinstance(frame, frames.Ops):
                    break
                if not frame.ops:
                    raise PeerFault("an empty ops frame")
                received += len(frame.ops)
                await batches_send.send(frame.ops)
    return frame, received


def covers(mine: dict[bytes, int], theirs: dict[bytes, int]) -> bool:
    """True when ``mine`` holds every op ``theirs`` does."""
    return all(mine.get(device, 0) >= seq for device, seq in theirs.items())


class _Session:
    def __init__(
        self,
        node: SereusNode,
        channel: FrameChannel,
        thread: bytes,
        device: bytes,
        grant: threads_io.Access,
        removal,
    ) -> None:
        self.node = node
        self.channel = channel
        self.thread = thread
        self.device = device
        self.grant = grant
        self.removal = removal
        self.sent = 0
        self.received = 0

    async def send_flight(self, flight: threads_io.Flight) -> None:
        """The flight's ops, then our vector."""
        self.sent += await send_ops(
            self.node, self.channel, self.thread, self.grant, self.removal, flight
        )
        await self.channel.send(frames.VersionVector(flight.mine))

    async def receive_flight(self) -> tuple[bool, dict[bytes, int]]:
        """Ingest the peer's ops as they come, until its ``vv`` (False) or ``done`` (True)."""

        async def apply(checked: Verified) -> None:
            await self.node.ingest(self.thread, self.device, checked)

        frame, received = await receive_ops(self.node, self.channel, apply)
        if not isinstance(frame, frames.VersionVector | frames.Done):
            raise PeerFault(f"unexpected {type(frame).__name__} frame in a sync")
        self.received += received
        self.node.vv_seen(self.thread, self.device, frame.vv)
        return isinstance(frame, frames.Done), frame.vv

    async def turns(self) -> None:
        """Receive a flight, answer with ours or end, until one side ends."""
        for _ in range(MAX_FLIGHTS):
            done, their_vv = await self.receive_flight()
            if done:
                return
            flight = await self.node.db(
                threads_io.flight, self.thread, their_vv, self.grant, self.removal, **LIMITS
            )
            if not flight.page and covers(flight.mine, their_vv):
                await self.channel.send(frames.Done(flight.mine))
                return
            await self.send_flight(flight)
        raise PeerFault(f"the session did not settle in {MAX_FLIGHTS} flights")


async def initiate(node: SereusNode, thread: bytes, device: bytes) -> tuple[int, int]:
    """Sync ``thread`` with ``device`` (connected); returns (ops sent, ops received)."""
    grant, removal, first = await node.db(
        threads_io.opening, thread, device, node.known_vv(thread, device), **LIMITS
    )
    if first is None:
        return 0, 0  # not a device of the thread (any more): nothing to say to it
    for attempt in range(2):
        stream, reused = await node.sync_stream_take(device)
        channel = node.channel(stream, device)
        session = _Session(node, channel, thread, device, grant, removal)
        try:
            await channel.send(frames.Hello(thread))
            await session.send_flight(first)
            await session.turns()
        except Exception as error:
            await channel.reset()
            exc = unwrap(error)
            if (
                not isinstance(exc, PeerFault | PeerRefused | trio.TooSlowError)
                and reused
                and attempt == 0
                and session.received == 0
            ):
                continue  # the idle stream had been closed meanwhile: once more on a new one
            raise exc from error
        node.sync_stream_give(device, stream)
        return session.sent, session.received
    raise AssertionError("unreachable")


async def _next_hello(channel: FrameChannel) -> frames.Frame | None:
    """The first frame of the next session on this stream; None when the initiator closed it
    or left it idle for ``STREAM_IDLE`` seconds."""
    with trio.move_on_after(STREAM_IDLE):
        try:
            return await channel.read(idle=STREAM_IDLE + 1)
        except StreamEnded:
            return None
    return None


async def respond(node: SereusNode, stream: INetStream, device: bytes) -> None:
    """Serve the sync sessions ``device`` opens on this stream (limits checked by the node)."""
    channel = node.channel(stream, device)
    try:
        hello: frames.Frame | None = await channel.read()
        while hello is not None:
            if not isinstance(hello, frames.Hello):
                raise PeerFault(f"a sync starts with hello, not {type(hello).__name__}")
            grant, removal = await node.db(threads_io.access, hello.thread, device)
            if grant == "none":
                await channel.refuse("refused", NOT_HERE)
                return
            session = _Session(node, channel, hello.thread, device, grant, removal)
            await session.turns()
            node.synced(hello.thread, device, session.sent, session.received)
            hello = await _next_hello(channel)
            if hello is not None and not node.session_allowed(device):
                await channel.refuse("busy", "too many sessions; try again later")
                return
    finally:
        await channel.close()
