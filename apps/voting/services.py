"""The only writers of polls. Each write is one transaction of the thread's database and so one
signed op, which this node's replica judges at once by voting's rules (``rules.py``) like every
other replica will: a write it refuses is an error here, with the reason, and nothing is kept.

Errors are ``ThreadServiceError`` with the codes the API maps to statuses: ``invalid`` (bad
input), ``not_found``, ``not_enabled`` (voting is not enabled in the thread), ``forbidden`` (the
thread's policy), ``conflict`` (the poll is closed, ...) and ``refused`` (a rule)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.core.models import Thread
from apps.core.thread.rowid import is_owned_by
from apps.core.threads.app_kit import app_writable, app_write, member_key
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable
from apps.voting import crypto, rules, selectors
from apps.voting.models import (
    MAX_DESCRIPTION,
    MAX_OPTION,
    MAX_QUESTION,
    Ballot,
    Close,
    Dealing,
    Partial,
    Poll,
)
from apps.voting.policy import APP
from apps.voting.shape import (
    MAX_OPTIONS,
    MIN_OPTIONS,
    PollProblem,
    PollShape,
    ballot_context,
    ballot_json,
    poll_context,
    poll_shape,
)
from apps.voting.tally import METHODS, ballot_problem

MAX_PLAN_DAYS = 366
_duties_lock = threading.Lock()
READER = "reader"


def voting_enable(*, thread: Thread) -> None:
    """Enable voting in a thread (a control op: owner and admins only)."""
    if thread.state != Thread.State.ACTIVE:
        raise ThreadServiceError("forbidden", f"you can no longer write in {thread.name}")
    app_enable(thread=thread, app=APP)


_NOT_ENABLED = "voting is not enabled in this thread: an owner or admin enables it first"


def _writable(thread: Thread) -> None:
    app_writable(thread, APP, _NOT_ENABLED)


def _write(thread: Thread, action):
    """One op of the thread; the replica's refusal as an error in words (``app_kit``)."""
    return app_write(thread, action, app=APP, not_enabled=_NOT_ENABLED, plain=_plain)


def _plain(reason: str) -> str:
    """A replica's reason ("voting_ballot: you were not ...") as a sentence for a person."""
    for table in ("voting_poll", "voting_ballot", "voting_close", "voting_dealing"):
        reason = reason.removeprefix(table + ": ")
    reason = reason.removeprefix("voting_partial: ")
    return reason[:1].upper() + reason[1:] if reason else "The thread refused this."


def _members(thread: Thread) -> dict[bytes, str]:
    """The thread's members now (member key -> role), as this node's replica has them."""
    state = thread_database(thread.thread).replica().control.state
    return {m: s.role for m, s in state.members.items() if s.active}


def _clean_options(options: Sequence[Any]) -> list[str]:
    if isinstance(options, str) or not isinstance(options, Sequence):
        raise ThreadServiceError("invalid", "the options are a list of a few words each")
    cleaned = [" ".join(str(o).split()) for o in options]
    cleaned = [o for o in cleaned if o]
    if not MIN_OPTIONS <= len(cleaned) <= MAX_OPTIONS:
        raise ThreadServiceError(
            "invalid", f"a poll has {MIN_OPTIONS} to {MAX_OPTIONS} options (one per line)"
        )
    if any(len(o) > MAX_OPTION for o in cleaned):
        raise ThreadServiceError("invalid", f"an option holds at most {MAX_OPTION} characters")
    if len({o.casefold() for o in cleaned}) != len(cleaned):
        raise ThreadServiceError("invalid", "each option appears once")
    return cleaned


def default_roles(thread: Thread) -> list[str]:
    """Who votes unless the creator says otherwise: every role but readers."""
    from apps.core.threads.selectors import thread_roles

    return [role for role in thread_roles(thread) if role != READER]


