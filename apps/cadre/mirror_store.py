"""A mirror's store: the ops of its parties' threads as they came, never opened.

A mirror holds no key, so it checks what can be checked without one (DESIGN §4 steps 1 and 2):
the shape, the author's signature and the chain (``seq`` is the device's last + 1 and ``prev``
is the hash of that op). An op whose past is not here yet (an earlier op of its device, or an op
its ``deps`` name) waits in memory, bounded, and is taken when its past comes; so the log order
(``MirrorOp.id``) is a causal order and a page of it can be served as it is. A second op at a
place that is taken is a fork: the first is kept, the other refused (and logged, by ids only).

Ops come from three kinds of source. The party's own devices (a party proof, or the party's
device list: the control thread's roster) are trusted with any op that verifies: they hold the
log. Other member devices (Bob's node, in a sync session) may pass on only ops of devices the
mirror knows in that thread (the roster, or devices it holds ops of): a stranger's key signing
"ops" would otherwise be stored and served, and every member would count them as junk against
the mirror. Nothing but raw ops and ids is stored, and nothing of an op's body is ever logged.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, OuterRef, Subquery
from django.utils import timezone

from apps.cadre.models import MirrorOp, MirrorThread
from apps.core.thread import crypto
from apps.core.thread.op import Op, OpShapeError, op_decode, op_verify
from apps.core.thread.replica import Verified

logger = logging.getLogger(__name__)

MAX_HELD_OPS = 4096  # ops waiting for their past, all threads together
MAX_HELD_BYTES = 32 << 20
FETCH_CHUNK = 256  # rows read at a time when a page is bounded by bytes

Head = tuple[int, bytes]  # a device's last seq here and the hash of that op


@dataclass
class Counts:
    accepted: int = 0  # stored now (held ones whose past came included)
    duplicate: int = 0  # here already
    refused: int = 0  # a fork: another op is here at that place (or after the op it chains to)
    held: int = 0  # waiting for their past
    dropped: int = 0  # not taken now: of a device not known here, or pushed out of the wait
    malformed: int = 0  # not an op, or its signature does not verify
    foreign: int = 0  # of another thread, or of a thread this mirror does not keep

    @property
    def total(self) -> int:
        return (
            self.accepted
            + self.duplicate
            + self.refused
            + self.held
            + self.dropped
            + self.malformed
            + self.foreign
        )


_lock = threading.RLock()
# Per thread (hex): each device's head, read from the database once, then kept up to date here.
_heads: dict[str, dict[bytes, Head]] = {}
# Ops waiting for their past: (thread hex, op hash) -> op, oldest first.
_held: OrderedDict[tuple[str, bytes], Op] = OrderedDict()
_held_bytes = 0
# Per thread (hex): the forks seen, device -> the first seq known forked. Said in the mirror's
# vector (``forks``), so a peer does not send its evidence again in every session.
_forks: dict[str, dict[bytes, int]] = {}


def forget() -> None:
    """Drop what is kept in memory (tests: a new database under this process)."""
    global _held_bytes
    with _lock:
        _forks.clear()
        _heads.clear()
        _held.clear()
        _held_bytes = 0


# -- reading --------------------------------------------------------------------------------------


def _load_heads(thread_hex: str) -> dict[bytes, Head]:
    found = _heads.get(thread_hex)
    if found is not None:
        return found
    last = MirrorOp.objects.filter(thread_id=thread_hex, device=OuterRef("device")).order_by("-seq")
    rows = (
        MirrorOp.objects.filter(thread_id=thread_hex)
        .filter(seq=Subquery(last.values("seq")[:1]))
        .values_list("device", "seq", "hash")
    )
    found = {bytes(device): (seq, bytes(digest)) for device, seq, digest in rows}
    _heads[thread_hex] = found
    return found


def heads(thread: bytes) -> dict[bytes, Head]:
    with _lock:
        return dict(_load_heads(thread.hex()))


def forks(thread: bytes) -> dict[bytes, int]:
    """The forks seen in ``thread`` since this process started: device -> first forked seq."""
    with _lock:
        return dict(_forks.get(thread.hex(), {}))


def version_vector(thread: bytes) -> dict[bytes, int]:
    return {device: seq for device, (seq, _hash) in heads(thread).items()}


def op_count(thread: bytes) -> int:
    return MirrorOp.objects.filter(thread_id=thread.hex()).count()


def ops_after(
    thread: bytes, after: int, *, limit_ops: int, limit_bytes: int
) -> tuple[list[bytes], int, bool]:
    """The ops after log position ``after`` (at most ``limit_ops`` and about ``limit_bytes``,
    at least one), the position of the last one and whether the log ends there."""
    rows = (
        MirrorOp.objects.filter(thread_id=thread.hex(), id__gt=after)
        .order_by("id")
        .values_list("id", "raw")
    )
    out: list[bytes] = []
    size, position = 0, after
    for start in range(0, limit_ops + 1, FETCH_CHUNK):
        chunk = list(rows[start : start + FETCH_CHUNK])
        for n, raw in chunk:
            raw = bytes(raw)
            if len(out) >= limit_ops or (out and size + len(raw) > limit_bytes):
                return out, position, False
            out.append(raw)
            size += len(raw)
            position = n
        if len(chunk) < FETCH_CHUNK:
            return out, position, True
    return out, position, False


def ops_missing(
    thread: bytes, after: dict[bytes, int], *, limit_ops: int, limit_bytes: int
) -> tuple[list[bytes], dict[bytes, int]]:
    """The next ops a peer whose version vector is ``after`` lacks, in log (causal) order, at
    most ``limit_ops`` and about ``limit_bytes`` (at least one), and ``after`` moved past them.
    Each device's missing ops come from the (thread, device, seq) index: the cost follows what
    is missing, not the log's size (as ``threads_io.ops_page``)."""
    found: list[tuple[int, bytes, bytes, int]] = []
    for device, head in version_vector(thread).items():
        have = after.get(device, 0)
        if head <= have:
            continue
        rows = MirrorOp.objects.filter(thread_id=thread.hex(), device=device, seq__gt=have)
        found.extend(
            (n, bytes(raw), device, seq)
            for n, raw, seq in rows.order_by("seq").values_list("id", "raw", "seq")[:limit_ops]
        )
    from apps.p2p.threads_io import page_pick

    return page_pick(found, after, "full", None, limit_bytes=limit_bytes, limit_ops=limit_ops)


