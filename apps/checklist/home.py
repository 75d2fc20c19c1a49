"""What waits for this member in a thread's checklist, in words, for Home."""

from __future__ import annotations

from apps.checklist import selectors
from apps.checklist.views import ADMINS
from apps.core.models import Thread


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def waiting(thread: Thread) -> list[str]:
    me = thread.member_id
    items = [item for item in selectors.items(thread) if not item.closed]
    to_do = sum(1 for item in items if item.claimed_by == me and not item.done)
    found = []
    if to_do:
        found.append(_count(to_do, "checklist item for you to do", "checklist items for you to do"))
    if thread.role in ADMINS:
        # Done work that still needs an admin's approval, and not already this one's.
        to_approve = sum(
            1 for item in items if item.done and not item.approved and not item.approved_by_me
        )
        if to_approve:
            found.append(
                _count(to_approve, "checklist item to approve", "checklist items to approve")
            )
    return found
