"""The rules of polls, which every replica enforces on every row of voting's ordered tables, in
the thread's order (``apps.core.thread.ordered``). Each is a pure function of the view (the
tables as they stand just before the row), the row change and its author's standing there: no
clock, no network, nothing of this node. A refusal is a reason in plain words.

- a poll is opened by the member its id names, well formed (``shape.poll_shape``), and never
  changed or deleted afterwards (closing is what ends it);
- a ballot's id follows from the poll and its voter (one counted ballot per voter; voting again
  replaces it); only the poll's electorate votes, and only while holding a voting role; the
  ballot is well formed for the method (``tally.ballot_problem``), or for a secret poll carries
  an encryption with valid proofs under the poll's key (``crypto.ballot_check``);
- only the poll's creator closes it, once; what the close had not seen is refused by the core
  (``Closing``: ballots are the close's target, the poll its scope);
- each trustee of a secret poll writes one dealing of the poll's key, with valid proofs; after
  the close, one partial decryption of the sum of the counted ballots, with valid proofs.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from apps.core.thread.ordered import Author, Validator, View
from apps.core.thread.payloads import DELETE, UPSERT, RowChange
from apps.core.thread.rowid import member_tag, row_id_for, row_tag
from apps.voting import crypto
from apps.voting.policy import BALLOT, CLOSE, DEALING, PARTIAL, POLL
from apps.voting.shape import (
    PollProblem,
    PollShape,
    ballot_context,
    ballot_read,
    poll_context,
    poll_shape,
)
from apps.voting.tally import ballot_problem

NOT_VOTER = "you were not among this poll's voters when it opened"


def _uuid_bytes(pk: str) -> bytes:
    return bytes.fromhex(pk)


def ballot_id(voter: bytes, poll: str) -> str:
    """The one ballot a voter has in a poll."""
    return row_id_for(voter, b"ballot/" + _uuid_bytes(poll)).hex


def close_id(creator: bytes, poll: str) -> str:
    return row_id_for(creator, b"close/" + _uuid_bytes(poll)).hex


def dealing_id(trustee: bytes, poll: str) -> str:
    return row_id_for(trustee, b"deal/" + _uuid_bytes(poll)).hex


def partial_id(trustee: bytes, poll: str) -> str:
    return row_id_for(trustee, b"partial/" + _uuid_bytes(poll)).hex


def _poll(view: View, pk: Any) -> PollShape | None:
    """The poll ``pk`` names, if it exists (rows in the view were accepted, so well formed)."""
    if type(pk) is not str or len(pk) != 32:
        return None
    row = view.get(POLL, pk)
    if row is None:
        return None
    try:
        return poll_shape(pk, row)
    except PollProblem:
        return None


def _created_by(poll_pk: str, member: bytes) -> bool:
    return row_tag(poll_pk) == member_tag(member)


def poll_rule(view: View, change: RowChange, author: Author) -> str | None:
    if view.get(POLL, change.pk) is not None:
        return "a poll is never changed or deleted once opened: close it instead"
    if change.action != UPSERT:
        return "there is no such poll"
    if row_tag(change.pk) != member_tag(author.member):
        return "a poll is opened by the member its id names"
    try:
        poll_shape(str(change.pk), change.cols)
    except PollProblem as exc:
        return str(exc)
    return None


@lru_cache(maxsize=64)
def _keys(context: bytes, dealings: tuple[bytes, ...]) -> tuple[bytes, tuple[bytes, ...]]:
    """The poll key and each trustee's public key: a pure function of the dealings, cached
    because every ballot of the poll needs them."""
    return crypto.poll_key(dealings), tuple(
        crypto.trustee_key(dealings, index) for index in range(1, len(dealings) + 1)
    )


def _dealings(view: View, poll: PollShape) -> tuple[bytes, ...] | None:
    """Every trustee's dealing, in the poll's trustee order; None while one is missing."""
    found = {}
    for row in view.rows(DEALING, poll=poll.pk):
        found[row["pk"]] = row.get("dealing")
    ordered = []
    for trustee in poll.trustee_keys():
        dealing = found.get(dealing_id(trustee, poll.pk))
        if type(dealing) is not bytes:
            return None
        ordered.append(dealing)
    return tuple(ordered)


def ballot_rule(view: View, change: RowChange, author: Author) -> str | None:
    current = view.get(BALLOT, change.pk)
    if change.action == DELETE:
        return None if current is not None else "the ballot was already withdrawn"
    poll_pk = change.cols.get("poll", current.get("poll") if current else None)
    if current is not None and poll_pk != current.get("poll"):
        return "a ballot stays in its poll"
    poll = _poll(view, poll_pk)
    if poll is None:
        return "there is no such poll"
    if change.pk != ballot_id(author.member, poll.pk):
        return "a voter has one ballot per poll, under the key that follows from both"
    if author.member.hex() not in poll.electorate:
        return NOT_VOTER
    if author.role not in poll.roles:
        return f"your role ({author.role}) does not vote in this poll"
    merged = {**(current or {}), **change.cols}
    if not poll.secret:
        if merged.get("sealed"):
            return "a named ballot is not encrypted"
        return ballot_problem(poll.method, len(poll.options), ballot_read(merged.get("choice")))
    if merged.get("choice"):
        return "a secret ballot says nothing in the clear"
    sealed = merged.get("sealed")
    if type(sealed) is not bytes or not sealed:
        return "a secret ballot is encrypted"
    dealings = _dealings(view, poll)
    if dealings is None:
        return "the poll's trustees have not all set up its key yet"
    try:
        key, _ = _keys(poll_context(poll.pk), dealings)
        crypto.ballot_check(
            ballot_context(poll.pk, author.member), key, len(poll.options), poll.exactly_one, sealed
        )
    except crypto.CryptoError as exc:
        return f"the encrypted ballot is not valid: {exc}"
    return None


def close_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT or view.get(CLOSE, change.pk) is not None:
        return "a poll is closed once, for good"
    poll = _poll(view, change.cols.get("scope"))
    if poll is None:
        return "there is no such poll to close"
    if not _created_by(poll.pk, author.member):
        return "only the poll's creator closes it"
    if change.pk != close_id(author.member, poll.pk):
        return "a poll has one close, under the key that follows from it"
    return None


def _trustee(poll: PollShape, author: Author) -> int | None:
    """The author's trustee number (1-based), or None."""
    member = author.member.hex()
    return poll.trustees.index(member) + 1 if member in poll.trustees else None


