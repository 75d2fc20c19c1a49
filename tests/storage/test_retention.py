"""Retention: which snapshots a policy keeps (pure), and a prune that drops the others, frees
the chunks no remaining file names and gives their shares back, leaving every chunk a kept
snapshot needs."""

from __future__ import annotations

import datetime
import os
import uuid
from dataclasses import dataclass, field

import pytest

from apps.storage import keys, retention, space
from apps.storage.models import Chunk, FileEntry, Holder, Retention, Share, Snapshot

DAY = 24 * 3600 * 1000
T0 = int(datetime.datetime(2026, 12, 7, 12, tzinfo=datetime.UTC).timestamp() * 1000)


@dataclass
class Snap:
    started_ms: int
    state: str = "complete"
    device: str = "d1"
    source: str = "/home"
    pk: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Policy:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0


def _when(snap: Snap) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(snap.started_ms / 1000, datetime.UTC)


def _kept(snaps: list[Snap], **policy: int) -> list[int]:
    kept = retention.plan(snaps, Policy(**policy))
    return [i for i, s in enumerate(snaps) if s.pk in kept]


# -- plan -------------------------------------------------------------------------------------


def test_keep_last_keeps_the_newest() -> None:
    snaps = [Snap(T0 - i * 3600_000) for i in range(5)]  # newest first
    assert _kept(snaps, keep_last=2) == [0, 1]


def test_one_per_day_is_the_newest_of_that_day_for_the_last_days_that_have_one() -> None:
    snaps = [
        Snap(T0 + 3600_000),  # 0: day 0, newer
        Snap(T0),  # 1: day 0, older
        Snap(T0 - DAY),  # 2: day -1
        Snap(T0 - 3 * DAY),  # 3: day -3 (day -2 has none)
        Snap(T0 - 4 * DAY),  # 4
    ]
    assert _kept(snaps, keep_daily=3) == [0, 2, 3]


def test_weekly_and_monthly_keep_the_newest_of_each_period() -> None:
    snaps = [Snap(T0 - i * DAY) for i in range(70)]  # one a day, newest first
    weekly = _kept(snaps, keep_weekly=3)
    days = [_when(snaps[i]) for i in weekly]
    assert len(weekly) == 3
    assert weekly[0] == 0
    assert [d.isocalendar()[1] for d in days] == sorted(
        {d.isocalendar()[1] for d in days}, reverse=True
    )
    assert all(d.weekday() == 6 for d in days[1:])  # Sunday: the newest of an ISO week
    monthly = _kept(snaps, keep_monthly=3)
    months = [_when(snaps[i]) for i in monthly]
    assert [(m.month, m.day) for m in months] == [(12, 7), (11, 30), (10, 31)]


def test_the_rules_add_up() -> None:
    snaps = [Snap(T0 - i * DAY) for i in range(40)]
    assert _kept(snaps, keep_last=2, keep_daily=3, keep_monthly=2) == [0, 1, 2, 7]  # 7: 30 Nov


def test_a_running_one_is_never_dropped_and_a_failed_one_is() -> None:
    snaps = [
        Snap(T0, state="running"),
        Snap(T0 - 1, state="failed"),
        Snap(T0 - 2),
        Snap(T0 - 3),
        Snap(T0 - 9 * DAY, state="running"),
    ]
    assert _kept(snaps, keep_last=1) == [0, 2, 4]


def test_a_policy_of_zeros_still_keeps_each_folders_newest_backup() -> None:
    snaps = [Snap(T0 - i) for i in range(3)] + [Snap(T0 - 5, source="/photos")]
    snaps.append(Snap(T0 - 6, device="d2"))
    snaps.append(Snap(T0 - 7, device="d2", state="failed"))
    assert _kept(snaps) == [0, 3, 4]


