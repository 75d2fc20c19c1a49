"""Dialing member devices: known addresses first, then the DHT and the relays
(``discovery``); failures back off per peer, from 1 s up to 5 minutes. Addresses that members (or
the DHT, or an invite link) supply are dialed only if ``addresses`` allows them.

A mixin of ``SereusNode``, whose state it uses.
"""

from __future__ import annotations

import logging
import random
import time
from typing import TYPE_CHECKING

import trio
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from apps.p2p.addresses import dial_targets
from apps.p2p.host import peer_id_of

if TYPE_CHECKING:
    from apps.p2p.node import PeerRecord

logger = logging.getLogger(__name__)

DIAL_TIMEOUT = 3.0  # per address
MAX_DIAL_ADDRS = 8
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 300.0


class Dialing:
    """Connecting to a member device (one dial per device at a time), with backoff."""

    def connected(self, device: bytes) -> bool:
        """Whether a live connection to ``device`` is open (the swarm lists a closed one until
        its clean-up has run)."""
        assert self.host is not None
        conns = self.host.get_network().get_connections(peer_id_of(device))
        return any(not conn.is_closed for conn in conns)

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
            # The device may have connected to this node meanwhile (its ``_on_connected`` does
            # not start a session while this one is dialing): that connection serves as well.
            ok = await self.dial(record) or self.connected(device)
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
