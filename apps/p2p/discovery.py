"""Reaching member devices beyond the addresses written in the threads (DESIGN §8).

Three ways, tried by ``reach`` when the addresses a device wrote in the thread don't answer:

- **Kademlia DHT** (py-libp2p ``kad_dht``, server mode, on by default): finds a known peer id's
  current addresses through the member devices this node is connected to. It is fenced to member
  devices of this node's threads: a stranger's DHT requests are reset, strangers never enter the
  routing table and are never queried, and they are dropped from answers; only connected members
  are asked (so the library never dials for it). So the DHT reveals no one's contacts to
  strangers and sends no traffic to peers nobody here was given. The addresses it finds are
  dialed under the same rule as the ones written in threads (``addresses``).
- **Circuit relay v2**: a node with ``SEREUS_RELAY=on`` relays for member devices of its threads
  (for nobody else). Every node reserves a slot at up to ``MAX_RESERVATIONS`` relaying members it
  is connected to, so that others can reach it through them; when a device cannot be dialed, it is
  dialed through a connected relaying member (``/p2p/<relay>/p2p-circuit/p2p/<device>``). Noise
  runs end to end: the relay forwards ciphertext.
- **mDNS** (``SEREUS_MDNS=on``): announces this node on the LAN and listens for others; an
  announcement from a member device gives its LAN addresses, which are then dialed. Unknown peer
  ids are ignored (the library still notes their addresses; nothing dials them, see below).

py-libp2p's AutoConnector would dial every peer in the peerstore to keep a quota of connections
(including peers learned from identify, the DHT or mDNS); the node stops it when the host starts,
so this node dials only what it decides to dial. The hooks that fence the DHT and the relay use
private methods of the pinned py-libp2p 0.8.1 (ADR 10 says why and what to check on an upgrade).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import multiaddr
import trio
from libp2p.abc import INetStream
from libp2p.kad_dht.common import PROTOCOL_ID as KAD_PROTOCOL
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service

from apps.p2p.host import device_of

if TYPE_CHECKING:
    from apps.p2p.node import PeerRecord, SereusNode

logger = logging.getLogger(__name__)

LOOKUP_TIMEOUT = 5.0
RELAY_DIAL_TIMEOUT = 10.0
IDENTIFY_WAIT = 3.0  # a new connection's protocols (is it a relay?) come with identify
MAX_RESERVATIONS = 2
CONFIGURED_RELAY_CHECK = 60.0
RELAY_LIMITS = RelayLimits(
    duration=3600,  # a relayed connection lasts an hour at most (then it is dialed again)
    data=1 << 30,
    max_circuit_conns=64,
    max_reservations=64,
)


class Discovery:
    def __init__(self, node: SereusNode) -> None:
        self.node = node
        self.dht: KadDHT | None = None
        self.relay: CircuitV2Protocol | None = None
        self._reserver: CircuitV2Transport | None = None
        self._dialer: CircuitV2Transport | None = None
        self.reservations: set[bytes] = set()  # devices relaying for this node
        self.relaying: set[bytes] = set()  # connected member devices that offer relay
        self.configured: dict[ID, str] = {}  # SEREUS_P2P_RELAYS holding a reservation for us
        self.mdns: Any = None
        self._nursery: trio.Nursery | None = None
        self._token: trio.lowlevel.TrioToken | None = None

    def allowed(self, peer_id: ID) -> bool:
        """Member devices of this node's threads (and only those) get the DHT and the relay."""
        device = device_of(peer_id)
        return device is not None and device in self.node.peers

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        host = self.node.host
        assert host is not None
        settings = self.node.settings
        self._token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self.relay = CircuitV2Protocol(host, limits=RELAY_LIMITS, allow_hop=settings.relay)
            await nursery.start(_serve, self.relay)
            if settings.relay:
                host.set_stream_handler(HOP_PROTOCOL, self._guarded_hop)
            # Two views of the relay client: one makes reservations, one only dials (a dialer
            # with the client role would reserve at the relay before every dial).
            self._reserver = CircuitV2Transport(
                host, self.relay, RelayConfig(roles=RelayRole.STOP | RelayRole.CLIENT)
            )
            self._dialer = CircuitV2Transport(host, self.relay, RelayConfig(roles=RelayRole.STOP))
            if settings.dht:
                self.dht = KadDHT(host, DHTMode.SERVER)
                self._fence_dht(self.dht)
                await nursery.start(_serve, self.dht)
            if settings.mdns:
                await self._mdns_start()
            if settings.relays:
                nursery.start_soon(self._keep_configured_relays)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await self._mdns_stop()

    # -- the DHT --------------------------------------------------------------------------------

    def _fence_dht(self, dht: KadDHT) -> None:
        host = self.node.host
        assert host is not None

        async def guarded(stream: INetStream) -> None:
            if not self.allowed(stream.muxed_conn.peer_id):
                with contextlib.suppress(Exception):
                    await stream.reset()
                return
            await dht.handle_stream(stream)

        host.set_stream_handler(KAD_PROTOCOL, guarded)
        table_add = dht.routing_table.add_peer

        async def add_peer(peer: Any, *, skip_server_mode_check: bool = False) -> bool:
            peer_id = peer.peer_id if isinstance(peer, PeerInfo) else peer
            if not self.allowed(peer_id):
                return False
            return await table_add(peer, skip_server_mode_check=skip_server_mode_check)

        dht.routing_table.add_peer = add_peer  # type: ignore[method-assign]
        query = dht.peer_routing._query_peer_for_closest

        async def query_members(peer: ID, key: bytes) -> list[ID]:
            # Connected members only: asking one that is not connected would make the library
            # dial it at whatever addresses its peerstore holds (from identify or other DHT
            # answers), past the checks of ``addresses``.
            if not self.allowed(peer) or not self._connected(peer):
                return []
            return [found for found in await query(peer, key) if self.allowed(found)]

        dht.peer_routing._query_peer_for_closest = query_members  # type: ignore[method-assign]

    async def _lookup(self, record: PeerRecord) -> list[str]:
        """The device's current addresses, as member devices know them."""
        if self.dht is None:
            return []
        host = self.node.host
        assert host is not None
        # find_peer answers from the peerstore or the routing table when it can: make it ask.
        host.get_peerstore().clear_addrs(record.peer_id)
        self.dht.routing_table.remove_peer(record.peer_id)
        with trio.move_on_after(LOOKUP_TIMEOUT):
            try:
                info = await self.dht.find_peer(record.peer_id)
            except Exception as exc:
                logger.debug("DHT lookup of %s failed: %r", record.peer_id, exc)
                return []
            if info is not None:
                return [str(addr) for addr in info.addrs]
        return []

    # -- the relay ------------------------------------------------------------------------------

    async def _guarded_hop(self, stream: INetStream) -> None:
        assert self.relay is not None
        if not self.allowed(stream.muxed_conn.peer_id):
            with contextlib.suppress(Exception):
                await stream.reset()
            return
        await self.relay._handle_hop_stream(stream)

    async def member_connected(self, record: PeerRecord) -> None:
        """A member device connected: once identify has told its addresses and protocols, let
        the DHT know it, and reserve a slot at it if it relays."""
        offers_relay = await self._offers_relay(record.peer_id)
        if self.dht is not None:
            with contextlib.suppress(Exception):
                await self.dht.add_peer(record.peer_id)
        if not offers_relay:
            return
        self.relaying.add(record.device)
        if record.device in self.reservations or len(self.reservations) >= MAX_RESERVATIONS:
            return
        if await self._reserve(record.peer_id):
            self.reservations.add(record.device)

    async def _offers_relay(self, peer_id: ID) -> bool:
        """Whether a connected peer offers relay, once identify has said what it speaks."""
        host = self.node.host
        assert host is not None
        protocols: list[str] = []
        with trio.move_on_after(IDENTIFY_WAIT):
            while not protocols:
                with contextlib.suppress(Exception):
                    protocols = list(host.get_peerstore().get_protocols(peer_id))
                if not protocols:
                    await trio.sleep(0.1)
        return HOP_PROTOCOL in protocols

    async def _reserve(self, peer_id: ID) -> bool:
        host = self.node.host
        assert host is not None
        assert self._reserver is not None
        assert self._nursery is not None
        try:
            with trio.fail_after(RELAY_DIAL_TIMEOUT):
                stream = await host.new_stream(peer_id, [HOP_PROTOCOL])
                try:
                    reserved = await self._reserver.reserve(stream, peer_id, self._nursery)
                finally:
                    with contextlib.suppress(Exception):
                        await stream.close()
        except Exception as exc:
            logger.debug("reserving a relay slot at %s failed: %r", peer_id, exc)
            return False
        if reserved:
            logger.info("reachable through the relay of %s", peer_id)
        return reserved

    def _relays(self) -> list[ID]:
        """Connected peers that relay for this node: relaying members, configured relays."""
        relays = [
            self.node.peers[device].peer_id
            for device in self.relaying
            if device in self.node.peers and self.node.connected(device)
        ]
        return relays + [peer for peer in self.configured if peer not in relays]

    async def _through_relay(self, record: PeerRecord) -> bool:
        assert self._dialer is not None
        for relay in self._relays():
            if relay == record.peer_id:
                continue
            circuit = multiaddr.Multiaddr(f"/p2p/{relay}/p2p-circuit/p2p/{record.peer_id}")
            try:
                with trio.fail_after(RELAY_DIAL_TIMEOUT):
                    await self._dialer.dial(circuit)
            except Exception as exc:
                logger.debug("dialing %s through %s failed: %r", record.peer_id, relay, exc)
                continue
            return True
        return False

    async def _keep_configured_relays(self) -> None:
        """SEREUS_P2P_RELAYS: stay connected to them and hold a reservation at each."""
        while True:
            for text in self.node.settings.relays:
                addr = multiaddr.Multiaddr(text)
                peer_id = ID.from_base58(addr.get_peer_id())
                direct = text.split("/p2p/")[0]
                if not self._connected(peer_id):
                    self.configured.pop(peer_id, None)
                    # The operator's own setting: any address it names is dialed.
                    if not await self.node.dial_addrs(peer_id, [direct], checked=False):
                        continue
                if (
                    peer_id not in self.configured
                    and await self._offers_relay(peer_id)
                    and await self._reserve(peer_id)
                ):
                    self.configured[peer_id] = text
            await trio.sleep(CONFIGURED_RELAY_CHECK)

    def _connected(self, peer_id: ID) -> bool:
        host = self.node.host
        assert host is not None
        return bool(host.get_network().get_connections(peer_id))

    # -- finding a device -----------------------------------------------------------------------

    async def reach(self, record: PeerRecord) -> bool:
        """Try the DHT's addresses, then the relays; True when connected."""
        found = [a for a in await self._lookup(record) if a not in record.addrs]
        if found:
            record.found = tuple(found)
            if await self.node.dial_addrs(record.peer_id, found, record):
                return True
        if await self._through_relay(record):
            return True
        record.last_error = record.last_error or "not reachable"
        return False

    # -- mDNS -----------------------------------------------------------------------------------

    async def _mdns_start(self) -> None:
        from libp2p.discovery.events.peerDiscovery import peerDiscovery
        from libp2p.discovery.mdns.mdns import MDNSDiscovery

        host = self.node.host
        assert host is not None
        # The bound addresses (not the configured announcements): a LAN peer needs them.
        lan = [a for a in self.node.bound_addrs if "/ip4/127." not in a and "/ip6/::1/" not in a]
        self.mdns = MDNSDiscovery(host.get_network(), listen_addrs=lan, host=None)
        peerDiscovery.register_peer_discovered_handler(self._mdns_found)
        # Zeroconf registers synchronously, probing the LAN for ~1.5 s: not on the event loop.
        await trio.to_thread.run_sync(self.mdns.broadcaster.register)
        logger.info("mDNS: announcing %s on the LAN", ", ".join(lan) or "nothing")

    async def _mdns_stop(self) -> None:
        if self.mdns is None:
            return
        from libp2p.discovery.events.peerDiscovery import peerDiscovery

        peerDiscovery.unregister_peer_discovered_handler(self._mdns_found)
        mdns, self.mdns = self.mdns, None
        with trio.move_on_after(5), contextlib.suppress(Exception):
            await trio.to_thread.run_sync(mdns.stop, abandon_on_cancel=True)

    def _mdns_found(self, info: PeerInfo) -> None:
        # Called in zeroconf's thread: hand it to the event loop.
        token = self._token
        if token is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(self._mdns_known, info)

    def _mdns_known(self, info: PeerInfo) -> None:
        device = device_of(info.peer_id)
        record = self.node.peers.get(device) if device is not None else None
        if record is None or self._nursery is None:
            return  # not a device of any thread here: not ours to dial
        addrs = tuple(str(a) for a in info.addrs)
        if addrs and addrs != record.found:
            record.found = addrs
            record.retry_at = 0.0
            if not self.node.connected(record.device):
                self._nursery.start_soon(self.node.ensure_connected, record.device)

    def status(self) -> dict[str, Any]:
        return {
            "relays": [
                str(self.node.peers[d].peer_id) for d in self.relaying if d in self.node.peers
            ],
            "reservations": [
                str(self.node.peers[d].peer_id) for d in self.reservations if d in self.node.peers
            ],
            "dht_peers": len(self.dht.routing_table.get_peer_ids()) if self.dht else 0,
        }


async def _serve(service: Any, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Run a py-libp2p service (relay, DHT) for as long as the node runs."""
    async with background_trio_service(service):
        task_status.started()
        await trio.sleep_forever()