def test_folders_are_kept_apart() -> None:
    docs = [Snap(T0 - i * 3600_000) for i in range(4)]
    photos = [Snap(T0 - i * 3600_000 - 60_000, source="/photos") for i in range(4)]
    assert _kept(docs + photos, keep_last=2) == [0, 1, 4, 5]


# -- retention_set ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_policy_is_one_row_with_a_fixed_id(node) -> None:
    first = retention.retention_set(keep_last=3)
    second = retention.retention_set(keep_daily=2)
    thread = space.storage_thread()
    rows = list(Retention.objects.using(space.using(thread)))
    assert [r.pk for r in rows] == [first.pk] == [second.pk]
    assert (rows[0].keep_last, rows[0].keep_daily, rows[0].keep_weekly) == (3, 2, 4)
    assert retention.policy_of(thread).keep_last == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "bad", [{"keep_last": -1}, {"keep_daily": 10**6}, {"keep_weekly": "3"}, {"keep_all": 1}]
)
def test_a_bad_policy_is_refused_in_words(node, bad) -> None:
    with pytest.raises(space.StorageError) as caught:
        retention.retention_set(**bad)
    assert caught.value.code == "invalid"
    assert "keep" in caught.value.words.lower() or "backups" in caught.value.words


# -- prune ------------------------------------------------------------------------------------


def _hex() -> str:
    return os.urandom(32).hex()


class Manifest:
    """Rows of a storage thread, written as a backup would."""

    def __init__(self) -> None:
        self.thread = space.storage_ensure()
        self.alias = space.using(self.thread)

    def holder(self, state: str = "active") -> Holder:
        return space.write(
            self.thread,
            lambda: Holder.objects.create(kind="peer", device=_hex(), label="Bob", state=state),
        )

    def snapshot(self, started_ms: int, chunks: list[str], **kw) -> Snapshot:
        kw.setdefault("state", "complete")

        def action() -> Snapshot:
            snap = Snapshot.objects.create(source="/home", device="d1", started_ms=started_ms, **kw)
            FileEntry.objects.create(snapshot=snap.pk, path="a.txt", chunks=chunks)
            FileEntry.objects.create(snapshot=snap.pk, path="dir", kind="dir")
            return snap

        return space.write(self.thread, action)

    def chunk(self, holders: list[Holder | None], digests: list[str] | None = None) -> str:
        key = _hex()
        digests = digests or [_hex() for _ in holders]

        def action() -> None:
            chunk = Chunk.objects.create(key=key, size=10, packed=40, k=1, n=len(holders))
            for index, (holder, digest) in enumerate(zip(holders, digests, strict=True)):
                Share.objects.create(
                    chunk=chunk.pk,
                    index=index,
                    holder=holder.pk if holder else None,
                    digest=digest,
                    size=40,
                    state="placed" if holder else "pending",
                )

        space.write(self.thread, action)
        return key

    def keys(self) -> set[str]:
        return set(Chunk.objects.using(self.alias).values_list("key", flat=True))

    def shares(self) -> int:
        return Share.objects.using(self.alias).count()


@pytest.mark.django_db(transaction=True)
def test_prune_drops_old_snapshots_and_frees_only_unused_chunks(node) -> None:
    m = Manifest()
    left = m.holder(state="left")
    c1, c2, c3 = m.chunk([None, left]), m.chunk([None, left]), m.chunk([None])
    old = m.snapshot(T0 - DAY, [c1, c2])
    new = m.snapshot(T0, [c2, c3])
    retention.retention_set(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)

    done = retention.prune(now_ms=T0 + 1000)

    assert done == {"snapshots": 1, "chunks": 1, "shares": 2, "waiting": 0}
    snaps = Snapshot.objects.using(m.alias)
    assert list(snaps.values_list("pk", flat=True)) == [new.pk]
    assert not FileEntry.objects.using(m.alias).filter(snapshot=old.pk).exists()
    assert FileEntry.objects.using(m.alias).filter(snapshot=new.pk).count() == 2
    assert m.keys() == {c2, c3}
    assert m.shares() == 3
    # Nothing left to do: a second prune changes nothing.
    assert retention.prune(now_ms=T0 + 2000) == {
        "snapshots": 0,
        "chunks": 0,
        "shares": 0,
        "waiting": 0,
    }


