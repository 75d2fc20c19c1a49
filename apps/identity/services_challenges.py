"""The challenge services (part of ``services``, which re-exports them): a challenge of a
verified claim, a challenge back, or a duel; decided by judges the defendant accepts or by a
poll of the thread opened in the same op; and the outcome a node writes once it is decided, by
the very functions the rules check it with."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

from django.utils import timezone

from apps.core.models import Thread
from apps.core.thread.rowid import is_owned_by
from apps.core.threads.app_kit import app_enabled
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.identity import formats, standing
from apps.identity.models import (
    MAX_FEAT,
    MAX_NOTE,
    Accept,
    Attestation,
    Challenge,
    Judgement,
    Outcome,
)
from apps.identity.policy import APP
from apps.identity.services import (
    MAX_JUDGES,
    MODES,
    VOTING,
    WINNERS,
    IdentityError,
    _alias,
    _author,
    _claim,
    _get,
    _id,
    _me,
    _member,
    _plain,
    _text,
    _writable,
    _write,
    members_now,
)

# -- challenges ----------------------------------------------------------------------------------


def _witnesses_of(thread: Thread, claim: uuid.UUID) -> set[str]:
    with thread_context(thread.thread):
        ids = list(Attestation.objects.filter(claim=claim).values_list("id", flat=True))
    return {_author(thread, pk) for pk in ids} - {""}


def _poll_options() -> tuple[str, ...]:
    from apps.identity.rules import POLL_OPTIONS

    return tuple(POLL_OPTIONS)


MAX_PLAN_DAYS = 366  # a poll's planned end, as voting allows


def _deadline(value: str) -> tuple[str, datetime | None]:
    """The deadline as written (shown, never a rule) and the moment it names, in the node's
    time zone (a day ends at its last second); a deadline already past is refused."""
    text = str(value or "").strip()
    if not text:
        return "", None
    wrong = "the deadline is a day like 2026-06-01, or a day and time"
    if len(text) > 32:
        raise IdentityError("invalid", wrong)
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), dt_time(23, 59, 59))
        else:
            moment = datetime.fromisoformat(text)
    except ValueError:
        raise IdentityError("invalid", wrong) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    if moment <= timezone.now():
        raise IdentityError("invalid", "the deadline has passed already")
    return text, moment


def challenge_make(
    *,
    thread: Thread,
    feat: str,
    mode: str,
    deadline: str = "",
    claim: str | None = None,
    against: str | None = None,
    defendant: str | None = None,
    judges: Iterable[str] = (),
) -> str:
    """Challenge a verified claim, challenge back a won challenge (``against``), or challenge a
    member to a duel (``defendant``, neither of the others). Decided by ``judges`` the defendant
    accepts, or by a poll of the thread opened in the same op. Returns the challenge's id."""
    _writable(thread)
    me = thread.member_id
    feat = _text(feat, "the feat", MAX_FEAT, required=True)
    deadline, ends = _deadline(deadline)
    if mode not in MODES:
        raise IdentityError("invalid", "a challenge is decided by judges or by a poll")
    if claim and against:
        raise IdentityError("invalid", "a challenge names a claim or a challenge, not both")
    excluded: set[str] = set()
    claim_id = against_id = None
    if claim:
        row = _claim(thread, claim)
        claim_id, defendant = row.pk, _author(thread, row.pk)
        if defendant == me:
            raise IdentityError("forbidden", "you cannot challenge your own claim")
        state = standing.claim_states(_alias(thread), [row.pk.hex]).get(row.pk.hex)
        if state is None or state.state != standing.VERIFIED:
            words = {
                standing.WITHDRAWN: "this claim was withdrawn",
                standing.OVERTURNED: "this claim is already overturned",
            }.get(
                state.state if state else "",
                "only a verified claim is challenged (dispute a pending one instead)",
            )
            raise IdentityError("conflict", words)
        excluded = _witnesses_of(thread, row.pk)
    elif against:
        back = _get(thread, Challenge, _id(against, "challenge"))
        if back is None:
            raise IdentityError("not_found", "there is no such challenge in this thread")
        with thread_context(thread.thread):
            won = Outcome.objects.filter(challenge=back.pk, winner="challenger").exists()
        if not won:
            raise IdentityError(
                "conflict", "only a challenge its challenger won is challenged back"
            )
        against_id, defendant = back.pk, _author(thread, back.pk)
        if defendant == me:
            raise IdentityError("forbidden", "you cannot challenge back your own challenge")
        if back.claim is not None:
            excluded = _witnesses_of(thread, back.claim)
    else:
        if not defendant:
            raise IdentityError("invalid", "a duel names the member it challenges")
        defendant = _member(thread, defendant, "the member you challenge")
        if defendant == me:
            raise IdentityError("invalid", "you cannot challenge yourself")
    if defendant not in members_now(thread):
        raise IdentityError("conflict", "the defendant is no longer a member of this thread")
    fields: dict[str, Any] = {
        "claim": claim_id,
        "against": against_id,
        "defendant": defendant,
        "feat": feat,
        "deadline": deadline,
        "mode": mode,
        "judges": "[]",
        "poll": None,
    }
    if mode == "judges":
        chosen = list(dict.fromkeys(str(j).strip().lower() for j in judges if str(j).strip()))
        if not chosen:
            raise IdentityError("invalid", "name at least one judge")
        if len(chosen) > MAX_JUDGES:
            raise IdentityError("invalid", f"a challenge has at most {MAX_JUDGES} judges")
        for judge_hex in chosen:
            _member(thread, judge_hex, "a judge")
            if judge_hex in (me, defendant):
                raise IdentityError("invalid", "neither side of a challenge judges it")
            if judge_hex in excluded:
                raise IdentityError("invalid", "a witness of the claim cannot judge its challenge")
        fields["judges"] = json.dumps(sorted(chosen))
        return _write(thread, lambda: Challenge.objects.create(**fields)).pk.hex
    return _challenge_by_poll(thread, fields, excluded | {me, defendant}, ends)


