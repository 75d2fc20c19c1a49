"""Coming back: when a member who left (or was removed) may be admitted again.

A departed member is not a member (``role_of`` is None), so an admission of it is judged like a
newcomer's, plus one rule: it must come from someone who knew of the departure. The admission
op must have the departure in its causal past, and so must the invite it redeems (an invite
made since). So a leaver cannot come back with the invite it joined with, nor with an open link
it saw while it was a member, nor through an admitter who had not yet heard that it left: it
takes a new invite, made by someone who may invite, after the departure.

Pure in the fold's timeline: every replica decides alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.core.thread.op import Op

if TYPE_CHECKING:
    from apps.core.thread.control import Timeline

NOT_SEEN = "the admission was written by someone who had not seen this member leave"
OLD_INVITE = "the invite was made before this member left (coming back takes an invite made since)"


def departure(timeline: Timeline, member: bytes) -> Op | None:
    """The op of ``member``'s latest departure (leave or removal), if its latest membership
    event is one; None for a member that never departed, or was admitted again since."""
    events = timeline.member_events.get(member)
    if not events:
        return None
    op, role = events[-1]
    return op if role is None else None


def _saw(op: Op, event: Op) -> bool:
    return op is event or op.in_past(event.device, event.seq)


def rejoin_problem(
    timeline: Timeline, member: bytes, admission: Op | None, invite: bytes | None
) -> str | None:
    """Why ``member`` may not be admitted again by ``admission`` (None: the admission op is
    not written yet, as when a node checks a request) redeeming ``invite`` (None: a direct
    admission); None when nothing stands in the way, or it never departed."""
    left = departure(timeline, member)
    if left is None:
        return None
    if admission is not None and not _saw(admission, left):
        return NOT_SEEN
    if invite is not None:
        made = timeline.invites_made.get(invite)
        if made is None or not _saw(made, left):
            return OLD_INVITE
    return None
