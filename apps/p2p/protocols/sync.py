"""``/sereus/sync/1.0.0``: two devices of a thread bring each other's logs up to date.

A session starts with ``hello(thread)`` from the initiator (carrying the frame version, 2). The
responder checks, by the Noise-authenticated peer id, that the initiator is a certified device
of the thread (or a removed member's device, which may learn of its removal and nothing after
it) and otherwise answers ``err refused``, the same answer as for a thread it does not have: a
stranger learns nothing, not even whether the thread exists here. The hello is read with the
small first-frame limits (4 KiB, 5 s): before it the peer has shown nothing. A push's hello
comes in one write with its flight: then the check is made in the same trip to the database as
the ingest of the flight's first ops (one trip on a push's way, not two), before any of them is
checked or kept, and the answer to a peer that fails it is the same.

Then the two sides take turns sending **flights**: the ops the other lacks by its last version
vector (``ops`` frames, in admission order, which is causal order, at most 256 ops / 2 MiB each),
then ``vv`` with their own vector. Whoever receives a flight, has nothing to send, and lacks
nothing the other has, ends the session with ``done(vv)``. The initiator's first flight
already carries the ops the responder lacked at their last session (a push costs one round
trip); without that knowledge it is just the vector. The cost follows what is missing: the ops
come from the (device, seq) index, page by page, while the receiver ingests the previous pages.

**Equivocation.** A vector says, per device, the last seq and the hash of the op there, and
lists the forks the sender knows (device, first forked seq). Comparing seqs alone, two nodes
holding different ops at one (device, seq) would never notice and would stay divergent. So a
side that sees the peer's head at its own head's seq with another hash sends its own op there
in its next flight (the peer's replica then holds two ops at one place and records the fork;
the peer does the same for us), and a side that knows a fork the peer does not list sends its
evidence; a session does not end with ``done`` while the peer lacks a fork this side knows
(``threads_io.fork_news``). When nothing forked this costs nothing: head hashes are kept in
memory by the replica.

**Termination.** Within a session nothing is sent twice (a page cursor and the fork evidence
sent are remembered): ops the peer could not take (it holds another branch of a forked device,
or dropped them for now) are not offered again, and a flight computed from this side's vector
that brings nothing means the peer has nothing more for us, so the session ends even if its
vector still shows ops this side cannot take.

**Junk.** Ops no honest peer sends (malformed, of another thread, of a device not certified in
their causal past, or from a departed member's device beyond its departure, which are dropped
unseen) are counted; more than ``MAX_JUNK`` in a session is a ``PeerFault``, which ends it and
strikes the peer. A departed member's device may send only what is in its departure's causal
past (or the departure itself): anything it signed after learning it was gone never enters the
log.

**Leaving.** A node that left a thread syncs it with the member devices only until one of them
holds its leave: it sends them what led up to the leave and takes nothing from them (access
``leaving``; ``core.threads.leaving``).

A stream may carry one session after another: after ``done`` the initiator may send the next
``hello`` (a push then skips opening a stream, which costs more than the push itself). The
responder waits ``STREAM_IDLE`` seconds for it, then closes; the initiator stops reusing a stream
well before that.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import trio
from libp2p.abc import INetStream

from apps.core.thread.op import Op
from apps.core.thread.replica import Verified, verified
from apps.p2p import client, frames, threads_io
from apps.p2p.bridge import unwrap
from apps.p2p.protocols import SYNC_PROTOCOL
from apps.p2p.protocols.flights import (
    LIMITS,
    PUSH_BATCH,
    Vector,
    covers,
    lacks,
    receive_ops,
    send_ops,
)
from apps.p2p.wire import FrameChannel, PeerFault, PeerRefused, StreamEnded

if TYPE_CHECKING:
    from apps.p2p.node import SereusNode

PROTOCOL = SYNC_PROTOCOL
MAX_FLIGHTS = 12  # an honest session needs 2-4; a session that does not settle is cut
STREAM_IDLE = 30.0  # how long a responder keeps an idle stream open for the next session
# Junk ops a peer may send in one session before it is cut: an honest node sends none, but a
# few may come of a version difference; a flood of them is an attack (and each costs a check).
MAX_JUNK = 64
NOT_HERE = "this node has nothing for you under that thread id"


class NotHere(Exception):
    """The peer of a session whose access was not looked at yet has none: it is refused as if
    at its hello (``NOT_HERE``)."""


def admissible(
    checked: Verified, grant: threads_io.Access, removal: Op | None
) -> tuple[Verified, int]:
    """The ops a device with this access may send, and how many others were dropped: all from
    an active member's device; from a departed member's device, what led up to its departure
    (what it signed after learning it was gone never enters the log). In a thread this node
    left, nothing is taken, and nothing counts against the peer (it has not heard yet)."""
    if grant == "full":
        return checked, 0
    if grant == "leaving":
        return Verified(()), 0
    kept = tuple(
        item
        for item in checked.items
        if not isinstance(item, Op) or threads_io.allowed(grant, removal, item.device, item.seq)
    )
    return Verified(kept), len(checked.items) - len(kept)


def _ingest(
    thread: bytes,
    batch: Verified | list[bytes],
    grant: threads_io.Access | None,
    removal: Op | None,
    device: bytes,
    pushed: bool,
) -> tuple[threads_io.Ingested | None, int, threads_io.Access, Op | None]:
    """In a worker thread: check ``batch`` if not yet, keep what ``device`` may send and ingest
    it; returns the outcome (None if nothing was kept), how many ops were dropped, and the
    access it was taken in under. ``grant`` None: the device's access is looked at here first,
    and nothing is checked or taken in if it has none. The write tells the node
    (``client.notify``) that the ops came from ``device``, and whether they are its own data
    ops, pushed by itself (the node then need not pass them on to every member). Only data
    ops: taking in a control op may make this node write one of its own in the same call (a
    new key epoch after a leave), which must go to everyone."""
    if grant is None:
        grant, removal = threads_io.access(thread, device)
        if grant == "none":
            return None, 0, grant, removal
    checked = batch if isinstance(batch, Verified) else verified(batch)
    kept, dropped = admissible(checked, grant, removal)
    if not kept.items:
        return None, dropped, grant, removal
    own = pushed and all(
        isinstance(item, Op) and item.device == device and item.kind == "data"
        for item in kept.items
    )
    client.received.source = (device, own)
    try:
        return threads_io.ingest(thread, kept), dropped, grant, removal
    finally:
        client.received.source = None


def _ingest_and_flight(
    thread: bytes,
    batch: list[bytes],
    grant: threads_io.Access | None,
    removal: Op | None,
    device: bytes,
    pushed: bool,
    theirs: Vector,
    sent: dict[bytes, int],
) -> tuple[threads_io.Ingested | None, int, threads_io.Access, Op | None, threads_io.Flight | None]:
    """In a worker thread: a push's ops taken in (``_ingest``, the access looked at first) and,
    unless the peer has no access or ended, the flight answering its vector under the access
    as it is after them (``_access_and_flight``). The responder's answer to a push then costs
    no trip of its own, which on a loaded machine was 1-2 ms more before the pusher heard."""
    outcome, dropped, grant, removal = _ingest(thread, batch, grant, removal, device, pushed)
    if grant == "none" or isinstance(theirs, frames.Done):
        return outcome, dropped, grant, removal, None
    grant, removal, flight = _access_and_flight(thread, device, theirs, sent)
    return outcome, dropped, grant, removal, flight


def _access_and_flight(
    thread: bytes, device: bytes, theirs: Vector, sent: dict[bytes, int]
) -> tuple[threads_io.Access, Op | None, threads_io.Flight]:
    """In a worker thread: ``device``'s access to ``thread`` as it is now, and the next flight
    for it under that access."""
    grant, removal = threads_io.access(thread, device)
    flight = threads_io.flight(
        thread,
        theirs.vv,
        grant,
        removal,
        their_heads=theirs.heads,
        their_forks=theirs.forks,
        sent=sent,
        **LIMITS,
    )
    return grant, removal, flight


class _Session:
    def __init__(
        self,
        node: SereusNode,
        channel: FrameChannel,
        thread: bytes,
        device: bytes,
        grant: threads_io.Access | None,
        removal: Op | None,
    ) -> None:
        self.node = node
        self.channel = channel
        self.thread = thread
        self.device = device
        self.grant = grant
        self.removal = removal
        self.sent = 0
        self.received = 0
        self.junk = 0
        # What this session sent, not sent again: per device the seqs last sent (from, to], and
        # the fork evidence.
        self.ranges: dict[bytes, tuple[int, int]] = {}
        self.news_sent: set[bytes] = set()
        self.vv_sent = False  # the peer's flights are computed from our vector from then on
        self.pushed = False  # the peer started the session (a push, when it brings its own ops)

    async def send_flight(self, flight: threads_io.Flight, *before: frames.Frame) -> None:
        """The flight's ops, then our vector (after the frames ``before``)."""
        news = [raw for raw in flight.news if raw not in self.news_sent]
        self.news_sent.update(news)
        vector = frames.VersionVector(flight.mine, flight.heads, flight.forks)
        if flight.page and not news and covers(flight.cursor, flight.mine):
            # One page is the whole flight (a push): it and the vector in one write.
            await self.channel.send(*before, frames.Ops(flight.page), vector)
            self.sent += len(flight.page)
            self._sent_to(flight, flight.cursor)
            self.vv_sent = True
            return
        if before:
            await self.channel.send(*before)
        sent, cursor = await send_ops(
            self.node,
            self.channel,
            self.thread,
            self.grant,
            self.removal,
            dataclasses.replace(flight, news=news),
        )
        self.sent += sent
        self._sent_to(flight, cursor)
        await self.channel.send(vector)
        self.vv_sent = True

    def _sent_to(self, flight: threads_io.Flight, cursor: dict[bytes, int]) -> None:
        """Remember the ops a flight sent, up to ``cursor``: not offered again."""
        for device, seq in cursor.items():
            start = flight.start.get(device, 0)
            if seq > start:
                self.ranges[device] = (start, seq)

    async def receive_flight(self) -> tuple[Vector, int, threads_io.Flight | None]:
        """Ingest the peer's ops as they come, until its ``vv`` or ``done``; returns that frame,
        how many ops came before it, and our next flight if it was read in the ingest's trip.

        A push (one small ``ops`` frame and the vector, in one write) is taken in here, with
        our answer in the same trip to a worker thread (``_ingest_and_flight``): no reader,
        checker and applier tasks with queues between them, and no second trip for the
        answer. Everything else goes through ``receive_ops``."""
        frame = await self.channel.read()
        ahead: tuple[frames.Frame, ...] = (frame,)
        if (
            isinstance(frame, frames.Ops)
            and 0 < len(frame.ops) <= PUSH_BATCH
            and self.channel.frame_buffered()
        ):
            after = await self.channel.read()  # arrived already: no wait on the peer
            if isinstance(after, frames.VersionVector | frames.Done):
                flight = await self.apply(frame.ops, answer=after)
                return self._heard(after, len(frame.ops)), len(frame.ops), flight
            ahead = (frame, after)
        frame, received = await receive_ops(
            self.node, self.channel, self.apply, lambda: self.grant is not None, ahead
        )
        if not isinstance(frame, frames.VersionVector | frames.Done):
            raise PeerFault(f"unexpected {type(frame).__name__} frame in a sync")
        if self.grant is None:
            # No ops came to look the peer's access up with: nothing it says is kept before.
            self.grant, self.removal = await self.node.db(
                threads_io.access, self.thread, self.device
            )
            if self.grant == "none":
                raise NotHere
        return self._heard(frame, received), received, None

    def _heard(self, theirs: Vector, received: int) -> Vector:
        """The peer's vector, after its ops were taken in: remembered by the node."""
        self.received += received
        self.node.vv_seen(self.thread, self.device, theirs.vv)
        return theirs

    async def apply(
        self, batch: Verified | list[bytes], *, answer: Vector | None = None
    ) -> threads_io.Flight | None:
        """Ingest the ops (checked here if not yet) the peer's access allows; count the junk
        and cut a peer that sends too much of it. With ``answer`` (the peer's vector that came
        with them), also read our next flight in the same trip and return it."""
        unknown = self.grant is None
        flight = None
        if answer is None:
            outcome, dropped, self.grant, self.removal = await self.node.db(
                _ingest, self.thread, batch, self.grant, self.removal, self.device, self.pushed
            )
        else:
            outcome, dropped, self.grant, self.removal, flight = await self.node.db(
                _ingest_and_flight,
                self.thread,
                batch,
                self.grant,
                self.removal,
                self.device,
                self.pushed,
                answer,
                self._unsent(answer),
            )
        if unknown and self.grant == "none":
            raise NotHere
        if outcome is not None:
            self.node.stats["ops_received"] += outcome.accepted + outcome.refused
            dropped += outcome.junk
        self.junk += dropped
        if self.junk > MAX_JUNK:
            raise PeerFault(
                f"{self.junk} junk ops in one session (malformed, foreign, of no device of the "
                f"thread, or past a departure); the limit is {MAX_JUNK}"
            )
        return flight

    def _unsent(self, theirs: Vector) -> dict[bytes, int]:
        """Per device, the seq up to which this session sent ops already: not offered again
        while the peer's vector has not moved past where they started, as it could not take
        them. (A vector lower than where they started, a first flight from a stale memory of
        the peer, gets them again from its real place.)"""
        return {
            device: end
            for device, (start, end) in self.ranges.items()
            if theirs.vv.get(device, 0) >= start
        }

    async def next_flight(self, theirs: Vector) -> threads_io.Flight:
        # The peer's access is looked at again for every flight, not kept from the session's
        # opening: a device revoked (or a member removed) while a session runs must get
        # nothing written after that from the rest of it. Both in one trip to a worker thread:
        # a push's answer waits for it.
        self.grant, self.removal, flight = await self.node.db(
            _access_and_flight, self.thread, self.device, theirs, self._unsent(theirs)
        )
        return flight

    async def turns(self) -> None:
        """Receive a flight, answer with ours or end, until one side ends."""
        for _ in range(MAX_FLIGHTS):
            informed = self.vv_sent
            theirs, received, flight = await self.receive_flight()
            if isinstance(theirs, frames.Done):
                return
            if flight is None:
                flight = await self.next_flight(theirs)
            nothing_new = not flight.page and not set(flight.news) - self.news_sent
            # A flight computed from our vector that brought nothing: the peer has nothing more
            # for us, whatever its vector shows that we cannot take.
            if nothing_new and (not lacks(flight, theirs) or (informed and not received)):
                await self.channel.send(frames.Done(flight.mine, flight.heads, flight.forks))
                return
            await self.send_flight(flight)
        raise PeerFault(f"the session did not settle in {MAX_FLIGHTS} flights")