def _challenge_by_poll(
    thread: Thread, fields: dict[str, Any], excluded: set[str], ends: datetime | None
) -> str:
    """The challenge and its poll in one op. The deadline, if any, is the poll's planned end:
    the challenger's node closes it then (voting's task), and the outcome follows."""
    if not app_enabled(thread, VOTING):
        raise IdentityError(
            "not_enabled",
            "deciding by poll needs the voting app in this thread: an owner or admin enables it",
        )
    from apps.voting.models import MAX_QUESTION, Poll
    from apps.voting.services import default_roles
    from apps.voting.shape import PollProblem, poll_shape

    roles = default_roles(thread)
    electorate = sorted(
        m for m, role in members_now(thread).items() if role in roles and m not in excluded
    )
    if not electorate:
        raise IdentityError(
            "invalid", "nobody is left to vote: everyone is a side of the challenge or a witness"
        )
    question = f"Challenge: {fields['feat']}"
    question = question if len(question) <= MAX_QUESTION else question[: MAX_QUESTION - 1] + "…"
    poll_fields = {
        "question": question,
        "description": "Who wins this challenge? A tie keeps the defendant's side.",
        "options": json.dumps(list(_poll_options())),
        "method": "single",
        "roles": json.dumps(roles),
        "electorate": json.dumps(electorate),
        "quorum": 0,
        "results_visible": True,
        "secret": False,
        "trustees": "[]",
        "threshold": 0,
        "ends_at": ends
        if ends and ends <= timezone.now() + timedelta(days=MAX_PLAN_DAYS)
        else None,
    }
    try:
        poll_shape(uuid.uuid4().hex, poll_fields)
    except PollProblem as exc:
        raise IdentityError("invalid", _plain(str(exc))) from None

    def make() -> str:
        poll = Poll.objects.create(**poll_fields)
        return Challenge.objects.create(**{**fields, "poll": poll.pk}).pk.hex

    made = _write(thread, make)
    if poll_fields["ends_at"] is not None:
        from apps.voting.tasks import polls_due

        polls_due.apply_async(args=[thread.id], eta=poll_fields["ends_at"])
    return made


def _challenge(thread: Thread, challenge: str | uuid.UUID) -> Challenge:
    found = _get(thread, Challenge, _id(challenge, "challenge"))
    if found is None:
        raise IdentityError("not_found", "there is no such challenge in this thread")
    return found


def _outcome(thread: Thread, challenge: Challenge) -> Outcome | None:
    with thread_context(thread.thread):
        return Outcome.objects.filter(challenge=challenge.pk).order_by("id").first()


def challenge_accept(*, thread: Thread, challenge: str) -> str:
    """The defendant accepts a challenge decided by judges (and so its judges)."""
    _writable(thread)
    row = _challenge(thread, challenge)
    if row.defendant != thread.member_id:
        raise IdentityError("forbidden", "only the member challenged accepts a challenge")
    if row.mode != "judges":
        raise IdentityError("conflict", "a challenge decided by a poll needs no acceptance")
    pk = _id(formats.accept_id(_me(thread), row.pk.hex), "acceptance")
    if _get(thread, Accept, pk) is not None:
        raise IdentityError("conflict", "you have already accepted this challenge")
    _write(thread, lambda: Accept.objects.create(pk=pk, challenge=row.pk))
    return pk.hex


