"""Where each share of a chunk goes, and the outbox that keeps what could not be placed yet.

The rule (``place_chunk``): the n shares of a chunk go to n distinct holders when there are that
many, and no *party* keeps more than n - k of them where the holders allow it. All our own
devices count as one party (a fire or a thief can take them together), each friend's node as
its own. So losing every one of our devices, or any one friend, still leaves at least k shares
anywhere: the chunk survives and repair can regenerate the rest. Where both cannot hold (three
of our devices and two friends, k = 3 of n = 5), the party rule wins over distinct holders: a
friend may keep two shares rather than our devices three. With fewer parties than the rule needs
(only our own devices, or n = 1), the shares are spread as evenly as the holders allow.

The outbox (``<data>/storage/outbox/<digest hex>``, 0600, written atomically) keeps the bytes of
a share whose holder could not take it now (unreachable, full); ``place_pending`` (a step of the
storage worker) pushes them later and records where they went.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from apps.storage import engine, keys, space
from apps.storage.engine import Packed
from apps.storage.models import Chunk, Holder, Share

logger = logging.getLogger(__name__)

NEARLY_FULL = 0.9  # a holder this full is named on the job
PUT_WORKERS = 4  # holders pushed to at once
_OWN = "own"  # the party key of our own devices in the spreading rule


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the outbox ---------------------------------------------------------------------------------


def outbox_dir() -> Path:
    return Path(settings.DATA_DIR) / "storage" / "outbox"


def _outbox_path(digest: bytes) -> Path:
    return outbox_dir() / digest.hex()


def outbox_put(share: bytes, digest: bytes | None = None) -> None:
    """Keep ``share`` until a holder takes it; ``digest`` when the caller made it from it."""
    from apps.storage.held import write_atomic

    path = _outbox_path(keys.share_digest(share) if digest is None else digest)
    if not path.exists():
        write_atomic(path, share)


def outbox_get(digest: bytes) -> bytes | None:
    """The share kept here, or None when absent or damaged (a damaged file is of no use)."""
    try:
        data = _outbox_path(digest).read_bytes()
    except OSError:
        return None
    return data if keys.share_digest(data) == digest else None


def outbox_drop(digest: bytes) -> None:
    _outbox_path(digest).unlink(missing_ok=True)


# -- choosing holders ----------------------------------------------------------------------------


def party_of(holder: Holder) -> str:
    """The party a holder belongs to for the spreading rule."""
    if holder.kind == Holder.Kind.DEVICE:
        return _OWN
    return holder.party or f"peer:{holder.pk}"


def room(holder: Holder) -> int:
    return max(0, holder.quota - holder.used)


def holder_name(holder: Holder) -> str:
    if holder.label:
        return holder.label
    return "This device" if holder.kind == Holder.Kind.DEVICE else "A friend's node"


def nearly_full(holders: list[Holder]) -> list[str]:
    """Words for each holder at 90 % of its quota or more ("Bob's node is 92% full")."""
    words = []
    for holder in holders:
        if holder.quota > 0 and holder.used >= NEARLY_FULL * holder.quota:
            percent = min(100, holder.used * 100 // holder.quota)
            words.append(f"{holder_name(holder)} is {percent}% full.")
    return words


def choose(
    count: int,
    *,
    k: int,
    n: int,
    size: int,
    holders: list[Holder],
    taken: list[Holder] | None = None,
) -> list[Holder | None]:
    """A holder for each of ``count`` more shares (``size`` bytes each) of a k-of-n chunk, given
    the holders that already keep ``taken`` shares of it (place_pending). None where no holder
    has room."""
    taken = list(taken or [])
    allowed = max(1, n - k)  # shares one party may keep (at least one: n = k = 1)
    by_holder: Counter[str] = Counter(str(h.pk) for h in taken)
    by_party: Counter[str] = Counter(party_of(h) for h in taken)
    planned: dict[str, int] = defaultdict(int)  # bytes planned per holder in this call
    out: list[Holder | None] = []
    for _ in range(count):
        fits = [h for h in holders if room(h) - planned[str(h.pk)] >= size]
        if not fits:
            out.append(None)
            continue

        def rank(h: Holder) -> tuple:
            party = party_of(h)
            # The party rule first: it is what keeps the chunk when a whole party is gone
            # (a device is one of our party: its loss is covered too).
            return (
                by_party[party] >= allowed,  # a party still under n - k first
                by_holder[str(h.pk)],  # then a holder with no share of this chunk
                by_party[party],  # then the party with fewest
                -(room(h) - planned[str(h.pk)]),  # then the most room
            )

        best = min(fits, key=rank)  # min is stable: holders' own order breaks ties
        by_holder[str(best.pk)] += 1
        by_party[party_of(best)] += 1
        planned[str(best.pk)] += size
        out.append(best)
    return out


def place_chunk(packed: Packed, holders: list[Holder]) -> list[tuple[int, Holder | None]]:
    """Which holder gets which share of ``packed`` (see the module's rule); None: no holder has
    room, the share waits in the outbox."""
    size = len(packed.shares[0]) if packed.shares else 0
    chosen = choose(packed.n, k=packed.k, n=packed.n, size=size, holders=holders)
    return list(enumerate(chosen))


# -- pushing shares ------------------------------------------------------------------------------


@dataclass
class Pushed:
    """What one holder did with a batch: the digests it kept, and why not the rest (words)."""

    kept: set[bytes] = field(default_factory=set)
    problem: str | None = None


def push(batches: dict[Holder, list[tuple[bytes, bytes]]]) -> dict[Holder, Pushed]:
    """Put each holder's shares (digest, bytes), several holders at once. A share not kept
    belongs in the outbox; the holder's answer updates its ``used`` and ``quota`` (in
    memory)."""
    from apps.storage import client

    def one(holder: Holder, pairs: list[tuple[bytes, bytes]]) -> Pushed:
        digests, shares = [d for d, _ in pairs], [s for _, s in pairs]
        try:
            answer = client.put(client.target_of(holder), shares, digests)
        except client.HolderError as exc:
            return Pushed(set(exc.kept), exc.words)
        except space.StorageError as exc:
            return Pushed(set(), exc.words)
        except Exception:  # a holder's failure never stops a backup: the outbox keeps them
            logger.exception("putting shares on a holder failed")
            return Pushed(set(), f"{holder_name(holder)} could not take the shares.")
        holder.used = int(answer.get("used", holder.used))
        holder.quota = int(answer.get("quota", holder.quota))
        kept = set(answer.get("kept", []))
        missed = set(digests) - kept
        return Pushed(kept, f"{holder_name(holder)} did not keep every share." if missed else None)

    if not batches:
        return {}
    if len(batches) == 1:
        ((holder, shares),) = batches.items()
        return {holder: one(holder, shares)}
    with ThreadPoolExecutor(min(PUT_WORKERS, len(batches)), "storage-put") as pool:
        futures = {h: pool.submit(one, h, s) for h, s in batches.items()}
        return {h: f.result() for h, f in futures.items()}


@dataclass
class Placed:
    """A new chunk after placing: its Share rows' fields, its state, shares left pending."""

    packed: Packed
    shares: list[dict]
    state: str
    pending: int


