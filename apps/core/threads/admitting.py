"""The admitting node's half of an invite: check a newcomer's redemption against the thread's
control state, then admit them with a new key epoch that includes them (``services`` re-exports
``invite_admit``; the p2p invite protocol calls it)."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.thread.writer import RedemptionRequest
from apps.core.threads.redemption import (
    NOT_HERE,
    RedemptionRefused,
    admission_lock,
    redemption_check,
)
from apps.core.threads.registry import thread_database
from apps.core.threads.service_base import ThreadServiceError, _now_ms, _write

# What the admitting node says when its replica refuses an admission the check let through
# (a concurrent change), by the refusal reason.
_ADMIT_REFUSALS = (
    ("revoked", "revoked"),
    ("already used", "used"),
    ("used up", "used"),
    ("no longer lets", "revoked"),
    ("expired", "expired"),
    ("lost its force", "revoked"),
)


def invite_admit(*, thread: Thread, request: RedemptionRequest) -> list[bytes]:
    """The admitting node's half: redeem the invite for the newcomer (one of its uses) and start
    a key epoch that includes them. Returns the ops written (none when this newcomer was
    admitted before: the log it is sent again holds them).

    The request is checked against the current control state first (``redemption``): a refusal
    writes nothing, so it costs no reload of the thread's replica. "No such invite" is one
    answer (``NOT_HERE``) whether the thread is unknown, not active or the invite unknown.
    Admissions to one thread are checked and written one at a time (``admission_lock``)."""
    if thread.state != Thread.State.ACTIVE:
        raise ThreadServiceError("unknown", NOT_HERE)
    with admission_lock(thread.thread):
        return _admit(thread, request)


def _admit(thread: Thread, request: RedemptionRequest) -> list[bytes]:
    database = thread_database(thread.thread)
    with database.lock:
        control = database.replica().control
        if control.opaque:
            # Some control op is unreadable here: who may be admitted cannot be known, and this
            # node never acts on a member list it cannot read (issue 9).
            raise ThreadServiceError(
                "unavailable",
                "this node cannot read all of the thread's membership changes right now; "
                "another member's node can admit you",
            )
        state = control.state
        try:
            verdict = redemption_check(
                thread.thread,
                state,
                request,
                admitter=bytes.fromhex(thread.member_id),
                now_ms=_now_ms(),
                timeline=control.timeline,
            )
        except RedemptionRefused as exc:
            raise ThreadServiceError(exc.code, str(exc)) from exc
    if verdict == "again":
        return []
    try:
        ops = _write(thread, lambda writer: writer.admit(request))
    except ThreadServiceError as exc:
        text = str(exc)
        if "unknown invite" in text:
            raise ThreadServiceError("unknown", NOT_HERE) from exc
        code = next((c for needle, c in _ADMIT_REFUSALS if needle in text), exc.code)
        raise ThreadServiceError(code, text) from exc
    return [op.raw for op in ops]
