"""The Sereus node on the network: a libp2p host and what it does for this node's threads.

Everything here runs in the p2p trio thread (``bridge.TrioThread``); the database is reached
only through ``threads_io`` and the thread services, in a few worker threads (``db``).

- **Who to talk to**: the other active devices of this node's threads, at the addresses they
  wrote into the thread (``set_addresses``), and nobody else (no bootstrap list). This node writes
  its own addresses into each thread whenever they change.
- **Push**: ``notify(thread)`` (a local write, or ops received from another peer) starts a sync
  session with every member device of the thread, coalesced: while a session with a device runs,
  further writes only mark it to run once more (``sessions``). A local write goes out before the
  thread is refreshed; ops a peer pushed here itself are not passed on in a large thread.
- **Anti-entropy**: a session with every member device on (re)connect and every
  ``sync_interval`` seconds repairs whatever a push missed (``sessions``).
- **Dialing**: known addresses first, then the DHT, then a circuit through a member that offers a
  relay (``discovery``); failures back off per peer, from 1 s up to 5 minutes (``dialing``).
  Addresses that members (or the DHT, or an invite link) supply are dialed only if ``addresses``
  allows them (no probing of private ranges this node is not on). A connection that stops
  answering is closed and redialed (``keepalive``).
- **Limits**: per-peer stream and byte buckets, strikes and bans (``limits``); strangers (peers
  that are not devices of any thread here) share one small budget, and a small pool of the
  inbound session slots, so they cannot crowd out the members (``slots``, ``inbound``).
- **Attachments**: chunks a page asks for are fetched from member devices in the background
  (``blob_fetch``).
- **Joins**: a join whose admission answer was lost is retried in the background (``joins``).

``SereusNode`` holds the state and the lifecycle; sessions, dialing, inbound streams and chunk
fetches are mixins in the modules named, which use that state.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import multiaddr
import nacl.signing
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from apps.core.identity import peer_id_from_public_key
from apps.core.listen_errors import p2p_listen_error
from apps.core.thread.invite import Invite
from apps.core.thread.writer import RedemptionRequest
from apps.p2p import app_protocols, threads_io
from apps.p2p.addresses import own_ranges
from apps.p2p.blob_fetch import BlobFetching
from apps.p2p.bridge import unwrap
from apps.p2p.dialing import Dialing
from apps.p2p.host import announce_addresses, device_of, host_build, peer_id_of
from apps.p2p.inbound import InboundStreams
from apps.p2p.joins import Joins
from apps.p2p.keepalive import Keepalive
from apps.p2p.limits import PeerLimits
from apps.p2p.openings import Opening, Openings
from apps.p2p.protocols import blob as blob_protocol
from apps.p2p.protocols import invite as invite_protocol
from apps.p2p.protocols import live as live_protocol
from apps.p2p.protocols import sync
from apps.p2p.sessions import SyncSessions
from apps.p2p.slots import SessionSlots
from apps.p2p.state import P2PState, state_load, state_save
from apps.p2p.wire import FrameChannel

logger = logging.getLogger(__name__)
T = TypeVar("T")

STREAM_TIMEOUT = 5.0
DB_THREADS = 4
CPU_THREADS = 2
OUTBOUND_SESSIONS = 16


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


class SereusNode(SyncSessions, Dialing, InboundStreams, BlobFetching):
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
        # Threads written to: by this node, by peers that pushed their own ops, by others.
        self._dirty_local: set[bytes] = set()
        self._dirty_pushed: set[bytes] = set()
        self._dirty: set[bytes] = set()
        self._dirty_event = trio.Event()
        # Threads to refresh shortly (``sessions._refresher``): whether to pass their new ops
        # on to every member device, and the devices they were pushed to already.
        self._to_refresh: dict[bytes, tuple[bool, set[bytes]]] = {}
        self._refresh_event = trio.Event()
        self.openings = Openings()
        # Per thread, the first flights its last local write read for its push (``push_ahead``).
        self._push_ready: dict[bytes, dict[bytes, Opening]] = {}
        self._sessions: set[tuple[bytes, bytes]] = set()
        self._again: set[tuple[bytes, bytes]] = set()
        # Threads this node left, set once a member device holds the leave (``sessions``).
        self._leave_events: dict[bytes, trio.Event] = {}
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
        # Something of a thread that is not an op changed here (what peers hold): pages redraw.
        self.pages_tell: Callable[[bytes], None] = lambda thread: None
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
        app_protocols.install(self)  # the protocols apps registered (``app_protocols``)
        self.host.get_network().register_notifee(_Events(self))
        async with self.host.run(listen_addrs=[listen]), trio.open_nursery() as nursery:
            self._nursery = nursery
            # py-libp2p's AutoConnector dials every peer it has heard of to keep a quota of
            # connections; this node dials only whom it decides to.
            await self.host.get_network().auto_connector.stop()
            bound = self.host.get_addrs()
            if not bound:
                # libp2p logs a failed listen and runs on without it: a node nobody can reach
                # would look alive. Stop, and say why (probing the port for the reason).
                parts = str(listen).split("/")
                raise p2p_listen_error(str(listen), _bind_error(parts[1], parts[2], int(parts[4])))
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
            nursery.start_soon(self._refresher)
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

    def notify(
        self,
        thread: bytes,
        source: tuple[bytes, bool] | None = None,
        ready: dict[bytes, Opening] | None = None,
    ) -> None:
        """Ops were written to ``thread`` (or it was joined): push, soon. ``source``: they came
        from that peer device, and (True) were its own new ops that it pushed here itself; None
        for this node's own writes, which go out at once (``sessions``), with the first flights
        the writer read for them (``ready``, per device: ``push_ahead``) if it did."""
        if source is None:
            self._dirty_local.add(thread)
            if ready:
                self.push_ready_keep(thread, ready)
        elif source[1]:
            self._dirty_pushed.add(thread)
        else:
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
        if info is None or not (info.member or info.leaving is not None):
            self.threads.pop(thread, None)
            self._peers_rebuild()
            return None
        view = self.threads.get(thread)
        if view is None:
            view = self.threads[thread] = ThreadView(info)
        view.info = info
        self._peers_rebuild()
        if info.member and info.my_addrs != self.addrs[: threads_io.MAX_ADDRS] and self.addrs:
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

    # -- status ---------------------------------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        assert self.host is not None
        network = self.host.get_network()
        connected = {str(pid) for pid, conns in network.get_connections_map().items() if conns}
        now = time.time()
        threads = []
        for thread, view in self.threads.items():
            if view.info.leaving is not None:
                continue  # left: only its leave is still on its way
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
    return _bind_error(family, host, port) is None


def _bind_error(family: str, host: str, port: int) -> OSError | None:
    with socket.socket(socket.AF_INET6 if family == "ip6" else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error
    return None
