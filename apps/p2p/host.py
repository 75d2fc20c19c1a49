"""The libp2p host, configured explicitly (DESIGN §8, ../shared/notes/py-libp2p.md).

TCP only, Noise only, Yamux only: py-libp2p's defaults would also accept plaintext, secio and
mplex, and QUIC loses data in 0.8.1. The identity is the node's device key, so the Noise
handshake authenticates every peer as a device key: that is what thread membership is checked
against. No bootstrap list, no mDNS, no UPnP, no auto-connector: this host dials only the
addresses the node hands it (after ``addresses`` checked them).
"""

from __future__ import annotations

import ipaddress
import logging

import multiaddr
import nacl.signing
import psutil
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import Ed25519PublicKey, create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as x25519_key_pair
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.transport.tcp.tcp import TCP

MAX_CONNECTIONS = 256
UPGRADE_TIMEOUT = 10.0  # an inbound connection that does not finish Noise + Yamux by then is cut


def host_build(device_key: nacl.signing.SigningKey) -> IHost:
    key_pair = create_new_key_pair(bytes(device_key))
    host = new_host(
        key_pair=key_pair,
        # A fresh Noise static key each run: the handshake signs it with the identity key.
        sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(key_pair, x25519_key_pair().private_key)},
        muxer_opt={YAMUX_PROTOCOL_ID: Yamux},
        transports=[TCP()],
        connection_config=ConnectionConfig(
            max_connections=MAX_CONNECTIONS,
            high_watermark=MAX_CONNECTIONS,
            # One connection per peer: dialing is 8 ms instead of a fixed 250 ms race.
            max_connections_per_peer=1,
            # Nothing is dialed behind the node's back (no auto-connect to fill a quota).
            min_connections=0,
            low_watermark=0,
            inbound_upgrade_timeout=UPGRADE_TIMEOUT,
            outbound_upgrade_timeout=UPGRADE_TIMEOUT,
        ),
        enable_mDNS=False,
        enable_upnp=False,
        bootstrap=None,
    )
    # The node backs off per peer itself; the swarm's own retries would triple a failing dial.
    host.get_network().retry_config = RetryConfig(max_retries=0)
    return host


def device_of(peer_id: ID) -> bytes | None:
    """The Ed25519 device key behind a peer id (the Noise-authenticated identity), if any."""
    try:
        key = peer_id.extract_public_key()
    except Exception:  # any id that does not embed a key is simply not a device
        return None
    if not isinstance(key, Ed25519PublicKey):
        return None
    return key.to_bytes()


def peer_id_of(device: bytes) -> ID:
    return ID.from_pubkey(Ed25519PublicKey.from_bytes(device))


def announce_addresses(bound: list[multiaddr.Multiaddr], extra: tuple[str, ...] = ()) -> list[str]:
    """The addresses to tell others: the bound ones, with a wildcard (0.0.0.0, ::) replaced by
    this machine's interface addresses (loopback only when bound to loopback), without /p2p."""
    out: list[str] = list(extra)
    for addr in bound:
        text = str(addr).split("/p2p/")[0]
        parts = text.split("/")  # "", "ip4", host, "tcp", port
        if len(parts) < 5 or parts[1] not in ("ip4", "ip6") or parts[3] != "tcp":
            continue
        family, host, port = parts[1], parts[2], parts[4]
        if ipaddress.ip_address(host).is_unspecified:
            out.extend(f"/{family}/{ip}/tcp/{port}" for ip in _interface_ips(family))
        else:
            out.append(text)
    return list(dict.fromkeys(out))


def _interface_ips(family: str) -> list[str]:
    ips = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            try:
                ip = ipaddress.ip_address(entry.address.split("%")[0])
            except ValueError:
                continue
            if ip.version != (4 if family == "ip4" else 6) or ip.is_loopback:
                continue
            if ip.is_link_local:
                continue  # needs a zone to dial; useless to a peer elsewhere
            ips.append(str(ip))
    return sorted(ips)


def quiet_libp2p_logs() -> None:
    # The DHT and the swarm log routine events (every normal stream close) as warnings, and
    # multiaddr logs every parse at debug level (SEREUS_LOG_LEVEL=DEBUG would drown in it).
    logging.getLogger("libp2p").setLevel(logging.ERROR)
    logging.getLogger("multiaddr").setLevel(logging.WARNING)
