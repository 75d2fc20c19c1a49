"""The only writers of the identity app's achievement rows (ADR 26). Each write is one
transaction of the thread's database and so one signed op, which this node's replica judges at
once by the rules (``rules.py``) like every replica will: a refusal is an error here, with the
reason in words, and nothing is kept.

Errors are ``IdentityError(code, words)``; the codes map to API statuses: ``invalid`` (400),
``forbidden`` (403), ``not_found`` (404), ``conflict``, ``not_enabled`` and ``refused`` (409).
What is checked here first is what a person can get wrong (a witness attesting twice, a judge
who is not one); the rules check it again on every replica, whatever node wrote the row."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from typing import Any, TypeVar

from django.utils import timezone

from apps.core.models import Thread
from apps.core.thread.policy import ADMIN, default_policy
from apps.core.thread.rowid import is_owned_by
from apps.core.threads.app_kit import app_enabled, app_writable, app_write, member_key
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.identity import evidence as evidence_files
from apps.identity import formats, standing
from apps.identity.models import (
    MAX_DESCRIPTION,
    MAX_FEAT,
    MAX_LABEL,
    MAX_NAME,
    MAX_NOTE,
    MAX_PLACE,
    MAX_TITLE,
    Accept,
    Attestation,
    Authority,
    Challenge,
    Claim,
    Judgement,
    Kind,
    Outcome,
    Retraction,
    Setting,
)
from apps.identity.policy import APP

T = TypeVar("T")
ADMIN_RANK = default_policy().rank(ADMIN)
VERDICTS = ("witnessed", "disputed")
WINNERS = ("challenger", "defendant")
MODES = ("judges", "poll")
MAX_JUDGES = 9
MAX_WITNESSES = 50  # k
MAX_FLAG_AFTER = 50
VOTING = "voting"
READER = "reader"
_NOT_ENABLED = (
    "achievements are not enabled in this thread: an owner or admin enables the identity app first"
)
_TABLES = sorted(
    (
        "identity_shared_field",
        "identity_kind",
        "identity_setting",
        "identity_authority",
        "identity_claim",
        "identity_attestation",
        "identity_retraction",
        "identity_challenge",
        "identity_accept",
        "identity_judgement",
        "identity_outcome",
        "voting_poll",
    ),
    key=len,
    reverse=True,
)


class IdentityError(ThreadServiceError):
    """An achievement action that cannot be done: ``code`` for the API, words for people."""


def _plain(reason: str) -> str:
    """A replica's reason ("identity_attestation: the subject ...") as a sentence."""
    for table in _TABLES:
        reason = reason.removeprefix(table + ": ")
    return reason[:1].upper() + reason[1:] if reason else "The thread refused this."


def _write(thread: Thread, action: Callable[[], T]) -> T:
    try:
        return app_write(thread, action, app=APP, not_enabled=_NOT_ENABLED, plain=_plain)
    except IdentityError:
        raise
    except ThreadServiceError as exc:
        raise IdentityError(exc.code, str(exc)) from exc


def _writable(thread: Thread) -> None:
    try:
        app_writable(thread, APP, _NOT_ENABLED)
    except ThreadServiceError as exc:
        raise IdentityError(exc.code, str(exc)) from exc


def identity_enable(*, thread: Thread) -> None:
    """Enable the identity app in a thread (a control op: owner and admins only)."""
    from apps.core.threads.thread_apps import app_enable

    if thread.state != Thread.State.ACTIVE:
        raise IdentityError("forbidden", f"you can no longer write in {thread.name}")
    try:
        app_enable(thread=thread, app=APP)
    except ThreadServiceError as exc:
        raise IdentityError(exc.code, str(exc)) from exc


# -- small checks ------------------------------------------------------------------------------


def _me(thread: Thread) -> bytes:
    return bytes.fromhex(thread.member_id)


