"""Where shares go: no party keeps more than n - k shares of a chunk whenever the holders allow
it (so losing all our devices or any one friend loses no chunk), holders without room are
skipped, a nearly full holder is named; shares a holder could not take wait in the outbox and
the worker's step places them later."""

from __future__ import annotations

import itertools
import os

import pytest

from apps.storage import engine, jobs, placement, space
from apps.storage.models import Chunk, Holder, Job, Share
from tests.storage.test_backup import device_holder, rows, run_backup

DB = pytest.mark.django_db(transaction=True)


def holder(kind: str, label: str, *, party: str = "", quota: int = 1 << 30, used: int = 0):
    return Holder(kind=kind, label=label, party=party, quota=quota, used=used, device="ab" * 32)


def devices(count: int) -> list[Holder]:
    return [holder(Holder.Kind.DEVICE, f"Device {i}") for i in range(count)]


def friends(count: int) -> list[Holder]:
    return [holder(Holder.Kind.PEER, f"Friend {i}", party=f"{i:02x}" * 32) for i in range(count)]


def by_party(chosen: list[Holder | None]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for h in chosen:
        assert h is not None
        counts[placement.party_of(h)] = counts.get(placement.party_of(h), 0) + 1
    return counts


@pytest.mark.parametrize(("own", "peers"), list(itertools.product(range(4), range(6))))
def test_no_party_keeps_enough_to_lose_a_chunk_when_the_holders_allow(own, peers) -> None:
    holders = devices(own) + friends(peers)
    if not holders:
        return
    k, n = engine.redundancy(len(holders))
    chosen = placement.choose(n, k=k, n=n, size=1000, holders=holders)
    counts = by_party(chosen)
    parties = (1 if own else 0) + peers
    if parties * (n - k) >= n:
        # Any one party gone (all our devices, or one friend) leaves at least k shares.
        assert max(counts.values()) <= n - k, counts
        assert all(n - c >= k for c in counts.values())
    # Distinct holders whenever the party rule leaves room for it.
    if own <= n - k or not own:
        assert len({id(h) for h in chosen}) == n


def test_two_devices_and_two_friends_get_one_share_each() -> None:
    holders = devices(2) + friends(2)
    chosen = placement.choose(4, k=2, n=4, size=10, holders=holders)
    assert sorted(h.label for h in chosen) == ["Device 0", "Device 1", "Friend 0", "Friend 1"]


def test_three_devices_and_two_friends_our_party_keeps_two() -> None:
    holders = devices(3) + friends(2)
    k, n = engine.redundancy(5)
    assert (k, n) == (3, 5)
    counts = by_party(placement.choose(n, k=k, n=n, size=10, holders=holders))
    assert counts["own"] == 2
    assert max(counts.values()) == 2


def test_a_holder_without_room_is_skipped_and_none_means_the_outbox() -> None:
    full = holder(Holder.Kind.PEER, "Bob", party="bb" * 32, quota=1000, used=990)
    roomy = holder(Holder.Kind.DEVICE, "Laptop")
    chosen = placement.choose(2, k=1, n=2, size=100, holders=[full, roomy])
    assert [h.label for h in chosen] == ["Laptop", "Laptop"]
    assert placement.choose(1, k=1, n=1, size=100, holders=[full]) == [None]
    # Room is counted as shares are planned: a holder is not promised more than it has.
    small = holder(Holder.Kind.DEVICE, "Small", quota=250)
    assert placement.choose(3, k=1, n=3, size=100, holders=[small]) == [small, small, None]


def test_a_nearly_full_holder_is_named() -> None:
    bob = holder(Holder.Kind.PEER, "Bob's node", party="bb" * 32, quota=1000, used=920)
    fine = holder(Holder.Kind.DEVICE, "Laptop", quota=1000, used=100)
    assert placement.nearly_full([bob, fine]) == ["Bob's node is 92% full."]


@DB
def test_the_outbox_keeps_a_share_and_drops_a_damaged_one(node) -> None:
    share = os.urandom(5000)
    digest = placement.keys.share_digest(share)
    assert placement.outbox_get(digest) is None
    placement.outbox_put(share)
    path = placement.outbox_dir() / digest.hex()
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert placement.outbox_get(digest) == share
    path.write_bytes(b"x" + share[1:])
    assert placement.outbox_get(digest) is None
    placement.outbox_drop(digest)
    assert not path.exists()


@DB
def test_shares_a_holder_cannot_take_wait_and_are_placed_later(node, tmp_path) -> None:
    device_holder()
    thread = space.storage_thread()
    # A friend's node that does not answer (no node runs here to reach it).
    bob = space.write(
        thread,
        lambda: Holder.objects.create(
            kind=Holder.Kind.PEER,
            label="Bob",
            party="bb" * 32,
            device="cd" * 32,
            peer_id="12D3KooWBobIsNotHere",
            addrs=["/ip4/127.0.0.1/tcp/9"],
            quota=1 << 30,
        ),
    )
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(200_000))
    job = run_backup(source)
    assert job.state == Job.State.DONE, job.problem
    assert "Bob's node did not answer" in job.problem
    assert "1 share waits on this node until a holder can take it." in job.problem
    (chunk,) = rows(Chunk)
    assert (chunk.k, chunk.n, chunk.state) == (1, 2, Chunk.State.PARTIAL)
    pending = rows(Share, state=Share.State.PENDING)
    assert [str(s.holder) for s in pending] == [str(bob.pk)]
    assert placement.outbox_get(bytes.fromhex(pending[0].digest)) is not None
    # Bob still away: nothing placed, nothing lost.
    assert placement.place_pending() == 0
    # Bob leaves: the share goes to a holder that can take it (this device, again).
    space.write(thread, lambda: Holder.objects.filter(pk=bob.pk).update(state=Holder.State.LEFT))
    assert placement.place_pending() == 1
    assert rows(Share, state=Share.State.PENDING) == []
    assert rows(Chunk)[0].state == Chunk.State.PLACED
    assert list(placement.outbox_dir().iterdir()) == []
    assert jobs.job_view(job)["state"] == Job.State.DONE