def status() -> list[dict]:
    """Each thread this mirror keeps: its party, how many ops, when the last came, how many
    devices may fetch it (for the mirror's status page)."""
    counted = {
        row["thread_id"]: row
        for row in MirrorOp.objects.values("thread_id").annotate(
            ops=Count("id"), last=Max("received_at")
        )
    }
    out = []
    for row in MirrorThread.objects.order_by("-control", "party_id", "thread_id"):
        seen = counted.get(row.thread_id, {})
        last: datetime | None = seen.get("last")
        out.append(
            {
                "thread": row.thread_id,
                "party": row.party_id,
                "control": row.control,
                "ops": seen.get("ops", 0),
                "last_received": last,
                "roster": len(row.roster or []),
            }
        )
    return out


# -- taking ops in --------------------------------------------------------------------------------


def _checked(raws: Iterable[bytes] | Verified, counts: Counts) -> list[Op]:
    # A sync session's large batches come checked already (``sync.receive_ops``); others are
    # checked here, in this thread (a helper process would decode each op twice, for a gain
    # only beside another busy thread).
    items = raws.items if isinstance(raws, Verified) else raws
    ops: list[Op] = []
    for item in items:
        if isinstance(item, Op):
            ops.append(item)
            continue
        if not isinstance(item, bytes | bytearray | memoryview):
            counts.malformed += 1  # an IngestResult of ``verified``: it did not verify
            continue
        try:
            op = op_decode(bytes(item))
            op_verify(op)
        except (OpShapeError, crypto.CryptoError):
            counts.malformed += 1
            continue
        ops.append(op)
    return ops


def _place(op: Op, found: dict[bytes, Head]) -> str:
    """Where ``op`` stands against the heads: "next" (its past is here: take it), "wait" (an
    earlier op of its device, or one it depends on, is not here yet), "old" (at or below its
    device's head: here already, or a fork) or "broken" (right after the head, chained to
    another op: a fork of an earlier place)."""
    seq, digest = found.get(op.device, (0, None))
    if op.seq <= seq:
        return "old"
    if op.seq > seq + 1:
        return "wait"
    if op.prev != digest:
        return "broken"
    if any(found.get(device, (0, b""))[0] < dep for device, dep in op.deps):
        return "wait"
    return "next"


def _hold(thread_hex: str, op: Op) -> bool:
    """Keep ``op`` until its past comes; the oldest waiting op makes room. False if it was
    waiting already."""
    global _held_bytes
    key = (thread_hex, op.hash)
    if key in _held:
        return False
    _held[key] = op
    _held_bytes += len(op.raw)
    while len(_held) > MAX_HELD_OPS or _held_bytes > MAX_HELD_BYTES:
        _key, old = _held.popitem(last=False)
        _held_bytes -= len(old.raw)
    return True


def _unhold(thread_hex: str) -> list[Op]:
    global _held_bytes
    keys = [key for key in _held if key[0] == thread_hex]
    ops = [_held.pop(key) for key in keys]
    _held_bytes -= sum(len(op.raw) for op in ops)
    return ops


def _known_devices(row: MirrorThread, found: dict[bytes, Head]) -> set[bytes]:
    known = set(found)
    for entry in row.roster or []:
        try:
            known.add(bytes.fromhex(entry["device"]))
        except (KeyError, TypeError, ValueError):
            continue
    return known


