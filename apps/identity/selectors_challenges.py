"""Reads of a thread's challenges and duels for pages and the API: each with its state in words
the API and pages share (waiting for the defendant to accept, judging, voting, decided), its
judges and what each said, its poll's state, and whether a won challenge is in effect."""

from __future__ import annotations

import json
import uuid

from apps.core.models import Thread
from apps.core.threads.app_kit import app_enabled, row_owners
from apps.core.threads.context import thread_context
from apps.core.threads.names import Names
from apps.identity import standing
from apps.identity.models import Accept, Challenge, Claim, Judgement, Outcome
from apps.identity.selector_views import ChallengeView, JudgeView
from apps.identity.selectors_common import FORMER, alias_of, hex_of, member_names

WAITING_ACCEPT, JUDGING, VOTING, DECIDED = "waiting_accept", "judging", "voting", "decided"
CHALLENGE_STATES = (WAITING_ACCEPT, JUDGING, VOTING, DECIDED)


def challenge_views(
    thread: Thread, rows: list[Challenge], *, names: Names, owners: dict[str, str]
) -> list[ChallengeView]:
    """The views of ``rows`` (a few queries for all of them, none per challenge)."""
    if not rows:
        return []
    me = thread.member_id
    effect = standing.challenges_in_effect(alias_of(thread))
    ids = [c.pk for c in rows]
    with thread_context(thread.thread):
        accepted = set(Accept.objects.filter(challenge__in=ids).values_list("challenge", flat=True))
        outcomes: dict[str, str] = {}
        for o in Outcome.objects.filter(challenge__in=ids).order_by("id"):
            outcomes.setdefault(o.challenge.hex, o.winner)
        said: dict[str, dict[str, str]] = {}
        for j in Judgement.objects.filter(challenge__in=ids).order_by("id"):
            said.setdefault(j.challenge.hex, {})[owners.get(j.pk.hex[20:], "")] = j.winner
        titles = dict(
            Claim.objects.filter(pk__in=[c.claim for c in rows if c.claim]).values_list(
                "id", "title"
            )
        )
    poll_states = _poll_states(thread, [c.poll.hex for c in rows if c.poll])
    found = []
    for row in rows:
        pk = row.pk.hex
        challenger = owners.get(pk[20:], "")
        judges = _judges(row.judges)
        winner = outcomes.get(pk)
        is_accepted = row.pk in accepted
        if winner:
            state = DECIDED
        elif row.mode == "poll":
            state = VOTING
        else:
            state = JUDGING if is_accepted else WAITING_ACCEPT
        judged = said.get(pk, {})
        winner_member = {"challenger": challenger, "defendant": row.defendant}.get(winner or "")
        found.append(
            ChallengeView(
                id=pk,
                challenger=challenger,
                challenger_name=names.get(challenger, FORMER),
                defendant=row.defendant,
                defendant_name=names.get(row.defendant, FORMER),
                mine=challenger == me,
                defending=row.defendant == me,
                claim=hex_of(row.claim),
                claim_title=titles.get(row.claim, "") if row.claim else "",
                against=hex_of(row.against),
                feat=row.feat,
                deadline=row.deadline,
                mode=row.mode,
                judges=[JudgeView(j, names.get(j, FORMER), judged.get(j), j == me) for j in judges],
                poll=hex_of(row.poll),
                poll_state=poll_states.get(hex_of(row.poll) or ""),
                accepted=is_accepted,
                winner=winner,
                winner_name=names.get(winner_member, FORMER) if winner_member else None,
                in_effect=pk in effect,
                state=state,
                can_accept=row.defendant == me and row.mode == "judges" and not is_accepted,
                can_judge=state == JUDGING and me in judges and me not in judged,
            )
        )
    return found


def _judges(value: str) -> list[str]:
    try:
        found = json.loads(value or "[]")
    except ValueError:
        return []
    return [str(j) for j in found] if isinstance(found, list) else []


def _poll_states(thread: Thread, polls: list[str]) -> dict[str, str]:
    if not polls or not app_enabled(thread, "voting"):
        return {}
    from apps.voting import selectors as voting

    found = {}
    for poll in polls:
        view = voting.poll(thread, poll)
        if view is not None:
            found[poll] = view.state
    return found


def challenges(thread: Thread, *, challenge_id: str | None = None) -> list[ChallengeView]:
    """The thread's challenges and duels, newest first."""
    with thread_context(thread.thread):
        query = Challenge.objects.order_by("-id")
        if challenge_id is not None:
            query = query.filter(pk=challenge_id)
        rows = list(query)
    return challenge_views(thread, rows, names=member_names(thread), owners=row_owners(thread))


def challenge(thread: Thread, challenge_id: str) -> ChallengeView | None:
    try:
        pk = uuid.UUID(hex=str(challenge_id))
    except ValueError:
        return None
    found = challenges(thread, challenge_id=pk.hex)
    return found[0] if found else None
