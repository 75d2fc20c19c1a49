"""The Sereus node on the network: a libp2p host and what it does for this node's threads.

Everything here runs in the p2p trio thread (``bridge.TrioThread``); the database is reached
only through ``threads_io`` and the thread services, in a few worker threads (``db``).

- **Who to talk to**: the other active devices of this node's threads, at the addresses they
  wrote into the thread (``set_addresses``), and nobody else (no bootstrap list). This node writes
  its own addresses into each thread whenever they change.
- **Push**: ``notify(thread)`` (a local write, or ops received from another peer) starts a sync
  session with every member device of the thread, coalesced: while a session with a device runs,
  further writes only mark it to run once more.
- **Anti-entropy**: a session with every member device on (re)connect and every
  ``sync_interval`` seconds repairs whatever a push missed.
- **Dialing**: known addresses first, then the DHT, then a circuit through a member that offers a
  relay (``discovery``); failures back off per peer, from 1 s up to 5 minutes. Addresses that
  members (or the DHT, or an invite link) supply are dialed only if ``addresses`` allows them (no
  probing of private ranges this node is not on). A connection that stops answering is closed
  and redialed (``keepalive``).
- **Limits**: per-peer stream and byte buckets, strikes and bans (``limits``); strangers (peers
  that are not devices of any thread here) share one small budget, and a small pool of the
  inbound session slots, so they cannot crowd out the members (``slots``).
- **Joins**: a join whose admission answer was lost is retried in the background (``joins``).
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import multiaddr
import nacl.signing
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from apps.core import blobs
from apps.core.identity import peer_id_from_public_key
from apps.core.thread.invite import Invite
from apps.core.thread.writer import RedemptionRequest
from apps.p2p import threads_io
from apps.p2p.addresses import dial_targets, own_ranges
from apps.p2p.bridge import unwrap
from apps.p2p.host import announce_addresses, device_of, host_build, peer_id_of
from apps.p2p.joins import Joins
from apps.p2p.keepalive import Keepalive
from apps.p2p.limits import PeerLimits
from apps.p2p.protocols import blob as blob_protocol
from apps.p2p.protocols import invite as invite_protocol
from apps.p2p.protocols import live as live_protocol
from apps.p2p.protocols import sync
from apps.p2p.slots import Pool, SessionSlots
from apps.p2p.state import P2PState, state_load, state_save
from apps.p2p.wire import FrameChannel, PeerFault, PeerRefused

logger = logging.getLogger(__name__)
T = TypeVar("T")

DIAL_TIMEOUT = 3.0  # per address
MAX_DIAL_ADDRS = 8
STREAM_TIMEOUT = 5.0
MAINTAIN_INTERVAL = 30.0
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 300.0
DB_THREADS = 4
CPU_THREADS = 2
OUTBOUND_SESSIONS = 16
STREAM_REUSE = 20.0  # below the responder's STREAM_IDLE, so a kept stream is still open
SESSION_RETRIES = (0.2, 1.0, 5.0)  # seconds before trying a failed session again
BLOB_RETRIES = (1.0, 5.0, 20.0)  # rounds over the member devices before a fetch gives up
BLOB_PROGRESS = 1.0  # seconds between "chunks arrived" notices to open pages
SessionOutcome = Literal["done", "refused", "failed", "unreachable"]


@dataclass(frozen=True)
class NodeSettings:
    data_dir: Path
    listen: str
    announce: tuple[str, ...] = ()
    relays: tuple[str, ...] = ()
    relay: bool = False
    mdns: bool = False
    dht: bool = True
    sync_interval: float = 180.0


@dataclass
class PeerRecord:
    device: bytes
    peer_id: ID
    addrs: tuple[str, ...] = ()  # as written in the threads
    found: tuple[str, ...] = ()  # learned elsewhere (DHT, mDNS)
    threads: dict[bytes, threads_io.Peer] = field(default_factory=dict)  # what it is in each
    failures: int = 0
    retry_at: float = 0.0
    last_error: str = ""
    last_sync: float | None = None


@dataclass
class ThreadView:
    info: threads_io.ThreadInfo
    synced_with: dict[bytes, float] = field(default_factory=dict)


class _Events(INotifee):
    """Connection events from the swarm; kept short, the work is scheduled."""

    def __init__(self, node: SereusNode) -> None:
        self.node = node

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self.node._on_connected(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        return None

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


class SereusNode:
    def __init__(self, device_key: nacl.signing.SigningKey, settings: NodeSettings) -> None:
        self.device_key = device_key
        self.device = bytes(device_key.verify_key)
        self.peer_id = peer_id_from_public_key(self.device)
        self.settings = settings
        self.limits = PeerLimits()
        self.host: IHost | None = None
        self.addrs: tuple[str, ...] = ()  # announced: bound (wildcards expanded) + configured
        self.bound_addrs: tuple[str, ...] = ()
        self.own_ranges = own_ranges(())  # local ranges this node is on (``addresses``)
        self.started_at: float | None = None
        self.threads: dict[bytes, ThreadView] = {}
        self.peers: dict[bytes, PeerRecord] = {}
        self._known_vv: dict[tuple[bytes, bytes], dict[bytes, int]] = {}
        self._dirty: set[bytes] = set()
        self._dirty_event = trio.Event()
        self._sessions: set[tuple[bytes, bytes]] = set()
        self._again: set[tuple[bytes, bytes]] = set()
        self._dialing: dict[bytes, trio.Event] = {}
        self._idle_streams: dict[bytes, tuple[INetStream, float]] = {}
        self.slots = SessionSlots()
        self._db_limiter = trio.CapacityLimiter(DB_THREADS)
        self._cpu_limiter = trio.CapacityLimiter(CPU_THREADS)
        self._outbound = trio.CapacityLimiter(OUTBOUND_SESSIONS)
        self._nursery: trio.Nursery | None = None
        self.discovery: Any = None  # apps.p2p.discovery.Discovery, when started
        self.keepalive = Keepalive(self)
        self.joins = Joins(self)
        self._blob_wants: dict[bytes, set[bytes]] = {}
        self.blob_progress: Callable[[bytes], None] = lambda thread: None
        # (thread, member) of a typing signal from a peer: set to tell the open pages.
        self.typing: Callable[[bytes, bytes], None] = lambda thread, member: None
        self.typing_seen: dict[tuple[bytes, bytes], float] = {}
        self.stats = {
            "sessions": 0,
            "ops_sent": 0,
            "ops_received": 0,
            "refused_streams": 0,
            "chunks_received": 0,
        }

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listen = self._listen_addr()
        self.host = host_build(self.device_key)
        self.host.set_stream_handler(sync.PROTOCOL, self._on_sync_stream)
        self.host.set_stream_handler(invite_protocol.PROTOCOL, self._on_invite_stream)
        self.host.set_stream_handler(blob_protocol.PROTOCOL, self._on_blob_stream)
        self.host.set_stream_handler(live_protocol.PROTOCOL, self._on_live_stream)
        self.host.get_network().register_notifee(_Events(self))
        async with self.host.run(listen_addrs=[listen]), trio.open_nursery() as nursery:
            self._nursery = nursery
            # py-libp2p's AutoConnector dials every peer it has heard of to keep a quota of
            # connections; this node dials only whom it decides to.
            await self.host.get_network().auto_connector.stop()
            bound = self.host.get_addrs()
            self.bound_addrs = tuple(announce_addresses(bound))
            self.own_ranges = own_ranges(self.bound_addrs)
            self.addrs = tuple(announce_addresses(bound, self.settings.announce))
            from apps.p2p.discovery import Discovery

            self.discovery = Discovery(self)
            await nursery.start(self.discovery.run)
            await trio.to_thread.run_sync(
                state_save, self.settings.data_dir, P2PState(port=_port_of(bound), addrs=self.addrs)
            )
            self.started_at = time.time()
            logger.info(
                "p2p host %s listening on %s",
                self.peer_id,
                ", ".join(str(a) for a in bound),
            )
            await nursery.start(self.keepalive.run)
            await nursery.start(self.joins.run)
            nursery.start_soon(self._pusher)
            nursery.start_soon(self._maintain)
            task_status.started()

    def _listen_addr(self) -> multiaddr.Multiaddr:
        """The configured address; port 0 means the port picked last time, if still free."""
        parts = self.settings.listen.split("/")
        if parts[4] == "0":
            saved = state_load(self.settings.data_dir).port
            if saved is not None and _port_free(parts[1], parts[2], saved):
                parts[4] = str(saved)
        return multiaddr.Multiaddr("/".join(parts))

    # -- what other threads call (through the bridge) ---------------------------------------

    def notify(self, thread: bytes) -> None:
        """Ops were written to ``thread`` (or it was joined): push, soon."""
        self._dirty.add(thread)
        self._dirty_event.set()

    async def redeem(self, invite: Invite, request: RedemptionRequest) -> None:
        with self.joins.redeeming(invite.thread):
            await invite_protocol.redeem(self, invite, request)

    def typing_send(self, thread: bytes) -> None:
        """Tell the connected member devices of ``thread`` that this member is typing (best
        effort: never dials, never retries)."""
        view = self.threads.get(thread)
        if view is None or self._nursery is None:
            return
        for peer in view.info.peers:
            if peer.until is None and self.connected(peer.device):
                self._nursery.start_soon(self._typing_to, peer.device, thread)

    async def _typing_to(self, device: bytes, thread: bytes) -> None:
        with trio.move_on_after(STREAM_TIMEOUT):
            try:
                await live_protocol.send_typing(self, device, thread)
            except Exception as error:  # an ephemeral signal: lost is fine
                logger.debug("typing to %s: %r", peer_id_of(device), unwrap(error))

    def blob_want(self, thread: bytes, chunks: list[bytes]) -> None:
        """Fetch these chunks of ``thread`` in the background (one fetch per thread at a time;
        chunks asked for meanwhile join it)."""
        fetching = thread in self._blob_wants
        self._blob_wants.setdefault(thread, set()).update(chunks)
        if not fetching and self._nursery is not None:
            self._nursery.start_soon(self._blob_fetch, thread)

    async def status(self) -> dict[str, Any]:
        return self._status()

    # -- the database ---------------------------------------------------------------------------

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous Django call in a worker thread (a few at a time)."""
        return await trio.to_thread.run_sync(
            partial(fn, *args, **kwargs), limiter=self._db_limiter, abandon_on_cancel=False
        )

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work that releases the GIL (signature checks) beside the event loop."""
        return await trio.to_thread.run_sync(partial(fn, *args), limiter=self._cpu_limiter)

    # -- what the protocols use -----------------------------------------------------------------

    def channel(self, stream: INetStream, device: bytes) -> FrameChannel:
        return FrameChannel(stream, str(peer_id_of(device)), self.limits)

    async def open_stream(self, device: bytes, protocol: TProtocol) -> INetStream:
        """A stream over the connection to ``device``. Without one it fails: py-libp2p would
        dial whatever addresses identify or the DHT left in its peerstore, unchecked; this node
        dials only through ``dial_addrs``."""
        assert self.host is not None
        if not self.connected(device):
            raise ConnectionError(f"not connected to {peer_id_of(device)}")
        with trio.fail_after(STREAM_TIMEOUT):
            return await self.host.new_stream(peer_id_of(device), [protocol])

    async def sync_stream_take(self, device: bytes) -> tuple[INetStream, bool]:
        """A sync stream to ``device``: the idle one from the last session if it is fresh
        enough (True), else a new one (False)."""
        idle = self._idle_streams.pop(device, None)
        if idle is not None:
            stream, since = idle
            if time.monotonic() - since < STREAM_REUSE:
                return stream, True
            self._nursery_reset(stream)
        return await self.open_stream(device, sync.PROTOCOL), False

    def sync_stream_give(self, device: bytes, stream: INetStream) -> None:
        """Keep a stream whose session ended well, for the next session with ``device``."""
        old = self._idle_streams.get(device)
        if old is not None:
            self._nursery_reset(old[0])
        self._idle_streams[device] = (stream, time.monotonic())

    def idle_stream_drop(self, device: bytes) -> None:
        """Forget the stream kept for the next session with ``device`` (its connection died)."""
        idle = self._idle_streams.pop(device, None)
        if idle is not None:
            self._nursery_reset(idle[0])

    def _nursery_reset(self, stream: INetStream) -> None:
        async def reset() -> None:
            with trio.move_on_after(1), contextlib.suppress(Exception):
                await stream.reset()

        assert self._nursery is not None
        self._nursery.start_soon(reset)

    def session_allowed(self, device: bytes) -> bool:
        """Another session on a stream already open: it pays like a new stream."""
        return self._allow(peer_id_of(device), device)

    def known_vv(self, thread: bytes, device: bytes) -> dict[bytes, int] | None:
        return self._known_vv.get((thread, device))

    def vv_seen(self, thread: bytes, device: bytes, vv: dict[bytes, int]) -> None:
        known = self._known_vv.setdefault((thread, device), {})
        for dev, seq in vv.items():
            if seq > known.get(dev, 0):
                known[dev] = seq

    def synced(self, thread: bytes, device: bytes, sent: int, received: int) -> None:
        now = time.time()
        self.stats["sessions"] += 1
        self.stats["ops_sent"] += sent
        view = self.threads.get(thread)
        if view is not None:
            view.synced_with[device] = now
        peer = self.peers.get(device)
        if peer is not None:
            peer.last_sync = now

    # -- inbound streams --------------------------------------------------------------------------

    def _allow(self, peer_id: ID, device: bytes | None) -> bool:
        """A new stream or session: from the peer's own budget if it is a member device, else
        from the strangers' shared one (new identities cost nothing to make)."""
        peer = str(peer_id)
        if device is not None and device in self.peers:
            return self.limits.allow_stream(peer)
        return self.limits.allow_stranger_stream(peer)

    async def _admit_stream(self, stream: INetStream) -> tuple[bytes, str, Pool] | None:
        """A slot for a new inbound stream (``slots``: strangers have a small pool of their
        own), or the stream is reset."""
        peer_id = stream.muxed_conn.peer_id
        device = device_of(peer_id)
        pool: Pool = "member" if device is not None and device in self.peers else "stranger"
        if (
            device is None
            or self.limits.banned(str(peer_id))
            or not self._allow(peer_id, device)
            or not self.slots.take(str(peer_id), pool)
        ):
            self.stats["refused_streams"] += 1
            with trio.move_on_after(1):
                await stream.reset()
            if device is not None and self.limits.banned(str(peer_id)):
                await self._ban(device)
            return None
        return device, str(peer_id), pool

    async def _serve(self, stream: INetStream, handler) -> None:
        admitted = await self._admit_stream(stream)
        if admitted is None:
            return
        device, peer, pool = admitted
        try:
            await handler(self, stream, device)
        except Exception as error:  # whatever happened, it ends this stream only
            exc = unwrap(error)
            if isinstance(exc, PeerFault):
                logger.info("peer %s broke the protocol: %s", peer, exc)
                await FrameChannel(stream, peer, self.limits).refuse("malformed", str(exc))
                if self.limits.strike(peer, str(exc)):
                    await self._ban(device)
            else:
                logger.debug("session with %s ended: %r", peer, exc)
        finally:
            self.slots.give(peer, pool)
            with trio.move_on_after(1):
                with contextlib.suppress(Exception):  # already closed
                    await stream.reset()

    async def _on_sync_stream(self, stream: INetStream) -> None:
        await self._serve(stream, sync.respond)

    async def _on_invite_stream(self, stream: INetStream) -> None:
        await self._serve(stream, invite_protocol.respond)

    async def _on_blob_stream(self, stream: INetStream) -> None:
        await self._serve(stream, blob_protocol.respond)

    async def _on_live_stream(self, stream: INetStream) -> None:
        await self._serve(stream, live_protocol.respond)

    async def _ban(self, device: bytes) -> None:
        """Drop a peer that struck out; its streams are refused until the ban ends."""
        assert self.host is not None
        logger.warning("peer %s banned for flooding or garbage", peer_id_of(device))
        with trio.move_on_after(2):
            with contextlib.suppress(Exception):  # already gone
                await self.host.get_network().close_peer(peer_id_of(device))

    # -- threads and peers ------------------------------------------------------------------------

    async def _thread_refresh(self, thread: bytes) -> ThreadView | None:
        info = await self.db(threads_io.thread_info, thread, self.device)
        if info is None or not info.member:
            self.threads.pop(thread, None)
            self._peers_rebuild()
            return None
        view = self.threads.get(thread)
        if view is None:
            view = self.threads[thread] = ThreadView(info)
        view.info = info
        self._peers_rebuild()
        if info.my_addrs != self.addrs[: threads_io.MAX_ADDRS] and self.addrs:
            await self.db(threads_io.addresses_publish, thread, list(self.addrs))
        return view

    async def _threads_refresh(self) -> None:
        ids = set(await self.db(threads_io.thread_ids))
        for thread in list(self.threads):
            if thread not in ids:
                del self.threads[thread]
        for thread in ids:
            await self._thread_refresh(thread)
        self._peers_rebuild()

    def _peers_rebuild(self) -> None:
        seen: dict[bytes, tuple[dict[bytes, threads_io.Peer], list[str]]] = {}
        for thread, view in self.threads.items():
            for peer in view.info.peers:
                threads, addrs = seen.setdefault(peer.device, ({}, []))
                threads[thread] = peer
                addrs.extend(a for a in peer.addrs if a not in addrs)
        for device in list(self.peers):
            if device not in seen:
                del self.peers[device]
        for device, (threads, addrs) in seen.items():
            record = self.peers.get(device)
            if record is None:
                record = self.peers[device] = PeerRecord(device, peer_id_of(device))
                if self.host is not None and self.connected(device) and self.discovery:
                    # Connected before it was a member (it came to redeem an invite).
                    assert self._nursery is not None
                    self._nursery.start_soon(self.discovery.member_connected, record)
            if tuple(addrs) != record.addrs:
                record.addrs = tuple(addrs)
                record.retry_at = 0.0  # new addresses: worth a try right away
            record.threads = threads

    def _has_all_it_may(self, thread: bytes, peer: threads_io.Peer) -> bool:
        """Whether ``peer`` is known to hold everything it may receive of ``thread``: all this
        node has, or, for a departed member's device, its departure."""
        known = self._known_vv.get((thread, peer.device))
        if known is None:
            return False
        if peer.until is not None:
            device, seq = peer.until.id
            return known.get(device, 0) >= seq
        view = self.threads.get(thread)
        return view is not None and sync.covers(known, view.info.vv)

    def _on_connected(self, peer_id: ID) -> None:
        device = device_of(peer_id)
        record = self.peers.get(device) if device is not None else None
        if record is None:
            return
        record.failures, record.retry_at, record.last_error = 0, 0.0, ""
        if self.discovery is not None and self._nursery is not None:
            self._nursery.start_soon(self.discovery.member_connected, record)
        for thread, peer in record.threads.items():
            if peer.until is None or not self._has_all_it_may(thread, peer):
                self._want(thread, record.device, again=False)

    def connected(self, device: bytes) -> bool:
        """Whether a live connection to ``device`` is open (the swarm lists a closed one until
        its clean-up has run)."""
        assert self.host is not None
        conns = self.host.get_network().get_connections(peer_id_of(device))
        return any(not conn.is_closed for conn in conns)

    # -- blobs ----------------------------------------------------------------------------------

    async def _blob_fetch(self, thread: bytes) -> None:
        """Rounds over the thread's member devices until every wanted chunk is here, or a few
        rounds brought nothing (a page that still shows the attachment asks again)."""
        last_notice = 0.0

        def arrived() -> None:
            nonlocal last_notice
            self.stats["chunks_received"] += 1
            if time.monotonic() - last_notice >= BLOB_PROGRESS:
                last_notice = time.monotonic()
                self.blob_progress(thread)

        try:
            idle_rounds = 0
            while True:
                wanted = sorted(self._blob_wants.get(thread, ()))
                missing = await trio.to_thread.run_sync(blobs.missing, thread, wanted)
                self._blob_wants[thread] = set(missing)
                if not missing:
                    return
                if await self._blob_round(thread, missing, arrived):
                    idle_rounds = 0
                    continue
                if idle_rounds == len(BLOB_RETRIES):
                    logger.info(
                        "%d chunks of thread %s: no member device has them now",
                        len(missing),
                        thread.hex()[:8],
                    )
                    return
                await trio.sleep(BLOB_RETRIES[idle_rounds])
                idle_rounds += 1
        finally:
            self._blob_wants.pop(thread, None)
            self.blob_progress(thread)

    async def _blob_round(self, thread: bytes, missing: list[bytes], arrived) -> int:
        view = self.threads.get(thread) or await self._thread_refresh(thread)
        devices = [p.device for p in view.info.peers if p.until is None] if view else []
        kept = 0
        for device in devices:
            if not await self.ensure_connected(device):
                continue
            try:
                kept += await blob_protocol.fetch(self, device, thread, missing, arrived)
            except Exception as error:
                exc = unwrap(error)
                if isinstance(exc, PeerFault):
                    logger.info("blob fetch from %s: %s", peer_id_of(device), exc)
                    if self.limits.strike(str(peer_id_of(device)), str(exc)):
                        await self._ban(device)
                else:
                    logger.debug("blob fetch from %s failed: %r", peer_id_of(device), exc)
                continue
            missing = await trio.to_thread.run_sync(blobs.missing, thread, missing)
            if not missing:
                break
        return kept

    # -- sessions -------------------------------------------------------------------------------

    def _want(self, thread: bytes, device: bytes, *, again: bool = True) -> None:
        key = (thread, device)
        if key in self._sessions:
            if again:
                self._again.add(key)
            return
        assert self._nursery is not None
        self._sessions.add(key)
        self._nursery.start_soon(self._session_loop, thread, device)

    async def _session_loop(self, thread: bytes, device: bytes) -> None:
        """Sessions with ``device`` about ``thread`` until nothing is left to say. A session
        that failed on the way (the peer busy, a stream reset) is tried again shortly: a push
        must not wait for the next anti-entropy round."""
        key = (thread, device)
        retries = 0
        try:
            while True:
                self._again.discard(key)
                outcome = await self._sync_once(thread, device)
                if outcome == "failed" and retries < len(SESSION_RETRIES):
                    await trio.sleep(SESSION_RETRIES[retries])
                    retries += 1
                    continue
                if outcome != "done" or key not in self._again:
                    return
                retries = 0
        finally:
            self._sessions.discard(key)
            self._again.discard(key)

    async def _sync_once(self, thread: bytes, device: bytes) -> SessionOutcome:
        if not await self.ensure_connected(device):
            return "unreachable"  # dialing backs off on its own; anti-entropy comes back
        async with self._outbound:
            try:
                sent, received = await sync.initiate(self, thread, device)
            except Exception as error:
                exc = unwrap(error)
                if isinstance(exc, PeerRefused):
                    logger.debug(
                        "sync %s with %s refused: %s", thread.hex()[:8], device.hex()[:8], exc
                    )
                    return "failed" if exc.code == "busy" else "refused"
                if isinstance(exc, PeerFault):
                    logger.info("sync with %s: %s", peer_id_of(device), exc)
                    if self.limits.strike(str(peer_id_of(device)), str(exc)):
                        await self._ban(device)
                    return "refused"
                logger.debug("sync with %s failed: %r", peer_id_of(device), exc)
                if isinstance(exc, trio.TooSlowError):
                    # A connection that went silent still looks connected: check it now rather
                    # than at the next keepalive round.
                    self.keepalive.check(device)
                return "failed"
        self.synced(thread, device, sent, received)
        return "done"

    async def _pusher(self) -> None:
        while True:
            await self._dirty_event.wait()
            self._dirty_event = trio.Event()
            dirty, self._dirty = self._dirty, set()
            for thread in dirty:
                view = await self._thread_refresh(thread)
                if view is None:
                    continue
                for peer in view.info.peers:
                    if self._has_all_it_may(thread, peer):
                        continue  # it probably just sent us what we are announcing
                    self._want(thread, peer.device)

    async def _maintain(self) -> None:
        """Anti-entropy: refresh the threads, then a session with every member device."""
        last_round = 0.0
        while True:
            try:
                await self._threads_refresh()
            except Exception:
                logger.exception("refreshing the threads failed")
            now = time.monotonic()
            full_round = now - last_round >= self.settings.sync_interval
            if full_round:
                last_round = now
            for thread, view in list(self.threads.items()):
                for peer in view.info.peers:
                    if peer.until is not None and self._has_all_it_may(thread, peer):
                        continue  # a departed member's device that knows it departed
                    if full_round or not self.connected(peer.device):
                        self._want(thread, peer.device, again=False)
            delay = min(MAINTAIN_INTERVAL, self.settings.sync_interval)
            await trio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter

    # -- dialing --------------------------------------------------------------------------------

    async def ensure_connected(self, device: bytes) -> bool:
        if self.connected(device):
            return True
        record = self.peers.get(device)
        if record is None or time.monotonic() < record.retry_at:
            return False
        if self.limits.banned(str(record.peer_id)):
            return False
        pending = self._dialing.get(device)
        if pending is not None:  # someone is dialing it already: wait for that
            await pending.wait()
            return self.connected(device)
        self._dialing[device] = trio.Event()
        try:
            ok = await self.dial(record)
        finally:
            self._dialing.pop(device).set()
        if ok:
            record.failures, record.retry_at, record.last_error = 0, 0.0, ""
        else:
            record.failures += 1
            backoff = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (record.failures - 1))
            record.retry_at = time.monotonic() + backoff * random.uniform(0.8, 1.2)  # noqa: S311
        return ok

    async def dial(self, record: PeerRecord) -> bool:
        """Known addresses (the freshly found ones first), then the DHT and the relays."""
        addrs = [a for a in dict.fromkeys((*record.found, *record.addrs)) if a not in self.addrs]
        if await self.dial_addrs(record.peer_id, addrs, record):
            return True
        assert self.discovery is not None
        return await self.discovery.reach(record)

    async def dial_addrs(
        self,
        peer_id: ID,
        addrs: list[str],
        record: PeerRecord | None = None,
        *,
        checked: bool = True,
    ) -> bool:
        """Dial ``peer_id`` at the first of ``addrs`` that answers. Peer-supplied addresses
        (``checked``, the default) go through ``addresses.dial_targets`` first: only TCP, and
        local ranges only where this node is itself."""
        assert self.host is not None
        usable, refused = await dial_targets(addrs, self.own_ranges if checked else None)
        if refused:
            logger.debug("not dialing %s at %s", peer_id, ", ".join(refused[:MAX_DIAL_ADDRS]))
        if not usable:
            if record is not None:
                record.last_error = (
                    "no address this node may dial" if refused else "no address to dial"
                )
            return False
        network = self.host.get_network()
        failure: Exception | None = None
        # One address at a time: given several, py-libp2p 0.8.1 dials only the first.
        for address in usable[:MAX_DIAL_ADDRS]:
            # A peer that restarted on a new address: forget the old one and the library's
            # negative cache of it (py-libp2p keeps dialing stale addresses for 60 s otherwise).
            network.unblock_peer(peer_id)
            self.host.get_peerstore().clear_addrs(peer_id)
            try:
                with trio.fail_after(DIAL_TIMEOUT):
                    await self.host.connect(PeerInfo(peer_id, [address]))
            except Exception as exc:  # any failure is "not reachable there"
                failure = exc
                logger.debug("dialing %s at %s failed: %r", peer_id, address, exc)
                continue
            return True
        if record is not None:
            record.last_error = f"dial failed: {type(failure).__name__}"
        return False

    # -- status ---------------------------------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        assert self.host is not None
        network = self.host.get_network()
        connected = {str(pid) for pid, conns in network.get_connections_map().items() if conns}
        now = time.time()
        threads = []
        for thread, view in self.threads.items():
            mine = view.info.vv
            behind = 0
            peers = []
            for peer in view.info.peers:
                if peer.until is not None:
                    continue  # a departed member's device: not someone to be in sync with
                known = self._known_vv.get((thread, peer.device), {})
                lacking = sum(max(0, seq - mine.get(dev, 0)) for dev, seq in known.items())
                behind = max(behind, lacking)
                synced = view.synced_with.get(peer.device)
                peers.append(
                    {
                        "device": peer.device.hex(),
                        "peer_id": str(peer_id_of(peer.device)),
                        "connected": str(peer_id_of(peer.device)) in connected,
                        "last_sync": synced,
                        "seconds_since_sync": None if synced is None else round(now - synced, 1),
                        "behind": lacking,
                    }
                )
            threads.append(
                {
                    "thread": thread.hex(),
                    "ops": sum(mine.values()),
                    "behind": behind,
                    "peers": peers,
                    "connected_peers": sum(1 for p in peers if p["connected"]),
                }
            )
        return {
            "peer_id": self.peer_id,
            "addresses": list(self.addrs),
            "connections": sorted(connected),
            "peers": [
                {
                    "peer_id": str(r.peer_id),
                    "addrs": list(r.addrs),
                    "connected": str(r.peer_id) in connected,
                    "threads": len(r.threads),
                    "last_error": r.last_error,
                }
                for r in self.peers.values()
            ],
            "threads": threads,
            "limited": self.limits.summary(),
            "inbound": self.slots.summary(),
            "keepalive": self.keepalive.status(),
            "joins": self.joins.status(),
            "stats": dict(self.stats),
            "relay": self.settings.relay,
            "mdns": self.settings.mdns,
            "dht": self.settings.dht,
            **(self.discovery.status() if self.discovery is not None else {}),
        }


def _port_of(bound: list[multiaddr.Multiaddr]) -> int | None:
    for addr in bound:
        parts = str(addr).split("/")
        if len(parts) > 4 and parts[3] == "tcp" and parts[4].isdigit():
            return int(parts[4])
    return None


def _port_free(family: str, host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if family == "ip6" else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
