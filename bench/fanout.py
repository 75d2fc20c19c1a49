"""A write reaching many member devices (issue 20, item 6): one writer node (a ``runnode``
process) and N member devices of a thread (N = 5 and 50), each a bare libp2p host of its own with
its own device key, all in this process: they answer the writer's sync sessions as a node that
holds everything would (``done`` with the writer's own vector) and note when each op arrives.
Fifty runnode processes would not fit this machine (two cores); the writer, whose cost per
member is what is measured, runs the real code.

Figures, for each N: the time from the write's commit on the writer until each member device
holds it (p50/p99 over all writes and members, and until the last of the N), and the writer's
CPU time per write and member, over the floor of a write to a thread with no other member
(the HTTP request and the write itself). Targets: a write reaches 50 member devices with p99 <=
1 s, and the per-member cost at 50 is within 1.5x of that at 5.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import multiaddr
import nacl.signing
import trio
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from apps.core.thread.invite import invite_parse
from apps.core.thread.writer import redemption_request
from apps.p2p import frames
from apps.p2p.bridge import TrioThread
from apps.p2p.host import host_build, quiet_libp2p_logs
from apps.p2p.limits import PeerLimits
from apps.p2p.protocols import SYNC_PROTOCOL
from apps.p2p.wire import FrameChannel, PeerFault, PeerRefused, StreamEnded
from bench.p2p_sync import _shell
from bench.report import figure
from bench.stats import percentiles
from tests.support.api import wait_for
from tests.support.p2p import Peer

SIZES = (5, 50)
SESSION_IDLE = 120.0

ADMIT = """
import json
from apps.core.thread.writer import RedemptionRequest
from apps.p2p.protocols.invite import _admit
for thread, fields in json.load(open({path!r})):
    _admit(bytes.fromhex(thread), RedemptionRequest(*(bytes.fromhex(f) for f in fields)))
"""


class Members:
    """N member devices in one trio thread: each a libp2p host that answers sync sessions and
    notes when ops arrive (per thread and device)."""

    def __init__(self, keys: list[nacl.signing.SigningKey]) -> None:
        self.keys = keys
        self.hosts: list[Any] = []
        self.arrivals: dict[tuple[bytes, int], list[float]] = {}
        self.changed = threading.Condition()
        self.bridge = TrioThread("fanout-members")

    def start(self) -> Members:
        quiet_libp2p_logs()
        self.bridge.start(self._run)
        return self

    def stop(self) -> None:
        self.bridge.stop()

    async def _run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
        async with contextlib.AsyncExitStack() as stack:
            for index, key in enumerate(self.keys):
                host = host_build(key)
                host.set_stream_handler(SYNC_PROTOCOL, self._handler(index))
                await stack.enter_async_context(host.run(listen_addrs=[listen]))
                self.hosts.append(host)
            task_status.started()
            await trio.sleep_forever()

    def _handler(self, index: int):
        async def serve(stream) -> None:
            channel = FrameChannel(stream, "writer", PeerLimits())
            try:
                hello = await channel.read_first()
                while isinstance(hello, frames.Hello):
                    await self._session(channel, hello.thread, index)
                    hello = await channel.read(idle=SESSION_IDLE)
            except (StreamEnded, StreamError, PeerFault, PeerRefused, trio.TooSlowError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    await stream.reset()

        return serve

    async def _session(self, channel: FrameChannel, thread: bytes, index: int) -> None:
        while True:
            frame = await channel.read()
            if isinstance(frame, frames.Ops):
                self._arrived(thread, index)
            elif isinstance(frame, frames.VersionVector):
                # Holds everything the writer holds (the ops it lacked came before): the
                # session ends here.
                await channel.send(frames.Done(frame.vv, frame.heads, frame.forks))
                return
            else:
                return

    def _arrived(self, thread: bytes, index: int) -> None:
        now = time.time()
        with self.changed:
            self.arrivals.setdefault((thread, index), []).append(now)
            self.changed.notify_all()

    def connect(self, peer_id: str, addrs: list[str], count: int) -> None:
        async def connect_all() -> None:
            info = PeerInfo(ID.from_base58(peer_id), [multiaddr.Multiaddr(a) for a in addrs])
            for host in self.hosts[:count]:
                with trio.fail_after(10):
                    await host.connect(info)

        self.bridge.submit(connect_all).result(120)

    def counts(self, thread: bytes, count: int) -> list[int]:
        with self.changed:
            return [len(self.arrivals.get((thread, i), ())) for i in range(count)]

    def wait_all(self, thread: bytes, count: int, seen: list[int], timeout: float) -> list[float]:
        """The arrival time at each of the first ``count`` devices of the first ops frame after
        the ``seen`` counts."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                lists = [self.arrivals.get((thread, i), []) for i in range(count)]
                if all(len(times) > seen[i] for i, times in enumerate(lists)):
                    return [times[seen[i]] for i, times in enumerate(lists)]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = sum(1 for i, t in enumerate(lists) if len(t) <= seen[i])
                    raise TimeoutError(f"{missing} of {count} member devices did not get a write")
                self.changed.wait(remaining)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _synced(writer: Peer, thread: str) -> int:
    """How many member devices of ``thread`` the writer is connected to and has synced with:
    a member device answers its first session as if it held everything the writer has (it
    never asks for the log before it), so no write may be under way then."""
    status = writer.network()
    view = next((t for t in status.get("threads", ()) if t["thread"] == thread), None)
    if view is None:
        return 0
    return sum(1 for p in view["peers"] if p["connected"] and p["last_sync"] is not None)


