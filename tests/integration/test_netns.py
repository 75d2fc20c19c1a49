"""Nodes on several "hosts": Linux network namespaces made by the test, joined by veth links, each
node process in one of them (``ip netns exec``), driven from here over HTTP.

Every namespace has a *control* link to the root namespace, on a /24 of its own, where the node's
web UI listens: the only way the test reaches it. The p2p side listens on a *data* address, so
a node announces (and members dial) that one (a node listening on 0.0.0.0 announces its control
address too; nobody but the test process has a route there). Namespaces have connected routes
only (plus the host routes a test adds), no default route, so they reach nothing but their own
links; the tests check their topology with TCP connects from inside the namespaces.

Skipped, with the reason, where namespaces cannot be created (not root, no iproute2, a sandbox).
Namespaces, veths and node processes go away after each test, failed or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import wait_for
from tests.support.netns import Namespace, Netns, netns_unavailable, sweep_stale
from tests.support.p2p import Peer, converged

pytestmark = pytest.mark.slow

SYNC_INTERVAL = "5"  # anti-entropy rounds (and re-dials of unreachable members) every few seconds
NOWHERE = "/ip4/10.99.99.99/tcp/9"  # announced by a node that believes it is elsewhere


@pytest.fixture(scope="session")
def netns_available() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"network namespaces unavailable: {reason}")
    sweep_stale()  # what an earlier run, killed before its clean-up, left behind


@pytest.fixture
def lab(netns_available: None) -> Iterator[Netns]:
    with Netns() as lab:
        yield lab


@pytest.fixture
def peers(lab: Netns) -> Iterator[list[Peer]]:
    """Nodes started by the test; killed before ``lab`` removes their namespaces."""
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.kill()


def node(
    peers: list[Peer],
    path: Path,
    ns: Namespace,
    listen_ip: str,
    *,
    port: int = 0,
    env: dict[str, str] | None = None,
) -> Peer:
    """A node (not started yet) in ``ns``: web UI on its control address, p2p on ``listen_ip``."""
    assert ns.control_ip, f"{ns.name} has no control link"
    peer = Peer(
        path,
        env={
            "SEREUS_ALLOWED_HOSTS": ns.control_ip,
            "SEREUS_P2P_SYNC_INTERVAL": SYNC_INTERVAL,
            **(env or {}),
        },
        http=f"{ns.control_ip}:0",
        p2p_listen=f"/ip4/{listen_ip}/tcp/{port}",
        prefix=ns.prefix,
    )
    peers.append(peer)
    return peer


def start_all(*nodes: Peer) -> None:
    with ThreadPoolExecutor(len(nodes)) as pool:
        for future in [pool.submit(n.start) for n in nodes]:
            future.result()


def p2p_port(peer: Peer) -> int:
    """The port ``peer`` listens on (announced with its listen address, or its interfaces')."""
    host = peer.process.p2p_listen.split("/")[2]
    addrs = peer.network()["addresses"]
    mine = [a for a in addrs if a.split("/")[2] == host] or addrs
    return int(mine[-1].rsplit("/", 1)[1])


def titles(dump: dict) -> list[str]:
    return sorted(row[1] for row in dump["notes"])


def record_of(peer: Peer, other: Peer) -> dict[str, Any] | None:
    """What ``peer``'s node knows of ``other``'s (addresses, connected, last error)."""
    return next((r for r in peer.network()["peers"] if r["peer_id"] == other.peer_id), None)


def wait_connected(x: Peer, y: Peer, *, timeout: float, why: str) -> None:
    """Wait until ``x`` and ``y`` list each other among their connections; on a timeout, say
    what each knows of the other."""

    def both() -> bool:
        return y.peer_id in x.network()["connections"] and x.peer_id in y.network()["connections"]

    try:
        wait_for(both, timeout=timeout, interval=0.5, what=why)
    except AssertionError as exc:
        details = []
        for me, other in ((x, y), (y, x)):
            status = me.network()
            extra = {k: status[k] for k in ("relay", "relays", "mdns", "dht") if k in status}
            details.append(
                f"\n  {me.process.data_dir.name} ({me.peer_id}): connections "
                f"{status['connections']}, record of {other.process.data_dir.name}: "
                f"{record_of(me, other)}, {extra}"
            )
        raise AssertionError(str(exc) + "".join(details)) from None


@dataclass
class Star:
    """R in the middle, linked to B (10.78.1.0/24) and to C (10.78.2.0/24); B and C have no
    link, and no route, to each other."""

    r: Namespace
    b: Namespace
    c: Namespace
    r_b_ip: str  # R's address on its link to B
    b_ip: str
    r_c_ip: str  # R's address on its link to C
    c_ip: str

    def check(self, b_port: int, c_port: int, r_addrs: dict[str, tuple[str, int]]) -> None:
        """B and C reach R at the given addresses (name -> ip, port) but not each other."""
        for ns in (self.b, self.c):
            for name, (host, port) in r_addrs.items():
                assert ns.connect_error(host, port) is None, f"{ns.name} cannot reach R's {name}"
        forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
        why = f"(ip_forward in the root namespace: {forward})"
        assert self.b.connect_error(self.c_ip, c_port) == "ENETUNREACH", why
        assert self.c.connect_error(self.b_ip, b_port) == "ENETUNREACH", why
        assert self.b.connect_error(str(self.c.control_ip), c_port) == "ENETUNREACH", why
        assert self.c.connect_error(str(self.b.control_ip), b_port) == "ENETUNREACH", why


def star(lab: Netns) -> Star:
    r, b, c = lab.namespace("r"), lab.namespace("b"), lab.namespace("c")
    for ns in (r, b, c):
        lab.control(ns)
    r_b_ip, b_ip = lab.link(r, b, "10.78.1.0/24")
    r_c_ip, c_ip = lab.link(r, c, "10.78.2.0/24")
    return Star(r, b, c, r_b_ip, b_ip, r_c_ip, c_ip)


def test_members_without_a_route_to_each_other_connect_through_a_relay(lab, peers, tmp_path):
    net = star(lab)
    # R has one address both reach, like a relay with a public address: its own (on its
    # loopback), routed to over their links. R does not forward (a new namespace's default).
    public = lab.address(net.r, "10.78.0.1/32")
    lab.route(net.b, f"{public}/32", net.r_b_ip)
    lab.route(net.c, f"{public}/32", net.r_c_ip)
    assert lab.default_routes() == []

    relay = node(peers, tmp_path / "r", net.r, public, env={"SEREUS_RELAY": "on"})
    nb = node(peers, tmp_path / "b", net.b, net.b_ip)
    nc = node(peers, tmp_path / "c", net.c, net.c_ip)
    start_all(relay, nb, nc)
    assert relay.network()["relay"] is True
    r_port, b_port, c_port = p2p_port(relay), p2p_port(nb), p2p_port(nc)
    assert relay.network()["addresses"] == [f"/ip4/{public}/tcp/{r_port}"]
    net.check(b_port, c_port, {"public address": (public, r_port)})

    thread = relay.thread_create("Relayed")
    assert nb.redeem(relay.invite(thread))["id"] == thread
    assert nc.redeem(relay.invite(thread))["id"] == thread
    nb.note(thread, "from b")
    nc.note(thread, "from c")
    assert titles(converged([relay, nb, nc], thread)) == ["from b", "from c"]

    # B knows C's address from the thread (and C B's) but cannot dial it...
    c_addr, b_addr = f"/ip4/{net.c_ip}/tcp/{c_port}", f"/ip4/{net.b_ip}/tcp/{b_port}"
    wait_for(
        lambda: c_addr in ((record_of(nb, nc) or {}).get("addrs") or ()),
        what="B to learn C's address from the thread",
    )
    wait_for(
        lambda: b_addr in ((record_of(nc, nb) or {}).get("addrs") or ()),
        what="C to learn B's address from the thread",
    )
    # ... so they connect through R's relay.
    wait_connected(nb, nc, timeout=60, why="B and C to connect through R's relay")
    assert net.b.connect_error(net.c_ip, c_port) == "ENETUNREACH"  # still: it is relayed


def test_an_inviter_with_several_addresses_is_reached_at_the_one_that_works(lab, peers, tmp_path):
    """R listens on all its interfaces, so it announces (and its invites carry) one address
    per link (and its control address); B reaches only the first, C only the second."""
    net = star(lab)
    assert lab.default_routes() == []
    r = node(peers, tmp_path / "r", net.r, "0.0.0.0")
    nb = node(peers, tmp_path / "b", net.b, net.b_ip)
    nc = node(peers, tmp_path / "c", net.c, net.c_ip)
    start_all(r, nb, nc)
    r_port, b_port, c_port = p2p_port(r), p2p_port(nb), p2p_port(nc)
    announced = r.network()["addresses"]
    assert announced[:2] == [f"/ip4/{net.r_b_ip}/tcp/{r_port}", f"/ip4/{net.r_c_ip}/tcp/{r_port}"]
    net.check(b_port, c_port, {})
    assert net.b.connect_error(net.r_b_ip, r_port) is None
    assert net.c.connect_error(net.r_c_ip, r_port) is None
    assert net.b.connect_error(net.r_c_ip, r_port) == "ENETUNREACH"
    assert net.c.connect_error(net.r_b_ip, r_port) == "ENETUNREACH"

    thread = r.thread_create("Multi-homed")
    assert nb.redeem(r.invite(thread))["id"] == thread  # R's first address
    assert nc.redeem(r.invite(thread))["id"] == thread  # R's second address
    nb.note(thread, "from b")
    nc.note(thread, "from c")
    assert titles(converged([r, nb, nc], thread)) == ["from b", "from c"]


def test_members_on_one_lan_find_each_other_by_mdns_after_both_moved(lab, peers, tmp_path):
    """A and B share a LAN segment; both restart on new ports, so that each knows only the
    other's old address: only mDNS can bring them together again.

    Airtight because: B moves while A is down (B's new address is written to the thread on B
    only, nobody can carry it to A); then A moves (B only knows A's old address, where nothing
    listens: refused). There is no third member, no DHT (off, and with nobody connected it
    could not answer anyway), no relay; the invite carried A's old address. What each announces
    besides its listen address (``NOWHERE``) is unroutable."""
    a, b = lab.namespace("a"), lab.namespace("b")
    lab.control(a)
    lab.control(b)
    a_ip, b_ip = lab.link(a, b, "10.77.0.0/24")
    assert lab.default_routes() == []
    env = {"SEREUS_MDNS": "on", "SEREUS_DHT": "off"}
    na = node(peers, tmp_path / "a", a, a_ip, env=env)
    nb = node(peers, tmp_path / "b", b, b_ip, env=env)
    start_all(na, nb)
    assert na.network()["mdns"] is True

    thread = na.thread_create("LAN")
    assert nb.redeem(na.invite(thread))["id"] == thread
    converged([na, nb], thread)
    old_a, old_b = p2p_port(na), p2p_port(nb)
    wait_for(
        lambda: f"/ip4/{b_ip}/tcp/{old_b}" in ((record_of(na, nb) or {}).get("addrs") or ()),
        what="A to learn B's address from the thread",
    )
    na.stop()
    nb.stop()

    new_a, new_b = moved(old_a), moved(old_b)
    nb.process.p2p_listen = f"/ip4/{b_ip}/tcp/{new_b}"
    nb.process.extra_env["SEREUS_P2P_ANNOUNCE"] = NOWHERE
    nb.start()
    na.process.p2p_listen = f"/ip4/{a_ip}/tcp/{new_a}"
    na.process.extra_env["SEREUS_P2P_ANNOUNCE"] = NOWHERE
    na.start()
    assert p2p_port(na) == new_a
    assert p2p_port(nb) == new_b
    assert a.connect_error(b_ip, old_b) == "ECONNREFUSED"  # what A knows of B leads nowhere
    assert b.connect_error(a_ip, old_a) == "ECONNREFUSED"  # and what B knows of A

    na.note(thread, "after the move")
    try:
        wait_for(
            lambda: "after the move" in titles(nb.dump(thread)),
            timeout=30,
            interval=0.5,
            what="A's note to reach B (found by mDNS)",
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n  A's record of B: {record_of(na, nb)}\n  B's record of A: {record_of(nb, na)}"
        ) from None
    wait_connected(na, nb, timeout=10, why="A and B to be connected")


def moved(port: int) -> int:
    """Another port (the namespaces are fresh: nothing else listens there)."""
    return port + 1 if port < 65535 else port - 1


def test_a_member_that_moved_is_found_through_the_dht(lab, peers, tmp_path):
    """A and D share one thread ("pair") and nothing else; B and C share "club" with A and
    "band" with D. A and D both move (restart on new ports; D first, while A is down), so each
    knows only the other's old address, and nobody else holds "pair" to carry their new ones:
    they find each other through the DHT of B and C, members both are connected to.

    Airtight because: no mDNS (off), no relay, no third member in "pair"; B and C only ever see
    "club" and "band". (With ``SEREUS_DHT=off`` this test fails.)"""
    names = "abcd"
    spaces = [lab.namespace(name) for name in names]
    for ns in spaces:
        lab.control(ns)
    ips = lab.lan(spaces, "10.76.0.0/24")
    assert lab.default_routes() == []
    na, nb, nc, nd = (
        node(peers, tmp_path / name, ns, ip_, env={"SEREUS_DHT": "on"})
        for name, ns, ip_ in zip(names, spaces, ips, strict=True)
    )
    start_all(na, nb, nc, nd)
    assert all(n.network()["dht"] is True for n in (na, nb, nc, nd))

    pair = na.thread_create("Pair")
    club = na.thread_create("Club")
    band = nb.thread_create("Band")
    nd.redeem(na.invite(pair))
    nb.redeem(na.invite(club))
    nc.redeem(na.invite(club))
    nc.redeem(nb.invite(band))
    nd.redeem(nb.invite(band))
    converged([na, nd], pair)
    converged([na, nb, nc], club)
    converged([nb, nc, nd], band)
    old_a, old_d = p2p_port(na), p2p_port(nd)
    a, d, a_ip, d_ip = spaces[0], spaces[3], ips[0], ips[3]
    wait_for(
        lambda: f"/ip4/{d_ip}/tcp/{old_d}" in ((record_of(na, nd) or {}).get("addrs") or ()),
        what="A to learn D's address from the thread",
    )

    na.stop()
    nd.stop()
    new_a, new_d = moved(old_a), moved(old_d)
    nd.process.p2p_listen = f"/ip4/{d_ip}/tcp/{new_d}"
    nd.start()
    wait_connected(nd, nb, timeout=30, why="D to reconnect to B")  # D knows where B is
    na.process.p2p_listen = f"/ip4/{a_ip}/tcp/{new_a}"
    na.start()
    assert (p2p_port(na), p2p_port(nd)) == (new_a, new_d)
    assert a.connect_error(d_ip, old_d) == "ECONNREFUSED"  # what A knows of D leads nowhere
    assert d.connect_error(a_ip, old_a) == "ECONNREFUSED"  # and what D knows of A

    na.note(pair, "found you")
    try:
        wait_for(
            lambda: "found you" in titles(nd.dump(pair)),
            timeout=45,
            interval=0.5,
            what="A's note to reach D (found through the DHT)",
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n  A's record of D: {record_of(na, nd)}\n  D's record of A: {record_of(nd, na)}"
        ) from None
    wait_connected(na, nd, timeout=10, why="A and D to be connected")
