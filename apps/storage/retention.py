"""Which backups the party keeps, and giving back the room of the others (ADR 25).

``plan`` is pure: given the snapshots and the policy (``Retention``), the ids kept. Snapshots
are grouped by the device and folder they back up (a daily backup of the photos never pushes
out the documents'); within a group, the newest ``keep_last`` complete ones are kept, and the
newest complete one of each of the last ``keep_daily`` days, ``keep_weekly`` ISO weeks and
``keep_monthly`` months that have one (UTC). A running snapshot is never dropped, and neither
is the newest complete snapshot of a group, whatever the policy says: a policy of zeros must
not leave a folder with no backup at all. Failed snapshots are dropped.

``prune`` applies the plan in the storage thread: the dropped snapshots' rows go (the Snapshot
row first, so a prune cut short leaves only file rows of a snapshot that is gone, which the
next prune deletes), then every chunk no remaining file names loses its Chunk row, and its
shares are released on their holders (signed by the party key, ``client.release``) before
their Share rows go. A holder that is away keeps them until a later prune: a Share whose Chunk
row is gone is exactly "released here, not yet on the holder", so no extra field is needed.
"""

from __future__ import annotations

import datetime
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import connections

from apps.storage import space
from apps.storage.models import Chunk, FileEntry, Holder, Retention, Share, Snapshot

logger = logging.getLogger(__name__)

KEEP_FIELDS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly")
KEEP_MAX = 10_000
RETENTION_SEED = b"retention"
DELETE_BATCH = 2000  # rows deleted per op (an op stays far under its 1 MiB)
RELEASE_BATCH = 1000  # digests per release request (the protocol allows 4096)
# A backup writes its chunks before the files that name them: while one runs (started within
# this long), nothing is collected, or its fresh chunks would look unused. A snapshot that has
# "run" for longer than this is a device that stopped mid-way.
RUNNING_GRACE_MS = 7 * 24 * 3600 * 1000


class SnapshotLike(Protocol):
    pk: Any
    state: str
    started_ms: int
    device: str
    source: str


class PolicyLike(Protocol):
    keep_last: int
    keep_daily: int
    keep_weekly: int
    keep_monthly: int


def _day(ms: int) -> datetime.date:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).date()


def _periods() -> list[tuple[str, Callable[[datetime.date], tuple]]]:
    return [
        ("keep_daily", lambda d: (d.year, d.month, d.day)),
        ("keep_weekly", lambda d: tuple(d.isocalendar())[:2]),
        ("keep_monthly", lambda d: (d.year, d.month)),
    ]


def _keep_group(snapshots: list[SnapshotLike], policy: PolicyLike) -> set[Any]:
    complete = sorted(
        (s for s in snapshots if s.state == Snapshot.State.COMPLETE),
        key=lambda s: (s.started_ms, str(s.pk)),
        reverse=True,
    )
    kept = {s.pk for s in snapshots if s.state == Snapshot.State.RUNNING}
    if not complete:
        return kept
    kept.add(complete[0].pk)  # never a folder without a backup
    kept.update(s.pk for s in complete[: max(0, policy.keep_last)])
    for field, period_of in _periods():
        count = max(0, getattr(policy, field))
        seen: set[tuple] = set()
        for snap in complete:  # newest first: the first of each period is its newest
            if len(seen) >= count:
                break
            period = period_of(_day(snap.started_ms))
            if period not in seen:
                seen.add(period)
                kept.add(snap.pk)
    return kept


def plan(snapshots: Iterable[SnapshotLike], policy: PolicyLike) -> set[Any]:
    """The pks of the snapshots ``policy`` keeps (pure)."""
    groups: dict[tuple[str, str], list[SnapshotLike]] = defaultdict(list)
    for snap in snapshots:
        groups[(snap.device, snap.source)].append(snap)
    kept: set[Any] = set()
    for group in groups.values():
        kept |= _keep_group(group, policy)
    return kept


# -- the policy row ---------------------------------------------------------------------------


def _member(thread: Any) -> bytes:
    return bytes.fromhex(thread.member_id)


def retention_id(thread: Any) -> Any:
    from apps.core.thread.rowid import row_id_for

    return row_id_for(_member(thread), RETENTION_SEED)


def policy_of(thread: Any) -> Retention:
    """The party's policy: its row (the deterministic one, else any), else the defaults."""
    rows = Retention.objects.using(space.using(thread))
    found = rows.filter(pk=retention_id(thread)).first() or rows.order_by("id").first()
    return found if found is not None else Retention()


def retention_set(**keep: int) -> Retention:
    """Write the party's retention policy (fields not given keep their value)."""
    unknown = sorted(set(keep) - set(KEEP_FIELDS))
    if unknown:
        raise space.StorageError(
            "invalid",
            f"Retention knows keep_last, keep_daily, keep_weekly and keep_monthly, "
            f"not {', '.join(unknown)}.",
        )
    for field, value in keep.items():
        if type(value) is not int or not 0 <= value <= KEEP_MAX:
            words = field.replace("_", " ")
            raise space.StorageError(
                "invalid", f"How many backups to {words} must be a whole number 0 to {KEEP_MAX}."
            )
    thread = space.storage_ensure()
    current = policy_of(thread)
    values = {f: keep.get(f, getattr(current, f)) for f in KEEP_FIELDS}
    pk = retention_id(thread)

    def action() -> Retention:
        row = Retention.objects.filter(pk=pk).first()
        if row is None:
            return Retention.objects.create(id=pk, **values)
        for field, value in values.items():
            setattr(row, field, value)
        row.save()
        return row

    return space.write(thread, action)


