"""What the devices pages and API show: the party's devices with their sync state per thread, and
how a join or a restore is going. Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.cadre import control
from apps.cadre.devices import holding_threads
from apps.cadre.models import PartyDevice, PendingJoin, RestoreRun, SyncProgress
from apps.core.delivery_models import PeerVector
from apps.core.models import Thread
from apps.core.threads.registry import thread_database

KIND_WORDS = {
    PartyDevice.Kind.FULL: "a device of yours: it holds your recovery secret and reads everything",
    PartyDevice.Kind.MIRROR: "a mirror: it keeps your threads encrypted and can read none of them",
    PartyDevice.Kind.STANDBY: "your recovery key: your phrase restores your threads with it",
}


@dataclass(frozen=True)
class DeviceThread:
    thread_id: str
    name: str
    certified: bool
    behind: int | None  # ops this node holds that the device has not said it holds; None: unknown


@dataclass(frozen=True)
class DeviceView:
    device: str  # hex
    kind: str
    kind_words: str
    label: str
    peer_id: str
    state: str
    this_node: bool
    last_seen: datetime | None
    threads: list[DeviceThread] = field(default_factory=list)

    @property
    def removable(self) -> bool:
        return (
            not self.this_node
            and self.kind != PartyDevice.Kind.STANDBY
            and self.state == PartyDevice.State.ACTIVE
        )


def _thread_state(thread: Thread) -> tuple[dict[bytes, bytes], dict[bytes, int]]:
    """The thread's active devices (device -> member) and this node's version vector."""
    database = thread_database(thread.thread)
    with database.lock:
        replica = database.replica()
        state = replica.control.state
        devices = {d: s.member for d, s in state.devices.items() if s.active}
        return devices, dict(replica.version_vector())


def _behind(vector: dict[str, int], mine: dict[bytes, int]) -> int:
    return sum(max(0, seq - int(vector.get(dev.hex(), 0) or 0)) for dev, seq in mine.items())


def device_list(*, include_gone: bool = False) -> list[DeviceView]:
    """The party's devices, this node's first, then as they were added."""
    rows = control.party_devices(include_gone=include_gone)
    if not rows:
        return []
    me = control.this_device().hex()
    threads = holding_threads()
    states = {t.pk: _thread_state(t) for t in threads}
    vectors: dict[tuple[str, str], PeerVector] = {
        (v.thread_id, v.device_id): v for v in PeerVector.objects.filter(thread__in=threads)
    }
    found = []
    for row in rows:
        per_thread, seen = [], []
        key = bytes.fromhex(row.device)
        for thread in threads:
            devices, mine = states[thread.pk]
            member = devices.get(key)
            certified = member is not None and member.hex() == thread.member_id
            vector = vectors.get((thread.pk, row.device))
            if vector is not None:
                seen.append(vector.seen_at)
            behind = 0 if row.device == me else None
            if vector is not None and row.device != me:
                behind = _behind(vector.vv or {}, mine)
            per_thread.append(DeviceThread(thread.id, thread.name, certified, behind))
        found.append(
            DeviceView(
                device=row.device,
                kind=row.kind,
                kind_words=KIND_WORDS.get(row.kind, row.kind),
                label=row.label,
                peer_id=row.peer_id,
                state=row.state,
                this_node=row.device == me,
                last_seen=max(seen) if seen else None,
                threads=per_thread,
            )
        )
    return sorted(found, key=lambda d: not d.this_node)


def _progress(run: str) -> list[dict[str, Any]]:
    return [
        {
            "thread": row.thread_id,
            "name": row.name,
            "app": row.app,
            "control": row.control,
            "ops_fetched": row.ops_fetched,
            "ops_total": row.ops_total,
            "state": row.state,
            "state_words": row.get_state_display(),
            "problem": row.problem,
        }
        for row in SyncProgress.objects.filter(run=run)
    ]


def _status(row: PendingJoin | RestoreRun | None, run: str, **extra: Any) -> dict[str, Any]:
    if row is None:
        return {"state": "none", "words": "", "problem": "", "running": False, "progress": []}
    ended = row.state in ("done", "failed")
    found = {"state": row.state, "words": row.get_state_display(), "problem": row.problem}
    found.update(running=not ended, attempts=row.attempts, progress=_progress(run), **extra)
    return found


def join_status() -> dict[str, Any]:
    """The latest join of this node ({"state": "none"} when it never joined)."""
    join = PendingJoin.objects.order_by("-created_at", "-pk").first()
    if join is None:
        return _status(None, "join")
    return _status(
        join, "join", kind=join.kind, started_at=join.created_at, updated_at=join.updated_at
    )


def restore_status() -> dict[str, Any]:
    """The latest restore from the recovery phrase ({"state": "none"} when there was none)."""
    run = RestoreRun.objects.order_by("-started_at", "-pk").first()
    if run is None:
        return _status(None, "restore")
    return _status(run, "restore", started_at=run.started_at, finished_at=run.finished_at)
