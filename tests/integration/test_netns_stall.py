"""A connection that goes silent is noticed and redialed: two nodes in network namespaces with a
router between them, the router dropping every packet between them for half a minute (a cut
path: no FIN, no RST, no ICMP), then forwarding again.

Without a keepalive the connection stays "connected" and every session on it waits out TCP's
retransmission backoff: after 30 s of loss the next retry is some 20 s away (the retries of a
doubling timeout from 0.2 s fall at about 25 s and 51 s), so sync comes back 20 s or more after
the path does. With it, each node notices within about 21 s, closes the connection and redials
on a short schedule (every 8 s at most): a note written after the path is back reaches the
other node within seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.integration.test_netns import node, start_all, titles
from tests.support.api import wait_for
from tests.support.netns import Namespace, Netns, ip, netns_unavailable, sweep_stale
from tests.support.p2p import Peer, converged

pytestmark = pytest.mark.slow

OUTAGE = 30.0  # TCP's next retry falls ~20 s after it: longer than CATCH_UP
CATCH_UP = 15.0


@pytest.fixture
def lab() -> Iterator[Netns]:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"network namespaces unavailable: {reason}")
    sweep_stale()
    with Netns() as made:
        yield made


@pytest.fixture
def peers(lab: Netns) -> Iterator[list[Peer]]:
    """Nodes started by the test; killed before ``lab`` removes their namespaces."""
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.kill()


def router(lab: Netns) -> tuple[Namespace, Namespace, Namespace, str, str]:
    """A and B on subnets of their own, R forwarding between them; returns A's and B's
    addresses."""
    a, r, b = lab.namespace("a"), lab.namespace("r"), lab.namespace("b")
    for ns in (a, b):
        lab.control(ns)
    a_ip, r_a_ip = lab.link(a, r, "10.75.1.0/24", hosts=(2, 1))
    b_ip, r_b_ip = lab.link(b, r, "10.75.2.0/24", hosts=(2, 1))
    lab.route(a, "10.75.2.0/24", r_a_ip)
    lab.route(b, "10.75.1.0/24", r_b_ip)
    forward = r.run("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
    assert forward.returncode == 0, forward.stderr
    return a, r, b, a_ip, b_ip


def cut(r: Namespace, *hosts: str) -> None:
    """R drops what it would forward to these hosts, silently (a blackhole route sends no
    ICMP): to both ends the path is simply gone."""
    for host in hosts:
        ip("route", "add", "blackhole", f"{host}/32", netns=r.name)


def heal(r: Namespace, *hosts: str) -> None:
    for host in hosts:
        ip("route", "del", "blackhole", f"{host}/32", netns=r.name)


def test_a_connection_that_went_silent_is_redialed_once_the_path_is_back(lab, peers, tmp_path):
    a, r, b, a_ip, b_ip = router(lab)
    assert lab.default_routes() == []
    na = node(peers, tmp_path / "a", a, a_ip)
    nb = node(peers, tmp_path / "b", b, b_ip)
    start_all(na, nb)
    thread = na.thread_create("Over the router")
    assert nb.redeem(na.invite(thread))["id"] == thread
    nb.note(thread, "before the cut")
    converged([na, nb], thread)

    cut(r, a_ip, b_ip)
    assert a.connect_error(b_ip, 9) == "timeout"  # the path drops packets, it does not refuse
    na.note(thread, "during the cut")  # data in flight on the silent connection
    time.sleep(OUTAGE)
    heal(r, a_ip, b_ip)
    healed = time.monotonic()
    na.note(thread, "after the cut")
    try:
        wait_for(
            lambda: "after the cut" in titles(nb.dump(thread)),
            timeout=CATCH_UP,
            interval=0.5,
            what="A's note written after the path came back to reach B",
        )
    except AssertionError as exc:
        status = {n.process.data_dir.name: n.network() for n in (na, nb)}
        details = {
            name: {k: s.get(k) for k in ("connections", "keepalive", "peers")}
            for name, s in status.items()
        }
        raise AssertionError(f"{exc}\n  {details}") from None
    took = time.monotonic() - healed
    assert titles(converged([na, nb], thread)) == [
        "after the cut",
        "before the cut",
        "during the cut",
    ]
    assert na.network()["keepalive"]["dead"] >= 1 or nb.network()["keepalive"]["dead"] >= 1
    print(f"sync came back {took:.1f} s after the path did")
