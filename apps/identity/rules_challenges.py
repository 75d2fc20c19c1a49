"""The identity app's rules for challenges and duels (ADR 26), and the small readers every rule
of the app shares (``rules.py`` registers them all). Pure, like every validator: the view, the
change and its author, nothing else.

- a challenge names a claim (its subject defends), a challenge its challenger won (that
  challenger defends), or neither (a duel with a named member); it is decided by judges the
  challenger names or by a poll opened in the same op, and neither the judges nor the poll's
  voters include the challenger, the defendant or a witness of the claim;
- the defendant accepts a challenge decided by judges (and so its judges), once;
- each judge judges an accepted challenge once, before its outcome;
- the outcome, once per challenge whoever writes it, is what a strict majority of the judges
  said, or what the closed poll's ballots say when counted again here (``poll_winner``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from apps.core.thread.ordered import Author, View
from apps.core.thread.payloads import UPSERT, RowChange
from apps.core.thread.rowid import member_tag, row_tag
from apps.identity import formats
from apps.identity.models import MAX_FEAT, MAX_NOTE
from apps.identity.policy import ACCEPT, ATTESTATION, CHALLENGE, CLAIM, JUDGEMENT, OUTCOME
from apps.voting.policy import BALLOT, CLOSE, POLL
from apps.voting.shape import PollProblem, ballot_read, poll_shape
from apps.voting.tally import ballot_problem, tally

# The options a challenge's poll opens with: index 0 the defendant's side, 1 the challenger's.
# A tie goes to the option listed first (``tally``): the defendant keeps their side.
POLL_OPTIONS = ("The defendant wins", "The challenger wins")
SIDES = ("challenger", "defendant")
MOST_JUDGES = 9
MAX_DEADLINE = 32

_MEMBER = re.compile(r"[0-9a-f]{64}\Z")
_UUID = re.compile(r"[0-9a-f]{32}\Z")


# -- small readers (shared with ``rules.py``) ---------------------------------------------------


def is_member(value: Any) -> bool:
    """64 lowercase hex digits: a member key as columns hold it."""
    return type(value) is str and _MEMBER.match(value) is not None


def is_uuid(value: Any) -> bool:
    """32 lowercase hex digits: a row id as an op carries it."""
    return type(value) is str and _UUID.match(value) is not None


def text_ok(value: Any, most: int, *, required: bool) -> bool:
    """A string of at most ``most`` characters (not blank when ``required``)."""
    if type(value) is not str or len(value) > most:
        return False
    return bool(value.strip()) or not required


def made_by(pk: Any, member: bytes) -> bool:
    """Whether row ``pk`` was made by ``member`` (its id carries the member's tag)."""
    tag = row_tag(pk)
    return tag is not None and tag == member_tag(member)


def tag_of(member_hex: str) -> bytes:
    return member_tag(bytes.fromhex(member_hex))


def written_once(view: View, change: RowChange) -> bool:
    """Whether a change to a written-once table is refused: a change or delete of a row that
    exists (the policy refuses those in the author's causal past; this catches the rest)."""
    return change.action != UPSERT or view.get(change.table, change.pk) is not None


def witness_tags(view: View, claim: Any) -> frozenset[bytes]:
    """The tags of every member who attested the claim (either verdict, retracted or not)."""
    if not is_uuid(claim):
        return frozenset()
    tags = (row_tag(row["pk"]) for row in view.rows(ATTESTATION, claim=claim))
    return frozenset(tag for tag in tags if tag is not None)


def judges_of(value: Any) -> list[str] | None:
    """A challenge's judges column read as member keys, or None if it is not such a list."""
    if type(value) is not str or len(value) > 2000:
        return None
    try:
        found = json.loads(value)
    except ValueError:
        return None
    if type(found) is not list or not all(is_member(m) for m in found):
        return None
    return found


# -- the poll of a challenge -------------------------------------------------------------------


def poll_problem(
    view: View, poll: Any, challenger: bytes, left_out: frozenset[bytes]
) -> str | None:
    """What is wrong with ``poll`` as the poll deciding a new challenge, if anything: it is in
    the view (opened earlier in the same op), the challenger's, named single choice between
    ``POLL_OPTIONS``, and none of its voters' tags is in ``left_out``."""
    row = view.get(POLL, poll) if is_uuid(poll) else None
    if row is None:
        return "a challenge decided by a poll opens it in the same write (voting must be on)"
    try:
        shape = poll_shape(poll, row)
    except PollProblem:
        return "the challenge's poll is not readable"
    if not made_by(poll, challenger):
        return "a challenge's poll is opened by its challenger"
    if shape.options != POLL_OPTIONS or shape.method != "single" or shape.secret:
        return "a challenge's poll asks, by a named single choice, which side wins"
    if any(tag_of(voter) in left_out for voter in shape.electorate):
        return "neither side of a challenge nor a witness of the claim votes in its poll"
    if view.rows(CHALLENGE, poll=poll):
        return "that poll already decides another challenge"
    return None


def poll_winner(view: View, poll_pk: Any) -> str | None:
    """ "defendant" or "challenger" as the challenge's closed poll decides, None while it is
    open. Counted from the named ballots in the view (after the close, exactly the ballots it
    counted: the core refuses what the close had not seen). A tie, no ballots or a quorum not
    met keep the defendant's side; ballots of the parties or of the claim's witnesses (who may
    have attested after the poll opened) do not count."""
    row = view.get(POLL, poll_pk) if is_uuid(poll_pk) else None
    if row is None or not view.rows(CLOSE, scope=poll_pk):
        return None
    try:
        shape = poll_shape(poll_pk, row)
    except PollProblem:
        return None
    left_out: set[bytes] = set()
    for challenge in view.rows(CHALLENGE, poll=poll_pk):
        left_out |= {row_tag(challenge["pk"]), tag_of(str(challenge.get("defendant")))}
        left_out |= witness_tags(view, challenge.get("claim"))
    ballots = []
    for ballot in view.rows(BALLOT, poll=poll_pk):
        read = ballot_read(ballot.get("choice"))
        if row_tag(ballot["pk"]) in left_out or read is None:
            continue
        if ballot_problem(shape.method, len(shape.options), read) is None:
            ballots.append(read)
    result = tally(shape.method, len(shape.options), ballots)
    if len(ballots) < shape.quorum or result.winner is None:
        return "defendant"
    return "defendant" if result.winner == 0 else "challenger"


# -- challenges --------------------------------------------------------------------------------


def _defendant_problem(view: View, cols: Mapping[str, Any], author: Author) -> str | None:
    """What is wrong with what the challenge challenges and its defendant, if anything."""
    claim, against, defendant = cols.get("claim"), cols.get("against"), cols.get("defendant")
    if claim is not None and against is not None:
        return "a challenge is of a claim or of a challenge, not both"
    if not is_member(defendant):
        return "a challenge names its defendant, a member of the thread"
    if claim is not None:
        row = view.get(CLAIM, claim) if is_uuid(claim) else None
        if row is None:
            return "there is no such claim"
        if row.get("withdrawn"):
            return "the claim was withdrawn"
        if made_by(claim, author.member):
            return "you cannot challenge your own claim"
        if tag_of(defendant) != row_tag(claim):
            return "the defendant of a challenged claim is its subject"
        return None
    if against is not None:
        won = view.get(CHALLENGE, against) if is_uuid(against) else None
        if won is None:
            return "there is no such challenge"
        outcomes = view.rows(OUTCOME, challenge=against)
        if not outcomes or outcomes[0].get("winner") != "challenger":
            return "only a challenge its challenger won is challenged back"
        if tag_of(defendant) != row_tag(against):
            return "the defendant of a challenge back is the challenger who won"
    if defendant == author.member.hex():
        return "you cannot challenge yourself"
    return None


def _judges_problem(view: View, cols: Mapping[str, Any], author: Author) -> str | None:
    judges = judges_of(cols.get("judges"))
    if judges is None:
        return "a challenge's judges are members of the thread"
    if not 1 <= len(judges) <= MOST_JUDGES:
        return f"a challenge names 1 to {MOST_JUDGES} judges"
    if len(set(judges)) != len(judges):
        return "a challenge names each judge once"
    if author.member.hex() in judges or cols["defendant"] in judges:
        return "neither side of a challenge judges it"
    witnesses = witness_tags(view, cols.get("claim"))
    if any(tag_of(judge) in witnesses for judge in judges):
        return "a witness of the claim does not judge its challenge"
    if cols.get("poll") is not None:
        return "a challenge decided by judges has no poll"
    return None


def challenge_rule(view: View, change: RowChange, author: Author) -> str | None:
    if written_once(view, change):
        return "a challenge is written once and never changed or deleted"
    cols = change.cols
    if not made_by(change.pk, author.member):
        return "a challenge is made by the member its id names"
    if not text_ok(cols.get("feat"), MAX_FEAT, required=True):
        return f"a challenge states the feat in 1 to {MAX_FEAT} characters"
    if not text_ok(cols.get("deadline", ""), MAX_DEADLINE, required=False):
        return "a challenge's deadline is a date and time"
    problem = _defendant_problem(view, cols, author)
    if problem:
        return problem
    mode = cols.get("mode")
    if mode == "judges":
        return _judges_problem(view, cols, author)
    if mode != "poll":
        return "a challenge is decided by judges or by a poll"
    if judges_of(cols.get("judges", "[]")) != []:
        return "a challenge decided by a poll has no judges"
    left_out = {member_tag(author.member), tag_of(cols["defendant"])}
    left_out |= witness_tags(view, cols.get("claim"))
    return poll_problem(view, cols.get("poll"), author.member, frozenset(left_out))


# -- acceptances, judgements, outcomes ---------------------------------------------------------


def _challenge(view: View, cols: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | str:
    """The challenge a row is about, or a refusal."""
    pk = cols.get("challenge")
    row = view.get(CHALLENGE, pk) if is_uuid(pk) else None
    if row is None:
        return "there is no such challenge"
    return pk, row


def accept_rule(view: View, change: RowChange, author: Author) -> str | None:
    if written_once(view, change):
        return "a challenge is accepted once"
    found = _challenge(view, change.cols)
    if isinstance(found, str):
        return found
    pk, row = found
    if row.get("defendant") != author.member.hex():
        return "only the defendant accepts a challenge"
    if row.get("mode") != "judges":
        return "a challenge decided by a poll needs no acceptance"
    if change.pk != formats.accept_id(author.member, pk):
        return "a challenge is accepted under the id that follows from it"
    return None


def judgement_rule(view: View, change: RowChange, author: Author) -> str | None:
    if written_once(view, change):
        return "a judge judges a challenge once"
    found = _challenge(view, change.cols)
    if isinstance(found, str):
        return found
    pk, row = found
    if author.member.hex() not in (judges_of(row.get("judges")) or []):
        return "only the challenge's judges judge it"
    if change.pk != formats.judgement_id(author.member, pk):
        return "a judge judges once, under the id that follows from the challenge"
    if view.rows(OUTCOME, challenge=pk):
        return "the challenge is already decided"
    if member_tag(author.member) in witness_tags(view, row.get("claim")):
        # Named before they attested (the challenge checked it then): a witness now.
        return "a witness of the claim does not judge its challenge"
    defendant = bytes.fromhex(str(row.get("defendant")))
    if view.get(ACCEPT, formats.accept_id(defendant, pk)) is None:
        return "the defendant has not accepted the challenge yet"
    if change.cols.get("winner") not in SIDES:
        return "a judgement says the challenger or the defendant wins"
    if not text_ok(change.cols.get("note", ""), MAX_NOTE, required=False):
        return f"a judge's note holds at most {MAX_NOTE} characters"
    return None


def judges_winner(view: View, pk: str, row: Mapping[str, Any]) -> str | None:
    """The side a strict majority of the challenge's judges named, or None (only its judges'
    judgements, one each, are ever accepted)."""
    judges = judges_of(row.get("judges")) or []
    counts = dict.fromkeys(SIDES, 0)
    for judgement in view.rows(JUDGEMENT, challenge=pk):
        if judgement.get("winner") in counts:
            counts[judgement["winner"]] += 1
    return next((side for side, n in counts.items() if 2 * n > len(judges)), None)


def outcome_rule(view: View, change: RowChange, author: Author) -> str | None:
    if written_once(view, change):
        return "an outcome is written once and never changed or deleted"
    found = _challenge(view, change.cols)
    if isinstance(found, str):
        return found
    pk, row = found
    if view.rows(OUTCOME, challenge=pk):
        return "the challenge already has its outcome"
    if change.pk != formats.outcome_id(author.member, pk):
        return "an outcome is recorded under the id that follows from its challenge"
    winner = change.cols.get("winner")
    if winner not in SIDES:
        return "an outcome says the challenger or the defendant won"
    if row.get("mode") == "judges":
        decided = judges_winner(view, pk, row)
        if decided is None:
            return "a majority of the judges has not decided the challenge yet"
        by = "judges"
    else:
        decided = poll_winner(view, row.get("poll"))
        if decided is None:
            return "the challenge's poll is not closed yet"
        by = "poll"
    if decided != winner:
        return f"the {by} decided that the {decided} won, not the {winner}"
    return None
