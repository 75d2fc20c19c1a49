"""Flights of a sync session on the wire (``protocols.sync``): sending a flight's ops page by
page, taking in the peer's as they come, and comparing what the two sides hold.

Shared with the invite protocol, which sends a newcomer its log as a sync flight would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio

from apps.core.thread.op import Op
from apps.core.thread.replica import Verified, verified
from apps.p2p import frames, threads_io
from apps.p2p.wire import FrameChannel, PeerFault

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

INGEST_QUEUE = 4  # frames received ahead of the database (back-pressure beyond that)
INGEST_BATCH = 1024  # ops per database transaction while catching up
PUSH_BATCH = 16  # ops at most checked in the database thread with their ingest (``receive_ops``)
LIMITS = {"limit_bytes": frames.BATCH_BYTES, "limit_ops": frames.MAX_OPS_PER_FRAME}
Vector = frames.VersionVector | frames.Done


async def send_ops(
    node: SereusNode,
    channel: FrameChannel,
    thread: bytes,
    grant: threads_io.Access,
    removal: Op | None,
    flight: threads_io.Flight,
) -> tuple[int, dict[bytes, int]]:
    """Send the flight's first page and every page after it (``ops_page`` from its cursor),
    reading the next page from the database while the current one is on the wire, then the
    flight's fork evidence (after the pages: its causal past is in them or at the peer).
    Returns how many ops went and the cursor past the last page."""
    pages_send, pages_recv = trio.open_memory_channel[list[bytes]](1)
    sent = 0
    cursor = flight.cursor

    async def produce(page: list[bytes]) -> None:
        nonlocal cursor
        async with pages_send:
            while page:
                await pages_send.send(page)
                if covers(cursor, flight.mine):
                    # Past everything this node held when the flight was made: no trip to the
                    # database for an empty page (a push's one page is the whole flight). Ops
                    # written since then go in the session their write starts.
                    break
                page, cursor = await node.db(
                    threads_io.ops_page, thread, cursor, grant, removal, **LIMITS
                )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce, flight.page)
        async with pages_recv:
            async for ops in pages_recv:
                await channel.send(frames.Ops(ops))
                sent += len(ops)
    if flight.news:
        await channel.send(frames.Ops(flight.news))
        sent += len(flight.news)
    return sent, cursor


async def receive_ops(
    node: SereusNode,
    channel: FrameChannel,
    apply: Callable[[Verified | list[bytes]], Awaitable[object]],
    trusted: Callable[[], bool] = lambda: True,
    ahead: tuple[frames.Frame, ...] = (),
) -> tuple[frames.Frame, int]:
    """Read ``ops`` frames and apply them until another frame comes; return it and the count.
    ``ahead``: frames the caller read already, taken before the channel's.

    Three stages overlap: reading frames, checking signatures (C code, outside the GIL, in its
    own thread) and applying the checked ops (a database thread), with bounded queues between
    them: a slow database slows the reading, and yamux's flow control slows the sender. A small
    batch with nothing behind it (a push) goes to ``apply`` unchecked, to be checked in the same
    worker thread trip as its ingest: one trip instead of two is what its latency is made of.
    So does any batch while ``trusted()`` is False (the peer's access not looked at yet): no
    signature is checked for a peer that may have none."""
    batches_send, batches_recv = trio.open_memory_channel[list[bytes]](INGEST_QUEUE)
    checked_send, checked_recv = trio.open_memory_channel[Verified | list[bytes]](1)
    received = 0

    async def check() -> None:
        async with batches_recv, checked_send:
            async for batch in batches_recv:
                while len(batch) < INGEST_BATCH:
                    try:
                        batch = batch + batches_recv.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                if len(batch) <= PUSH_BATCH or not trusted():
                    await checked_send.send(batch)
                else:
                    await checked_send.send(await node.cpu(verified, batch))

    async def ingest() -> None:
        async with checked_recv:
            async for checked in checked_recv:
                await apply(checked)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(check)
        nursery.start_soon(ingest)
        async with batches_send:
            read_ahead = list(ahead)
            while True:
                frame = read_ahead.pop(0) if read_ahead else await channel.read()
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


def lacks(mine: threads_io.Flight, theirs: Vector) -> bool:
    """Whether this side lacks something the peer has: a fork it does not know (or knows only
    at a later seq), or an op it could still take. A device's ops from its first forked seq on
    are refused everywhere and the branches differ from replica to replica: not lacked."""
    if any(
        mine.forks.get(device, threads_io.NO_FORK) > seq for device, seq in theirs.forks.items()
    ):
        return True
    for device, seq in theirs.vv.items():
        fork = mine.forks.get(device)
        wanted = seq if fork is None else min(seq, fork - 1)
        if mine.mine.get(device, 0) < wanted:
            return True
    return False