def ingest(
    thread: bytes, raws: Iterable[bytes] | Verified, *, trusted: bool = True, notify: bool = True
) -> Counts:
    """Check and keep ``raws`` for ``thread``. ``trusted``: they come from a device of the
    party (any op that verifies is taken); otherwise only ops of devices known in the thread.
    ``notify``: tell the p2p node, which passes new ops on to the thread's other devices."""
    counts = Counts()
    ops = _checked(raws, counts)
    thread_hex = thread.hex()
    row = MirrorThread.objects.filter(thread_id=thread_hex).first()
    if row is None:
        counts.foreign += len(ops)
        return counts
    with _lock:
        found = _load_heads(thread_hex)
        known = None if trusted else _known_devices(row, found)
        fresh: list[Op] = []
        for op in ops:
            if op.thread != thread:
                counts.foreign += 1
            elif known is not None and op.device not in known:
                counts.dropped += 1
            else:
                fresh.append(op)
        try:
            taken = _take(thread_hex, fresh + _unhold(thread_hex), found, counts)
        except Exception:
            _heads.pop(thread_hex, None)  # read again from what was stored
            raise
        new_hashes = {op.hash for op in fresh}
        counts.held = sum(1 for key in _held if key[0] == thread_hex and key[1] in new_hashes)
        counts.accepted = taken
    if taken and notify:
        _notify(thread)
    return counts


def _take(thread_hex: str, ops: list[Op], found: dict[bytes, Head], counts: Counts) -> int:
    """Store each op whose past is here, in passes until none moves; hold the rest."""
    pending: dict[bytes, Op] = {}
    for op in ops:
        pending.setdefault(op.hash, op)
    old: list[Op] = []
    batch: list[Op] = []
    progress = True
    while progress and pending:
        progress = False
        for digest, op in list(pending.items()):
            place = _place(op, found)
            if place == "wait":
                continue
            del pending[digest]
            if place == "next":
                batch.append(op)
                found[op.device] = (op.seq, op.hash)
                progress = True
            elif place == "old":
                old.append(op)
            else:
                counts.refused += 1
                # Its previous op is not the one held here: the branches parted before it.
                _fork_seen(thread_hex, op, op.seq - 1)
    for op in pending.values():
        _hold(thread_hex, op)
    _classify_old(old, counts)
    return _store(thread_hex, batch, counts)


def _classify_old(ops: list[Op], counts: Counts) -> None:
    if not ops:
        return
    here = {
        bytes(digest)
        for digest in MirrorOp.objects.filter(hash__in=[op.hash for op in ops]).values_list(
            "hash", flat=True
        )
    }
    for op in ops:
        if op.hash in here:
            counts.duplicate += 1
        else:
            counts.refused += 1
            _fork_seen(op.thread.hex(), op, op.seq)


def _fork_seen(thread_hex: str, op: Op, seq: int) -> None:
    """Remember a fork of ``op``'s device at ``seq`` (or earlier); logged when first seen."""
    known = _forks.setdefault(thread_hex, {})
    if known.get(op.device, seq + 1) <= seq:
        return
    known[op.device] = seq
    logger.warning(
        "mirror: device %s forked at seq %d in thread %s; the first op there is kept",
        op.device.hex()[:12],
        seq,
        thread_hex[:12],
    )


def _row(thread_hex: str, op: Op) -> MirrorOp:
    return MirrorOp(thread_id=thread_hex, device=op.device, seq=op.seq, hash=op.hash, raw=op.raw)


def _insert_sql() -> str:
    meta = MirrorOp._meta
    columns = [meta.get_field(name).column for name in _COLUMNS]
    quote = connection.ops.quote_name
    return (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(map(quote, columns))}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )


_COLUMNS = ("thread_id", "device", "seq", "hash", "raw", "received_at")


def _store(thread_hex: str, batch: list[Op], counts: Counts) -> int:
    if not batch:
        return 0
    # One statement many times, not the ORM's: storing is most of what a mirror does.
    at = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = [(thread_hex, op.device, op.seq, op.hash, op.raw, at) for op in batch]
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(_insert_sql(), rows)
        return len(batch)
    except IntegrityError:
        pass
    # Another process wrote some of them meanwhile (a second mirror process on one database):
    # one at a time, and the heads read again.
    _heads.pop(thread_hex, None)
    stored = 0
    for op in batch:
        try:
            with transaction.atomic():
                _row(thread_hex, op).save()
            stored += 1
        except IntegrityError:
            counts.duplicate += 1
    return stored


def _notify(thread: bytes) -> None:
    from apps.p2p import client

    try:
        client.notify(thread)
    except Exception:  # a store never fails because the p2p node could not be told
        logger.warning("could not announce new ops of %s", thread.hex()[:12], exc_info=True)


def thread_changed(thread: bytes) -> None:
    """A thread's row changed (new here, another roster): the p2p node reads it again and syncs
    it with the devices of its roster."""
    _notify(thread)
