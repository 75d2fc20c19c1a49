"""Reads of a thread's checklist: its lists and items as this node's replica has them, who holds
each item (by name), how many admins approved it as it stands, and what the thread refused of
this node's writes. Who added an item is the member its id names, never a column."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from apps.checklist import rules
from apps.checklist.models import Approval, Close, Item, Plan
from apps.checklist.policy import APP
from apps.checklist.refusals import RefusedWrite, refused_writes
from apps.core.models import Thread
from apps.core.thread.rowid import row_tag
from apps.core.threads.app_kit import app_enabled, app_thread_find, row_owners
from apps.core.threads.context import thread_context
from apps.core.threads.names import Names, thread_names

OPEN, CLAIMED, DONE, APPROVED = "open", "claimed", "done", "approved"


@dataclass
class ItemView:
    id: str  # hex
    text: str
    list: str
    claimed_by: str  # member hex, or ""
    claimed_by_name: str
    done: bool
    done_by: str
    done_by_name: str
    added_by: str  # member hex ("" if its id names nobody this node knows)
    added_by_name: str
    mine: bool  # this member added it
    approvers: list[str]  # names of the admins whose approvals match it as it stands
    approved_by_me: bool
    closed: bool  # its list is closed
    refused: list[RefusedWrite] = field(default_factory=list)

    @property
    def approvals(self) -> int:
        return len(self.approvers)

    @property
    def approved(self) -> bool:
        return self.approvals >= rules.APPROVALS_NEEDED

    @property
    def state(self) -> str:
        if self.approved:
            return APPROVED
        if self.done:
            return DONE
        return CLAIMED if self.claimed_by else OPEN


@dataclass
class ListView:
    name: str
    items: list[ItemView]
    closed: bool
    planned_at: datetime | None  # a close planned by a member (the earliest)


thread_find = app_thread_find  # a thread this node has and did not leave


def enabled(thread: Thread) -> bool:
    return app_enabled(thread, APP)


def member_names(thread: Thread) -> Names:
    """Member (hex) -> how the page names them: "you", else the node's name for them (ADR 16:
    never a key)."""
    return thread_names(thread, me_as="you")


def _row(item: Item) -> dict:
    return {"text": item.text, "done": item.done, "claimed_by": item.claimed_by}


def _name(names: dict[str, str], member: str) -> str:
    """A member as this node names them; "" for nobody (an unclaimed item), never a made-up
    "former member" for an empty column."""
    if not member:
        return ""
    return names.get(member, "a former member")


def items(thread: Thread, *, item_id: str | None = None) -> list[ItemView]:
    """The checklist's items, by list name and then in the order they were added."""
    with thread_context(thread.thread):
        query = Item.objects.order_by("list", "id")
        if item_id is not None:
            query = query.filter(pk=item_id)
        found = list(query)
        approvals: dict[str, list[dict]] = {}
        for approval in Approval.objects.filter(item__in=[i.id for i in found]):
            pk = approval.item.hex
            signer, digest = bytes(approval.signer), bytes(approval.digest)
            approvals.setdefault(pk, []).append({"item": pk, "digest": digest, "signer": signer})
        closed = set(Close.objects.values_list("scope", flat=True))
    names, owners, me = member_names(thread), row_owners(thread), thread.member_id
    refused: dict[str, list[RefusedWrite]] = {}
    for write in refused_writes(thread):
        if write.item is not None:
            refused.setdefault(write.item, []).append(write)
    views = []
    for item in found:
        pk = item.id.hex
        tag = row_tag(pk)
        added_by = owners.get(tag.hex(), "") if tag else ""
        signers = sorted(s.hex() for s in rules.signers_of(pk, _row(item), approvals.get(pk, ())))
        views.append(
            ItemView(
                id=pk,
                text=item.text,
                list=item.list,
                claimed_by=item.claimed_by,
                claimed_by_name=_name(names, item.claimed_by),
                done=item.done,
                done_by=item.done_by,
                done_by_name=_name(names, item.done_by),
                added_by=added_by,
                added_by_name=_name(names, added_by),
                mine=added_by == me,
                approvers=[_name(names, s) for s in signers],
                approved_by_me=me in signers,
                closed=item.list in closed,
                refused=refused.get(pk, []),
            )
        )
    return views


def item(thread: Thread, item_id: str) -> ItemView | None:
    try:
        pk = uuid.UUID(hex=item_id).hex
    except ValueError:
        return None
    found = items(thread, item_id=pk)
    return found[0] if found else None


def closed_lists(thread: Thread) -> set[str]:
    with thread_context(thread.thread):
        return set(Close.objects.values_list("scope", flat=True))


def plans(thread: Thread) -> dict[str, datetime]:
    """List -> the earliest close planned for it (by any member whose node will write it)."""
    with thread_context(thread.thread):
        found: dict[str, datetime] = {}
        for name, at in Plan.objects.order_by("at").values_list("list", "at"):
            found.setdefault(name, at)
        return found


def lists(thread: Thread) -> list[ListView]:
    """The items grouped by list (lists in name order), with each list's state."""
    grouped: dict[str, list[ItemView]] = {}
    for view in items(thread):
        grouped.setdefault(view.list, []).append(view)
    closed, planned = closed_lists(thread), plans(thread)
    return [
        ListView(name, views, name in closed, None if name in closed else planned.get(name))
        for name, views in sorted(grouped.items())
    ]