def _secret_poll(view: View, change: RowChange, author: Author, kind: str) -> Any:
    """The secret poll a trustee's row is for, and the trustee's number, or a refusal."""
    if change.action != UPSERT or view.get(change.table, change.pk) is not None:
        return f"a trustee's {kind} is written once, never changed"
    poll = _poll(view, change.cols.get("poll"))
    if poll is None or not poll.secret:
        return "there is no such secret poll"
    index = _trustee(poll, author)
    if index is None:
        return "only the poll's trustees hold its key"
    return poll, index


def dealing_rule(view: View, change: RowChange, author: Author) -> str | None:
    found = _secret_poll(view, change, author, "key share")
    if isinstance(found, str):
        return found
    poll, _ = found
    if change.pk != dealing_id(author.member, poll.pk):
        return "a trustee has one key share per poll, under the key that follows from both"
    dealing = change.cols.get("dealing")
    try:
        crypto.dealing_check(
            poll_context(poll.pk), poll.threshold, poll.trustee_keys(), dealing or b""
        )
    except crypto.CryptoError as exc:
        return f"the key share is not valid: {exc}"
    others = [row["dealing"] for row in view.rows(DEALING, poll=poll.pk)]
    try:
        crypto.poll_key([*others, dealing])  # refuses a dealing copied from another trustee
    except crypto.CryptoError as exc:
        return f"the key share is not valid: {exc}"
    return None


def counted_sealed(view: View, poll: PollShape) -> list[bytes]:
    """The encrypted ballots that count, as the view has them."""
    return [row["sealed"] for row in view.rows(BALLOT, poll=poll.pk) if row.get("sealed")]


def partial_rule(view: View, change: RowChange, author: Author) -> str | None:
    found = _secret_poll(view, change, author, "partial decryption")
    if isinstance(found, str):
        return found
    poll, index = found
    if change.pk != partial_id(author.member, poll.pk):
        return "a trustee decrypts once per poll, under the key that follows from both"
    if not view.rows(CLOSE, scope=poll.pk):
        return "the result is decrypted only after the poll closes"
    dealings = _dealings(view, poll)
    if dealings is None:
        return "the poll's key was never set up"
    partial = change.cols.get("partial") or b""
    try:
        _, publics = _keys(poll_context(poll.pk), dealings)
        total = crypto.aggregate(counted_sealed(view, poll), len(poll.options))
        if crypto.partial_index(partial) != index:
            return "a trustee decrypts under its own number"
        crypto.partial_check(poll_context(poll.pk), total, publics[index - 1], partial)
    except crypto.CryptoError as exc:
        return f"the partial decryption is not valid: {exc}"
    return None


def validators() -> dict[str, Validator]:
    """Voting's ordered tables and their rules (``validators_register``)."""
    return {
        POLL: poll_rule,
        BALLOT: ballot_rule,
        CLOSE: close_rule,
        DEALING: dealing_rule,
        PARTIAL: partial_rule,
    }
