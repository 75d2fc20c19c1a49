"""Several "hosts" on one machine for integration tests: Linux network namespaces joined by veth
links, created by the test itself and always torn down.

Each namespace starts with only a loopback interface. ``Netns.link`` joins two namespaces (a LAN
segment of two), ``Netns.control`` joins one to the root namespace so the test process can reach
a node's HTTP API there. Namespaces get connected routes only, never a default route, so they
cannot reach each other through the root namespace (even with ``ip_forward`` on there: they have
no route to send such packets to). Names are unique per run (``sx<4 hex>-<label>``; interface
names fit the kernel's 15 characters) so parallel runs and leftovers of a killed run do not clash.
Each ``Netns`` notes its owner's pid in ``$TMPDIR/sereus-netns/<tag>``: ``sweep_stale()`` removes
what a run killed before its clean-up (SIGKILL) left behind.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2: ``netns_unavailable()`` says why not.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

IP = shutil.which("ip") or "/usr/sbin/ip"
CONTROL_NET = ipaddress.ip_network("10.79.0.0/16")  # control /24s to the root namespace
MULTICAST = "224.0.0.0/4"
OWNERS = Path(tempfile.gettempdir()) / "sereus-netns"  # <tag>: the pid of the process using it

_live: set[Netns] = set()  # torn down at exit, if a test run is cut short


class NetnsError(RuntimeError):
    pass


def ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``ip [-n netns] args``; a failure raises with ip's own message."""
    command = [IP, *(("-n", netns) if netns else ()), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    if check and result.returncode != 0:
        raise NetnsError(f"{' '.join(command)}: {result.stderr.strip() or result.returncode}")
    return result


def netns_unavailable() -> str | None:
    """None when this process may create namespaces and veth links, else the reason why not."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux, not {sys.platform}"
    if not os.path.exists(IP):
        return "no `ip` command (iproute2)"
    probe = f"sx{secrets.token_hex(2)}-p"
    try:
        ip("netns", "add", probe)
    except (NetnsError, OSError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(Exception):  # in case it got halfway
            ip("netns", "del", probe, check=False)
        return f"cannot create a network namespace: {exc}"
    try:
        ip("link", "add", f"{probe}0", "type", "veth", "peer", "name", f"{probe}1", netns=probe)
    except NetnsError as exc:
        return f"cannot create a veth pair in a network namespace: {exc}"
    finally:
        ip("netns", "del", probe, check=False)
    return None


def sweep_stale() -> list[str]:
    """Remove the namespaces (with whatever still runs in them) and root-side veths of runs
    whose process is gone (killed before clean-up); returns the tags swept."""
    swept = []
    for owner in sorted(OWNERS.glob("sx*")):
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if _alive(pid):  # a run going on (this one included)
            continue
        lab = Netns(owner.name)
        lab.namespaces = {
            name: Namespace(name) for name in _netns_names() if name.startswith(f"{owner.name}-")
        }
        lab.root_ends = [name for name in _link_names() if name.startswith(f"{owner.name}-")]
        lab.teardown()
        swept.append(owner.name)
    return swept


@dataclass
class Namespace:
    """One network namespace: a "host" with the addresses its links gave it."""

    name: str
    addresses: dict[str, str] = field(default_factory=dict)  # interface -> IPv4 address
    control_ip: str | None = None  # its end of the link to the root namespace

    @property
    def prefix(self) -> list[str]:
        """Put in front of a command to run it in this namespace (``ip netns exec`` execs it)."""
        return [IP, "netns", "exec", self.name]

    def run(
        self, *argv: str, timeout: float = 30, check: bool = False
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.prefix, *argv], capture_output=True, text=True, timeout=timeout, check=check
        )

    def python(self, code: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-c", code, *args, timeout=timeout)

    def connect_error(self, host: str, port: int, *, timeout: float = 3.0) -> str | None:
        """Open a TCP connection from inside this namespace: None if it worked, else why not
        (an errno name such as ``ENETUNREACH`` or ``ECONNREFUSED``, or ``timeout``)."""
        result = self.python(_CONNECT, host, str(port), str(timeout), timeout=timeout + 15)
        if result.returncode != 0:
            raise NetnsError(f"connect probe failed in {self.name}: {result.stderr.strip()}")
        out = result.stdout.strip()
        return None if out == "ok" else out

    def can_connect(self, host: str, port: int, *, timeout: float = 3.0) -> bool:
        return self.connect_error(host, port, timeout=timeout) is None

    def routes(self) -> list[dict]:
        return json.loads(ip("-j", "-4", "route", "show", netns=self.name).stdout or "[]")

    def pids(self) -> list[int]:
        out = ip("netns", "pids", self.name, check=False).stdout
        return [int(pid) for pid in out.split()]


_CONNECT = """
import errno, socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
try:
    socket.create_connection((host, port), timeout=timeout).close()
except socket.timeout:
    print("timeout")
except OSError as exc:
    print(errno.errorcode.get(exc.errno, str(exc)))
else:
    print("ok")
"""


class Netns:
    """The namespaces and links of one test; ``teardown()`` (also at exit) removes them all:
    first whatever still runs inside them, then the namespaces, which takes their veths along."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or f"sx{secrets.token_hex(2)}"
        assert len(self.tag) <= 8, "interface names are <tag>-<n><side>, at most 15 characters"
        self.namespaces: dict[str, Namespace] = {}
        self.root_ends: list[str] = []  # veth ends left in the root namespace
        self._links = 0
        self._down = False
        _live.add(self)
        OWNERS.mkdir(exist_ok=True)
        (OWNERS / self.tag).write_text(str(os.getpid()))

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    def __hash__(self) -> int:
        return id(self)

    # -- building ---------------------------------------------------------------------------

    def namespace(self, label: str) -> Namespace:
        """A new, empty namespace ``<tag>-<label>`` with its loopback up."""
        name = f"{self.tag}-{label}"
        assert name not in self.namespaces, f"{name} exists already"
        ip("netns", "add", name)
        ns = self.namespaces[name] = Namespace(name)
        ip("link", "set", "lo", "up", netns=name)
        return ns

    def _ifnames(self) -> tuple[str, str]:
        self._links += 1
        return f"{self.tag}-{self._links}a", f"{self.tag}-{self._links}b"

    def link(
        self,
        a: Namespace,
        b: Namespace,
        subnet: str,
        *,
        hosts: tuple[int, int] = (1, 2),
        multicast: bool = False,
    ) -> tuple[str, str]:
        """A veth pair between ``a`` and ``b`` on ``subnet`` (``a`` gets host number
        ``hosts[0]``, ``b`` ``hosts[1]``); returns their addresses. ``multicast`` routes
        224.0.0.0/4 over this link in both, like a LAN host whose default route is the LAN
        (mDNS needs a route for its group), without giving them a way anywhere else."""
        net = ipaddress.ip_network(subnet)
        ip_a, ip_b = str(net[hosts[0]]), str(net[hosts[1]])
        if_a, if_b = self._ifnames()
        ip("link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", b.name, netns=a.name)
        for ns, ifname, addr in ((a, if_a, ip_a), (b, if_b, ip_b)):
            self._address(ns, ifname, f"{addr}/{net.prefixlen}")
            if multicast:
                ip("route", "add", MULTICAST, "dev", ifname, netns=ns.name)
        return ip_a, ip_b

    def lan(self, members: Sequence[Namespace], subnet: str) -> list[str]:
        """One LAN segment joining ``members`` (a bridge in a namespace of its own, a veth from
        each member to it); member ``i`` gets host number ``i + 1``. Returns their addresses."""
        net = ipaddress.ip_network(subnet)
        switch = self.namespace(f"s{len(self.namespaces)}")
        ip("link", "add", "br0", "type", "bridge", netns=switch.name)
        ip("link", "set", "br0", "up", netns=switch.name)
        addrs = []
        for i, ns in enumerate(members):
            if_ns, if_sw = self._ifnames()
            ip(
                *("link", "add", if_sw, "type", "veth", "peer", "name", if_ns, "netns", ns.name),
                netns=switch.name,
            )
            ip("link", "set", if_sw, "master", "br0", netns=switch.name)
            ip("link", "set", if_sw, "up", netns=switch.name)
            addrs.append(str(net[i + 1]))
            self._address(ns, if_ns, f"{addrs[-1]}/{net.prefixlen}")
        return addrs

    def control(self, ns: Namespace) -> str:
        """A veth pair between ``ns`` and the root namespace on a /24 of its own (root .1,
        ``ns`` .2) so the test process can reach ``ns``; returns ``ns``'s address."""
        net = self._free_control_net()
        if_ns, if_root = self._ifnames()
        ip("link", "add", if_root, "type", "veth", "peer", "name", if_ns, "netns", ns.name)
        self.root_ends.append(if_root)
        ip("addr", "add", f"{net[1]}/{net.prefixlen}", "dev", if_root)
        ip("link", "set", if_root, "up")
        self._address(ns, if_ns, f"{net[2]}/{net.prefixlen}")
        ns.control_ip = str(net[2])
        return ns.control_ip

    def address(self, ns: Namespace, cidr: str, *, dev: str = "lo") -> str:
        """One more address for ``ns`` (by default on its loopback: an address of the host
        itself, reachable over any link whose far side has a route to it); returns it."""
        self._address(ns, dev, cidr)
        return cidr.split("/")[0]

    def route(self, ns: Namespace, dst: str, via: str) -> None:
        """A route in ``ns`` to ``dst`` through the neighbour ``via`` (on one of its links)."""
        ip("route", "add", dst, "via", via, netns=ns.name)

    def _address(self, ns: Namespace, ifname: str, cidr: str) -> None:
        ip("addr", "add", cidr, "dev", ifname, netns=ns.name)
        ip("link", "set", ifname, "up", netns=ns.name)
        ns.addresses[ifname] = cidr.split("/")[0]

    def _free_control_net(self) -> ipaddress.IPv4Network:
        """A /24 of 10.79.0.0/16 that nothing in the root namespace uses (random, so parallel
        runs rarely race for one)."""
        used = []
        for entry in json.loads(ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
            with contextlib.suppress(ValueError):
                used.append(ipaddress.ip_network(entry.get("dst", ""), strict=False))
        candidates = list(CONTROL_NET.subnets(new_prefix=24))[1:-1]
        random.shuffle(candidates)
        for net in candidates:
            if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
                return net
        raise NetnsError(f"no free /24 left in {CONTROL_NET}")

    # -- checking ---------------------------------------------------------------------------

    def default_routes(self) -> list[str]:
        """Default routes in the namespaces (there should be none: they would let a namespace
        send anywhere, e.g. through the root namespace), described."""
        return [
            f"{ns.name}: default via {route.get('gateway')} dev {route.get('dev')}"
            for ns in self.namespaces.values()
            for route in ns.routes()
            if route.get("dst") == "default"
        ]

    # -- tearing down -----------------------------------------------------------------------

    def teardown(self) -> None:
        """Stop what still runs in the namespaces, delete them and the root ends of their
        veths. Safe to call twice; raises once everything was tried if something is left."""
        if self._down:
            return
        self._down = True
        _live.discard(self)
        problems = []
        for ns in self.namespaces.values():
            _kill_all(ns.pids())
        for ns in self.namespaces.values():
            result = ip("netns", "del", ns.name, check=False)
            if result.returncode != 0 and ns.name in _netns_names():
                problems.append(f"ip netns del {ns.name}: {result.stderr.strip()}")
        for ifname in self.root_ends:  # normally gone with their namespace
            if ip("link", "show", ifname, check=False).returncode == 0:
                result = ip("link", "del", ifname, check=False)
                # The kernel removes a veth's root end shortly after its namespace goes: gone
                # between the two commands is gone, whatever words ip used to say so ("Cannot
                # find device", "No such device").
                gone = ip("link", "show", ifname, check=False).returncode != 0
                if result.returncode != 0 and not gone:
                    problems.append(f"ip link del {ifname}: {result.stderr.strip()}")
        if problems:
            raise NetnsError("network namespace clean-up failed: " + "; ".join(problems))
        (OWNERS / self.tag).unlink(missing_ok=True)


def _netns_names() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list", check=False).stdout.splitlines()}


def _link_names() -> set[str]:
    return {link["ifname"] for link in json.loads(ip("-j", "link", "show").stdout or "[]")}


def _kill_all(pids: Sequence[int], grace: float = 5.0) -> None:
    """SIGTERM the given processes (ones a test started in its namespaces), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            if not pids:
                return
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's
    # A child of ours that exited but was not reaped yet is a zombie: as good as gone.
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


@atexit.register
def _teardown_live() -> None:
    for lab in list(_live):
        with contextlib.suppress(Exception):
            lab.teardown()
