"""Leaving a thread so that the others know it (issue 11).

A leave is a signed control op like any other; what is special is who is left to carry it.
The leaver's node stops taking part in the thread at once (nothing more is ingested, nothing
more is served) except for the leave itself: until another member's device is known to hold
it, the thread stays *leaving* on this node (``Thread.problem`` says so, in words), and the p2p
node pushes the leave to the member devices, answers their syncs with what led up to it, and
nothing after (``threads_io``). The first device known to hold it ends that
(``leave_delivered``); the others hear of it from that device, as of any op.

The members who stay rotate the thread's keys, as the remover does after a removal: a node
whose member could have removed the leaver (a higher role that manages members) and may rotate
starts a new epoch sealed to everyone still in, as soon as it takes in the leave
(``rotate_after_leave``). Until then nobody can write in the old epoch anyway: a writer finds
it sealed to someone gone and rotates first (``ThreadWriter``).
"""

from __future__ import annotations

import logging

from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.thread.control import ControlResolution
from apps.core.thread.op import Op
from apps.core.thread.rejoin import departure
from apps.core.thread.replica import Replica
from apps.core.thread.writer import WriteError
from apps.core.threads.database import ThreadDatabase, WriteRefused

logger = logging.getLogger(__name__)

# ``Thread.problem`` of a thread this node left while no other member's device is known to hold
# the leave: the p2p node delivers it at the next contact.
LEAVE_PENDING = (
    "The other members have not heard that you left yet: this node tells them as soon as it "
    "reaches one of their nodes."
)


def leave_op(replica: Replica, member: bytes) -> Op | None:
    """The leave op that ended ``member``'s membership, if it left (and was not removed, or
    admitted again, since)."""
    control = replica.control
    return departure(control.timeline, member) if _left(control, member) else None


def leaves_pending() -> list[bytes]:
    """The threads this node left whose leave no other member's device is known to hold."""
    rows = Thread.objects.filter(state=Thread.State.LEFT, problem=LEAVE_PENDING)
    return [bytes.fromhex(pk) for pk in rows.values_list("pk", flat=True)]


def leave_pending(thread: bytes) -> bytes | None:
    """This party's member key in ``thread`` if this node left it and the leave still has to
    reach another member's device; else None."""
    row = (
        Thread.objects.filter(pk=thread.hex(), state=Thread.State.LEFT, problem=LEAVE_PENDING)
        .values_list("member_id", flat=True)
        .first()
    )
    return bytes.fromhex(row) if row else None


def leave_delivered(thread: bytes) -> None:
    """Another member's device holds this node's leave of ``thread``: the others will hear of
    it from there; this node is done with the thread."""
    Thread.objects.filter(pk=thread.hex(), state=Thread.State.LEFT, problem=LEAVE_PENDING).update(
        problem=""
    )


def _role_before(control: ControlResolution, member: bytes) -> str | None:
    """The role ``member`` held before its latest membership event."""
    events = control.timeline.member_events.get(member, [])
    return next((role for _op, role in reversed(events[:-1]) if role is not None), None)


def rotation_due(control: ControlResolution, me: bytes) -> bool:
    """Whether this member's node starts a new key epoch now: the newest epoch is sealed to
    someone who left (every key op of it is), and ``me`` could have removed that member and may
    rotate. Concurrent rotations are harmless (an epoch may have several keys ops)."""
    state, timeline = control.state, control.timeline
    policy = state.policy
    role = state.role_of(me)
    if role is None or not policy.roles[role].rotate or control.opaque:
        return False
    newest = max((e.epoch for e in timeline.keys_events), default=0)
    gone: set[bytes] = set()
    for event in timeline.keys_events:
        if event.epoch != newest:
            continue
        departed = {m for m in event.sealed if state.role_of(m) is None}
        if not departed:
            return False  # someone rotated already
        gone |= departed
    return any(
        _left(control, member) and policy.may_manage(role, _role_before(control, member) or "")
        for member in gone
    )


def _left(control: ControlResolution, member: bytes) -> bool:
    """Whether ``member``'s latest departure is its own leave (after a removal, the remover
    rotates)."""
    gone = departure(control.timeline, member)
    return gone is not None and isinstance(control.actions.get(gone.hash), p.Leave)


def rotate_after_leave(database: ThreadDatabase, me: bytes) -> bool:
    """Start a new key epoch without the members who left, if this node is one that does
    (``rotation_due``). True when it wrote one."""
    with database.lock:
        if not rotation_due(database.replica().control, me):
            return False

    def rotate(writer):
        # Checked again in the write's transaction: another write may have rotated meanwhile.
        return writer.rotate() if rotation_due(writer.replica.control, me) else None

    try:
        return database.write(rotate) is not None
    except (WriteRefused, WriteError) as exc:
        logger.warning("thread %s: rotating after a leave failed: %s", database.thread.hex(), exc)
        return False