def _id(value: str | uuid.UUID | None, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(hex=str(value))
    except ValueError:
        raise IdentityError("invalid", f"that is not a {what} of this thread") from None


def _text(value: Any, what: str, limit: int, *, required: bool = False, line: bool = True) -> str:
    text = str(value or "")
    text = " ".join(text.split()) if line else text.strip()
    if required and not text:
        raise IdentityError("invalid", f"{what} is needed")
    if len(text) > limit:
        raise IdentityError("invalid", f"{what} holds at most {limit} characters")
    if "\x00" in text:
        raise IdentityError("invalid", f"{what} cannot contain NUL characters")
    return text


def _state(thread: Thread):
    return thread_database(thread.thread).replica().control.state


def members_now(thread: Thread) -> dict[str, str]:
    """The thread's active members (hex) -> role, as this node's replica has them."""
    return {m.hex(): s.role for m, s in _state(thread).members.items() if s.active}


def is_manager(thread: Thread) -> bool:
    state = _state(thread)
    try:
        return state.policy.rank(state.role_of(_me(thread))) >= ADMIN_RANK
    except Exception:
        return False


def _manager(thread: Thread, what: str) -> None:
    _writable(thread)
    if not is_manager(thread):
        raise IdentityError("forbidden", f"only the thread's owner and admins {what}")


def _member(thread: Thread, member: str, what: str) -> str:
    member = str(member or "").strip().lower()
    if member not in members_now(thread):
        raise IdentityError("invalid", f"{what} is not a member of this thread")
    return member


def _author(thread: Thread, pk: uuid.UUID | str) -> str:
    """The member whose id ``pk`` names, hex ("" if this node does not know them)."""
    from apps.core.threads.app_kit import row_owners

    return row_owners(thread).get(_id(pk, "row").hex[20:], "")


def _get(thread: Thread, model: type, pk: uuid.UUID) -> Any:
    with thread_context(thread.thread):
        return model.objects.filter(pk=pk).first()


def _alias(thread: Thread) -> str:
    return thread_database(thread.thread).alias


# -- settings: kinds, witnesses needed, authorities --------------------------------------------


def _slug(value: str) -> str:
    slug = str(value or "").strip().lower()
    if (
        not slug
        or len(slug) > MAX_NAME
        or not all(c.isascii() and (c.isalnum() or c == "-") for c in slug)
    ):
        raise IdentityError(
            "invalid",
            f"a kind's name is 1 to {MAX_NAME} lowercase letters, digits or dashes (like marathon)",
        )
    return slug


def kinds_active(thread: Thread) -> dict[str, str]:
    """The kinds in use: slug -> label (a kind any manager's row keeps unretired)."""
    with thread_context(thread.thread):
        rows = list(Kind.objects.filter(retired=False).order_by("id"))
    found: dict[str, str] = {}
    for row in rows:
        found.setdefault(row.slug, row.label)
    return found


def kind_add(*, thread: Thread, slug: str, label: str = "") -> str:
    """Add a kind of achievement the thread keeps; returns its row id."""
    _manager(thread, "add kinds of achievement")
    slug = _slug(slug)
    label = _text(label, "a kind's label", MAX_LABEL) or slug.replace("-", " ").capitalize()
    if slug in kinds_active(thread):
        raise IdentityError("conflict", f"this thread already keeps the kind {slug}")
    pk = _id(formats.kind_id(_me(thread), slug), "kind")
    existing = _get(thread, Kind, pk)

    def add() -> None:
        if existing is not None:
            Kind.objects.filter(pk=pk).update(retired=False, label=label)
        else:
            Kind.objects.create(pk=pk, slug=slug, label=label)

    _write(thread, add)
    return pk.hex


def kind_retire(*, thread: Thread, slug: str) -> None:
    """No new claims of this kind (claims made stay)."""
    _manager(thread, "retire kinds of achievement")
    slug = _slug(slug)
    if slug not in kinds_active(thread):
        raise IdentityError("not_found", f"this thread keeps no kind called {slug}")
    _write(thread, lambda: Kind.objects.filter(slug=slug, retired=False).update(retired=True))


def settings_set(*, thread: Thread, witnesses: int, flag_after: int) -> str:
    """Change the witnesses needed (k) and the flag threshold: the next row of the chain."""
    _manager(thread, "change the witnesses needed")
    try:
        k, flag = int(witnesses), int(flag_after)
    except (TypeError, ValueError):
        raise IdentityError(
            "invalid", "the witnesses needed and the flag threshold are whole numbers"
        ) from None
    if not 1 <= k <= MAX_WITNESSES:
        raise IdentityError("invalid", f"the witnesses needed are 1 to {MAX_WITNESSES}")
    if not 1 <= flag <= MAX_FLAG_AFTER:
        raise IdentityError(
            "invalid",
            f"a witness is flagged after 1 to {MAX_FLAG_AFTER} retracted or overturned words",
        )
    with thread_context(thread.thread):
        last = Setting.objects.order_by("-seq").values_list("seq", flat=True).first()
    seq = (last or 0) + 1
    pk = _id(formats.setting_id(_me(thread), seq), "setting")
    _write(thread, lambda: Setting.objects.create(pk=pk, seq=seq, witnesses=k, flag_after=flag))
    return pk.hex


def _trusted(thread: Thread, kind: str, member: str) -> list[Authority]:
    with thread_context(thread.thread):
        return list(Authority.objects.filter(kind=kind, member=member, revoked=False))


def authority_add(*, thread: Thread, kind: str, member: str) -> str:
    """Trust ``member`` for ``kind``: one attestation of theirs verifies a claim of that kind."""
    _manager(thread, "name trusted authorities")
    kind = _slug(kind)
    if kind not in kinds_active(thread):
        raise IdentityError("invalid", f"this thread keeps no kind called {kind}")
    member = _member(thread, member, "the authority")
    if _trusted(thread, kind, member):
        raise IdentityError("conflict", "this member is already trusted for that kind")
    pk = _id(formats.authority_id(_me(thread), kind, member), "authority")
    if _get(thread, Authority, pk) is not None:
        raise IdentityError(
            "conflict", "you revoked this member's trust for that kind; a revocation is final"
        )
    _write(thread, lambda: Authority.objects.create(pk=pk, kind=kind, member=member))
    return pk.hex


def authority_revoke(*, thread: Thread, kind: str, member: str) -> None:
    _manager(thread, "revoke trusted authorities")
    kind, member = _slug(kind), str(member or "").strip().lower()
    if not _trusted(thread, kind, member):
        raise IdentityError("not_found", "this member is not trusted for that kind")
    _write(
        thread,
        lambda: Authority.objects.filter(kind=kind, member=member, revoked=False).update(
            revoked=True
        ),
    )


# -- claims ------------------------------------------------------------------------------------


def _event_date(value: str) -> str:
    value = str(value or "").strip()
    if not value:
        return ""
    try:
        return date.fromisoformat(value).isoformat() if len(value) == 10 else _bad_date()
    except ValueError:
        return _bad_date()


def _bad_date() -> str:
    raise IdentityError("invalid", "the event's date is a day like 2026-05-17")


def claim_make(
    *,
    thread: Thread,
    kind: str,
    title: str,
    description: str = "",
    event_date: str = "",
    place: str = "",
    files: Sequence[Any] = (),
) -> str:
    """Claim an achievement (this member is its subject); returns the claim's id."""
    _writable(thread)
    kind = _slug(kind)
    if kind not in kinds_active(thread):
        raise IdentityError("invalid", f"this thread keeps no kind of achievement called {kind}")
    fields = {
        "kind": kind,
        "title": _text(title, "a claim's title", MAX_TITLE, required=True),
        "description": _text(description, "a description", MAX_DESCRIPTION, line=False),
        "event_date": _event_date(event_date),
        "place": _text(place, "the place", MAX_PLACE),
    }
    # The files are sealed as blobs first; the claim that describes them is the one op.
    try:
        described = evidence_files.seal_all(thread, list(files))
    except evidence_files.EvidenceError as exc:
        raise IdentityError("invalid", str(exc)) from None
    fields["evidence"] = json.dumps(described, separators=(",", ":"))
    return _write(thread, lambda: Claim.objects.create(**fields)).pk.hex


def _claim(thread: Thread, claim: str | uuid.UUID) -> Claim:
    found = _get(thread, Claim, _id(claim, "claim"))
    if found is None:
        raise IdentityError("not_found", "there is no such claim in this thread")
    return found


def claim_withdraw(*, thread: Thread, claim: str) -> None:
    row = _claim(thread, claim)
    if not is_owned_by(row.pk.hex, _me(thread)):
        raise IdentityError("forbidden", "only the member who made a claim withdraws it")
    if row.withdrawn:
        raise IdentityError("conflict", "you have already withdrawn this claim")
    _write(thread, lambda: Claim.objects.filter(pk=row.pk).update(withdrawn=True))


def claim_columns(row: Claim) -> dict[str, Any]:
    return {name: getattr(row, name) for name in formats.CLAIM_COLUMNS}


def attest(*, thread: Thread, claim: str, verdict: str, note: str = "") -> str:
    """Say "I witnessed it" or "I dispute it", signed: the attestation's id."""
    _writable(thread)
    row = _claim(thread, claim)
    if verdict not in VERDICTS:
        raise IdentityError("invalid", "the verdict is witnessed or disputed")
    note = _text(note, "a note", MAX_NOTE)
    me = _me(thread)
    subject = _author(thread, row.pk)
    if subject == me.hex():
        raise IdentityError("forbidden", "you cannot attest your own claim")
    if row.withdrawn:
        raise IdentityError("conflict", "this claim was withdrawn")
    pk = _id(formats.attestation_id(me, row.pk.hex), "attestation")
    if _get(thread, Attestation, pk) is not None:
        raise IdentityError(
            "conflict", "you have already attested this claim (an attestation is made once)"
        )
    digest = formats.claim_digest(row.pk.hex, claim_columns(row))
    jws = formats.endorsement_jws(
        member_key(thread),
        digest=digest,
        subject=bytes.fromhex(subject),
        verdict=verdict,
        note=note,
        kind=row.kind,
        title=row.title,
    )
    values = {"claim": row.pk, "digest": digest.hex(), "verdict": verdict, "note": note, "jws": jws}
    _write(thread, lambda: Attestation.objects.create(pk=pk, **values))
    return pk.hex


def retract(*, thread: Thread, claim: str, reason: str = "") -> str:
    """Take back this member's attestation of ``claim`` (forward only: never undone)."""
    _writable(thread)
    row = _claim(thread, claim)
    attestation = _id(formats.attestation_id(_me(thread), row.pk.hex), "attestation")
    if _get(thread, Attestation, attestation) is None:
        raise IdentityError("not_found", "you have not attested this claim")
    pk = _id(formats.retraction_id(_me(thread), attestation.hex), "retraction")
    if _get(thread, Retraction, pk) is not None:
        raise IdentityError("conflict", "you have already retracted your attestation")
    reason = _text(reason, "a reason", MAX_NOTE)
    _write(thread, lambda: Retraction.objects.create(pk=pk, attestation=attestation, reason=reason))
    return pk.hex


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
