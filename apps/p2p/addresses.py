"""Which peer-supplied addresses this node dials (DESIGN §8: it dials only what it was given).

Member devices write their multiaddrs into the thread, DHT answers carry more, and invite links
carry the inviter's. A hostile member could list loopback, private or link-local addresses (with
any port) and have every member node probe them: a port scan of each member's own machine and
LAN, run from the inside. So:

- an address in a **local range** (loopback, RFC 1918, carrier-grade NAT, IPv6 unique local,
  link-local) is dialed only when this node itself has a bound address in that same range: nodes
  on one LAN, or on 127.0.0.1 in tests, still reach each other; a node on a public address does
  not scan anyone's private network, and a node bound to all interfaces (whose own addresses
  never include loopback, see ``host.announce_addresses``) never probes its own machine;
- unspecified (``0.0.0.0``, ``::``, and ``0.0.0.0/8``, which Linux treats as "this host"),
  multicast, broadcast and reserved addresses are never dialed;
- DNS names are resolved here and the rule applied to every address they give; what is dialed is
  the resolved address, so a name cannot point somewhere else between the check and the dial.

An invite link is the user's own choice, but it follows the same rule (its addresses are the
inviter's, and a link can come from anyone). Relays configured by the operator
(``SEREUS_P2P_RELAYS``) are not checked.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable

import multiaddr
import trio

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOCAL_RANGES: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "127.0.0.0/8",  # loopback
        "::1/128",
        "10.0.0.0/8",  # RFC 1918
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598): an ISP's or an overlay's private space
        "fc00::/7",  # IPv6 unique local (ULA)
        "169.254.0.0/16",  # link-local
        "fe80::/10",
    )
)
NEVER: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(net) for net in ("0.0.0.0/8", "::/128", "255.255.255.255/32")
)
RESOLVE_TIMEOUT = 3.0
MAX_RESOLVED = 4  # addresses of one name that are dialed
DNS_PROTOCOLS = {"dns": socket.AF_UNSPEC, "dns4": socket.AF_INET, "dns6": socket.AF_INET6}

Resolver = Callable[[str, int, int], Awaitable[list[str]]]


def _ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    return ip


def local_range(ip: IPAddress) -> IPNetwork | None:
    """The local range ``ip`` is in (None for a public address)."""
    return next((net for net in LOCAL_RANGES if ip.version == net.version and ip in net), None)


def own_ranges(bound: Iterable[str]) -> frozenset[IPNetwork]:
    """The local ranges this node has a bound address in; ``bound`` are its bound multiaddrs
    with wildcards expanded to the interface addresses (``host.announce_addresses``)."""
    ranges = set()
    for addr in bound:
        parts = addr.split("/")
        ip = _ip(parts[2]) if len(parts) > 2 and parts[1] in ("ip4", "ip6") else None
        net = local_range(ip) if ip is not None else None
        if net is not None:
            ranges.add(net)
    return frozenset(ranges)


def ip_allowed(ip: IPAddress, own: frozenset[IPNetwork]) -> bool:
    """Whether this node (with bound addresses in the ``own`` local ranges) may dial ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    net = local_range(ip)
    if net is not None:
        return net in own
    # (Python counts ::1 among the reserved IPv6 addresses: the local ranges come first.)
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return False
    return not any(ip.version == never.version and ip in never for never in NEVER)


def address_ok(addr: multiaddr.Multiaddr) -> bool:
    """A multiaddr of a shape this node dials: TCP over IPv4, IPv6 or DNS, optionally ending in
    ``/p2p/<id>``; nothing else (no circuits, no other transports)."""
    names = [p.name for p in addr.protocols()]
    if len(names) < 2 or names[0] not in ("ip4", "ip6", *DNS_PROTOCOLS) or names[1] != "tcp":
        return False
    return names[2:] in ([], ["p2p"])


async def _resolve(host: str, port: int, family: int) -> list[str]:
    infos = await trio.socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def dial_targets(
    addrs: Iterable[str],
    own: frozenset[IPNetwork] | None,
    *,
    resolve: Resolver = _resolve,
) -> tuple[list[multiaddr.Multiaddr], list[str]]:
    """The addresses among ``addrs`` this node may dial, DNS names replaced by what they resolve
    to, in order and without repeats; and the ones it will not dial (for the peer's record).
    ``own`` is ``own_ranges`` of this node; None skips the range rule (the operator's own
    configuration), not the shape check."""
    targets: dict[str, multiaddr.Multiaddr] = {}
    refused: list[str] = []
    for text in addrs:
        try:
            addr = multiaddr.Multiaddr(text)
        except Exception:  # a peer's malformed address is not an error here: skip it
            refused.append(text)
            continue
        if not address_ok(addr):
            refused.append(text)
            continue
        parts = str(addr).split("/")  # "", proto, host, "tcp", port[, "p2p", id]
        kind, host, port, rest = parts[1], parts[2], parts[4], "/".join(parts[5:])
        if kind in DNS_PROTOCOLS:
            ips: list[str] = []
            with trio.move_on_after(RESOLVE_TIMEOUT):
                try:
                    ips = await resolve(host, int(port), DNS_PROTOCOLS[kind])
                except OSError:
                    ips = []
            candidates = list(dict.fromkeys(ips))[:MAX_RESOLVED]
        else:
            candidates = [host]
        allowed = False
        for candidate in candidates:
            ip = _ip(candidate)
            if ip is None or (own is not None and not ip_allowed(ip, own)):
                continue
            family = "ip4" if ip.version == 4 else "ip6"
            target = f"/{family}/{ip}/tcp/{port}" + (f"/{rest}" if rest else "")
            targets.setdefault(target, multiaddr.Multiaddr(target))
            allowed = True
        if not allowed:
            refused.append(text)
    return list(targets.values()), refused
