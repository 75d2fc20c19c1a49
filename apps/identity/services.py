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
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any, TypeVar

from apps.core.models import Thread
from apps.core.thread.policy import ADMIN, default_policy
from apps.core.thread.rowid import is_owned_by
from apps.core.thread.state import ThreadState
from apps.core.threads.app_kit import app_writable, app_write, member_key
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.identity import evidence as evidence_files
from apps.identity import formats
from apps.identity.models import (
    MAX_DESCRIPTION,
    MAX_LABEL,
    MAX_NAME,
    MAX_NOTE,
    MAX_PLACE,
    MAX_TITLE,
    Attestation,
    Authority,
    Claim,
    Kind,
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


def _state(thread: Thread) -> ThreadState:
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


# The challenge services live in their own module; every caller keeps using ``services``.
from apps.identity.services_challenges import (  # noqa: E402
    RowsView,
    challenge_accept,
    challenge_make,
    decided,
    judge,
    outcome_record,
    outcomes_due,
)

__all__ = [
    "IdentityError",
    "RowsView",
    "attest",
    "authority_add",
    "authority_revoke",
    "challenge_accept",
    "challenge_make",
    "claim_make",
    "claim_withdraw",
    "decided",
    "identity_enable",
    "is_manager",
    "judge",
    "kind_add",
    "kind_retire",
    "kinds_active",
    "members_now",
    "outcome_record",
    "outcomes_due",
    "retract",
    "settings_set",
]
