"""A poll's result as this node computes it from the ballots its replica counted: the tally
(``tally.py``), turnout against the quorum, and the hash of the counted ballots, which members
compare across nodes. For a secret poll, the sum of the encrypted ballots decrypted with the
trustees' partial decryptions (each checked by the replica's rules when it arrived)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cbor2

from apps.voting import crypto
from apps.voting.shape import PollShape, ballot_read
from apps.voting.tally import Result, tally, tally_counts

_HASH_PERSON = b"sereus-ballots"


class BallotRow(Protocol):
    id: Any  # uuid.UUID
    choice: str
    sealed: Any  # bytes or memoryview


@dataclass(frozen=True)
class PollResult:
    tally: Result | None  # None while a secret poll waits for its trustees
    ballots: int
    quorum_met: bool
    counted_hash: str  # hex BLAKE2b-256 of the counted ballots
    final: bool  # the poll is closed: this is the result
    missing_trustees: int  # secret polls: partial decryptions still needed


def counted_hash(ballots: Iterable[BallotRow]) -> str:
    """One hash of the ballots that count (id, named choice, encrypted ballot), in id order:
    two nodes that counted the same ballots show the same hash."""
    rows = sorted([b.id.hex, b.choice or "", bytes(b.sealed or b"")] for b in ballots)
    digest = hashlib.blake2b(cbor2.dumps(rows, canonical=True), digest_size=32, person=_HASH_PERSON)
    return digest.hexdigest()


def trustee_rows(
    shape: PollShape, rows: Mapping[str, bytes], id_of: Callable[[bytes, str], str]
) -> list[bytes | None]:
    """Each trustee's row of a kind (dealing, partial), in the poll's trustee order."""
    return [rows.get(id_of(member, shape.pk)) for member in shape.trustee_keys()]


def poll_result(
    shape: PollShape,
    ballots: Sequence[BallotRow],
    partials: Sequence[bytes | None],
    *,
    closed: bool,
) -> PollResult:
    count = len(ballots)
    quorum_met = count >= shape.quorum
    digest = counted_hash(ballots)
    if not shape.secret:
        named = [ballot_read(b.choice) for b in ballots]
        result = tally(shape.method, len(shape.options), [b for b in named if b is not None])
        return PollResult(result, count, quorum_met, digest, closed, 0)
    given = {i + 1: p for i, p in enumerate(partials) if p is not None}
    missing = max(0, shape.threshold - len(given))
    if not closed or missing:
        return PollResult(None, count, quorum_met, digest, closed, missing)
    sealed = [bytes(b.sealed) for b in ballots]
    total = crypto.aggregate(sealed, len(shape.options))
    try:
        totals = crypto.result(total, given, shape.threshold, count)
    except crypto.CryptoError:
        return PollResult(None, count, quorum_met, digest, closed, missing)
    result = tally_counts(shape.method, len(shape.options), totals, count)
    return PollResult(result, count, quorum_met, digest, closed, 0)