def place_batch(
    packs: list[Packed], holders: list[Holder], *, audit: bytes
) -> tuple[list[Placed], list[str]]:
    """Place the shares of several new chunks, one put per holder for them all (a holder's
    answer costs more than a share's bytes). Shares not kept go to the outbox, PENDING. The
    holders' problems in words come back with the chunks."""
    plans = []
    batches: dict[Holder, list[tuple[bytes, bytes]]] = defaultdict(list)
    for packed in packs:
        chosen = place_chunk(packed, holders)
        for index, holder in chosen:
            if holder is not None:
                batches[holder].append((packed.digests[index], packed.shares[index]))
                holder.used += len(packed.shares[index])  # the next chunk's choice sees it
        plans.append((packed, chosen))
    pushed = push(dict(batches))
    problems = [r.problem for r in pushed.values() if r.problem is not None]
    at = now_ms()
    out = []
    for packed, chosen in plans:
        shares, placed = [], 0
        for index, holder in chosen:
            share, digest = packed.shares[index], packed.digests[index]
            kept = holder is not None and digest in pushed[holder].kept
            placed += kept
            if not kept:
                outbox_put(share, digest)
            shares.append(
                {
                    "index": index,
                    "holder": holder.pk if holder is not None else None,
                    "digest": digest.hex(),
                    "size": len(share),
                    "state": Share.State.PLACED if kept else Share.State.PENDING,
                    "placed_ms": at if kept else None,
                    # Made on the packing threads when the Packer had the audit key.
                    "answers": packed.answers[index]
                    if packed.answers
                    else engine.audit_answers(
                        share, digest, audit=audit, start=0, rounds=engine.AUDIT_ROUNDS
                    ),
                }
            )
        state = chunk_state(placed, packed.k, packed.n)
        out.append(Placed(packed, shares, state, len(chosen) - placed))
    return out, problems