async def initiate(node: SereusNode, thread: bytes, device: bytes) -> tuple[int, int]:
    """Sync ``thread`` with ``device`` (connected); returns (ops sent, ops received).

    The hello goes out before this side reads its first flight from the database, so that the
    peer checks the hello (its own database trip) meanwhile: a push waits for one trip, not
    two in a row. When the flight was read ahead (``openings``), the hello goes with it."""
    opening = node.openings.take_ready(thread, device)
    for attempt in range(2):
        stream, reused = await node.sync_stream_take(device)
        channel = node.channel(stream, device)
        session: _Session | None = None
        try:
            hello: tuple[frames.Frame, ...] = (frames.Hello(thread),)
            if opening is None:
                await channel.send(*hello)
                hello = ()
                opening = await node.openings.take(thread, device)
            if opening is None:
                opening = await node.db(
                    threads_io.opening, thread, device, node.known_vv(thread, device), **LIMITS
                )
            grant, removal, first = opening
            if first is None:
                # Not a device of the thread (any more): nothing to say to it. The stream,
                # in the middle of a session, is not kept.
                await channel.reset()
                return 0, 0
            session = _Session(node, channel, thread, device, grant, removal)
            await session.send_flight(first, *hello)
            await session.turns()
        except Exception as error:
            await channel.reset()
            exc = unwrap(error)
            if (
                not isinstance(exc, PeerFault | PeerRefused | trio.TooSlowError)
                and reused
                and attempt == 0
                and (session is None or session.received == 0)
            ):
                continue  # the idle stream had been closed meanwhile: once more on a new one
            raise exc from error
        if channel.leftover:
            # Bytes after the session's end: no honest peer sends them, and the next
            # session's channel would not see them.
            await channel.reset()
        else:
            node.sync_stream_give(device, stream)
        return session.sent, session.received
    raise AssertionError("unreachable")


