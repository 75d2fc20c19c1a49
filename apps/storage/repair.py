"""Repair: shares lost, damaged or on a holder gone for good are made again, byte for byte, and
placed on a holder with no other share of their chunk (ADR 25).

A share is made again from any ``k`` good shares of its chunk (``engine.reshare``) without
opening the seal: the same index gives the same bytes, so the same digest and the same audit
answers; only where it lives (``Share.holder``) and its state change. A holder that came back
empty gets its shares again; one that answered wrongly (or sent damaged bytes this round) does
not. When a placed share's audit answers are used up, its bytes are fetched from its holder
and the next block of answers made (the share never travels anywhere else for that).

A chunk with fewer than ``k`` shares left anywhere (counting those still waiting in some
device's outbox) is LOST: no repair can bring it back, and ``lost_files`` names the files it
belonged to. Each step does a bounded amount of work (``CHUNKS_PER_STEP`` chunks,
``REFRESH_PER_STEP`` refreshes) and writes what it did in one op.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import Q

from apps.storage import engine, keys, space
from apps.storage.audit import block_start, clock_ms, holder_gone
from apps.storage.models import Chunk, Holder, Share

logger = logging.getLogger(__name__)

CHUNKS_PER_STEP = 64
REFRESH_PER_STEP = 64
BAD = (Share.State.MISSING, Share.State.CORRUPT)


@dataclass
class Plan:
    """The updates of one step (written in one op), and what they amount to."""

    shares: dict[Any, dict[str, Any]] = field(default_factory=lambda: defaultdict(dict))
    chunks: dict[Any, str] = field(default_factory=dict)
    repaired: int = 0
    lost: int = 0
    refreshed: int = 0

    def share(self, share: Share, **fields: Any) -> None:
        self.shares[share.pk].update(fields)
        for name, value in fields.items():
            setattr(share, name, value)

    def write(self, thread: Any) -> None:
        if not self.shares and not self.chunks:
            return

        def action() -> None:
            for pk, fields in self.shares.items():
                Share.objects.filter(pk=pk).update(**fields)
            for pk, state in self.chunks.items():
                Chunk.objects.filter(pk=pk).update(state=state)

        space.write(thread, action)


class Step:
    """One repair round over the storage thread."""

    def __init__(self, thread: Any, now: int) -> None:
        self.thread = thread
        self.alias = space.using(thread)
        self.now = now
        self.holders: dict[Any, Holder] = {h.pk: h for h in Holder.objects.using(self.alias)}
        self.gone = {pk for pk, h in self.holders.items() if holder_gone(h, now=now)}
        self.plan = Plan()
        self.suspect: set[Any] = set()  # holders that sent damaged bytes in this step
        self._usable: list[Holder] | None = None
        self._audit: bytes | None = None

    # -- what is there ------------------------------------------------------------------------

    def usable(self) -> list[Holder]:
        """Holders to place on now (their ``used`` grows as this step plans)."""
        if self._usable is None:
            from apps.storage import placement

            self._usable = [h for h in placement.holders_now() if h.pk not in self.gone]
        return self._usable

    def audit_key(self) -> bytes:
        if self._audit is None:
            self._audit = keys.audit_key(space.master_secret())
        return self._audit

    def is_bad(self, share: Share) -> bool:
        if share.state in BAD:
            return True
        return share.state == Share.State.PLACED and (
            share.holder is None or share.holder in self.gone or share.holder not in self.holders
        )

    def chunks_to_repair(self) -> list[Chunk]:
        gone = list(self.gone)
        known = list(self.holders)
        bad = Share.objects.using(self.alias).filter(
            Q(state__in=BAD)
            | Q(state=Share.State.PLACED, holder__in=gone)
            | (Q(state=Share.State.PLACED) & ~Q(holder__in=known))
        )
        ids = bad.values("chunk")
        rows = Chunk.objects.using(self.alias).filter(pk__in=ids).exclude(state=Chunk.State.LOST)
        return list(rows.order_by("id")[:CHUNKS_PER_STEP])

    # -- fetching -----------------------------------------------------------------------------

    def fetch(self, good: list[Share], k: int) -> dict[int, bytes]:
        """``k`` shares of the chunk from their holders (this node first, then the others in
        a fixed order); a share that came back absent or damaged is marked so."""
        from apps.storage import client

        by_holder: dict[Any, list[Share]] = defaultdict(list)
        for share in good:
            by_holder[share.holder].append(share)

        def order(pk: Any) -> tuple:
            return (not client.is_self(client.target_of(self.holders[pk])), str(pk))

        got: dict[int, bytes] = {}
        for pk in sorted(by_holder, key=order):
            if len(got) >= k:
                break
            shares = by_holder[pk]
            try:
                answer = client.get(
                    client.target_of(self.holders[pk]), [bytes.fromhex(s.digest) for s in shares]
                )
            except space.StorageError:
                continue  # away or busy now: not the share's fault
            for share in shares:
                data = answer.get(bytes.fromhex(share.digest))
                if isinstance(data, bytes):
                    got[share.index] = data
                elif data == "corrupt":
                    self.plan.share(share, state=Share.State.CORRUPT)
                    self.suspect.add(pk)
                else:
                    self.plan.share(share, state=Share.State.MISSING)
        return dict(sorted(got.items())[:k])

    # -- placing ------------------------------------------------------------------------------

    def target(self, share: Share, chunk: Chunk, size: int, taken: list[Holder]) -> Holder | None:
        from apps.storage import placement

        usable = [h for h in self.usable() if h.pk not in self.suspect]
        before = self.holders.get(share.holder)
        # Came back empty: the same holder takes its share again (if it has the room).
        if (
            share.state == Share.State.MISSING
            and before is not None
            and before.pk not in {h.pk for h in taken}
        ):
            same = next((h for h in usable if h.pk == before.pk), None)
            if same is not None and placement.room(same) >= size:
                return same
        if share.state == Share.State.CORRUPT and before is not None:
            usable = [h for h in usable if h.pk != before.pk]  # it answered wrongly: not again
        return placement.choose(1, k=chunk.k, n=chunk.n, size=size, holders=usable, taken=taken)[0]

    def place(self, share: Share, data: bytes, target: Holder | None) -> bool:
        """Put the remade share on ``target`` (or in this node's outbox): whether placed."""
        from apps.storage import client, placement

        digest = bytes.fromhex(share.digest)  # the caller checked ``data`` against it
        if target is not None:
            try:
                answer = client.put(client.target_of(target), [data], [digest])
            except space.StorageError as exc:
                logger.info("repair: %s did not take a share: %s", target.label, exc.words)
            else:
                if digest in set(answer.get("kept", [])):
                    target.used = int(answer.get("used", target.used + len(data)))
                    self.plan.share(
                        share,
                        holder=target.pk,
                        state=Share.State.PLACED,
                        placed_ms=self.now,
                        verified_ms=None,
                    )
                    return True
        # No holder took it: this node's outbox keeps it until one can (``place_pending``).
        placement.outbox_put(data, digest)
        self.plan.share(share, holder=None, state=Share.State.PENDING, placed_ms=None)
        return False

    def refresh_answers(self, share: Share, data: bytes) -> None:
        if bytes(share.answers or b""):
            return
        start = block_start(share.audits)
        answers = engine.audit_answers(
            data,
            bytes.fromhex(share.digest),
            audit=self.audit_key(),
            start=start,
            rounds=engine.AUDIT_ROUNDS,
        )
        self.plan.share(share, answers=answers)

    # -- one chunk ----------------------------------------------------------------------------

    def repair_chunk(self, chunk: Chunk) -> None:
        from apps.storage import placement

        shares = list(Share.objects.using(self.alias).filter(chunk=chunk.pk).order_by("index"))
        good = [s for s in shares if s.state == Share.State.PLACED and not self.is_bad(s)]
        pending = [s for s in shares if s.state == Share.State.PENDING]
        if len(good) + len(pending) < chunk.k:
            self.plan.chunks[chunk.pk] = Chunk.State.LOST
            self.plan.lost += 1
            logger.warning("a chunk has fewer than %d shares left: lost", chunk.k)
            return
        if len(good) < chunk.k:
            return  # shares waiting in some device's outbox come first
        got = self.fetch(good, chunk.k)
        if len(got) < chunk.k:
            return  # holders away now: a later step
        # Shares the fetch found absent or damaged are bad now too (their state says so).
        taken = [self.holders[s.holder] for s in good if not self.is_bad(s)]
        for share in [s for s in shares if self.is_bad(s)]:
            try:
                data = engine.reshare(
                    got, k=chunk.k, n=chunk.n, packed=chunk.packed, index=share.index
                )
            except engine.EngineError:
                logger.exception("repair: a share could not be made again")
                continue
            if keys.share_digest(data) != bytes.fromhex(share.digest):
                # The k shares fetched matched their digests: this is not the share recorded.
                logger.error("repair: a remade share differs from the one recorded; left as is")
                continue
            target = self.target(share, chunk, len(data), taken)
            if self.place(share, data, target):
                taken.append(target)
                self.plan.repaired += 1
            self.refresh_answers(share, data)
        placed = sum(1 for s in shares if s.state == Share.State.PLACED and not self.is_bad(s))
        state = placement.chunk_state(placed, chunk.k, chunk.n)
        if state != chunk.state:
            self.plan.chunks[chunk.pk] = state

    # -- answers used up ----------------------------------------------------------------------

    def refresh_used_up(self) -> None:
        """Placed shares whose audit answers are used up: fetched from their holder (checked
        against the digest), and the next block of answers made from them."""
        from apps.storage import client

        chunks = Chunk.objects.using(self.alias).values("pk")
        rows = (
            Share.objects.using(self.alias)
            .filter(state=Share.State.PLACED, answers=b"", chunk__in=chunks)
            .exclude(holder__in=list(self.gone))
            .order_by("verified_ms", "id")[:REFRESH_PER_STEP]
        )
        by_holder: dict[Any, list[Share]] = defaultdict(list)
        for share in rows:
            if share.pk not in self.plan.shares and share.holder in self.holders:
                by_holder[share.holder].append(share)
        for pk, shares in by_holder.items():
            try:
                answer = client.get(
                    client.target_of(self.holders[pk]), [bytes.fromhex(s.digest) for s in shares]
                )
            except space.StorageError:
                continue
            for share in shares:
                data = answer.get(bytes.fromhex(share.digest))
                if isinstance(data, bytes):
                    self.refresh_answers(share, data)
                    self.plan.refreshed += 1
                elif data == "corrupt":
                    self.plan.share(share, state=Share.State.CORRUPT)
                else:
                    self.plan.share(share, state=Share.State.MISSING)


def repair_step(*, now_ms: int | None = None) -> dict[str, int]:
    """One bounded round of repair: {"repaired", "lost", "refreshed"}."""
    thread = space.storage_thread()
    if thread is None:
        return {"repaired": 0, "lost": 0, "refreshed": 0}
    step = Step(thread, now_ms if now_ms is not None else clock_ms())
    for chunk in step.chunks_to_repair():
        try:
            step.repair_chunk(chunk)
        except space.StorageError as exc:
            logger.info("repair of a chunk waits: %s", exc.words)
    step.refresh_used_up()
    step.plan.write(thread)
    plan = step.plan
    return {"repaired": plan.repaired, "lost": plan.lost, "refreshed": plan.refreshed}


def repairer() -> bool:
    """Whether this device is the one of the party that repairs (the active device holder
    with the lowest key): two devices remaking the same share at once would each place a copy,
    and one would be left on a holder, unrecorded, taking its room for good. Every device checks
    the holders (``audit``), so a repairer that went away is marked so and the next takes over."""
    thread = space.storage_thread()
    if thread is None:
        return False
    devices = sorted(
        Holder.objects.using(space.using(thread))
        .filter(kind=Holder.Kind.DEVICE, state=Holder.State.ACTIVE)
        .exclude(device="")
        .values_list("device", flat=True)
    )
    return not devices or devices[0] == space.device_key().hex()


def repair_round() -> dict[str, int]:
    """The worker's step: ``repair_step`` on the party's repairing device only."""
    if not repairer():
        return {"repaired": 0, "lost": 0, "refreshed": 0}
    return repair_step()


def lost_files(*, limit: int = 100) -> list[dict[str, Any]]:
    """Files that name a LOST chunk: [{"snapshot", "path"}] (at most ``limit``), for the pages
    to say what can no longer be restored whole."""
    thread = space.storage_thread()
    if thread is None:
        return []
    sql = (
        "SELECT DISTINCT f.snapshot, f.path FROM storage_file f, json_each(f.chunks) j"
        " WHERE j.value IN (SELECT key FROM storage_chunk WHERE state = %s)"
        " ORDER BY f.snapshot, f.path LIMIT %s"
    )
    with connections[space.using(thread)].cursor() as cursor:
        cursor.execute(sql, [Chunk.State.LOST.value, limit])
        return [{"snapshot": snapshot, "path": path} for snapshot, path in cursor.fetchall()]