def chunk_state(placed: int, k: int, n: int) -> str:
    if placed >= n:
        return Chunk.State.PLACED
    if placed >= k:
        return Chunk.State.PARTIAL
    return Chunk.State.PENDING


def holders_now(*, refresh: bool = False) -> list[Holder]:
    """The holders to place on now (``hold.holders_usable``), refreshed first if asked."""
    from apps.storage import hold

    if refresh:
        try:
            hold.holders_refresh()
        except Exception:  # the holders as last known still serve
            logger.exception("refreshing the holders failed")
    return hold.holders_usable()


def place_pending(*, limit: int = 256) -> int:
    """The worker's step: shares waiting in this node's outbox pushed to a holder now (their
    recorded holder when it can take them, else another by the spreading rule). Shares pending
    in another device's outbox are that device's to place. Returns how many were placed."""
    thread = space.storage_thread()
    if thread is None:
        return 0
    alias = space.using(thread)
    waiting = list(
        Share.objects.using(alias)
        .filter(state=Share.State.PENDING)
        .order_by("chunk", "index")[: limit * 4]
    )
    mine = [(s, data) for s in waiting if (data := outbox_get(bytes.fromhex(s.digest)))]
    mine = mine[:limit]
    if not mine:
        return 0
    holders = holders_now()
    if not holders:
        return 0
    by_pk = {str(h.pk): h for h in holders}
    all_holders = {str(h.pk): h for h in Holder.objects.using(alias).all()}
    chunk_ids = {s.chunk for s, _ in mine}
    chunks = {c.pk: c for c in Chunk.objects.using(alias).filter(pk__in=chunk_ids)}
    placed_of: dict = defaultdict(list)  # chunk pk -> holders keeping a share of it
    for other in Share.objects.using(alias).filter(chunk__in=chunk_ids, state=Share.State.PLACED):
        if other.holder and str(other.holder) in all_holders:
            placed_of[other.chunk].append(all_holders[str(other.holder)])
    batches: dict[Holder, list[tuple[bytes, bytes]]] = defaultdict(list)
    planned: dict[Holder, list[Share]] = defaultdict(list)
    for share, data in mine:
        chunk = chunks.get(share.chunk)
        if chunk is None:
            continue
        taken = placed_of[share.chunk]
        recorded = by_pk.get(str(share.holder)) if share.holder else None
        if recorded is not None and recorded not in taken and room(recorded) >= len(data):
            target: Holder | None = recorded
        else:
            target = choose(1, k=chunk.k, n=chunk.n, size=len(data), holders=holders, taken=taken)[
                0
            ]
        if target is None:
            continue
        target.used += len(data)  # planned: the next choice sees it
        taken.append(target)
        batches[target].append((bytes.fromhex(share.digest), data))  # outbox_get checked it
        planned[target].append(share)
    results = push(dict(batches))
    done: list[tuple[Share, Holder]] = []
    for holder, pushed in results.items():
        done.extend(
            (share, holder)
            for share in planned[holder]
            if bytes.fromhex(share.digest) in pushed.kept
        )
    if not done:
        return 0
    at = now_ms()

    def record() -> None:
        for share, holder in done:
            Share.objects.filter(pk=share.pk).update(
                holder=holder.pk, state=Share.State.PLACED, placed_ms=at
            )
        for pk in {share.chunk for share, _ in done}:
            chunk = chunks[pk]
            count = Share.objects.filter(chunk=pk, state=Share.State.PLACED).count()
            state = chunk_state(count, chunk.k, chunk.n)
            if state != chunk.state:
                Chunk.objects.filter(pk=pk).update(state=state)

    space.write(thread, record)
    for share, _ in done:
        outbox_drop(bytes.fromhex(share.digest))
    return len(done)
