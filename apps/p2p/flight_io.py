"""The parts of a sync flight (``threads_io.flight``) read from a thread database: the ops a
peer lacks by its version vector, page by page in admission order (``ops_page``), and the ops
that show it a fork it does not know (``fork_news``).

``threads_io`` serves these under its own names, which a mirror node swaps for its own
(``threads_io.use``): the protocols call them there, not here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.core.thread.op import Op
from apps.core.thread.replica import ForkEvidence, Replica
from apps.p2p.thread_reads import Access, allowed, recycle, replica_locked

EVIDENCE_PER_SLOT = 2  # conflicting ops sent per slot of a fork: two already prove it
NO_FORK = 2**63  # past any seq: "no fork known" in comparisons


def ops_page(
    thread: bytes,
    after: dict[bytes, int],
    grant: Access,
    removal: Op | None,
    *,
    limit_bytes: int,
    limit_ops: int,
) -> tuple[list[bytes], dict[bytes, int]]:
    """The next ops a peer lacks whose version vector is ``after``, in admission (hence causal)
    order: at most ``limit_ops`` ops and about ``limit_bytes`` (at least one op). Returns them
    and ``after`` advanced past them, the cursor of the next page; an empty page is the end.

    Each device's missing ops come from the (device, seq) index, at most ``limit_ops`` of them,
    and the pages merge by log position: the cost follows what is missing, not the log's size.
    """
    if grant == "none":
        return [], after
    try:
        with replica_locked(thread) as (database, replica):
            heads = replica.version_vector()
        connection = database.raw()
        found: list[tuple[int, bytes, bytes, int]] = []
        for device, head in heads.items():
            have = after.get(device, 0)
            if head <= have:
                continue
            found.extend(
                (n, raw, device, seq)
                for n, raw, seq in connection.execute(
                    "SELECT n, raw, seq FROM sereus_ops WHERE place = 'log' AND device = ? "
                    "AND seq > ? ORDER BY seq LIMIT ?",
                    (device, have, limit_ops),
                )
            )
    finally:
        recycle()
    return page_pick(found, after, grant, removal, limit_bytes=limit_bytes, limit_ops=limit_ops)


def page_pick(
    found: list[tuple[int, bytes, bytes, int]],
    after: dict[bytes, int],
    grant: Access,
    removal: Op | None,
    *,
    limit_bytes: int,
    limit_ops: int,
) -> tuple[list[bytes], dict[bytes, int]]:
    """A page of ``ops_page`` from the missing ops found (log position, raw, device, seq), each
    device's in seq order: merged by log position, within the limits, and the cursor."""
    found.sort()
    out: list[bytes] = []
    cursor = dict(after)
    size = 0
    for _n, raw, device, seq in found:
        if len(out) >= limit_ops or (out and size + len(raw) > limit_bytes):
            break
        cursor[device] = seq
        # Past a removal nothing of any device goes (the past is closed under "earlier").
        if allowed(grant, removal, device, seq):
            out.append(raw)
            size += len(raw)
    return out, cursor


@dataclass(frozen=True)
class Flight:
    """What to send a peer whose version vector is known: the first page of ops it lacks (the
    cursor continues with ``ops_page``), the ops that show it forks it does not know (``news``,
    sent after the pages), and this node's vector: per device its last seq (``mine``) and the
    hash of the op there (``heads``), and the forks it knows (device -> first forked seq)."""

    page: list[bytes]
    cursor: dict[bytes, int]
    mine: dict[bytes, int]
    heads: dict[bytes, bytes] = field(default_factory=dict)
    forks: dict[bytes, int] = field(default_factory=dict)
    news: list[bytes] = field(default_factory=list)
    start: dict[bytes, int] = field(default_factory=dict)  # the vector the pages start from


def flight_after(their_vv: dict[bytes, int], sent: dict[bytes, int] | None) -> dict[bytes, int]:
    """Where a flight's pages start: the peer's vector, past what this session sent already."""
    after = dict(their_vv)
    for device, seq in (sent or {}).items():
        after[device] = max(after.get(device, 0), seq)
    return after


def capped(raws: list[bytes], limit_ops: int, limit_bytes: int) -> list[bytes]:
    """The first ops of ``raws`` within the limits of one page (at least one)."""
    size = 0
    for count, raw in enumerate(raws):
        size += len(raw)
        if count >= limit_ops or (count and size > limit_bytes):
            return raws[:count]
    return raws


def fork_news(
    replica: Replica,
    their_vv: dict[bytes, int],
    their_heads: dict[bytes, bytes],
    their_forks: dict[bytes, int],
    grant: Access,
    removal: Op | None,
) -> list[bytes]:
    """The ops that show a peer the forks it does not know, by its vector, in (device, seq)
    order: for a device whose head is at the same seq on both sides with different hashes,
    this node's op there (the peer's replica then holds two ops at one place: a fork); and for
    each fork this node knows that the peer does not list (or lists only at a later seq), the
    conflicting ops it holds. Nothing is read from the store unless something forked."""
    found: dict[bytes, Op] = {}
    for device, theirs in their_heads.items():
        seq = their_vv.get(device)
        if seq is None or replica.heads.get(device) != seq:
            continue
        ours = replica.head_hashes.get(device)
        if ours is None or ours == theirs or their_forks.get(device, NO_FORK) <= seq:
            continue  # the same op, or a fork the peer knows already
        op = replica.store.op((device, seq))
        if op is not None:
            found[op.hash] = op
    if replica.forks:
        for evidence in replica.fork_evidence():
            if their_forks.get(evidence.device, NO_FORK) > evidence.seq:
                found.update((op.hash, op) for op in _proof(evidence))
    ordered = sorted(found.values(), key=lambda op: (op.device, op.seq, op.hash))
    return [op.raw for op in ordered if allowed(grant, removal, op.device, op.seq)]


def _proof(evidence: ForkEvidence) -> Iterable[Op]:
    """Enough of a fork's evidence for any replica to see it: up to two ops at the forked seq
    (two different ops at one place) and up to two at the next (an op whose ``prev`` is not the
    op this replica holds before it)."""
    for seq in (evidence.seq, evidence.seq + 1):
        at = sorted((op for op in evidence.ops if op.seq == seq), key=lambda op: op.hash)
        yield from at[:EVIDENCE_PER_SLOT]
