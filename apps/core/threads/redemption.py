"""The admitting node's check of an invite redemption, before anything is written (DESIGN §9).

Writing the redeem op and letting this node's replica refuse it would do, but a refusal rolls the
thread's transaction back, and the replica cached in memory is then reloaded from the whole log:
anyone holding nothing but a made-up invite could make a node do that at will. So a request is
checked here against the current control state (cheap, under the thread's lock), and refused
with its reason and nothing written; only a request that passes is written, and the replica
still decides it like any op (a concurrent change may still refuse it there).

The answers, in the order they are checked:

- the invite is unknown here, or the proof (the invite key's signature over the newcomer's keys)
  does not verify: ``unknown``, with the exact words a node gives for a thread it does not have
  (``NOT_HERE``), so that nobody without the invite secret learns whether this node is in the
  thread;
- the same newcomer (invite, member and device) was admitted already, by this node or another:
  ``again``, nothing to write; the caller answers "admitted" and sends the log once more, so a
  joiner whose answer was lost can always finish its join;
- revoked, used by someone else (a multi-use invite: used up), expired by this node's clock, its
  creator no longer allowed to invite at its role, or (a multi-use invite) its role no longer
  open to such invites: ``revoked`` / ``used`` / ``expired``;
- this node's member may not admit at the invite's role: ``forbidden``;
- the member or the device is in the thread already: ``conflict``; keys or certificate invalid:
  ``forbidden``;
- the member was in the thread and left (or was removed) after the invite was made: ``used``
  (coming back takes an invite made since, ``thread.rejoin``).
"""

from __future__ import annotations

import threading
from typing import Literal

from apps.core.thread import crypto, keys
from apps.core.thread.control import Timeline
from apps.core.thread.invite import redemption_proof_verify
from apps.core.thread.rejoin import rejoin_problem
from apps.core.thread.state import ThreadState
from apps.core.thread.writer import RedemptionRequest

NOT_HERE = "this node knows no such invite"
USED_UP = "this invite was used up"
MADE_BEFORE = (
    "you left this thread (or were removed) after this invite was made: ask a member for a "
    "new invite"
)

Verdict = Literal["admit", "again"]


class RedemptionRefused(Exception):
    """A redemption this node refuses; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def not_here() -> RedemptionRefused:
    """The one answer for "no such invite here", whatever the reason."""
    return RedemptionRefused("unknown", NOT_HERE)


def _verifies(check, *args: bytes) -> bool:
    try:
        check(*args)
    except Exception:  # any failure to verify (bad signature, bad key) is "does not verify"
        return False
    return True


def redemption_check(
    thread: bytes,
    state: ThreadState,
    request: RedemptionRequest,
    *,
    admitter: bytes,
    now_ms: int,
    timeline: Timeline,
) -> Verdict:
    """Whether this node (whose member is ``admitter``) admits ``request`` now: ``admit``
    (write it), ``again`` (admitted already: nothing to write), or ``RedemptionRefused``.
    ``state`` and ``timeline`` are the thread's control state and its history."""
    invite = state.invites.get(request.invite)
    if invite is None:
        raise not_here()
    if not _verifies(
        redemption_proof_verify,
        thread,
        request.invite,
        request.member,
        request.device,
        request.proof,
    ):
        raise not_here()
    if request.member in invite.redeemers and state.device_member(request.device) == request.member:
        return "again"
    if invite.status == "revoked":
        raise RedemptionRefused("revoked", "the invite was revoked")
    if invite.status == "redeemed":
        raise RedemptionRefused("used", "the invite was already used")
    if invite.status == "used up":
        raise RedemptionRefused("used", USED_UP)
    if now_ms >= invite.expiry:
        raise RedemptionRefused("expired", "the invite has expired")
    policy = state.policy
    creator_role = state.role_of(invite.creator)
    if creator_role is None or not policy.may_invite(creator_role, invite.role):
        raise RedemptionRefused(
            "revoked", "the invite lost its force: its creator may no longer invite at its role"
        )
    if invite.uses != 1 and invite.role not in policy.open_roles():
        raise RedemptionRefused(
            "revoked",
            "the invite lost its force: the thread no longer lets a link for several people "
            f"make anyone {invite.role}",
        )
    my_role = state.role_of(admitter)
    if my_role is None or not policy.may_invite(my_role, invite.role):
        raise RedemptionRefused(
            "forbidden", f"this node's member may not admit members at role {invite.role!r}"
        )
    if state.role_of(request.member) is not None:
        raise RedemptionRefused("conflict", "already a member")
    if rejoin_problem(timeline, request.member, None, request.invite) is not None:
        raise RedemptionRefused("used", MADE_BEFORE)
    if state.device_member(request.device) is not None:
        raise RedemptionRefused("conflict", "the device is already certified")
    if not (crypto.public_key_valid(request.member) and crypto.public_key_valid(request.device)):
        raise RedemptionRefused("forbidden", "not valid public keys")
    if not _verifies(
        keys.device_cert_verify, thread, request.member, request.device, request.device_cert
    ):
        raise RedemptionRefused("forbidden", "the newcomer's device certificate does not verify")
    return "admit"


_admission_locks: dict[bytes, threading.Lock] = {}
_admission_locks_guard = threading.Lock()


def admission_lock(thread: bytes) -> threading.Lock:
    """Held around checking and writing an admission to ``thread`` (one at a time per thread on
    this node): newcomers racing for an invite's last uses are each checked against the
    admissions before them, so the ones too late are told "used up" with nothing written. (Only
    threads this node is active in get here, so the locks are few.)"""
    with _admission_locks_guard:
        return _admission_locks.setdefault(thread, threading.Lock())
