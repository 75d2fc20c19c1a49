"""The joining node's record of a join under way (``Thread.State.JOINING``, DESIGN §9).

Redeeming an invite is two writes on two nodes: the inviter commits the admission, then sends
"admitted" and the log. If that answer is lost, the joiner cannot tell whether it was admitted,
and the thread must not be left in a state nothing repairs. So from the moment the redeem may
have reached the inviter until the join ends, this node keeps a ``Thread`` row in the joining
state with the link (``join_link``), and the p2p node (``apps.p2p.joins``) redeems again in the
background, with backoff: the inviter answers a newcomer it already admitted with "admitted" and
the log again (``redemption``). The join ends when this node holds a log that admits it
(``services.thread_join``: active), or with a hard refusal from the inviter (``NOT_ADMITTED``,
with the reason in ``problem``), or when the person gives up (``services.thread_leave``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from apps.core.models import Thread
from apps.core.thread.invite import Invite, InviteError, invite_parse
from apps.core.thread.writer import RedemptionRequest, redemption_request
from apps.core.threads.database import NodeKeys

# What the inviter says when this invite will never admit this node: no point trying again.
HARD_REFUSALS = frozenset(
    {"expired", "revoked", "used", "unknown", "forbidden", "conflict", "malformed", "version"}
)
# The network half failed after the redeem was sent: the admission may have been committed.
INTERRUPTED = "interrupted"
MAX_PROBLEM = 500


@dataclass(frozen=True)
class Previous:
    """A thread row as it was before a redemption started (None: there was none)."""

    state: str
    problem: str
    join_link: str


def join_begin(*, invite: Invite, link: str) -> Previous | None:
    """Record that this node is about to redeem ``invite``: the thread is joining from here on,
    until ``join_end`` or ``join_failed`` says otherwise. Returns the row as it was."""
    with transaction.atomic():
        row = Thread.objects.select_for_update().filter(pk=invite.thread.hex()).first()
        previous = None if row is None else Previous(row.state, row.problem, row.join_link)
        Thread.objects.update_or_create(
            pk=invite.thread.hex(),
            defaults={
                "state": Thread.State.JOINING,
                "problem": "",
                "join_link": link,
            },
            create_defaults={
                "name": invite.name or invite.thread.hex()[:12],
                "state": Thread.State.JOINING,
                "join_link": link,
            },
        )
    return previous


def join_undo(*, thread: bytes, previous: Previous | None) -> None:
    """A redemption that failed before it could have admitted anyone: the row goes back to
    what it was (or away, if it was made for this redemption)."""
    rows = Thread.objects.filter(pk=thread.hex(), state=Thread.State.JOINING)
    if previous is None:
        rows.delete()
    else:
        rows.update(state=previous.state, problem=previous.problem, join_link=previous.join_link)


def join_failed(*, thread: bytes, code: str, reason: str) -> bool:
    """An attempt failed with ``code``: a hard refusal ends the join (not admitted, with the
    reason); anything else is noted and tried again. True when the join is over."""
    text = reason[:MAX_PROBLEM]
    rows = Thread.objects.filter(pk=thread.hex(), state=Thread.State.JOINING)
    if code in HARD_REFUSALS:
        rows.update(state=Thread.State.NOT_ADMITTED, problem=text, join_link="")
        return True
    rows.update(problem=text)
    return False


def joins_pending() -> list[str]:
    """The ids of the threads this node is joining."""
    return list(
        Thread.objects.filter(state=Thread.State.JOINING)
        .exclude(join_link="")
        .values_list("pk", flat=True)
    )


def join_request(*, thread_id: str) -> tuple[Invite, RedemptionRequest] | None:
    """What redeeming the link of a joining thread again sends (None when it is not joining,
    or this node cannot sign: its master secret is sealed)."""
    row = Thread.objects.filter(pk=thread_id, state=Thread.State.JOINING).first()
    if row is None or not row.join_link:
        return None
    node = NodeKeys.of_this_node()
    if node.master_secret is None:
        return None
    # The link was checked when the join began. It is not checked for expiry again: the
    # inviter may have admitted this node before it expired, and only the inviter knows.
    try:
        invite = invite_parse(row.join_link)
    except InviteError as exc:  # damaged since (by hand?): nothing to try again with
        join_failed(thread=bytes.fromhex(thread_id), code=exc.code, reason=str(exc))
        return None
    return invite, redemption_request(
        invite, master_secret=node.master_secret, device_key=node.device
    )
