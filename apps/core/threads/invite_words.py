"""Invites in plain words: roles, who may still use an invite and until when, and why a join
was refused (said by this node whatever words the inviter's node sent with its answer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from apps.core.models import ThreadInvite
from apps.core.thread.invite import DAMAGED, EXPIRED, NEWER
from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER

ROLE_WORDS = {
    OWNER: "runs the thread",
    ADMIN: "reads, writes, invites and removes people",
    WRITER: "reads and writes",
    READER: "reads only",
}

REVOKED = (
    "This invite was revoked by the person who made it, so it no longer works. Ask them for a "
    "new one."
)
USED = (
    "This invite has already been used by as many people as it was made for. Ask the person "
    "who invited you for a new one."
)
UNKNOWN = (
    "The inviter's node does not know this invite. Some characters of the link may have been "
    "changed — copy the whole link again — or the invite no longer exists: ask for a new one."
)
FORBIDDEN = (
    "The inviter's node would not let you in with this invite: whoever made it may no longer "
    "invite people at its role. Ask them or another member for a new invite."
)
MEMBER_ALREADY = (
    "You are already a member of this thread (from another of your devices): there is no "
    "need to join it again."
)
OWN_INVITE = (
    "This invite was made on this node. Send it to the person you want to invite: they join "
    "with it on their own node."
)
# By the answer's code (the same codes whichever node sent it, or this one).
REFUSALS = {
    "malformed": DAMAGED,
    "version": NEWER,
    "expired": EXPIRED,
    "revoked": REVOKED,
    "used": USED,
    "unknown": UNKNOWN,
    "forbidden": FORBIDDEN,
}


def refusal_words(code: str, detail: str) -> str:
    """A refused join in plain words; ``detail`` (which may come from another node) only picks
    among this node's own words, and is shown as it is only for network trouble."""
    if code == "conflict":
        return OWN_INVITE if "made by this node" in detail else MEMBER_ALREADY
    return REFUSALS.get(code, detail)


def role_words(role: str) -> str:
    """``writer (reads and writes)``; an app's own role by its name."""
    words = ROLE_WORDS.get(role)
    name = role.replace("_", " ")
    return f"{name} ({words})" if words else name


GRACE_SECONDS = 120


def expires_words(expires_at: datetime, now: datetime | None = None) -> str:
    """``expires in 6 days``, ``expires in 3 hours``, ``expired``: the largest whole unit.

    Counted with two minutes' grace: an invite made "for 7 days" and shown a few seconds later
    says 7 days, not 6 (a day later it says 6)."""
    left = (expires_at - (now or timezone.now())).total_seconds()
    if left <= 0:
        return "expired"
    for seconds, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        counted = left + GRACE_SECONDS if seconds > 60 else left
        if counted >= seconds:
            count = int(counted // seconds)
            return f"expires in {count} {unit}{'' if count == 1 else 's'}"
    return "expires in less than a minute"


def reach_words(uses: int | None, used: int) -> str:
    """Who may still use an invite: ``for one person``, ``7 of 10 places left``, ..."""
    if uses == 1:
        return "for one person"
    if uses is None:
        return f"for anyone with the link, {used} joined so far"
    return f"{max(uses - used, 0)} of {uses} places left"


@dataclass(frozen=True)
class InviteLine:
    """One of this node's open invites, as the thread page lists it."""

    invite_id: str
    label: str
    role: str
    reach: str
    expires: str
    made: datetime


def invite_lines(invites: list[ThreadInvite]) -> list[InviteLine]:
    now = timezone.now()
    return [
        InviteLine(
            invite_id=invite.invite_id,
            label=invite.label,
            role=role_words(invite.role),
            reach=reach_words(invite.uses, invite.used),
            expires=expires_words(invite.expires_at, now),
            made=invite.created_at,
        )
        for invite in invites
    ]
