"""A randomized fault run of real nodes: several ``runnode`` processes, each in a network namespace
of its own, share one conversation (a messaging thread) while a workload writes, edits and
deletes messages and changes the membership, and a scheduler partitions the network, throttles
links, pauses nodes (SIGSTOP), kills them (SIGKILL) and restarts them on the same data dir and
port, some with their clock 5 minutes ahead or behind (libfaketime). After healing, a checker
says whether the promises held:

- every write the API acknowledged (2xx) is in every member's replica with its effect, or its
  author's node records its op as refused with a reason;
- every member's replica is identical (the log with its decisions, the app tables), and the
  log's rebuild (``manage.py thread_rebuild``) matches the live tables on every node;
- every member per the thread's control state has the thread active on its node, and syncing.

Everything random comes from one seed: ``plan_make(seed)`` draws the schedule (faults, clock
skews, membership changes) before anything runs; the workload draws its choices from the same
seed. Faults aimed at a join fire on an event, not a time (the moment the inviter's node has
admitted the joiner: a keys op in its log), so they hit the same window in every replay. What
the processes do with their own timing is not reproducible, so the report holds the planned
schedule and the log of what actually happened, to replay a failure by its seed
(``SEREUS_FAULT_SEED``; ``SEREUS_FAULT_LOG_LEVEL=DEBUG`` puts every sync session in the node
logs, which are kept). A monitor notes stretches in which two members could reach each other
but finished no sync session (a stalled connection).

The network: every node has a control link to the root namespace (its web API, the only way
the test reaches it) and a data link to a switch namespace holding one bridge per partition
group; a partition moves switch ports between bridges (packets to the other side vanish, like
a cable pulled out behind a router: no resets), healing moves them back. This kernel may lack
netem and iptables, so links are throttled with tbf, the queueing discipline every kernel has.

The harness reads the nodes' thread databases directly (read-only SQLite) where the node has
no API for it: which op a write became and how it was decided, and the tables to compare.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.api import ApiError
from tests.support.netns import Namespace, Netns, ip, netns_unavailable, sweep_stale
from tests.support.nodes import REPO, manage
from tests.support.p2p import Peer

SKEW = 300  # seconds: the clock skew the project promises to live with (±5 min)
DATA_NET = "10.74.0"  # the nodes' shared LAN, <DATA_NET>.<i + 1>; only inside the namespaces
P2P_PORT = 4001  # every node in a namespace of its own: the same port for all, kept on restart
SYNC_INTERVAL = "3"  # anti-entropy every few seconds: a run is short, repairs must show in it
# tbf: a bad link (128 kbit/s; a burst of more than a few KB waits over 30 ms, and is dropped).
THROTTLE = ("rate", "128kbit", "burst", "4kb", "latency", "30ms")
WRITE_TIMEOUT = 30.0  # longer than any pause: a write to a node paused mid-request just waits
JOIN_TIMEOUT = 90.0  # the invite protocol may wait 60 s to be admitted
ROLES_THAT_POST = ("owner", "admin", "writer")
# What a request to a node that dies, stops or vanishes mid-answer raises: no answer, not a no.
NO_ANSWER = (OSError, http.client.HTTPException, ValueError)
FAKETIME_GLOBS = (
    "/usr/lib/*/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
    "/usr/local/lib/faketime/libfaketimeMT.so.1",
)


# -- tools ---------------------------------------------------------------------------------------


def faketime_library() -> str | None:
    """libfaketime's multi-threaded variant (the node runs several threads), if installed."""
    for pattern in FAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def faults_unavailable(*, install: bool = True) -> str | None:
    """None when a fault run can go ahead here, else why not. Without libfaketime it first runs
    ``scripts/ensure-test-tools`` (which installs Debian's package when root), like ``make
    test`` does, so a run outside make still gets it where it can be installed."""
    reason = netns_unavailable()
    if reason:
        return f"network namespaces unavailable: {reason}"
    if shutil.which("tc") is None:
        return "no `tc` command (iproute2)"
    if faketime_library() is None and install:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [str(REPO / "scripts" / "ensure-test-tools")],
                capture_output=True,
                timeout=600,
                check=False,
            )
    if faketime_library() is None:
        return "libfaketime is missing (Debian package `faketime`; scripts/ensure-test-tools)"
    return None