@pytest.mark.django_db(transaction=True)
def test_while_a_backup_runs_no_chunk_is_collected(node) -> None:
    m = Manifest()
    m.snapshot(T0 - DAY, [])
    running = m.snapshot(T0, [], state="running")
    fresh = m.chunk([None])  # written by the running backup, no file names it yet
    assert retention.prune(now_ms=T0 + 1000)["chunks"] == 0
    assert m.keys() == {fresh}
    # A device that stopped mid-way a week ago does not hold the party's room forever.
    later = running.started_ms + retention.RUNNING_GRACE_MS + 1
    assert retention.prune(now_ms=later)["chunks"] == 1
    assert m.keys() == set()
    assert Snapshot.objects.using(m.alias).filter(pk=running.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_files_of_a_snapshot_already_gone_are_deleted(node) -> None:
    m = Manifest()
    c1 = m.chunk([None])
    snap = m.snapshot(T0, [c1])
    space.write(m.thread, lambda: Snapshot.objects.filter(pk=snap.pk).delete())  # a cut prune
    done = retention.prune(now_ms=T0 + 1000)
    assert done["chunks"] == 1
    assert FileEntry.objects.using(m.alias).count() == 0
    assert m.keys() == set()


@pytest.mark.django_db(transaction=True)
def test_a_digest_a_live_share_has_on_that_holder_is_not_released(node) -> None:
    m = Manifest()
    bob = m.holder(state="left")  # nobody to tell either way: only the rows matter here
    same = _hex()
    gone = m.chunk([bob], [same])
    kept = m.chunk([bob], [same])  # the same content sealed again
    m.snapshot(T0, [kept])
    done = retention.prune(now_ms=T0 + 1000)
    assert done["chunks"] == 1
    assert m.keys() == {kept}
    assert list(Share.objects.using(m.alias).values_list("digest", flat=True)) == [same]
    assert gone != kept


@pytest.mark.django_db(transaction=True)
def test_freed_shares_are_released_on_their_holder_and_an_away_one_keeps_them_for_later(
    node,
) -> None:
    from apps.storage import client, held, hold

    m = Manifest()
    hold.holders_refresh()
    me = Holder.objects.using(m.alias).get(kind=Holder.Kind.DEVICE)
    away = m.holder()  # a friend's node that does not answer (no p2p host runs here)
    space.write(
        m.thread,
        lambda: Holder.objects.filter(pk=away.pk).update(peer_id="12D3KooWaway", addrs=[]),
    )
    datas = [os.urandom(500) for _ in range(2)]
    client.put(client.target_of(me), datas)
    digests = [keys.share_digest(d).hex() for d in datas]
    old = m.chunk([me, away], digests)
    m.snapshot(T0 - DAY, [old])
    m.snapshot(T0, [])
    retention.retention_set(keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)

    done = retention.prune(now_ms=T0 + 1000)

    assert done == {"snapshots": 1, "chunks": 1, "shares": 1, "waiting": 1}
    party = held.own_party()
    assert held.held_get(party, bytes.fromhex(digests[0])) is None  # released here
    assert held.held_get(party, bytes.fromhex(digests[1])) is not None  # not its to release
    left = list(Share.objects.using(m.alias).values_list("holder", flat=True))
    assert left == [away.pk]  # remembered: its chunk row is gone, the share row stays
    # The friend left since: nobody to tell, the row goes.
    space.write(m.thread, lambda: Holder.objects.filter(pk=away.pk).update(state="left"))
    assert retention.prune(now_ms=T0 + 2000)["shares"] == 1
    assert m.shares() == 0