def _accepted(thread: Thread, row: Challenge) -> bool:
    pk = _id(formats.accept_id(bytes.fromhex(row.defendant), row.pk.hex), "acceptance")
    return _get(thread, Accept, pk) is not None


def judge(*, thread: Thread, challenge: str, winner: str, note: str = "") -> str:
    """A judge's verdict: the ``challenger`` or the ``defendant`` wins."""
    _writable(thread)
    row = _challenge(thread, challenge)
    if winner not in WINNERS:
        raise IdentityError("invalid", "the winner is the challenger or the defendant")
    note = _text(note, "a note", MAX_NOTE)
    if row.mode != "judges" or thread.member_id not in json.loads(row.judges or "[]"):
        raise IdentityError("forbidden", "you are not a judge of this challenge")
    if not _accepted(thread, row):
        raise IdentityError("conflict", "the defendant has not accepted this challenge yet")
    if _outcome(thread, row) is not None:
        raise IdentityError("conflict", "this challenge is already decided")
    pk = _id(formats.judgement_id(_me(thread), row.pk.hex), "judgement")
    if _get(thread, Judgement, pk) is not None:
        raise IdentityError("conflict", "you have already judged this challenge")
    _write(
        thread, lambda: Judgement.objects.create(pk=pk, challenge=row.pk, winner=winner, note=note)
    )
    return pk.hex


class RowsView:
    """The thread's rows as a rule's ``View`` reads them (``get``/``rows`` with ``"pk"``), from
    this node's database: so a node decides a challenge with the very functions the rules use to
    check its outcome, and writes only outcomes every replica accepts."""

    def __init__(self, alias: str) -> None:
        self.alias = alias

    def _select(self, table: str, where: str, value: Any) -> list[dict[str, Any]]:
        from django.db import connections

        with connections[self.alias].cursor() as cursor:
            # Table and column names come from this module's callers (the rules), never input.
            cursor.execute(f'SELECT * FROM "{table}" WHERE "{where}" = %s ORDER BY id', [value])  # noqa: S608
            names = [c[0] for c in cursor.description]
            found = []
            for values in cursor.fetchall():
                row = dict(zip(names, values, strict=True))
                row["pk"] = row.pop("id")
                found.append(row)
        return found

    def get(self, table: str, pk: Any) -> dict[str, Any] | None:
        found = self._select(table, "id", pk)
        return found[0] if found else None

    def rows(self, table: str, **equal: Any) -> list[dict[str, Any]]:
        ((column, value),) = equal.items()
        return self._select(table, column, value)


def decided(thread: Thread, row: Challenge) -> str | None:
    """Who won, if decided now, by the rules' own reckoning (``rules.judges_winner``: a strict
    majority of the judges; ``rules.poll_winner``: the closed poll, a tie keeping the
    defendant's side); None while undecided."""
    from apps.identity import rules_challenges

    view = RowsView(_alias(thread))
    if row.mode == "judges":
        return rules_challenges.judges_winner(view, row.pk.hex, {"judges": row.judges})
    if row.poll is None:
        return None
    return rules_challenges.poll_winner(view, row.poll.hex)


def outcome_record(*, thread: Thread, challenge: str) -> bool:
    """Write the challenge's outcome if it is decided and none is written; True if written."""
    _writable(thread)
    row = _challenge(thread, challenge)
    if _outcome(thread, row) is not None:
        return False
    winner = decided(thread, row)
    if winner is None:
        return False
    pk = _id(formats.outcome_id(_me(thread), row.pk.hex), "outcome")
    _write(thread, lambda: Outcome.objects.create(pk=pk, challenge=row.pk, winner=winner))
    return True


def outcomes_due(*, thread: Thread) -> list[str]:
    """The outcomes this member's node writes on its own: of decided challenges it is a side
    of (challenger or defendant) that have none yet. Cheap when there is nothing to do."""
    if thread.state != Thread.State.ACTIVE or not thread.member_id:
        return []
    if not app_enabled(thread, APP):
        return []
    if app_enabled(thread, VOTING):
        # A challenge's poll whose deadline came while no task ran (the node was off): closed
        # now by its challenger's node, and decided below.
        from apps.voting.services import polls_due

        polls_due(thread=thread)
    me = thread.member_id
    with thread_context(thread.thread):
        done = set(Outcome.objects.values_list("challenge", flat=True))
        open_ = [c for c in Challenge.objects.exclude(pk__in=done)]
    written = []
    for row in open_:
        if row.defendant != me and not is_owned_by(row.pk.hex, _me(thread)):
            continue
        try:
            if outcome_record(thread=thread, challenge=row.pk.hex):
                written.append(row.pk.hex)
        except ThreadServiceError:
            continue  # another member's outcome came first, or the rules disagree: shown
    return written