# -- pruning ----------------------------------------------------------------------------------


@dataclass
class Pruned:
    snapshots: int = 0
    chunks: int = 0
    shares: int = 0  # released on their holders (or dropped from the outbox)
    waiting: int = 0  # to release on holders that did not answer: a later prune retries

    def as_dict(self) -> dict[str, int]:
        return {
            "snapshots": self.snapshots,
            "chunks": self.chunks,
            "shares": self.shares,
            "waiting": self.waiting,
        }


def _batches(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _delete(thread: Any, model: type, pks: list) -> None:
    for batch in _batches(pks, DELETE_BATCH):
        space.write(thread, lambda batch=batch: model.objects.filter(pk__in=batch).delete())


def _drop_snapshots(thread: Any, dropped: list) -> None:
    if dropped:
        _delete(thread, Snapshot, dropped)
    alias = space.using(thread)
    live = Snapshot.objects.using(alias).values("pk")
    orphans = list(
        FileEntry.objects.using(alias).exclude(snapshot__in=live).values_list("pk", flat=True)
    )
    _delete(thread, FileEntry, orphans)


def _running_now(thread: Any, now_ms: int) -> bool:
    return (
        Snapshot.objects.using(space.using(thread))
        .filter(state=Snapshot.State.RUNNING, started_ms__gt=now_ms - RUNNING_GRACE_MS)
        .exists()
    )


def unused_chunks(thread: Any) -> list:
    """Chunk rows that no file of a remaining snapshot names. In SQL over the files' JSON
    lists (SQLite's json_each): a Python set of every chunk id named would hold a million
    strings in memory for a terabyte backed up."""
    sql = (
        "SELECT c.id FROM storage_chunk c WHERE c.key NOT IN ("
        " SELECT j.value FROM storage_file f"
        " JOIN storage_snapshot s ON s.id = f.snapshot, json_each(f.chunks) j)"
    )
    with connections[space.using(thread)].cursor() as cursor:
        cursor.execute(sql)
        return [row[0] for row in cursor.fetchall()]


def _release_waiting(thread: Any, totals: Pruned) -> None:
    """Shares whose chunk is gone: released on each holder (or dropped from the outbox), then
    their rows deleted. A holder that does not answer keeps them for a later prune."""
    alias = space.using(thread)
    chunks = Chunk.objects.using(alias).values("pk")
    waiting = list(Share.objects.using(alias).exclude(chunk__in=chunks))
    if not waiting:
        return
    # A digest a live share still has on the same holder is not released: the same content
    # backed up again seals to the same share, and the holder keeps one copy of it.
    live = set(Share.objects.using(alias).filter(chunk__in=chunks).values_list("holder", "digest"))
    done: list = []
    by_holder: dict[Any, list[Share]] = defaultdict(list)
    for share in waiting:
        if share.holder is None or (share.holder, share.digest) in live:
            if share.holder is None:
                _outbox_drop(share.digest)
            done.append(share.pk)
        else:
            by_holder[share.holder].append(share)
    holders = Holder.objects.using(alias).in_bulk(list(by_holder))
    for holder_pk, shares in by_holder.items():
        holder = holders.get(holder_pk)
        if holder is None or holder.state == Holder.State.LEFT:
            done += [s.pk for s in shares]  # nobody to tell: it holds nothing of ours now
            continue
        released = _release_on(holder, shares)
        done += released
        totals.waiting += len(shares) - len(released)
    _delete(thread, Share, done)
    totals.shares += len(done)


def _outbox_drop(digest: str) -> None:
    try:
        from apps.storage import placement

        placement.outbox_drop(bytes.fromhex(digest))
    except (ImportError, AttributeError):  # the outbox is not there yet: nothing kept in it
        pass
    except OSError:
        logger.warning("could not drop a share from the outbox", exc_info=True)


def _release_on(holder: Holder, shares: list[Share]) -> list:
    """Release ``shares`` on ``holder``: the pks of those it confirmed."""
    try:
        from apps.storage import client
    except ImportError:  # the holder protocol's client is not there yet: later
        return []
    done: list = []
    try:
        target = client.target_of(holder)
        for batch in _batches(shares, RELEASE_BATCH):
            client.release(target, [bytes.fromhex(s.digest) for s in batch])
            done += [s.pk for s in batch]
    except space.StorageError as exc:
        logger.info("holder %s kept shares to release later: %s", holder.label, exc.words)
    return done


def prune(*, now_ms: int | None = None) -> dict[str, int]:
    """Apply the retention policy now: {"snapshots", "chunks", "shares", "waiting"}."""
    import time

    totals = Pruned()
    thread = space.storage_thread()
    if thread is None:
        return totals.as_dict()
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    snaps = list(Snapshot.objects.using(space.using(thread)))
    kept = plan(snaps, policy_of(thread))
    dropped = [s.pk for s in snaps if s.pk not in kept]
    _drop_snapshots(thread, dropped)
    totals.snapshots = len(dropped)
    if not _running_now(thread, now_ms):
        unused = unused_chunks(thread)
        _delete(thread, Chunk, unused)
        totals.chunks = len(unused)
    _release_waiting(thread, totals)
    return totals.as_dict()