def _writes(writer: Peer, members: Members, thread: str, count: int, writes: int) -> dict[str, Any]:
    """``writes`` notes, one after another, each once every member device holds the last."""
    assert writer.api is not None
    tid = bytes.fromhex(thread)
    per_member: list[float] = []
    to_all: list[float] = []
    cpu_before = _cpu_seconds(writer.process.proc.pid)
    started = time.perf_counter()
    for i in range(writes):
        seen = members.counts(tid, count)
        note = writer.api.post(f"/api/test/threads/{thread}/notes/", {"title": f"fan-out {i}"})
        if count:
            arrived = members.wait_all(tid, count, seen, timeout=30)
            delays = [max(0.0, t - note["written_at"]) for t in arrived]
            per_member.extend(delays)
            to_all.append(max(delays))
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(writer.process.proc.pid) - cpu_before
    return {
        "members": count,
        "writes": writes,
        "writer_cpu_ms_per_write": round(cpu / writes * 1000, 3),
        "seconds_per_write": round(elapsed / writes, 4),
        "to_each": percentiles(per_member) if per_member else None,
        "to_all": percentiles(to_all) if to_all else None,
    }


def _admit_all(writer: Peer, folder: Path, invites: list[tuple[str, str]], keys, secrets_):
    """Admit a member device per invite, on the writer with its process stopped."""
    requests = []
    for (thread, link), key, secret in zip(invites, keys, secrets_, strict=True):
        request = redemption_request(invite_parse(link), master_secret=secret, device_key=key)
        fields = [
            request.invite,
            request.member,
            request.device,
            request.device_cert,
            request.proof,
            request.device_proof,
        ]
        requests.append([thread, [f.hex() for f in fields]])
    path = folder / "admit.json"
    path.write_text(json.dumps(requests))
    writer.stop()
    _shell(writer, ADMIT.format(path=str(path)))
    writer.start()


def run(*, quick: bool = False) -> dict[str, Any]:
    writes = 30 if quick else 100
    most = max(SIZES)
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-fanout-"))
    writer = Peer(folder / "writer").start()
    keys = [nacl.signing.SigningKey.generate() for _ in range(most)]
    member_secrets = [secrets.token_bytes(32) for _ in range(most)]
    members = Members(keys).start()
    result: dict[str, Any] = {}
    try:
        threads = {0: writer.thread_create("fan-out to nobody")}
        invites: list[tuple[str, str]] = []
        for size in SIZES:
            threads[size] = writer.thread_create(f"fan-out to {size}")
            invites += [(threads[size], writer.invite(threads[size])) for _ in range(size)]
        # The same devices are members of each thread: the first 5 of the 50 are in both.
        device_order = [i for size in SIZES for i in range(size)]
        _admit_all(
            writer,
            folder,
            invites,
            [keys[i] for i in device_order],
            [member_secrets[i] for i in device_order],
        )
        members.connect(writer.peer_id, writer.network()["addresses"], most)
        for size in SIZES:
            wait_for(
                lambda size=size: _synced(writer, threads[size]) >= size,
                timeout=120,
                what=f"the writer to sync with {size} member devices",
            )
        for size in (0, *SIZES):  # warm-up: first sessions, caches
            _writes(writer, members, threads[size], size, 5)
        floor = _writes(writer, members, threads[0], 0, writes)
        result["floor"] = floor
        for size in SIZES:
            result[size] = _writes(writer, members, threads[size], size, writes)
        base = floor["writer_cpu_ms_per_write"]
        cost = {
            size: max(0.0, result[size]["writer_cpu_ms_per_write"] - base) / size for size in SIZES
        }
        small, large = min(SIZES), max(SIZES)
        ratio = cost[large] / cost[small] if cost[small] else float("inf")
        result["per_member_cpu_ms"] = {str(k): round(v, 3) for k, v in cost.items()}
        result["per_member_ratio"] = round(ratio, 2)
        for size in SIZES:
            print(
                f"   {size} member devices: to each p50 {result[size]['to_each']['p50_ms']} ms, "
                f"p99 {result[size]['to_each']['p99_ms']} ms; to all {size}: p50 "
                f"{result[size]['to_all']['p50_ms']} ms, p99 {result[size]['to_all']['p99_ms']} "
                f"ms; writer CPU {result[size]['writer_cpu_ms_per_write']} ms per write "
                f"({cost[size]:.3f} ms per member over the floor)",
                flush=True,
            )
        floor_text = f"a write to nobody: writer CPU {base} ms per write"
        result["figures"] = [
            figure(
                f"write reaching {large} member devices, p99",
                result[large]["to_all"]["p99_ms"],
                "ms",
                target=1000,
                higher=False,
                floor=f"to {small}: p99 {result[small]['to_all']['p99_ms']} ms",
            ),
            figure(
                f"writer CPU per member at {large} / at {small}",
                round(ratio, 2),
                "x",
                target=1.5,
                higher=False,
                floor=floor_text,
            ),
        ]
    finally:
        members.stop()
        writer.stop()
    return result