# How a node process is started (``python -c LAUNCH <python> manage.py runnode ...``): under
# libfaketime with a true monotonic clock, Python 3.11's time.sleep fails with EINVAL (it sleeps
# with clock_nanosleep to an absolute monotonic deadline, which libfaketime 0.9.10 mistranslates),
# and so would every node's background worker. So a skewed node's time.sleep waits in select(),
# which libfaketime leaves alone, before manage.py runs; the node's code is otherwise untouched.
LAUNCH = """
import os, runpy, select, sys, time
if os.environ.get("FAKETIME"):
    def sleep(seconds):
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        select.select([], [], [], seconds)
    time.sleep = sleep
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def skew_env(skew: int) -> dict[str, str]:
    """The environment that runs a process ``skew`` seconds off the real clock. Only the wall
    clock moves, as on a machine whose clock is set wrong: trio, asyncio and every timeout use
    the monotonic clock, which stays true (libfaketime's faked monotonic clock also hangs
    Python's timed lock waits)."""
    if skew == 0:
        return {}
    library = faketime_library()
    assert library, "libfaketime is missing"
    return {
        "LD_PRELOAD": library,
        "FAKETIME": f"{skew:+d}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def skew_check(skew: int) -> str | None:
    """None when a process started like a node with ``skew_env(skew)`` sees its wall clock moved
    by the skew and its monotonic clock unmoved, and its sleeps (time.sleep in threads, trio's,
    asyncio's, a lock's timeout) last as long as asked; else what is wrong."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "probe.py"
        script.write_text(_SKEW_PROBE)
        before_wall, before_mono = time.time(), time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", LAUNCH, sys.executable, str(script)],
            env={**os.environ, **skew_env(skew)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    if result.returncode != 0:
        return f"python under faketime {skew:+d}s failed: {result.stderr.strip()[-500:]}"
    wall, mono, *sleeps = json.loads(result.stdout)
    if abs(wall - before_wall - skew) > 5:
        return f"faketime {skew:+d}s moved time.time() by {wall - before_wall:+.1f}s"
    if not 0 <= mono - before_mono < 5:
        return f"faketime {skew:+d}s moved time.monotonic() by {mono - before_mono:+.1f}s"
    if not all(0.09 < slept < 1 for slept in sleeps):
        return f"sleeps of 0.1 s under faketime {skew:+d}s took {sleeps} (time, thread, trio, "
        "asyncio, lock)"
    return None


_SKEW_PROBE = """
import asyncio, json, threading, time, trio
wall, mono = time.time(), time.monotonic()
def timed(wait):
    started = time.monotonic(); wait(); return time.monotonic() - started
async def in_trio():
    return timed(lambda: None) + await trio_sleep()
async def trio_sleep():
    started = trio.current_time(); await trio.sleep(0.1); return trio.current_time() - started
async def in_asyncio():
    loop = asyncio.get_running_loop(); started = loop.time(); await asyncio.sleep(0.1)
    return loop.time() - started
in_thread = []
worker = threading.Thread(target=lambda: in_thread.append(timed(lambda: time.sleep(0.1))))
worker.start(); worker.join()
lock = threading.Lock(); lock.acquire()
print(json.dumps([
    wall, mono, timed(lambda: time.sleep(0.1)), in_thread[0], trio.run(in_trio),
    asyncio.run(in_asyncio()), timed(lambda: lock.acquire(timeout=0.1)),
]))
"""


# -- the plan ------------------------------------------------------------------------------------

FAULTS = ("partition", "pause", "kill", "throttle")
MEMBERSHIP = ("join", "role", "remove")


@dataclass(frozen=True)
class Event:
    """One planned entry of the schedule: a fault from ``at`` to ``until``, or a membership
    change at ``at`` (done by the owner's node; a join by the joiner's)."""

    at: float
    kind: str
    node: str = ""  # the node it is done to (partition: none)
    until: float | None = None
    groups: tuple[tuple[str, ...], ...] = ()  # partition: who can still reach whom
    role: str = ""  # join, role: the role given
    skew: int | None = None  # kill: the clock skew the node comes back with
    # "admitted": not at a time but ``at`` seconds after the inviter's node admitted ``node``
    # (its first redeem), lasting ``until - at``: the moment a lost reply strands a joiner.
    trigger: str = ""

    def describe(self) -> str:
        if self.trigger:
            assert self.until is not None
            what = "cut off" if self.kind == "partition" else "kill -9"
            back = f", restart with clock {self.skew:+d}s" if self.kind == "kill" else ""
            return (
                f"  {self.at:4.1f}s after {self.node} is admitted: {what} for "
                f"{self.until - self.at:.1f}s{back}"
            )
        span = f"{self.at:6.1f}" + (f"-{self.until:5.1f}s" if self.until is not None else "s      ")
        if self.kind == "partition":
            what = " | ".join("".join(group) for group in self.groups)
        elif self.kind == "kill":
            what = f"{self.node} (kill -9, restart with clock {self.skew:+d}s)"
        elif self.kind in ("join", "role"):
            what = f"{self.node} as {self.role}"
        else:
            what = self.node
        return f"{span} {self.kind:9} {what}"


@dataclass
class Plan:
    """A run's schedule, made by ``plan_make`` from a seed before anything starts."""

    seed: int
    names: list[str]  # names[0] creates the thread and owns it
    duration: float  # seconds of faults and workload, healed after
    skews: dict[str, int]  # each node's clock skew at its first start
    initial: list[str]  # members from before the faults begin
    events: list[Event]

    @property
    def owner(self) -> str:
        return self.names[0]

    def describe(self) -> str:
        skews = ", ".join(f"{name} {skew:+d}s" for name, skew in self.skews.items())
        lines = [
            f"seed {self.seed}: {len(self.names)} nodes, {self.duration:.0f} s of faults; "
            f"owner {self.owner}, members from the start {''.join(self.initial)}; "
            f"clocks: {skews}"
        ]
        lines += [f"  {event.describe()}" for event in self.events]
        return "\n".join(lines)


def plan_make(seed: int, *, nodes: int = 4, duration: float = 20.0) -> Plan:
    """The schedule of a run, drawn from ``seed`` alone.

    Every run has each kind of fault at least once (more in longer runs: about one fault of
    some kind every 8 s), both skews (one node +5 min, one -5 min), at least one join during
    the faults (most of them under fire), a demotion to reader and back, and a removal near the
    end; long runs also remove a member and invite it back, and pause nodes for up to 45 s."""
    assert 3 <= nodes <= 5, "3 to 5 nodes"
    rng = random.Random(f"sereus-faults-plan:{seed}")
    names = list("abcde"[:nodes])
    others = names[1:]  # names[0] owns the thread: never demoted, never removed
    d = duration

    skews = {name: rng.choice((-SKEW, 0, 0, SKEW)) for name in names}
    ahead, behind = rng.sample(names, 2)
    skews[ahead], skews[behind] = SKEW, -SKEW

    initial = names[: max(2, nodes - 2)]  # two nodes join during the faults (one with 3)
    joiners = names[len(initial) :]
    events: list[Event] = []
    for name in joiners:
        events.append(Event(round(rng.uniform(0.05, 0.4) * d, 1), "join", name, role="writer"))
    join_at = {e.node: e.at for e in events}
    # A demotion to reader and back, of someone who is a member by then.
    demoted = rng.choice(initial[1:] + joiners[:1])
    down_at = round(max(join_at.get(demoted, 0) + 1, rng.uniform(0.3, 0.5) * d), 1)
    events.append(Event(down_at, "role", demoted, role="reader"))
    back_at = round(min(0.8 * d, down_at + rng.uniform(0.1, 0.25) * d), 1)
    events.append(Event(back_at, "role", demoted, role="writer"))
    if joiners:  # with 3+ nodes, a joiner leaves (removed) near the end
        removed = rng.choice(joiners)
        events.append(Event(round(rng.uniform(0.7, 0.85) * d, 1), "remove", removed))
    if d >= 120:  # long runs: someone is removed early on and invited back later
        again = rng.choice(others)
        gone = round(max(join_at.get(again, 0) + 5, rng.uniform(0.4, 0.5) * d), 1)
        events.append(Event(gone, "remove", again))
        events.append(
            Event(round(gone + rng.uniform(0.05, 0.15) * d, 1), "join", again, role="writer")
        )
    # Longer runs get more cycles of demotion (to reader or up to admin) and back.
    for _ in range(int(d // 60)):
        target = rng.choice(others)
        at = round(rng.uniform(0.1, 0.8) * d, 1)
        if at <= join_at.get(target, 0) + 1:
            continue
        role = rng.choice(("reader", "admin"))
        events.append(Event(at, "role", target, role=role))
        events.append(Event(round(at + rng.uniform(3, 0.15 * d), 1), "role", target, role="writer"))

    busy: dict[str, list[tuple[float, float]]] = {name: [] for name in names}  # paused, killed
    throttled: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    partitions: list[tuple[float, float]] = []

    def free(spans: list[tuple[float, float]], start: float, end: float) -> bool:
        return all(end + 0.5 < s or start > e + 0.5 for s, e in spans)

    def place(
        kind: str, start: float, length: float, node: str = "", cut: Sequence[str] = ()
    ) -> bool:
        """Add a fault unless it breaks a rule (one partition at a time; a node is not paused
        and killed at once, nor throttled twice; every fault over before the end); True if
        added."""
        start, end = round(start, 1), round(start + length, 1)
        if start < 0.5 or end > d - 0.5:
            return False
        if kind == "partition":
            rest = tuple(sorted(set(names) - set(cut)))
            if not free(partitions, start, end) or not cut or not rest:
                return False
            partitions.append((start, end))
            groups = tuple(sorted((tuple(sorted(cut)), rest)))
            events.append(Event(start, kind, until=end, groups=groups))
            return True
        spans = throttled[node] if kind == "throttle" else busy[node]
        if not free(spans, start, end):
            return False
        spans.append((start, end))
        skew = rng.choice((-SKEW, 0, SKEW)) if kind == "kill" else None
        events.append(Event(start, kind, node, until=end, skew=skew))
        return True

    # Joins under fire: the joiner killed, or cut off, the moment the inviter has admitted it
    # (while the log is on its way: where a lost reply strands a member, issue 9, defect 13),
    # or the inviter's link throttled while it answers.
    for join in [e for e in events if e.kind == "join"]:
        how = rng.choice(("kill", "partition", "throttle", "none"))
        delay = round(rng.uniform(0.0, 0.3), 1)
        if how == "kill":
            down = round(rng.uniform(1, 3), 1)
            skew = rng.choice((-SKEW, 0, SKEW))
            events.append(
                Event(delay, "kill", join.node, delay + down, skew=skew, trigger="admitted")
            )
        elif how == "partition":
            cut = round(rng.uniform(3, 6), 1)
            events.append(Event(delay, "partition", join.node, delay + cut, trigger="admitted"))
        elif how == "throttle":
            place("throttle", join.at, rng.uniform(3, 6), names[0])

    count = max(1, round(d / 30))  # of each kind, at random
    long_pauses = d >= 120  # some longer than the 30 s a stream may stay idle
    for kind in FAULTS:
        placed, tries = 0, 0
        while placed < count and tries < 200:
            tries += 1
            length = {
                "partition": rng.uniform(3, min(20, max(4, 0.3 * d))),
                "pause": rng.uniform(2, 45 if long_pauses and rng.random() < 0.2 else 8),
                "kill": rng.uniform(1, 3),
                "throttle": rng.uniform(3, min(15, max(5, 0.25 * d))),
            }[kind]
            start = rng.uniform(0.05 * d, d - length - 0.5)
            if kind == "partition":
                cut = rng.sample(names, rng.randint(1, len(names) - 1))
                placed += place(kind, start, length, cut=cut)
            else:
                placed += place(kind, start, length, rng.choice(names))
    events.sort(key=lambda e: (e.trigger != "", e.at, e.kind, e.node))
    return Plan(seed, names, duration, skews, initial, events)


# -- the network and the nodes -------------------------------------------------------------------


class ThreadFile:
    """A node's thread database, read-only, from this process (the node keeps writing it; WAL
    lets both be). Only what the node's API does not tell: the ops and their decisions, the
    app tables as stored."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self.transaction(lambda conn: conn.execute(sql, args).fetchall())

    def transaction(self, read: Callable[[sqlite3.Connection], Any]) -> Any:
        """``read(connection)`` in one read transaction: one consistent snapshot."""
        with self._lock:
            for attempt in range(5):
                try:
                    if self._conn is None:
                        self._conn = sqlite3.connect(
                            f"file:{self.path}?mode=ro",
                            uri=True,
                            timeout=10,
                            isolation_level=None,
                            check_same_thread=False,
                        )
                    self._conn.execute("BEGIN")
                    try:
                        return read(self._conn)
                    finally:
                        self._conn.execute("COMMIT")
                except sqlite3.OperationalError:
                    # Busy during a checkpoint, or the file not there yet: try a fresh handle.
                    with contextlib.suppress(sqlite3.Error):
                        if self._conn is not None:
                            self._conn.close()
                    self._conn = None
                    if attempt == 4:
                        raise
                    time.sleep(0.2)
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


@dataclass
class Node:
    """One node of the run: its namespace and process, and what the harness knows of it."""

    name: str
    ns: Namespace
    ip: str  # on the data LAN
    port_sw: str  # its port on the switch
    port_ns: str  # its end of the data link
    peer: Peer
    skew: int
    state: str = "down"  # up | paused | down (as the scheduler left it)
    joined: bool = False  # holds the thread (created it, or redeemed an invite)
    role: str = ""  # as the workload believes it was last set
    removed: bool = False
    member_id: str = ""
    device: bytes = b""
    db: ThreadFile | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one write at a time
    history: list[str] = field(default_factory=list)  # output of its earlier processes


class Cluster:
    """The namespaces, the switch and the node processes of one run."""

    def __init__(self, plan: Plan, lab: Netns, folder: Path) -> None:
        self.plan = plan
        self.lab = lab
        self.folder = folder
        self.nodes: dict[str, Node] = {}
        self.switch = lab.namespace("sw")
        self.problems: list[str] = []  # what went wrong with the processes themselves
        self._restarts: dict[str, threading.Thread] = {}
        # The scheduler and the admission watchers both signal nodes: one at a time.
        self._signalling = threading.Lock()
        self.group = {name: 0 for name in plan.names}  # partition group (bridge) of each node
        self.isolated: set[str] = set()  # cut off from everyone, whatever the partition
        self.throttled: set[str] = set()
        # A bridge per possible partition group, and one more where cut-off nodes sit alone
        # (a veth on a bridge of its own reaches nobody).
        for group in range(len(plan.names) + 1):
            ip("link", "add", f"br{group}", "type", "bridge", netns=self.switch.name)
            ip("link", "set", f"br{group}", "up", netns=self.switch.name)
        for i, name in enumerate(plan.names):
            ns = lab.namespace(name)
            lab.control(ns)
            port_sw, port_ns = f"{lab.tag}-d{i}s", f"{lab.tag}-d{i}n"
            address = f"{DATA_NET}.{i + 1}"
            ip(
                *("link", "add", port_sw, "type", "veth", "peer", "name", port_ns),
                *("netns", ns.name),
                netns=self.switch.name,
            )
            ip("link", "set", port_sw, "master", "br0", netns=self.switch.name)
            ip("link", "set", port_sw, "up", netns=self.switch.name)
            ip("addr", "add", f"{address}/24", "dev", port_ns, netns=ns.name)
            ip("link", "set", port_ns, "up", netns=ns.name)
            ns.addresses[port_ns] = address
            assert ns.control_ip
            skew = plan.skews[name]
            peer = Peer(
                folder / name,
                env={
                    "SEREUS_ALLOWED_HOSTS": ns.control_ip,
                    "SEREUS_P2P_SYNC_INTERVAL": SYNC_INTERVAL,
                    "SEREUS_DHT": "off",  # one LAN, addresses in the thread: nothing to find
                    # DEBUG shows every sync session in the node logs, to study a failure.
                    "SEREUS_LOG_LEVEL": os.environ.get("SEREUS_FAULT_LOG_LEVEL", "INFO"),
                    **skew_env(skew),
                },
                http=f"{ns.control_ip}:0",
                p2p_listen=f"/ip4/{address}/tcp/{P2P_PORT}",
                prefix=[*ns.prefix, sys.executable, "-c", LAUNCH],
            )
            self.nodes[name] = Node(name, ns, address, port_sw, port_ns, peer, skew)

    def start(self) -> None:
        def one(node: Node) -> None:
            node.peer.start()
            node.state = "up"

        with ThreadPoolExecutor(len(self.nodes)) as pool:
            for future in [pool.submit(one, node) for node in self.nodes.values()]:
                future.result()

    # -- faults ---------------------------------------------------------------------------------

    def partition(self, groups: Sequence[Sequence[str]]) -> None:
        """Each group on a bridge of its own: nodes reach only their own group."""
        for index, group in enumerate(groups):
            for name in group:
                self.group[name] = index
                self._port(name)

    def heal_partition(self) -> None:
        self.partition([list(self.nodes)])

    def isolate(self, name: str, on: bool) -> None:
        """Cut one node off from everyone (on top of any partition), or let it back."""
        (self.isolated.add if on else self.isolated.discard)(name)
        self._port(name)

    def _port(self, name: str) -> None:
        bridge = len(self.nodes) if name in self.isolated else self.group[name]
        port = self.nodes[name].port_sw
        ip("link", "set", port, "master", f"br{bridge}", netns=self.switch.name)

    def throttle(self, name: str, on: bool) -> None:
        """A slow, lossy link (tbf drops what waits longer than its latency) both ways."""
        node = self.nodes[name]
        for ns, dev in ((node.ns, node.port_ns), (self.switch, node.port_sw)):
            command = ["tc", "qdisc", "replace" if on else "del", "dev", dev, "root"]
            if on:
                command += ["tbf", *THROTTLE]
            # Taking off a qdisc that is not there fails: that is fine.
            subprocess.run([*ns.prefix, *command], capture_output=True, check=on, timeout=30)
        (self.throttled.add if on else self.throttled.discard)(name)

    def pause(self, name: str) -> bool:
        """SIGSTOP; False (nothing done) when the node is not running (still restarting)."""
        node = self.nodes[name]
        with self._signalling:
            if node.state != "up":
                return False
            node.state = "paused"
            self._signal(node, signal.SIGSTOP)
        return True

    def resume(self, name: str) -> bool:
        node = self.nodes[name]
        with self._signalling:
            if node.state != "paused":
                return False
            self._signal(node, signal.SIGCONT)
            node.state = "up"
        return True

    def kill(self, name: str) -> bool:
        """SIGKILL; False (nothing done) when the node is not running."""
        node = self.nodes[name]
        with self._signalling:
            if node.state != "up":
                return False
            node.state = "down"
            self._signal(node, signal.SIGKILL)
        assert node.peer.process.proc is not None
        node.peer.process.proc.wait(10)
        return True

    def restart_soon(self, name: str, skew: int | None = None) -> bool:
        """``restart`` in a thread of its own: a start takes seconds (many on a loaded machine)
        and the schedule goes on meanwhile."""
        if self.nodes[name].state != "down" or name in self._restarts:
            return False
        worker = threading.Thread(target=self._restart, args=(name, skew), daemon=True)
        self._restarts[name] = worker
        worker.start()
        return True

    def _restart(self, name: str, skew: int | None) -> None:
        try:
            self.restart(name, skew)
        finally:
            self._restarts.pop(name, None)

    def restarts_wait(self) -> None:
        for worker in list(self._restarts.values()):
            worker.join(timeout=120)

    def restart(self, name: str, skew: int | None = None) -> None:
        """Start the node again on its data dir and port (optionally with another clock)."""
        node = self.nodes[name]
        node.history += node.peer.process.output
        if skew is not None and skew != node.skew:
            env = node.peer.process.extra_env
            for key in ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC"):
                env.pop(key, None)
            env.update(skew_env(skew))
            node.skew = skew
        try:
            node.peer.start()
        except Exception as exc:  # a node that cannot come back is a finding, not a harness bug
            self.problems.append(f"{name} did not start again after kill -9: {exc}"[:2000])
            return
        node.state = "up"

    def _signal(self, node: Node, sig: signal.Signals) -> None:
        proc = node.peer.process.proc
        if proc is None or proc.poll() is not None:
            self.problems.append(f"{node.name} had exited on its own ({sig.name} not sent)")
            return
        os.kill(proc.pid, sig)

    def heal(self) -> None:
        """Undo every fault still in force: one LAN, full speed, every node running."""
        self.restarts_wait()
        self.isolated.clear()
        self.heal_partition()
        for name, node in self.nodes.items():
            self.throttle(name, False)
            if node.state == "paused":
                self.resume(name)
        for name, node in self.nodes.items():
            if node.state == "down":
                self.restart(name)

    def reachable(self, a: str, b: str) -> bool:
        """Both running, on one side of any partition, neither link throttled."""
        return (
            self.nodes[a].state == self.nodes[b].state == "up"
            and self.group[a] == self.group[b]
            and not {a, b} & (self.throttled | self.isolated)
        )

    def exited(self) -> list[str]:
        """Nodes whose process ended although nobody stopped it."""
        return [
            name
            for name, node in self.nodes.items()
            if node.state != "down"
            and node.peer.process.proc is not None
            and node.peer.process.proc.poll() is not None
        ]

    def logs_write(self) -> Path:
        folder = self.folder / "logs"
        folder.mkdir(exist_ok=True)
        for name, node in self.nodes.items():
            lines = node.history + node.peer.process.output
            (folder / f"{name}.log").write_text("\n".join(lines) + "\n")
        return folder

    def close(self) -> None:
        for node in self.nodes.values():
            if node.state == "paused":
                with contextlib.suppress(Exception):
                    self._signal(node, signal.SIGCONT)
            node.peer.kill()
            if node.db is not None:
                node.db.close()


# -- the workload --------------------------------------------------------------------------------


@dataclass
class Write:
    """One write through a node's API and what became of it."""

    n: int
    node: str
    kind: str  # send | edit | delete | receipt
    message: str  # the message's id (hex); receipt: the cursor
    text: str | None  # the message's text after it (delete: None)
    started: float
    ended: float = 0.0
    outcome: str = ""  # ack | rejected (4xx: the node said no at once) | unknown (no answer)
    detail: str = ""
    seqs: list[int] = field(default_factory=list)  # its author's data ops made meanwhile
    decision: str = ""  # acknowledged ones, after the run: accepted | refused | missing
    reason: str = ""  # why it was refused, as its author's node says

    def describe(self) -> str:
        text = "" if self.text is None else f" {self.text!r}"
        return (
            f"#{self.n} {self.kind} {self.message[:8]}{text} on {self.node} at "
            f"{self.started:.1f}s: {self.outcome}{' ' + self.detail if self.detail else ''}"
        )


class SyncMonitor:
    """Watches, every second or two, when each member's node last finished a sync session
    with each other member's device (its network API says), and keeps per pair the longest
    stretch in which the two could reach each other yet no session finished: anti-entropy
    runs every few seconds, so a long stretch is a connection that stalled without being
    noticed (issue 9, defect 15). Reported in the notes; the verdict does not hang on it."""

    INTERVAL = 1.5
    STALL = 15.0  # seconds: five anti-entropy rounds

    def __init__(self, run: Run) -> None:
        self.run = run
        self.longest: dict[tuple[str, str], float] = {}
        self._since: dict[tuple[str, str], float] = {}  # pair -> start of the current stretch
        self._last: dict[tuple[str, str], Any] = {}  # pair -> the last_sync seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _watch(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            with contextlib.suppress(Exception):  # a node going away mid-look: look again
                self._look()

    def _look(self) -> None:
        run, cluster = self.run, self.run.cluster
        by_device = {n.device.hex(): name for name, n in cluster.nodes.items() if n.joined}
        now = run.now()
        for name, node in cluster.nodes.items():
            if not node.joined or node.removed or node.state != "up":
                continue
            api = node.peer.api
            assert api is not None
            status = api.get("/api/v1/network/", timeout=3)
            entry = next((t for t in status["threads"] if t["thread"] == run.thread), None)
            for peer in entry["peers"] if entry else ():
                other = by_device.get(peer["device"])
                if other is None or cluster.nodes[other].removed:
                    continue
                pair = (name, other)
                if not cluster.reachable(name, other) or peer["last_sync"] != self._last.get(pair):
                    self._since[pair] = now  # cut off, or just synced: a new stretch
                self._last[pair] = peer["last_sync"]
                self.longest[pair] = max(self.longest.get(pair, 0.0), now - self._since[pair])

    def notes(self) -> list[str]:
        return [
            f"sync stall: {a} finished no session with {b} for {seconds:.0f} s while they could "
            "reach each other"
            for (a, b), seconds in sorted(self.longest.items())
            if seconds >= self.STALL
        ]


class Run:
    """One run: the cluster, the workload (in the calling thread) and the fault scheduler (in a
    thread of its own). ``setup``, ``chaos``, then ``settle`` returns the checker's verdict;
    the caller owns ``lab`` (and so the clean-up of namespaces)."""

    def __init__(self, plan: Plan, lab: Netns, folder: Path, *, converge_timeout: float) -> None:
        self.plan = plan
        self.folder = folder
        self.converge_timeout = converge_timeout
        self.cluster = Cluster(plan, lab, folder)
        self.rng = random.Random(f"sereus-faults-workload:{plan.seed}")
        self.thread = ""
        self.writes: list[Write] = []
        self.log: list[str] = []
        self.started = 0.0
        self.authors: dict[str, str] = {}  # message id -> the node that sent it
        self.live: dict[str, list[str]] = {name: [] for name in plan.names}  # its messages
        self._lock = threading.Lock()
        self._joins: dict[str, threading.Thread] = {}  # node -> its redeeming thread
        self._links: dict[str, str] = {}  # node -> the invite link it was given
        self._failed_joins: dict[str, list[str]] = {}  # node -> why each attempt failed
        self._joining: set[str] = set()  # nodes that said they finish their join themselves
        self._armed: set[Event] = set()  # faults triggered by admissions, already waiting
        self._chaos_over = threading.Event()
        self._count = 0  # writes so far
        self._pending: list[Event] = []  # membership changes left when the faults ended
        self.monitor = SyncMonitor(self)

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        with self._lock:
            self.log.append(f"{self.now():7.2f}s {text}")

    # -- setting up -----------------------------------------------------------------------------

    def setup(self) -> None:
        self.started = time.monotonic()
        self.cluster.start()
        self.note("nodes started")
        owner = self.cluster.nodes[self.plan.owner]
        api = owner.peer.api
        assert api is not None
        self.thread = api.post("/api/v1/threads/", {"name": "Faults", "app": "messaging"})["id"]
        self._joined(owner)
        for name in self.plan.initial[1:]:
            node = self.cluster.nodes[name]
            node.peer.redeem(owner.peer.invite(self.thread))
            self._active_wait(node, timeout=60)
            self._joined(node)
        self.note(
            f"set up in {self.now():.1f} s: thread {self.thread[:16]}…, members "
            + "".join(self.plan.initial)
        )

    def _active_wait(self, node: Node, *, timeout: float) -> None:
        """Wait for a node that redeemed an invite to hold the thread as active (a node may
        answer before its join is complete, and finish it in the background)."""
        api = node.peer.api
        assert api is not None
        deadline = time.monotonic() + timeout
        while True:
            detail = api.get(f"/api/v1/threads/{self.thread}/", timeout=WRITE_TIMEOUT)
            if detail["state"] == "active":
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{node.name} did not join without any fault: {detail}")
            time.sleep(0.2)

    def _joined(self, node: Node) -> None:
        """Learn the node's member key and device in the thread, and open its database."""
        api = node.peer.api
        assert api is not None
        detail = api.get(f"/api/v1/threads/{self.thread}/")
        members = api.get(f"/api/v1/threads/{self.thread}/members/")
        me = next(m for m in members if m["me"])
        node.member_id = detail["member_id"]
        node.role = detail["role"]
        node.device = bytes.fromhex(me["devices"][0])
        if node.db is None:
            node.db = ThreadFile(node.peer.data_dir / "threads" / f"{self.thread}.sqlite3")
        node.joined, node.removed = True, False

    def propagation_floor(self) -> float:
        """Seconds for one message to reach every member with no fault: the floor that the
        converge time is compared with."""
        author = self.cluster.nodes[self.plan.owner]
        write = self.send(author, tag="floor")
        assert write.outcome == "ack", write.describe()
        started = time.monotonic()
        members = [self.cluster.nodes[name] for name in self.plan.initial]
        deadline = started + 30
        while time.monotonic() < deadline:
            if all(self._text_on(node, write.message) == write.text for node in members):
                return time.monotonic() - started
            time.sleep(0.02)
        raise AssertionError("a message did not reach every member in 30 s without any fault")

    def _text_on(self, node: Node, message: str) -> str | None:
        assert node.db is not None
        rows = node.db.query("SELECT text FROM messaging_message WHERE id = ?", (message,))
        return rows[0][0] if rows else None

    # -- writes ---------------------------------------------------------------------------------

    def _serial(self) -> int:
        """The next write's number (also in its text: every edit's text is new, else the node
        would write nothing)."""
        with self._lock:
            self._count += 1
            return self._count

    def _write(
        self,
        node: Node,
        n: int,
        kind: str,
        message: str,
        text: str | None,
        request: Callable[[], Any],
    ) -> Write:
        """Do write number ``n`` on ``node`` and note the data ops its device made meanwhile
        (one, when the write made an op): the harness's way to learn which op a write became."""
        write = Write(n, node.name, kind, message, text, self.now())
        with self._lock:
            self.writes.append(write)
        with node.lock:
            assert node.db is not None
            before = self._head(node)
            try:
                request()
            except ApiError as exc:
                error = exc.body.get("error") if isinstance(exc.body, dict) else exc.body
                write.outcome, write.detail = "rejected", f"{exc.status} {error}"
            except NO_ANSWER as exc:  # refused, reset, timed out
                write.outcome, write.detail = "unknown", type(exc).__name__
            else:
                write.outcome = "ack"
            write.ended = self.now()
            if write.outcome == "ack":
                write.seqs = [
                    seq
                    for (seq,) in node.db.query(
                        "SELECT seq FROM sereus_ops WHERE device = ? AND place = 'log' "
                        "AND kind = 'data' AND seq > ? ORDER BY seq",
                        (node.device, before),
                    )
                ]
        return write

    def _head(self, node: Node) -> int:
        assert node.db is not None
        ((seq,),) = node.db.query(
            "SELECT coalesce(max(seq), 0) FROM sereus_ops WHERE device = ? AND place = 'log'",
            (node.device,),
        )
        return seq

    def send(self, node: Node, *, tag: str = "") -> Write:
        message = uuid.UUID(int=self.rng.getrandbits(128), version=4).hex
        n = self._serial()
        text = f"{tag or 'msg'} {node.name}{n}"
        api = node.peer.api
        assert api is not None
        body = {"id": message, "text": text}
        answers: list[dict] = []
        path = f"/api/v1/threads/{self.thread}/messages/"
        write = self._write(
            node,
            n,
            "send",
            message,
            text,
            lambda: answers.append(api.post(path, body, timeout=WRITE_TIMEOUT)),
        )
        if answers:
            # The id the client chose may only seed the row's id (a node whose ids name their
            # author derives it): the message is what the node says it is.
            write.message = message = answers[0]["id"].replace("-", "")
        with self._lock:
            self.authors[message] = node.name
            if write.outcome == "ack":
                self.live[node.name].append(message)
        return write

    def edit(self, node: Node, message: str) -> Write:
        n = self._serial()
        text = f"edit {node.name}{n}"
        api = node.peer.api
        assert api is not None
        path = f"/api/v1/threads/{self.thread}/messages/{message}/"
        return self._write(
            node,
            n,
            "edit",
            message,
            text,
            lambda: api.request("PATCH", path, {"text": text}, timeout=WRITE_TIMEOUT),
        )

    def delete(self, node: Node, message: str) -> Write:
        api = node.peer.api
        assert api is not None
        path = f"/api/v1/threads/{self.thread}/messages/{message}/"
        write = self._write(
            node,
            self._serial(),
            "delete",
            message,
            None,
            lambda: api.delete(path, timeout=WRITE_TIMEOUT),
        )
        with self._lock:
            if write.outcome != "rejected":  # gone, or maybe gone: edit it no more
                self.live[node.name].remove(message)
        return write

    def receipt(self, node: Node) -> Write | None:
        """A reader's write: how far it has read (readers may not post)."""
        api = node.peer.api
        assert api is not None
        page = api.get(f"/api/v1/threads/{self.thread}/messages/", timeout=WRITE_TIMEOUT)
        if not page:
            return None
        cursor = page[0]["cursor"]
        path = f"/api/v1/threads/{self.thread}/receipt/"
        written: list[bool] = []

        def put() -> None:
            answer = api.request("PUT", path, {"up_to": cursor}, timeout=WRITE_TIMEOUT)
            written.append(bool(answer and answer.get("written")))

        write = self._write(node, self._serial(), "receipt", cursor, None, put)
        if write.outcome == "ack" and not written[0]:
            write.outcome, write.detail = "rejected", "nothing newer to mark"
        return write

    def step(self) -> None:
        """One random write, on a node that holds the thread and runs (the workload also writes
        on demoted and removed nodes: what they acknowledge must be refused with a reason)."""
        candidates = [n for n in self.cluster.nodes.values() if n.joined and n.state == "up"]
        if not candidates:
            return
        node = self.rng.choice(candidates)
        with self._lock:
            mine = list(self.live[node.name])
        roll = self.rng.random()
        if mine and roll < 0.3:
            self.edit(node, self.rng.choice(mine))
        elif mine and roll < 0.45:
            self.delete(node, self.rng.choice(mine))
        else:
            self.send(node)

    # -- membership -----------------------------------------------------------------------------

    def _manager(self) -> Node | None:
        """The node that changes the membership: the owner's, else an admin's, if running."""
        ranked = sorted(
            (n for n in self.cluster.nodes.values() if n.joined and not n.removed),
            key=lambda n: (n.role != "owner", n.role != "admin", n.name),
        )
        for node in ranked:
            if node.role in ("owner", "admin") and node.state == "up":
                return node
        return None

    def membership(self, event: Event) -> bool:
        """Do a planned membership change; False when it has to wait (a node it needs is not
        running)."""
        manager = self._manager()
        target = self.cluster.nodes[event.node]
        if manager is None or (event.kind == "join" and target.state != "up"):
            return False
        api = manager.peer.api
        assert api is not None
        if event.kind == "join":
            if target.joined and not target.removed:
                return True
            try:
                link = api.post(
                    f"/api/v1/threads/{self.thread}/invites/",
                    {"role": event.role, "expires_in": 3600},
                    timeout=WRITE_TIMEOUT,
                )["link"]
            except (ApiError, *NO_ANSWER) as exc:
                self.note(f"join {target.name}: no invite from {manager.name}: {exc}")
                return True
            self._links[target.name] = link
            self.note(f"join {target.name}: {manager.name} made an invite")
            worker = threading.Thread(
                target=self._join, args=(target, link), kwargs={"inviter": manager}, daemon=True
            )
            self._joins[target.name] = worker
            worker.start()
            return True
        joining = self._joins.get(target.name)
        if not target.joined and joining is not None and joining.is_alive():
            return False  # still joining (retrying): change it once it is in
        if not target.joined or target.removed:
            self.note(f"{event.kind} {target.name}: skipped (not a member)")
            return True
        path = f"/api/v1/threads/{self.thread}/members/{target.member_id}/"
        try:
            if event.kind == "role":
                api.request("PATCH", path, {"role": event.role}, timeout=WRITE_TIMEOUT)
                target.role = event.role
            else:
                api.delete(path, timeout=WRITE_TIMEOUT)
                target.removed = True
                target.role = ""
            self.note(f"{event.kind} {target.name} {event.role} by {manager.name}: done")
        except (ApiError, *NO_ANSWER) as exc:
            self.note(f"{event.kind} {target.name} {event.role} by {manager.name}: failed {exc}")
        return True

    def _join(
        self,
        node: Node,
        link: str,
        *,
        inviter: Node | None = None,
        attempts: int = 1000,
        timeout: float = JOIN_TIMEOUT,
    ) -> bool:
        """Redeem an invite on ``node`` (in a thread of its own: it may take a minute). A
        failed attempt is retried with the same link, as a person would, a few seconds later,
        until it works or the faults end; ``settle`` tries once more after healing. The
        plan's faults triggered by this node's admission watch ``inviter``'s first answer."""
        for attempt in range(1, attempts + 1):
            while node.state != "up" and not self._chaos_over.is_set():
                time.sleep(0.2)  # killed or paused: redeem once it runs again
            if attempt == 1 and inviter is not None:
                self._arm(node, inviter)
            if attempt <= 3 or attempt % 5 == 0:  # not every retry: the log would drown in them
                self.note(f"join {node.name}: redeeming (attempt {attempt})")
            try:
                api = node.peer.api
                assert api is not None
                api.post("/api/v1/invites/redeem/", {"link": link}, timeout=max(1, timeout))
                detail = api.get(f"/api/v1/threads/{self.thread}/", timeout=WRITE_TIMEOUT)
                if detail["state"] != "active":
                    # Accepted but not done (a node that finishes an interrupted join in the
                    # background answers so): it is the node's to finish; the checker looks.
                    self._joining.add(node.name)
                    self.note(f"join {node.name}: {detail['state']} {detail.get('problem', '')}")
                    return False
                self._joined(node)
            except (ApiError, StopIteration, *NO_ANSWER) as exc:
                failures = self._failed_joins.setdefault(node.name, [])
                if not failures or failures[-1] != str(exc)[:300]:
                    self.note(f"join {node.name}: failed: {str(exc)[:300]}")
                failures.append(str(exc)[:300])
                # Again after 3, 6, 12... seconds (at most 30), as long as the faults go on.
                if attempt < attempts and not self._chaos_over.wait(
                    min(30, 3 * 2 ** (attempt - 1))
                ):
                    continue
                return False
            self.note(f"join {node.name}: joined as {node.role}")
            return True
        return False

    # -- faults ---------------------------------------------------------------------------------

    def _arm(self, node: Node, inviter: Node) -> None:
        """Start the plan's faults that wait for ``node``'s admission (once per node)."""
        events = [
            e
            for e in self.plan.events
            if e.trigger == "admitted" and e.node == node.name and e not in self._armed
        ]
        if not events or inviter.db is None:
            return
        self._armed.update(events)
        ((keys_before,),) = inviter.db.query(
            "SELECT coalesce(max(seq), 0) FROM sereus_ops WHERE device = ? AND place = 'log'",
            (inviter.device,),
        )
        for event in events:
            threading.Thread(
                target=self._when_admitted, args=(event, inviter, keys_before), daemon=True
            ).start()

    def _when_admitted(self, event: Event, inviter: Node, after: int) -> None:
        """Wait for the inviter to admit the node (it starts a key epoch that includes the
        newcomer: a keys op of its device), then do the fault ``event.at`` seconds later."""
        assert inviter.db is not None
        assert event.until is not None
        deadline = time.monotonic() + JOIN_TIMEOUT
        while not inviter.db.query(
            "SELECT 1 FROM sereus_ops WHERE device = ? AND place = 'log' AND kind = 'keys' "
            "AND seq > ? LIMIT 1",
            (inviter.device, after),
        ):
            if time.monotonic() > deadline or self._chaos_over.is_set():
                self.note(f"{event.describe().strip()}: {event.node} was never admitted")
                return
            time.sleep(0.02)
        time.sleep(event.at)
        name, length = event.node, event.until - event.at
        if event.kind == "kill":
            self.note(f"kill -9 {name} ({event.at:.1f} s after {inviter.name} admitted it)")
            if not self.cluster.kill(name):
                self.note(f"kill -9 {name}: skipped (the node is not running)")
                return
            if not self._chaos_over.wait(length):
                self.note(f"restart {name} (clock {event.skew:+d}s)")
                self.cluster.restart_soon(name, event.skew)
        elif event.kind == "partition":
            self.note(f"{name} cut off ({event.at:.1f} s after {inviter.name} admitted it)")
            self.cluster.isolate(name, True)
            if not self._chaos_over.wait(length):
                self.note(f"{name} back on the LAN")
                self.cluster.isolate(name, False)

    def _actions(self) -> list[tuple[float, str, Callable[[], object]]]:
        """The plan's faults as timed actions (start and end of each); an action that returns
        False was skipped (its node was not in the state for it)."""
        c = self.cluster
        actions: list[tuple[float, str, Callable[[], object]]] = []
        for e in self.plan.events:
            if e.kind not in FAULTS or e.trigger:
                continue  # membership changes are the workload's; triggered faults the join's
            assert e.until is not None
            if e.kind == "partition":
                groups = [list(g) for g in e.groups]
                actions.append((e.at, f"partition {e.describe()}", lambda g=groups: c.partition(g)))
                actions.append((e.until, "partition healed", c.heal_partition))
            elif e.kind == "pause":
                actions.append((e.at, f"SIGSTOP {e.node}", lambda n=e.node: c.pause(n)))
                actions.append((e.until, f"SIGCONT {e.node}", lambda n=e.node: c.resume(n)))
            elif e.kind == "throttle":
                actions.append((e.at, f"throttle {e.node}", lambda n=e.node: c.throttle(n, True)))
                actions.append(
                    (e.until, f"unthrottle {e.node}", lambda n=e.node: c.throttle(n, False))
                )
            elif e.kind == "kill":
                actions.append((e.at, f"kill -9 {e.node}", lambda n=e.node: self._kill(n)))
                actions.append(
                    (
                        e.until,
                        f"restart {e.node} (clock {e.skew:+d}s)",
                        lambda n=e.node, s=e.skew: c.restart_soon(n, s),
                    )
                )
        actions.sort(key=lambda a: a[0])
        return actions

    def _kill(self, name: str) -> bool:
        """kill -9 right after an acknowledged write on that node: the write must survive."""
        node = self.cluster.nodes[name]
        if node.state != "up":
            return False
        if node.joined:
            write = self.send(node, tag="last")
            self.note(f"last write before the kill: {write.describe()}")
        return self.cluster.kill(name)

    def _faults(self, stop: threading.Event) -> None:
        for at, what, action in self._actions():
            if stop.wait(max(0.0, at - self.now())):
                return
            self.note(what)
            try:
                if action() is False:
                    self.note(f"{what}: skipped (the node is not running)")
            except Exception as exc:  # noted; the run goes on
                self.note(f"{what}: failed: {exc!r}")
                self.cluster.problems.append(f"fault '{what}' failed: {exc!r}")

    # -- the run --------------------------------------------------------------------------------

    def chaos(self) -> None:
        """The workload in this thread, the faults in another, for the plan's duration."""
        membership = [e for e in self.plan.events if e.kind in MEMBERSHIP]
        stop = threading.Event()
        self.started = time.monotonic()
        self.note("faults and workload begin")
        self.monitor.start()
        scheduler = threading.Thread(target=self._faults, args=(stop,), daemon=True)
        scheduler.start()
        try:
            while self.now() < self.plan.duration:
                self._membership_due(membership, self.now())
                self.step()
                time.sleep(self.rng.uniform(0.05, 0.25))
        except BaseException:
            stop.set()  # the scheduler stops at its next wait
            raise
        finally:
            # Its last actions end the faults (a restart takes a few seconds): let it finish.
            scheduler.join(timeout=300)
        self._pending = membership  # done after healing: every run changes its membership

    def _membership_due(self, pending: list[Event], now: float) -> None:
        """Do the membership changes due by ``now``, each once the nodes it needs run and the
        changes planned before it for the same node are done (a demotion waits for the join,
        the promotion for the demotion); done ones leave ``pending``."""
        waiting: set[str] = set()
        for event in list(pending):
            if event.at > now:
                break
            if event.node in waiting or not self.membership(event):
                waiting.add(event.node)
                continue
            pending.remove(event)

    def settle(self) -> Verdict:
        """Heal, let the nodes converge, write a probe from every member, converge again,
        check."""
        self._chaos_over.set()
        self.cluster.heal()
        healed = self.now()
        self.note("healed: one LAN, every node running")
        # Everything from here on shares one deadline: joins still under way, membership
        # changes the faults held up, a last try of failed joins, convergence.
        deadline = time.monotonic() + self.converge_timeout
        while self._pending and time.monotonic() < deadline:
            for worker in self._joins.values():
                worker.join(timeout=max(0.0, deadline - time.monotonic()))
            self._membership_due(self._pending, float("inf"))
            time.sleep(0.2)
        for event in self._pending:
            self.note(f"never done: {event.describe()}")
        for worker in self._joins.values():
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        for name, link in self._links.items():
            node = self.cluster.nodes[name]
            if name in self._joining:
                continue  # its node finishes the join itself
            if not node.joined and node.state == "up" and time.monotonic() < deadline:
                # The network is whole again: the same link once more.
                self._join(node, link, attempts=1, timeout=deadline - time.monotonic())
        checker = Checker(self)
        checker.wait(deadline, need="present")
        self._probes()
        checker.present_at = None  # from here on: with the probes
        converged = checker.wait(deadline) == "all"
        self.monitor.stop()
        verdict = checker.verdict(converged, None if not converged else self.now() - healed)
        present = checker.present_at
        verdict.figures["converge_holders_s"] = (
            None if present is None else round(present - healed, 2)
        )
        verdict.notes += self.monitor.notes()
        verdict.figures["longest_sync_stall_s"] = round(
            max(self.monitor.longest.values(), default=0), 1
        )
        return verdict

    def _probes(self) -> None:
        """Every member that says it is active writes once: proof that it still can, and that
        what it writes reaches everyone."""
        for node in self.cluster.nodes.values():
            if not node.joined or node.state != "up":
                continue
            api = node.peer.api
            assert api is not None
            try:
                detail = api.get(f"/api/v1/threads/{self.thread}/")
            except (ApiError, *NO_ANSWER):
                continue
            if detail["state"] != "active":
                continue
            try:
                if detail["role"] in ROLES_THAT_POST:
                    write = self.send(node, tag="probe")
                else:
                    write = self.receipt(node)
            except (ApiError, *NO_ANSWER) as exc:
                self.note(f"probe on {node.name}: {exc}")
                continue
            if write is not None:
                self.note(f"probe: {write.describe()}")


# -- checking ------------------------------------------------------------------------------------


@dataclass
class Dump:
    """What must be equal on every member's node."""

    ops: dict[str, tuple[str, str, str]]  # hash -> (kind, status, reason), the log
    rows: dict[str, list[tuple]]  # app table -> its rows, in primary key order
    pending: int  # ops waiting for their past
    evidence: int  # fork evidence
    columns: dict[str, list[str]] = field(default_factory=dict)  # app table -> its columns

    def column(self, table: str, *names: str) -> list[tuple]:
        """The given columns of every row of ``table`` (none when the table is not there)."""
        if table not in self.columns:
            return []
        at = [self.columns[table].index(name) for name in names]
        return [tuple(row[i] for i in at) for row in self.rows.get(table, ())]

    def same(self, other: Dump) -> bool:
        return self.ops == other.ops and self.rows == other.rows

    def differences(self, other: Dump, me: str, them: str) -> str:
        mine, theirs = set(self.ops), set(other.ops)
        decided = [h for h in mine & theirs if self.ops[h] != other.ops[h]]
        parts = []
        if mine - theirs:
            parts.append(f"{len(mine - theirs)} ops only on {me}")
        if theirs - mine:
            parts.append(f"{len(theirs - mine)} ops only on {them}")
        for h in sorted(decided)[:3]:
            parts.append(f"op {h[:12]} {self.ops[h][1:]} on {me}, {other.ops[h][1:]} on {them}")
        if len(decided) > 3:
            parts.append(f"{len(decided) - 3} more decided differently")
        for table in sorted(set(self.rows) | set(other.rows)):
            a, b = set(self.rows.get(table, ())), set(other.rows.get(table, ()))
            if a != b:
                parts.append(f"{table}: {len(a - b)} rows only on {me}, {len(b - a)} on {them}")
        return "; ".join(parts) or "no difference"


def _value(v: Any) -> Any:
    return v.hex() if isinstance(v, bytes) else v


def dump_read(db: ThreadFile) -> Dump:
    def read(conn: sqlite3.Connection) -> Dump:
        ops = {
            h.hex(): (kind, status or "", reason or "")
            for h, kind, status, reason in conn.execute(
                "SELECT hash, kind, status, reason FROM sereus_ops WHERE place = 'log'"
            )
        }
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith(("sereus_", "django_", "sqlite_")) and "_fts" not in name
        ]
        rows, columns = {}, {}
        for table in sorted(tables):
            quoted = table.replace('"', '""')
            cursor = conn.execute(f'SELECT * FROM "{quoted}"')  # noqa: S608 - a table's name
            columns[table] = [d[0] for d in cursor.description]
            rows[table] = sorted((tuple(_value(v) for v in row) for row in cursor), key=repr)
        ((pending,),) = conn.execute("SELECT count(*) FROM sereus_ops WHERE place = 'pending'")
        ((evidence,),) = conn.execute("SELECT count(*) FROM sereus_ops WHERE place = 'evidence'")
        return Dump(ops, rows, pending, evidence, columns)

    return db.transaction(read)


@dataclass
class Verdict:
    findings: list[str]
    figures: dict[str, Any]
    notes: list[str]


class Checker:
    """Waits for the healed cluster to settle and says what broke."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.members: list[str] = []  # member ids per the control state, last seen
        self.views: dict[str, Any] = {}  # node -> (state, role, members) from its API
        self.dumps: dict[str, Dump] = {}
        self.waiting_for = ""
        self.present_at: float | None = None  # run time when the holders first agreed

    def _look(self) -> str:
        """One look at every node: "all" when the members agree on who they are, every node
        that is not a member knows it, and the members' replicas are identical; "present" when
        all that holds except that some member's node lacks the thread (stranded); else "".
        ``waiting_for`` says what is missing."""
        run = self.run
        self.views, self.dumps = {}, {}
        for name, node in run.cluster.nodes.items():
            tried = name in run._failed_joins or name in run._joining
            if not node.joined and tried and node.state == "up":
                self._late_join(node)
            if not node.joined or node.state != "up":
                continue
            api = node.peer.api
            assert api is not None
            assert node.db is not None
            try:
                detail = api.get(f"/api/v1/threads/{run.thread}/", timeout=10)
                members = api.get(f"/api/v1/threads/{run.thread}/members/", timeout=10)
            except (ApiError, *NO_ANSWER) as exc:
                self.views[name] = ("unreachable", str(exc)[:100], ())
                continue
            ids = tuple(sorted(m["id"] for m in members))
            self.views[name] = (detail["state"], detail["role"], ids)
            self.dumps[name] = dump_read(node.db)
        active = {name: v for name, v in self.views.items() if v[0] == "active"}
        if not active:
            self.waiting_for = "any node with the thread active"
            return ""
        lists = {v[2] for v in active.values()}
        # Disagreeing views: check against everyone any of them lists (and say so).
        self.members = sorted({member for ids in lists for member in ids})
        if len(lists) > 1:
            self.waiting_for = "the members' views of the membership to agree"
            return ""
        by_member = self._nodes_by_member()
        for name, (state, _role, _ids) in self.views.items():
            member = run.cluster.nodes[name].member_id in self.members
            if state == "active" and not member:
                self.waiting_for = f"{name} to learn that it is no longer a member"
                return ""
        member_nodes = [by_member[m] for m in self.members if m in by_member]
        first = self.dumps[member_nodes[0]]
        for name in member_nodes[1:]:
            if not self.dumps[name].same(first):
                self.waiting_for = f"{member_nodes[0]} and {name} to hold the same replica"
                return ""
        if len(member_nodes) < len(self.members):
            self.waiting_for = "every member's node to hold the thread"
            return "present"
        return "all"

    def _late_join(self, node: Node) -> None:
        """A redeem whose answer was an error may still have joined the node (or may later, if
        the node keeps trying): look."""
        api = node.peer.api
        assert api is not None
        with contextlib.suppress(ApiError, StopIteration, *NO_ANSWER):
            if api.get(f"/api/v1/threads/{self.run.thread}/", timeout=10)["state"] == "active":
                self.run._joined(node)
                self.run.note(f"{node.name} holds the thread after all (its redeem had failed)")

    def _thread_state(self, node: Node) -> str:
        """What the node's API says of the thread: its state and problem, or why nothing."""
        api = node.peer.api
        if api is None or node.state != "up":
            return f"node {node.state}"
        try:
            detail = api.get(f"/api/v1/threads/{self.run.thread}/", timeout=10)
        except ApiError as exc:
            return f"thread: HTTP {exc.status}"
        except NO_ANSWER as exc:
            return f"no answer: {exc!r}"
        return " ".join(filter(None, (detail.get("state"), detail.get("problem"))))

    def _nodes_by_member(self) -> dict[str, str]:
        return {
            node.member_id: name
            for name, node in self.run.cluster.nodes.items()
            if node.joined and self.views.get(name, ("",))[0] == "active"
        }

    def wait(self, deadline: float, *, need: str = "all") -> str:
        """Look until the cluster is settled as far as ``need`` says ("all", or "present":
        the members' nodes that hold the thread, while a stranded one may never) or the
        deadline passes; returns the last look's answer. Notes when the nodes holding the
        thread first agree (``present_at``)."""
        while True:
            state = self._look()
            if state and self.present_at is None:
                self.present_at = self.run.now()
            if state == "all" or (state and need == "present"):
                self.run.note(f"converged ({state} members)")
                return state
            if time.monotonic() >= deadline:
                self.run.note(f"gave up waiting for {self.waiting_for}")
                return state
            time.sleep(0.5)

    # -- the verdict ----------------------------------------------------------------------------

    def verdict(self, converged: bool, converge_seconds: float | None) -> Verdict:
        run = self.run
        findings: list[str] = list(run.cluster.problems)
        findings += [f"{name} exited by itself" for name in run.cluster.exited()]
        notes: list[str] = []
        if not converged:
            findings.append(
                f"not converged within {run.converge_timeout:.0f} s: waiting for {self.waiting_for}"
            )
        by_member = self._nodes_by_member()
        member_nodes = [by_member[m] for m in self.members if m in by_member]
        views = {n: v[2] for n, v in self.views.items() if v[0] == "active"}
        if len(set(views.values())) > 1:
            names = {node.member_id: n for n, node in run.cluster.nodes.items() if node.joined}
            findings.append(
                "membership views differ: "
                + "; ".join(
                    f"{n} lists {''.join(sorted(names.get(m, '?') for m in ids))}"
                    for n, ids in sorted(views.items())
                )
            )

        # Identical replicas.
        divergent = set()
        if member_nodes:
            base = member_nodes[0]
            for name in member_nodes[1:]:
                if not self.dumps[name].same(self.dumps[base]):
                    divergent.add(name)
                    text = self.dumps[base].differences(self.dumps[name], base, name)
                    findings.append(f"divergent: {base} and {name}: {text}")

        # Nobody stranded: a member per the control state has the thread active on its node,
        # and that node has a sync session going for it.
        stranded = []
        for member in self.members:
            if member not in by_member:
                who = [
                    f"{name} ({self._thread_state(node)})"
                    for name, node in run.cluster.nodes.items()
                    if not node.joined or node.member_id == member
                ]
                stranded.append(member)
                failed = "; ".join(f"{n}: {e[-1]}" for n, e in run._failed_joins.items())
                findings.append(
                    f"stranded: member {member[:12]} is in the thread's control state but no "
                    f"node has the thread active (nodes without it: {', '.join(who)}; failed "
                    f"joins: {failed or 'none'})"
                )
        for name in member_nodes:
            try:
                status = run.cluster.nodes[name].peer.network()
            except (ApiError, *NO_ANSWER) as exc:
                findings.append(f"{name} does not say how its network is: {exc}")
                continue
            entry = next((t for t in status["threads"] if t["thread"] == run.thread), None)
            if entry is None:
                stranded.append(name)
                findings.append(f"stranded: {name} has the thread active but does not sync it")
            elif entry["behind"]:
                notes.append(f"{name} reports being {entry['behind']} ops behind a peer")

        # Every acknowledged write.
        figures = self._writes(findings, notes, member_nodes)
        figures.update(
            nodes=len(run.plan.names),
            members_at_end=len(self.members),
            divergent_nodes=len(divergent),
            stranded=len(stranded),
            converged=converged,
            converge_s=None if converge_seconds is None else round(converge_seconds, 2),
            pending_ops={n: d.pending for n, d in self.dumps.items() if d.pending},
            fork_evidence={n: d.evidence for n, d in self.dumps.items() if d.evidence},
        )
        return Verdict(findings, figures, notes)

    def _writes(self, findings: list[str], notes: list[str], members: list[str]) -> dict:
        run = self.run
        counts: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        # write -> accepted | refused | missing (no op on its author) | unspread (accepted
        # on its author, not on every member's node)
        decisions: dict[int, str] = {}
        for write in run.writes:
            counts[write.outcome] += 1
            if write.outcome != "ack":
                continue
            node = run.cluster.nodes[write.node]
            assert node.db is not None
            if not write.seqs:
                decisions[write.n] = "missing"
                findings.append(f"lost: {write.describe()}: no op of it on its author's node")
                continue
            if len(write.seqs) > 1:
                notes.append(f"{write.describe()}: several data ops meanwhile {write.seqs}")
            seq = write.seqs[-1]
            ((h, status, reason),) = node.db.query(
                "SELECT hash, status, reason FROM sereus_ops WHERE device = ? AND seq = ? "
                "AND place = 'log'",
                (node.device, seq),
            )
            h = h.hex()
            write.reason = reason or ""
            if status == "refused":
                decisions[write.n] = "refused"
                if reason:
                    reasons[reason] += 1
                    notes.append(f"refused: {write.describe()}: {reason}")
                else:
                    findings.append(f"refused without a reason: {write.describe()} (op {h[:12]})")
                continue
            if status != "accepted":
                decisions[write.n] = "missing"
                findings.append(f"{write.describe()}: its op {h[:12]} is {status!r} on its author")
                continue
            decisions[write.n] = "accepted"
            for name in members:
                there = self.dumps[name].ops.get(h)
                if there is None or there[1] != "accepted":
                    decisions[write.n] = "unspread"
                    how = "absent" if there is None else f"{there[1]} ({there[2]})"
                    findings.append(
                        f"lost: {write.describe()}: op {h[:12]} accepted on its author, {how} "
                        f"on {name}"
                    )
        for write in run.writes:
            write.decision = decisions.get(write.n, "")
        wrong_rows = self._messages(findings, decisions, members)
        lost = sum(1 for d in decisions.values() if d in ("missing", "unspread"))
        acked = counts["ack"]
        return {
            "writes": len(run.writes),
            "acknowledged": acked,
            "accepted": sum(1 for d in decisions.values() if d == "accepted"),
            "refused_with_reason": sum(reasons.values()),
            "refusal_reasons": dict(reasons.most_common()),
            "lost": lost,
            "wrong_rows": wrong_rows,
            "rejected_at_once": counts["rejected"],
            "no_answer": counts["unknown"],
            "ack_latency": _latencies(
                [w.ended - w.started for w in run.writes if w.outcome == "ack"]
            ),
        }

    def _messages(self, findings: list[str], decisions: dict[int, str], members: list[str]) -> int:
        """Each message's text on every member's node is what its author's writes left: the
        last acknowledged one its author's node accepted (or any write after it whose answer
        never came); returns how many rows are not."""
        run = self.run
        by_message: dict[str, list[Write]] = {}
        for write in run.writes:
            if write.kind != "receipt":
                by_message.setdefault(write.message, []).append(write)
        wrong = 0
        texts = {
            name: dict(self.dumps[name].column("messaging_message", "id", "text"))
            for name in members
        }
        for message, writes in by_message.items():
            possible: set[str | None] = {None}
            for write in sorted(writes, key=lambda w: w.n):
                if write.outcome == "ack" and decisions.get(write.n) in ("accepted", "unspread"):
                    possible = {write.text}
                elif write.outcome == "unknown":
                    possible = possible | {write.text}
            for name in members:
                found = texts[name].get(message)
                if found not in possible:
                    wrong += 1
                    want = " or ".join(repr(p) for p in sorted(possible, key=repr))
                    findings.append(
                        f"message {message[:8]} by {run.authors.get(message)} is {found!r} on "
                        f"{name}, expected {want} (writes: "
                        + "; ".join(w.describe() for w in writes)
                        + ")"
                    )
        # Rows no write explains (the probes and floor are writes too). A send that got no
        # answer is known by its text only (its id may be derived from the one sent).
        unanswered = {w.text for w in run.writes if w.kind == "send" and w.outcome == "unknown"}
        for name in members:
            for message, text in texts[name].items():
                if message not in by_message and text not in unanswered:
                    wrong += 1
                    findings.append(f"message {message[:8]} on {name} comes from no write")
        return wrong


def _latencies(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    ordered = sorted(samples)
    return {
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 1),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


# -- running it ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    plan: Plan
    findings: list[str]
    figures: dict[str, Any]
    notes: list[str]
    log: list[str]
    logs: Path | None  # the nodes' output, one file each
    rebuild: dict[str, str]  # node -> what thread_rebuild said
    writes: list[Write]

    @property
    def ok(self) -> bool:
        return not self.findings

    def report(self) -> str:
        figures = ", ".join(
            f"{k} {v}"
            for k, v in self.figures.items()
            if k not in ("refusal_reasons", "ack_latency", "pending_ops", "fork_evidence")
        )
        lines = [
            f"fault run, seed {self.plan.seed} (replay: SEREUS_FAULT_SEED={self.plan.seed}): "
            + ("all checks passed" if self.ok else f"{len(self.findings)} findings"),
            "schedule (planned):",
            self.plan.describe(),
            "what happened:",
            *(f"  {line}" for line in self.log),
            f"figures: {figures}",
            f"  refusal reasons: {self.figures.get('refusal_reasons')}",
            f"  ack latency: {self.figures.get('ack_latency')}",
            f"  pending ops: {self.figures.get('pending_ops')}, fork evidence: "
            f"{self.figures.get('fork_evidence')}",
            "thread_rebuild: " + "; ".join(f"{n}: {r}" for n, r in self.rebuild.items()),
        ]
        if self.notes:
            lines += ["notes:", *(f"  {note}" for note in self.notes[:40])]
            if len(self.notes) > 40:
                lines.append(f"  ... and {len(self.notes) - 40} more")
        if self.findings:
            lines += ["findings:", *(f"  - {finding}" for finding in self.findings[:60])]
            if len(self.findings) > 60:
                lines.append(f"  ... and {len(self.findings) - 60} more")
        if self.logs is not None:
            lines.append(f"node logs: {self.logs}")
        return "\n".join(lines)


@contextlib.contextmanager
def lab_open() -> Iterator[Netns]:
    sweep_stale()  # what an earlier run, killed before its clean-up, left behind
    with Netns() as lab:
        yield lab


def run_faults(
    plan: Plan, folder: Path, *, converge_timeout: float = 60.0, floor: bool = False
) -> Outcome:
    """Run ``plan`` in namespaces made here (and removed after) with data dirs under
    ``folder``; ``floor`` also measures a fault-free propagation first (benchmarks)."""
    folder.mkdir(parents=True, exist_ok=True)
    with lab_open() as lab:
        try:
            run = Run(plan, lab, folder, converge_timeout=converge_timeout)
        except Exception as exc:
            raise RuntimeError(f"could not build the network: {exc!r}") from exc
        logs = None
        rebuild: dict[str, str] = {}
        try:
            run.setup()
            floor_s = run.propagation_floor() if floor else None
            run.chaos()
            verdict = run.settle()
            if floor_s is not None:
                verdict.figures["floor_propagation_s"] = round(floor_s, 3)
            verdict.findings += _stop_and_rebuild(run, rebuild)
            (folder / "writes.json").write_text(
                json.dumps([dataclasses.asdict(w) for w in run.writes], indent=1)
            )
        except Exception as exc:
            # The harness itself failed: say so with everything needed to replay it.
            raise RuntimeError(
                f"fault run broke off: {exc!r}\nschedule:\n{plan.describe()}\nwhat happened:\n"
                + "\n".join(run.log)
            ) from exc
        finally:
            run.monitor.stop()
            with contextlib.suppress(Exception):
                logs = run.cluster.logs_write()
            run.cluster.close()
    return Outcome(
        plan, verdict.findings, verdict.figures, verdict.notes, run.log, logs, rebuild, run.writes
    )


def _stop_and_rebuild(run: Run, said: dict[str, str]) -> list[str]:
    """Stop every node (SIGTERM, like a service manager) and check each thread database with
    ``manage.py thread_rebuild`` (its tables against its log)."""
    findings = []
    for name, node in run.cluster.nodes.items():
        if node.state == "down":
            continue
        try:
            code = node.peer.process.stop()
        except AssertionError:
            findings.append(f"{name} did not stop within 20 s of SIGTERM")
            continue
        finally:
            node.state = "down"
        if code != 0:
            findings.append(f"{name} exited with {code} on SIGTERM")

    def rebuild(node: Node) -> tuple[str, subprocess.CompletedProcess[str]]:
        env = {k: v for k, v in node.peer.env.items() if k not in skew_env(SKEW)}  # true clock
        return node.name, manage(node.peer.data_dir, "thread_rebuild", run.thread, env=env)

    holders = [n for n in run.cluster.nodes.values() if n.joined]
    with ThreadPoolExecutor(2) as pool:  # each is a Django start-up: two at a time
        for name, result in pool.map(rebuild, holders):
            text = (result.stdout + result.stderr).strip().splitlines()
            said[name] = text[-1] if text else f"exit {result.returncode}"
            if result.returncode != 0:
                findings.append(f"thread_rebuild on {name}: " + " / ".join(text[-4:]))
    return findings
