"""Reads of a thread's polls: each poll as it opened, its state, turnout, this member's ballot,
and its result where the poll lets it be seen. The result is computed here, on every node, from
the ballots this node's replica counted (``results.py``); nothing is taken on trust."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from apps.core.models import Thread
from apps.core.thread.rowid import row_tag
from apps.core.threads.app_kit import app_enabled, app_thread_find, row_owners
from apps.core.threads.context import thread_context
from apps.core.threads.names import Names, thread_names
from apps.core.threads.registry import thread_database
from apps.voting import results, rules
from apps.voting.models import Ballot, Close, Dealing, Partial, Poll
from apps.voting.policy import APP
from apps.voting.shape import PollProblem, PollShape, ballot_read, poll_shape

WAITING_KEY, OPEN, CLOSED = "waiting_key", "open", "closed"
POLL_STATES = (WAITING_KEY, OPEN, CLOSED)


@dataclass
class PollView:
    shape: PollShape
    description: str
    ends_at: datetime | None
    creator: str  # member hex ("" if unknown)
    creator_name: str
    mine: bool  # this member opened it
    state: str  # waiting_key, open, closed
    turnout: int  # ballots cast (counted, once closed)
    closed_seen: int  # ballots the closer said it saw
    voter: bool  # this member may vote
    my_ballot: dict | None  # this member's named ballot, or {} for a secret one cast
    trustee: int | None  # this member's trustee number
    dealt: list[str]  # names of trustees whose key shares are in
    decrypted: list[str]  # names of trustees whose partial decryptions are in
    result: results.PollResult | None  # None while hidden or not computable
    # Members holding a voting role now who are not among the voters: they joined after the
    # poll opened, or the creator's node left them out (a modified node can; the rules cannot
    # see the member list, ADR 19). Shown, so that a poll cannot quietly leave people out.
    left_out: int = 0
    names: Names = field(repr=False, default=None)  # type: ignore[assignment]

    @property
    def id(self) -> str:
        return self.shape.pk

    @property
    def electorate(self) -> int:
        return len(self.shape.electorate)

    @property
    def quorum_met(self) -> bool:
        return self.turnout >= self.shape.quorum

    @property
    def voted(self) -> bool:
        return self.my_ballot is not None


thread_find = app_thread_find


def enabled(thread: Thread) -> bool:
    return app_enabled(thread, APP)


def member_names(thread: Thread) -> Names:
    return thread_names(thread, me_as="you")


def _name(names: Names, member: str) -> str:
    return names.get(member, "a former member") if member else "someone"


def polls(thread: Thread, *, poll_id: str | None = None) -> list[PollView]:
    """The thread's polls, newest first (their ids are time-ordered)."""
    with thread_context(thread.thread):
        query = Poll.objects.order_by("-id")
        if poll_id is not None:
            query = query.filter(pk=poll_id)
        found = list(query)
        ids = [poll.id for poll in found]
        ballots: dict[str, list[Ballot]] = {}
        for ballot in Ballot.objects.filter(poll__in=ids).order_by("id"):
            ballots.setdefault(ballot.poll.hex, []).append(ballot)
        closes = {c.scope.hex: c for c in Close.objects.filter(scope__in=ids)}
        dealings: dict[str, dict[str, bytes]] = {}
        for row in Dealing.objects.filter(poll__in=ids):
            dealings.setdefault(row.poll.hex, {})[row.id.hex] = bytes(row.dealing)
        partials: dict[str, dict[str, bytes]] = {}
        for row in Partial.objects.filter(poll__in=ids):
            partials.setdefault(row.poll.hex, {})[row.id.hex] = bytes(row.partial)
    names, owners, me = member_names(thread), row_owners(thread), thread.member_id
    roles_now = _roles_now(thread)
    views = []
    for poll in found:
        pk = poll.id.hex
        try:
            shape = poll_shape(pk, poll_row(poll))
        except PollProblem:
            continue  # cannot be: the replica accepted it; a damaged row is left out
        tag = row_tag(pk)
        creator = owners.get(tag.hex(), "") if tag else ""
        cast = ballots.get(pk, [])
        close = closes.get(pk)
        keys = results.trustee_rows(shape, dealings.get(pk, {}), rules.dealing_id)
        decrypted = results.trustee_rows(shape, partials.get(pk, {}), rules.partial_id)
        state = CLOSED if close else (OPEN if not shape.secret or all(keys) else WAITING_KEY)
        mine_pk = rules.ballot_id(bytes.fromhex(me), pk) if me else ""
        my_row = next((b for b in cast if b.id.hex == mine_pk), None)
        my_ballot = None
        if my_row is not None:
            my_ballot = {} if shape.secret else (ballot_read(my_row.choice) or {})
        result = None
        if close is not None or (shape.results_visible and not shape.secret):
            result = results.poll_result(shape, cast, decrypted, closed=close is not None)
        views.append(
            PollView(
                shape=shape,
                description=poll.description,
                ends_at=poll.ends_at,
                creator=creator,
                creator_name=_name(names, creator),
                mine=bool(me) and creator == me,
                state=state,
                turnout=len(cast),
                closed_seen=close.ballots if close else 0,
                voter=me in shape.electorate and thread.role in shape.roles,
                my_ballot=my_ballot,
                trustee=shape.trustees.index(me) + 1 if me in shape.trustees else None,
                dealt=[_name(names, t) for t, k in zip(shape.trustees, keys, strict=True) if k],
                decrypted=[
                    _name(names, t) for t, k in zip(shape.trustees, decrypted, strict=True) if k
                ],
                result=result,
                left_out=sum(
                    1
                    for member, role in roles_now.items()
                    if role in shape.roles and member not in shape.electorate
                ),
                names=names,
            )
        )
    return views


def _roles_now(thread: Thread) -> dict[str, str]:
    """Member (hex) -> role, for the thread's members now."""
    try:
        state = thread_database(thread.thread).replica().control.state
    except Exception:  # a damaged thread: no members to compare with
        return {}
    return {m.hex(): s.role for m, s in state.members.items() if s.active}


def poll_row(poll: Poll) -> dict:
    return {
        "question": poll.question,
        "options": poll.options,
        "method": poll.method,
        "roles": poll.roles,
        "electorate": poll.electorate,
        "quorum": poll.quorum,
        "results_visible": poll.results_visible,
        "secret": poll.secret,
        "trustees": poll.trustees,
        "threshold": poll.threshold,
    }


def poll(thread: Thread, poll_id: str) -> PollView | None:
    try:
        pk = uuid.UUID(hex=str(poll_id)).hex
    except ValueError:
        return None
    found = polls(thread, poll_id=pk)
    return found[0] if found else None


def waiting_for_me(thread: Thread) -> list[PollView]:
    """Open polls this member may vote in and has not."""
    return [p for p in polls(thread) if p.state == OPEN and p.voter and not p.voted]
