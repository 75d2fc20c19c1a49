"""Reads about threads for pages, the API and live sockets: op log, members, sync state."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.core.models import Thread, ThreadDevice, ThreadMember
from apps.core.thread.op import op_decode
from apps.core.threads.names import NamedDevice, Person, thread_names
from apps.core.threads.registry import thread_database

THREAD_ID = re.compile(r"\A[0-9a-fA-F]{64}\Z")
ACTIVITY_SIZE = 20


@dataclass(frozen=True)
class LoggedOp:
    """An op as this node's log holds it (``n`` is its position there)."""

    n: int
    hash: str
    device: str
    seq: int
    kind: str
    status: str | None
    reason: str | None
    at: datetime | None = None  # the author's clock (hlc), when it was read


@dataclass(frozen=True)
class ThreadLive:
    """The parts of a thread's page that change when ops arrive."""

    thread: Thread
    roles: list[str]
    members: list[ThreadMember]
    devices: list[ThreadDevice]
    activity: list[LoggedOp]  # newest first
    # The members and devices as pages name them (``names``): no key in sight.
    people: list[Person] = field(default_factory=list)
    named_devices: list[NamedDevice] = field(default_factory=list)
    # The members this node's member may give another role or remove (the policy's
    # may_manage): the page offers those controls for them alone, as the others would refuse.
    manageable: frozenset[str] = frozenset()

    @property
    def this_device(self) -> str | None:
        return next((d.device_id for d in self.devices if d.is_this_node), None)


@dataclass(frozen=True)
class PeerSync:
    device: str
    peer_id: str
    connected: bool
    synced_at: datetime | None
    behind: int


@dataclass(frozen=True)
class ThreadSync:
    """One thread's sync state as the p2p worker reported it."""

    thread: str
    name: str
    ops: int
    behind: int
    connected_peers: int
    peers: list[PeerSync] = field(default_factory=list)

    @property
    def summary(self) -> str:
        # Known lag first: it stays true (and worth saying) while nobody is connected.
        if self.behind:
            return f"behind by {self.behind} op{'' if self.behind == 1 else 's'}"
        if not self.peers:
            return "no other member device"
        if not self.connected_peers:
            return "no member device reachable"
        return "in sync"

    @property
    def in_sync(self) -> bool:
        return not self.behind and self.connected_peers > 0


def thread_find(thread_id: str) -> Thread | None:
    """The thread with this hex id, if this node has it (None for anything malformed)."""
    if not THREAD_ID.match(thread_id):
        return None
    return Thread.objects.filter(pk=thread_id.lower()).first()


def thread_roles(thread: Thread) -> list[str]:
    """The thread's roles, highest rank first."""
    policy = thread_database(thread.thread).replica().control.state.policy
    return sorted(policy.roles, key=lambda role: -policy.rank(role))


def thread_open_roles(thread: Thread) -> list[str]:
    """The roles a link for several people may grant in the thread, highest rank first."""
    policy = thread_database(thread.thread).replica().control.state.policy
    return sorted(policy.open_roles(), key=lambda role: -policy.rank(role))


def thread_manages(thread: Thread) -> bool:
    """Whether this node's role manages the thread (adds and removes apps, among others)."""
    state = thread_database(thread.thread).replica().control.state
    rules = state.policy.roles.get(thread.role) if thread.role else None
    return bool(rules and rules.manage)


_OP_COLUMNS = "n, hash, device, seq, kind, status, reason"


def _log_rows(thread: bytes, columns: str, rest: str, params: tuple) -> list[tuple]:
    sql = f"SELECT {columns} FROM sereus_ops WHERE place = 'log' {rest}"
    return thread_database(thread).raw().execute(sql, params).fetchall()


def _logged(row: tuple, at: datetime | None = None) -> LoggedOp:
    n, op_hash, device, seq, kind, status, reason = row
    return LoggedOp(n, op_hash.hex(), device.hex(), seq, kind, status, reason or None, at)


def thread_ops(thread: bytes, *, after: int = 0, limit: int = 100) -> list[LoggedOp]:
    """The log after position ``after``, oldest first, in the order this node admitted it."""
    rows = _log_rows(thread, _OP_COLUMNS, "AND n > ? ORDER BY n LIMIT ?", (after, limit))
    return [_logged(row) for row in rows]


def thread_activity(thread: bytes, *, limit: int = ACTIVITY_SIZE) -> list[LoggedOp]:
    """The newest ``limit`` ops of the log, newest first, with their authors' times."""
    rows = _log_rows(thread, f"{_OP_COLUMNS}, raw", "ORDER BY n DESC LIMIT ?", (limit,))
    # Log ops passed the shape check when admitted; decoding a handful for their hlc is cheap.
    return [_logged(row[:-1], _unix_time(op_decode(row[-1]).hlc.millis / 1000)) for row in rows]


def thread_live(thread: Thread) -> ThreadLive:
    """Everything the live parts of the thread page show, read now (lists, not querysets, so a
    socket can render them outside the thread that read them)."""
    active = thread.state == Thread.State.ACTIVE
    members = list(thread.members.all()) if active else []
    devices = list(thread.devices.all()) if active else []
    names = thread_names(thread) if active else None
    manageable: frozenset[str] = frozenset()
    if active and thread.role:
        policy = thread_database(thread.thread).replica().control.state.policy
        manageable = frozenset(
            m.member_id for m in members if policy.may_manage(thread.role, m.role)
        )
    return ThreadLive(
        thread=thread,
        roles=thread_roles(thread) if active else [],
        members=members,
        devices=devices,
        activity=thread_activity(thread.thread) if active else [],
        people=names.people((m.member_id, m.role) for m in members) if names else [],
        named_devices=names.devices(d.device_id for d in devices) if names else [],
        manageable=manageable,
    )


def thread_sync_states(status: Mapping[str, Any]) -> list[ThreadSync]:
    """The per-thread sync state in a p2p status (``p2p.status.reply``), with thread names;
    empty when the worker does not run."""
    entries = status.get("threads") or []
    names = dict(
        Thread.objects.filter(pk__in=[e.get("thread") for e in entries]).values_list("id", "name")
    )
    return [
        ThreadSync(
            thread=entry["thread"],
            name=names.get(entry["thread"], entry["thread"][:12]),
            ops=entry.get("ops", 0),
            behind=entry.get("behind", 0),
            connected_peers=entry.get("connected_peers", 0),
            peers=[
                PeerSync(
                    device=peer["device"],
                    peer_id=peer.get("peer_id", ""),
                    connected=bool(peer.get("connected")),
                    synced_at=_unix_time(peer.get("last_sync")),
                    behind=peer.get("behind", 0),
                )
                for peer in entry.get("peers", [])
            ],
        )
        for entry in entries
    ]


def _unix_time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=UTC)


@dataclass(frozen=True)
class KeyProblem:
    """A keys op whose sealed box for this node's member did not hold its epoch's key: the
    rotator (its signing device, and the member it acts for) gave this node no working key."""

    keys_op: str  # hex
    device: str  # hex: the device that signed it
    member: str  # hex: the member that device acts for ("" if unknown)


def key_problems(thread: Thread) -> list[KeyProblem]:
    """Bad seals this node found in the thread (issue 9: an inconsistent rotation is detectable
    and attributable: the keys op is signed by its author's device)."""
    database = thread_database(thread.thread)
    with database.lock:
        replica = database.replica()
        devices = replica.control.state.devices
        return [
            KeyProblem(
                bad.keys_op.hex(),
                bad.device.hex(),
                devices[bad.device].member.hex() if bad.device in devices else "",
            )
            for bad in replica.keyring.bad_seals
        ]