async def _next_hello(channel: FrameChannel) -> frames.Frame | None:
    """The first frame of the next session on this stream; None when the initiator closed it
    or left it idle for ``STREAM_IDLE`` seconds."""
    with trio.move_on_after(STREAM_IDLE):
        try:
            return await channel.read(idle=STREAM_IDLE + 1, max_frame=frames.FIRST_FRAME)
        except StreamEnded:
            return None
    return None


async def respond(node: SereusNode, stream: INetStream, device: bytes) -> None:
    """Serve the sync sessions ``device`` opens on this stream (limits checked by the node)."""
    channel = node.channel(stream, device)
    try:
        hello: frames.Frame | None = await channel.read_first()
        while hello is not None:
            if not isinstance(hello, frames.Hello):
                raise PeerFault(f"a sync starts with hello, not {type(hello).__name__}")
            grant: threads_io.Access | None = None
            removal: Op | None = None
            if not channel.frame_buffered():
                grant, removal = await node.db(threads_io.access, hello.thread, device)
                if grant == "none":
                    await channel.refuse("refused", NOT_HERE)
                    return
            # Else the flight came with the hello (a push): the peer's access is looked at in
            # the trip that takes in its first ops, not in a trip of its own before them
            # (``NotHere`` if it has none, before anything is checked, kept or sent).
            session = _Session(node, channel, hello.thread, device, grant, removal)
            session.pushed = True
            try:
                await session.turns()
            except Exception as error:
                if not isinstance(unwrap(error), NotHere):
                    raise
                await channel.refuse("refused", NOT_HERE)
                return
            node.synced(hello.thread, device, session.sent, session.received)
            hello = await _next_hello(channel)
            if hello is not None and not node.session_allowed(device):
                await channel.refuse("busy", "too many sessions; try again later")
                return
    finally:
        await channel.close()
