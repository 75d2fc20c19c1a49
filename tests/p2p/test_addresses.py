"""Which peer-supplied addresses a node dials: local ranges only where it is itself, never
unspecified or multicast ones, DNS names checked by what they resolve to."""

from __future__ import annotations

import ipaddress

import pytest
import trio

from apps.p2p.addresses import dial_targets, ip_allowed, own_ranges

ON_LOOPBACK = own_ranges(["/ip4/127.0.0.1/tcp/4001"])
ON_TEN = own_ranges(["/ip4/10.78.1.2/tcp/4001"])
PUBLIC = own_ranges(["/ip4/203.0.113.7/tcp/4001", "/ip6/2001:db8::7/tcp/4001"])


def allowed(text: str, own) -> bool:
    return ip_allowed(ipaddress.ip_address(text), own)


def test_own_ranges_are_the_local_ranges_of_the_bound_addresses():
    assert own_ranges(["/ip4/127.0.0.1/tcp/1", "/ip4/192.168.1.20/tcp/1"]) == {
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("192.168.0.0/16"),
    }
    assert own_ranges(["/ip6/fd00::5/tcp/1", "/dns4/example.org/tcp/1", "junk"]) == {
        ipaddress.ip_network("fc00::/7")
    }
    assert not PUBLIC


@pytest.mark.parametrize(
    ("address", "on_loopback", "on_ten", "public"),
    [
        ("127.0.0.1", True, False, False),
        ("127.8.9.10", True, False, False),
        ("::1", False, False, False),  # IPv6 loopback is a range of its own
        ("10.0.0.1", False, True, False),
        ("10.255.1.1", False, True, False),
        ("172.16.5.5", False, False, False),
        ("192.168.1.1", False, False, False),
        ("100.64.0.1", False, False, False),
        ("169.254.1.1", False, False, False),
        ("fe80::1", False, False, False),
        ("fd12:3456::1", False, False, False),
        ("::ffff:10.1.2.3", False, True, False),  # an IPv4-mapped address is its IPv4 one
        ("203.0.113.9", True, True, True),  # public: anyone may dial it
        ("2001:db8::1", True, True, True),
        ("0.0.0.0", False, False, False),  # never: unspecified, "this host", multicast...
        ("0.1.2.3", False, False, False),
        ("::", False, False, False),
        ("224.0.0.251", False, False, False),
        ("ff02::fb", False, False, False),
        ("255.255.255.255", False, False, False),
        ("240.0.0.1", False, False, False),
    ],
)
def test_local_ranges_only_where_this_node_is_and_never_the_unspecified_or_multicast(
    address, on_loopback, on_ten, public
):
    assert allowed(address, ON_LOOPBACK) is on_loopback
    assert allowed(address, ON_TEN) is on_ten
    assert allowed(address, PUBLIC) is public


def targets(addrs: list[str], own, names: dict[str, list[str]] | None = None):
    asked: list[tuple[str, int, int]] = []

    async def resolve(host: str, port: int, family: int) -> list[str]:
        asked.append((host, port, family))
        if host not in (names or {}):
            raise OSError("no such name")
        return (names or {})[host]

    usable, refused = trio.run(lambda: dial_targets(addrs, own, resolve=resolve))
    return [str(a) for a in usable], refused, asked


def test_dial_targets_keeps_the_order_drops_repeats_and_says_what_it_refused():
    usable, refused, _ = targets(
        [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/10.0.0.9/tcp/22",  # a member listing the LAN of every other member
            "/ip4/203.0.113.9/tcp/4001/p2p/12D3KooWA4K2AVjUtx5LZ4Q1hzJ6CjeQ1vzUCJoQvxePkB7nqeWk",
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/203.0.113.9/udp/4001",  # not TCP
            "/p2p-circuit",
            "not an address",
        ],
        ON_LOOPBACK,
    )
    assert usable == [
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/203.0.113.9/tcp/4001/p2p/12D3KooWA4K2AVjUtx5LZ4Q1hzJ6CjeQ1vzUCJoQvxePkB7nqeWk",
    ]
    assert refused == [
        "/ip4/10.0.0.9/tcp/22",
        "/ip4/203.0.113.9/udp/4001",
        "/p2p-circuit",
        "not an address",
    ]


def test_a_name_is_dialed_at_what_it_resolves_to_if_that_is_allowed():
    names = {
        "node.example.org": ["203.0.113.5", "10.1.1.1", "203.0.113.5"],
        "localhost": ["127.0.0.1", "::1"],
    }
    usable, refused, asked = targets(
        ["/dns4/node.example.org/tcp/4001", "/dns/localhost/tcp/22", "/dns6/nowhere/tcp/1"],
        PUBLIC,
        names,
    )
    # The name's private answer and a name that only leads to loopback are not dialed.
    assert usable == ["/ip4/203.0.113.5/tcp/4001"]
    assert refused == ["/dns/localhost/tcp/22", "/dns6/nowhere/tcp/1"]
    assert [host for host, _port, _family in asked] == ["node.example.org", "localhost", "nowhere"]
    usable, refused, _ = targets(["/dns/localhost/tcp/22"], ON_LOOPBACK, names)
    assert usable == ["/ip4/127.0.0.1/tcp/22"]


def test_without_own_ranges_the_operators_own_addresses_are_not_range_checked():
    usable, refused, _ = targets(["/ip4/192.168.1.1/tcp/4001", "/ip4/1.2.3.4/udp/1"], None)
    assert usable == ["/ip4/192.168.1.1/tcp/4001"]
    assert refused == ["/ip4/1.2.3.4/udp/1"]
