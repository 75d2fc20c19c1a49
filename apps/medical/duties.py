"""What a node does in its medical records on its own:

- **a record made through the threads API** gets its rules and its patient row at once
  (``thread_added``, in the request that made it);
- **grants follow invites**: the patient chose a grant when making an invite; once this node
  sees the invite redeemed, it writes the grant for the member it admitted (and, when the grant
  covers the sensitive part, invites them there too);
- **joining the sensitive part**: an invite to it sealed to this member in the record is opened
  and redeemed, as the Join page would. Once per invite and process: a failure is logged, never
  tried in a loop.

The grant and join duties run on a ``DutyWorker`` when ops arrive, never inside the writer.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from apps.core.models import Thread
from apps.core.thread.policy import OWNER
from apps.core.thread.state import ThreadState
from apps.core.threads.context import thread_context
from apps.core.threads.duty_worker import DutyWorker
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.medical.policy import SHAPE

logger = logging.getLogger(__name__)

_tried: set[str] = set()  # sealed invites this process opened (or tried to)


def forget() -> None:
    """Try everything again (tests; a node starting afresh does the same)."""
    _tried.clear()


def on_thread_added(sender: Any, thread: bytes, **kwargs: Any) -> None:
    from apps.medical import services

    record = Thread.objects.filter(pk=thread.hex()).first()
    if record is None or record.app != SHAPE or record.role != OWNER:
        return
    if record.state != Thread.State.ACTIVE:
        return
    services.record_setup(record)


def _wanted(state: ThreadState) -> bool:
    return state.app == SHAPE


def _duty(thread: Thread) -> None:
    if thread.role == OWNER:
        grants_follow_invites(thread)
    sensitive_join(thread)


def grants_follow_invites(thread: Thread) -> list[str]:
    """Write the grants waiting for invites that were redeemed. Returns the members granted."""
    from apps.medical import selectors, sharing
    from apps.medical.models import PendingGrant

    pending = list(PendingGrant.objects.filter(thread=thread))
    if not pending:
        return []
    database = thread_database(thread.thread)
    with database.lock:
        state = database.replica().control.state
    now = time.time_ns() // 1_000_000
    granted = []
    for waiting in pending:
        invite = state.invites.get(bytes.fromhex(waiting.invite_id))
        if invite is None:
            continue
        member = invite.redeemed_by
        if member is None:
            if invite.status == "revoked" or invite.expiry < now:
                waiting.delete()  # nobody will redeem it any more
            continue
        terms = json.loads(waiting.grant)
        try:
            if state.role_of(member) is not None:
                sharing.grant_write(thread, member=member, terms=terms, status="active")
                granted.append(member.hex())
                if terms.get("sensitive") and not selectors.is_sensitive(thread):
                    sharing.sensitive_invite(thread, member_id=member.hex())
        except ThreadServiceError as exc:
            logger.warning("medical: writing the grant of invite %s failed: %s", waiting.pk, exc)
        waiting.delete()
    return granted


def sensitive_join(thread: Thread) -> list[str]:
    """Redeem invites to a sensitive part sealed to this member. Returns the parts joined."""
    from apps.core.threads import services as threads
    from apps.medical import sharing
    from apps.medical.models import SealedInvite

    with thread_context(thread.thread):
        sealed = list(SealedInvite.objects.filter(member=thread.member_id))
    joined = []
    for row in sealed:
        key = row.id.hex
        held = Thread.objects.filter(pk=row.thread, state=Thread.State.ACTIVE).exists()
        if key in _tried or held:
            continue
        _tried.add(key)
        link = sharing.invite_unseal(thread, bytes(row.box))
        if link is None:
            logger.warning("medical: the invite sealed in %s does not open here", key)
            continue
        try:
            joined.append(threads.invite_redeem(link=link).id)
        except ThreadServiceError as exc:
            logger.warning("medical: joining the sensitive part failed: %s", exc)
    return joined


# A moment's settling lets the write that woke it finish first.
worker = DutyWorker("medical-duties", _wanted, _duty, settle_s=0.05)
on_ops_written = worker.on_ops_written