def poll_open(
    *,
    thread: Thread,
    question: str,
    options: Sequence[str],
    method: str = "single",
    description: str = "",
    roles: Sequence[str] | None = None,
    quorum: int = 0,
    results_visible: bool = True,
    secret: bool = False,
    trustees: Sequence[str] = (),
    threshold: int | None = None,
    ends_at: datetime | None = None,
) -> Poll:
    """Open a poll. Its electorate is frozen now: the members holding ``roles`` (every role but
    readers unless given). A secret poll names its trustees (members) and how many of them are
    needed to count; their nodes set up its key, and voting starts once all have."""
    _writable(thread)
    question = " ".join(str(question).split())
    if not question or len(question) > MAX_QUESTION:
        raise ThreadServiceError(
            "invalid", f"a poll asks a question of 1 to {MAX_QUESTION} characters"
        )
    description = str(description or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise ThreadServiceError(
            "invalid", f"a description holds at most {MAX_DESCRIPTION} characters"
        )
    if method not in METHODS:
        raise ThreadServiceError("invalid", "the method is single, approval, ranked or score")
    members = _members(thread)
    all_roles = set(members.values()) | set(default_roles(thread)) | {READER}
    chosen = list(dict.fromkeys(roles)) if roles else default_roles(thread)
    unknown = [r for r in chosen if r not in all_roles]
    if unknown:
        raise ThreadServiceError("invalid", f"this thread has no role called {unknown[0]}")
    electorate = sorted(m.hex() for m, role in members.items() if role in chosen)
    if not electorate:
        raise ThreadServiceError("invalid", "nobody in this thread holds the roles chosen to vote")
    trustee_list: list[str] = []
    if secret:
        trustee_list = list(dict.fromkeys(str(t).lower() for t in trustees))
        if any(bytes.fromhex(t) not in members for t in trustee_list if _is_hex(t)) or not all(
            _is_hex(t) for t in trustee_list
        ):
            raise ThreadServiceError("invalid", "every trustee is a member of this thread")
        threshold = threshold if threshold is not None else len(trustee_list) // 2 + 1
    if ends_at is not None:
        if timezone.is_naive(ends_at):
            raise ThreadServiceError("invalid", "a planned end says its time zone")
        if ends_at > timezone.now() + timedelta(days=MAX_PLAN_DAYS):
            raise ThreadServiceError("invalid", f"a poll ends at most {MAX_PLAN_DAYS} days ahead")
        if ends_at <= timezone.now():
            raise ThreadServiceError("invalid", "a planned end is in the future")
    fields = {
        "question": question,
        "description": description,
        "options": json.dumps(_clean_options(options)),
        "method": method,
        "roles": json.dumps(chosen),
        "electorate": json.dumps(electorate),
        "quorum": int(quorum or 0),
        "results_visible": bool(results_visible) and not secret,
        "secret": bool(secret),
        "trustees": json.dumps(trustee_list),
        "threshold": int(threshold or 0) if secret else 0,
        "ends_at": ends_at,
    }
    try:
        poll_shape(uuid.uuid4().hex, fields)
    except PollProblem as exc:
        raise ThreadServiceError("invalid", _plain(str(exc))) from None
    poll = _write(thread, lambda: Poll.objects.create(**fields))
    if ends_at is not None:
        from apps.voting.tasks import polls_due

        polls_due.apply_async(args=[thread.id], eta=ends_at)
    duties(thread=thread)  # a trustee's own key share, at once
    return poll


def _is_hex(value: str) -> bool:
    try:
        return len(bytes.fromhex(value)) == 32
    except ValueError:
        return False


def _poll(thread: Thread, poll_id: str | uuid.UUID) -> selectors.PollView:
    view = selectors.poll(thread, str(getattr(poll_id, "hex", poll_id)))
    if view is None:
        raise ThreadServiceError("not_found", "there is no such poll in this thread")
    return view


def _me(thread: Thread) -> bytes:
    return bytes.fromhex(thread.member_id)


def _secret_choices(method: str, options: int, ballot: Mapping[str, Any]) -> list[int]:
    picked = [ballot["choice"]] if method == "single" else list(ballot["choices"])
    return [1 if i in picked else 0 for i in range(options)]


def ballot_cast(*, thread: Thread, poll_id: str | uuid.UUID, ballot: Mapping[str, Any]) -> Ballot:
    """Cast (or replace) this member's ballot: ``{"choice": i}``, ``{"choices": [...]}``,
    ``{"ranking": [...]}`` or ``{"scores": [...]}`` by the poll's method."""
    poll = _poll(thread, poll_id)
    shape = poll.shape
    if poll.state == selectors.CLOSED:
        raise ThreadServiceError("conflict", "this poll is closed")
    if poll.state == selectors.WAITING_KEY:
        raise ThreadServiceError(
            "conflict", "this secret poll waits for its trustees to set up its key"
        )
    if not poll.voter:
        raise ThreadServiceError("forbidden", rules.NOT_VOTER[:1].upper() + rules.NOT_VOTER[1:])
    problem = ballot_problem(shape.method, len(shape.options), ballot)
    if problem:
        raise ThreadServiceError("invalid", problem)
    pk = uuid.UUID(hex=rules.ballot_id(_me(thread), shape.pk))
    fields: dict[str, Any] = {"poll": uuid.UUID(hex=shape.pk), "choice": "", "sealed": b""}
    if shape.secret:
        dealings = _dealings(thread, shape)
        key = crypto.poll_key(dealings)
        choices = _secret_choices(shape.method, len(shape.options), ballot)
        fields["sealed"] = crypto.ballot_make(
            ballot_context(shape.pk, _me(thread)), key, choices, shape.exactly_one
        )
    else:
        fields["choice"] = ballot_json(ballot)

    def cast() -> Ballot:
        found, _ = Ballot.objects.update_or_create(pk=pk, defaults=fields)
        return found

    return _write(thread, cast)


def _dealings(thread: Thread, shape) -> list[bytes]:
    with thread_context(thread.thread):
        rows = {d.id.hex: bytes(d.dealing) for d in Dealing.objects.filter(poll=shape.pk)}
    found = [rows.get(rules.dealing_id(t, shape.pk)) for t in shape.trustee_keys()]
    if any(d is None for d in found):
        raise ThreadServiceError(
            "conflict", "this secret poll waits for its trustees to set up its key"
        )
    return found  # type: ignore[return-value]


def ballot_withdraw(*, thread: Thread, poll_id: str | uuid.UUID) -> None:
    poll = _poll(thread, poll_id)
    if poll.state == selectors.CLOSED:
        raise ThreadServiceError("conflict", "this poll is closed")
    pk = uuid.UUID(hex=rules.ballot_id(_me(thread), poll.id))
    with thread_context(thread.thread):
        ballot = Ballot.objects.filter(pk=pk).first()
    if ballot is None:
        raise ThreadServiceError("not_found", "you have not voted in this poll")
    _write(thread, ballot.delete)


def poll_close(*, thread: Thread, poll_id: str | uuid.UUID) -> None:
    """Close a poll now (its creator only): every replica refuses the ballots this node had not
    seen, and the result is computed from the rest."""
    poll = _poll(thread, poll_id)
    if poll.state == selectors.CLOSED:
        raise ThreadServiceError("conflict", "this poll is already closed")
    if not poll.mine:
        raise ThreadServiceError("forbidden", "only the poll's creator closes it")
    pk = uuid.UUID(hex=rules.close_id(_me(thread), poll.id))
    _write(
        thread,
        lambda: Close.objects.create(pk=pk, scope=uuid.UUID(hex=poll.id), ballots=poll.turnout),
    )
    duties(thread=thread)


def polls_due(*, thread: Thread, now: datetime | None = None) -> list[str]:
    """Close this member's polls whose planned end has come. Run by the task at each end, and
    whenever the polls are read (a task lost with a restart of the node is made good then)."""
    if thread.state != Thread.State.ACTIVE or not selectors.enabled(thread):
        return []
    now = now or timezone.now()
    me = _me(thread)
    # One query for the polls whose end has passed; only this member's, not yet closed.
    with thread_context(thread.thread):
        ended = [p.id for p in Poll.objects.filter(ends_at__lte=now) if is_owned_by(p.id.hex, me)]
        closed = set(Close.objects.filter(scope__in=ended).values_list("scope", flat=True))
    done = []
    for pk in ended:
        if pk in closed:
            continue
        try:
            poll_close(thread=thread, poll_id=pk.hex)
        except ThreadServiceError:
            continue
        done.append(pk.hex)
    return done


def duties(*, thread: Thread) -> list[str]:
    """A trustee's part, done when due: its key share for each secret poll naming it, and its
    partial decryption once the poll is closed. Returns the polls it wrote for. Cheap when there
    is nothing to do: one look at the secret polls and this member's rows."""
    if thread.state != Thread.State.ACTIVE or not thread.member_id:
        return []
    try:
        if not selectors.enabled(thread):
            return []
        due = _due(thread)
    except Exception:
        return []
    done = []
    # One run at a time in this process (a page read and the worker may both get here): the
    # second finds the rows written and does nothing.
    with _duties_lock:
        for shape, index, closed in _due(thread) if due else ():
            try:
                if _deal(thread, shape) or (closed and _decrypt(thread, shape, index)):
                    done.append(shape.pk)
            except (ThreadServiceError, crypto.CryptoError):
                continue  # the poll's page says what waits; tried again at the next change
    return done


def _due(thread: Thread) -> list[tuple[PollShape, int, bool]]:
    """The secret polls naming this member as a trustee that still wait for its key share, or
    (closed) for its partial decryption."""
    me = thread.member_id
    with thread_context(thread.thread):
        candidates = list(Poll.objects.filter(secret=True, trustees__contains=me))
        if not candidates:
            return []
        ids = [p.id for p in candidates]
        mine = {
            *(d.hex for d in Dealing.objects.filter(poll__in=ids).values_list("id", flat=True)),
            *(d.hex for d in Partial.objects.filter(poll__in=ids).values_list("id", flat=True)),
        }
        closed = {
            c.hex for c in Close.objects.filter(scope__in=ids).values_list("scope", flat=True)
        }
    found = []
    for row in candidates:
        try:
            shape = poll_shape(row.id.hex, selectors.poll_row(row))
        except PollProblem:
            continue
        if me not in shape.trustees:
            continue
        dealt = rules.dealing_id(_me(thread), shape.pk) in mine
        decrypted = rules.partial_id(_me(thread), shape.pk) in mine
        is_closed = shape.pk in closed
        if not dealt or (is_closed and not decrypted):
            found.append((shape, shape.trustees.index(me) + 1, is_closed))
    return found


def _deal(thread: Thread, shape: PollShape) -> bool:
    pk = uuid.UUID(hex=rules.dealing_id(_me(thread), shape.pk))
    with thread_context(thread.thread):
        if Dealing.objects.filter(pk=pk).exists():
            return False
    dealing = crypto.dealing_make(poll_context(shape.pk), shape.threshold, shape.trustee_keys())
    _write(
        thread, lambda: Dealing.objects.create(pk=pk, poll=uuid.UUID(hex=shape.pk), dealing=dealing)
    )
    return True


def _decrypt(thread: Thread, shape: PollShape, index: int) -> bool:
    pk = uuid.UUID(hex=rules.partial_id(_me(thread), shape.pk))
    with thread_context(thread.thread):
        if Partial.objects.filter(pk=pk).exists():
            return False
        sealed = [bytes(b.sealed) for b in Ballot.objects.filter(poll=shape.pk)]
    dealings = _dealings(thread, shape)
    context = poll_context(shape.pk)
    share = crypto.share_open(
        context, shape.threshold, shape.trustee_keys(), dealings, index, member_key(thread)
    )
    total = crypto.aggregate(sealed, len(shape.options))
    partial = crypto.partial_make(context, total, share, index)
    _write(
        thread, lambda: Partial.objects.create(pk=pk, poll=uuid.UUID(hex=shape.pk), partial=partial)
    )
    return True
