"""The only writers of checklists. Each write is one transaction of the thread's database and so
one signed op, which this node's replica judges at once by the checklist's rules (``rules.py``)
like every other replica will: a write it refuses is an error here, with the reason, and
nothing of it is kept. A write it accepts can still be turned over by a row from elsewhere that
orders before it (a concurrent claim): ``refusals.py`` says so afterwards.

Errors are ``ThreadServiceError`` with the codes the API maps to statuses: ``invalid`` (bad
input), ``not_found``, ``not_enabled`` (the thread has not enabled the checklist), ``forbidden``
(the thread's policy: a reader, a member closing a list) and ``refused`` (a rule: the item is
held by someone else, the list is closed, ...).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.utils import timezone

from apps.checklist import refusals, rules, selectors
from apps.checklist.models import DEFAULT_LIST, MAX_LIST, MAX_TEXT, Approval, Close, Item, Plan
from apps.checklist.policy import APP
from apps.core.models import Thread
from apps.core.thread.rowid import is_owned_by
from apps.core.threads.app_kit import app_writable, app_write, member_key
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.thread_apps import app_enable

MAX_PLAN_DAYS = 366


def checklist_enable(*, thread: Thread) -> None:
    """Enable the checklist in a thread (a control op: owner and admins only)."""
    if thread.state != Thread.State.ACTIVE:
        raise ThreadServiceError("forbidden", f"you can no longer write in {thread.name}")
    app_enable(thread=thread, app=APP)


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ThreadServiceError("invalid", "an item needs some text")
    if len(value) > MAX_TEXT:
        raise ThreadServiceError("invalid", f"an item holds at most {MAX_TEXT} characters")
    return value


def _list(value: str) -> str:
    value = " ".join(value.split())
    if not value or len(value) > MAX_LIST:
        raise ThreadServiceError("invalid", f"a list has a name of 1 to {MAX_LIST} characters")
    return value


_NOT_ENABLED = "the checklist is not enabled in this thread: an owner or admin enables it first"


def _writable(thread: Thread) -> None:
    app_writable(thread, APP, _NOT_ENABLED)


def _write(thread: Thread, action):
    """Run ``action()`` in one transaction of the thread (one op). A refusal of this node's
    replica becomes an error with the reason in plain words; nothing of the write is kept."""
    return app_write(
        thread,
        action,
        app=APP,
        not_enabled=_NOT_ENABLED,
        plain=lambda reason: refusals.plain(reason, thread),
    )


def _item(thread: Thread, item_id: str | uuid.UUID) -> Item:
    try:
        pk = item_id if isinstance(item_id, uuid.UUID) else uuid.UUID(hex=str(item_id))
    except ValueError:
        raise ThreadServiceError("invalid", "an item id is a UUID") from None
    with thread_context(thread.thread):
        item = Item.objects.filter(pk=pk).first()
    if item is None:
        raise ThreadServiceError("not_found", "no such item in this checklist")
    return item


def _save(thread: Thread, item: Item, **fields) -> Item:
    """Write the fields that change (one op), or nothing if none does."""
    changed = [name for name, value in fields.items() if getattr(item, name) != value]
    if not changed:
        return item

    def save() -> Item:
        for name in changed:
            setattr(item, name, fields[name])
        item.save(update_fields=changed)
        return item

    return _write(thread, save)


def item_add(*, thread: Thread, text: str, list_name: str = DEFAULT_LIST) -> Item:
    fields = {"text": _text(text), "list": _list(list_name or DEFAULT_LIST)}
    return _write(thread, lambda: Item.objects.create(**fields))


def item_edit(*, thread: Thread, item_id: str | uuid.UUID, text: str) -> Item:
    return _save(thread, _item(thread, item_id), text=_text(text))


def item_delete(*, thread: Thread, item_id: str | uuid.UUID) -> None:
    item = _item(thread, item_id)
    _write(thread, item.delete)


def item_claim(*, thread: Thread, item_id: str | uuid.UUID) -> Item:
    return _save(thread, _item(thread, item_id), claimed_by=thread.member_id)


def item_unclaim(*, thread: Thread, item_id: str | uuid.UUID) -> Item:
    return _save(thread, _item(thread, item_id), claimed_by="")


def item_done(*, thread: Thread, item_id: str | uuid.UUID, done: bool = True) -> Item:
    """Mark an item done (an unclaimed one is claimed with it, in the same op) or not done."""
    item = _item(thread, item_id)
    if not done:
        return _save(thread, item, done=False, done_by="")
    claimer = item.claimed_by or thread.member_id
    return _save(thread, item, claimed_by=claimer, done=True, done_by=thread.member_id)


def item_approve(*, thread: Thread, item_id: str | uuid.UUID) -> Item:
    """This admin's signature over the item as it stands (again: nothing new is written)."""
    item = _item(thread, item_id)
    row = {"text": item.text, "done": item.done, "claimed_by": item.claimed_by}
    values = rules.approval_values(member_key(thread), item.id.hex, row)
    values["id"] = uuid.UUID(hex=values["id"])
    with thread_context(thread.thread):
        if Approval.objects.filter(pk=values["id"]).exists():
            return item
    _write(thread, lambda: Approval.objects.create(**values))
    return item


def list_close(*, thread: Thread, list_name: str) -> None:
    """Close a list now: from here on every replica refuses the changes to its items that this
    member had not seen (owner and admins only)."""
    name = _list(list_name)
    if name in selectors.closed_lists(thread):
        raise ThreadServiceError("conflict", f"the list {name} is already closed")
    mine = [plan.pk for plan in _my_plans(thread) if plan.list == name]

    def close() -> None:
        Close.objects.create(scope=name)
        Plan.objects.filter(pk__in=mine).delete()  # done: the plan is kept no longer

    _write(thread, close)


def list_close_plan(*, thread: Thread, list_name: str, at: datetime) -> Plan | None:
    """Close a list at ``at``: the plan is a row the members see, and this node writes the
    close then (``tasks.closes_due``). A time already past closes the list now (None)."""
    name = _list(list_name)
    if timezone.is_naive(at):
        raise ThreadServiceError("invalid", "a planned time says its time zone")
    now = timezone.now()
    if at > now + timedelta(days=MAX_PLAN_DAYS):
        raise ThreadServiceError(
            "invalid", f"a close is planned at most {MAX_PLAN_DAYS} days ahead"
        )
    if at <= now:
        list_close(thread=thread, list_name=name)
        return None
    if name in selectors.closed_lists(thread):
        raise ThreadServiceError("conflict", f"the list {name} is already closed")
    plan = _write(thread, lambda: Plan.objects.create(list=name, at=at))
    from apps.checklist.tasks import closes_due

    closes_due.apply_async(args=[thread.id], eta=at)  # the plan is in: queue its close
    return plan


def _my_plans(thread: Thread) -> list[Plan]:
    member = bytes.fromhex(thread.member_id)
    with thread_context(thread.thread):
        return [plan for plan in Plan.objects.all() if is_owned_by(plan.pk.hex, member)]


def closes_due(*, thread: Thread, now: datetime | None = None) -> list[str]:
    """Write the closes this member planned whose time has come (the lists closed). Run by the
    task at each plan's time, and again whenever the checklist is read (a task lost with a
    restart of the node is made good then)."""
    if thread.state != Thread.State.ACTIVE or not selectors.enabled(thread):
        return []
    if thread.role not in ("owner", "admin"):
        return []  # demoted since: the plans stay, shown, and do nothing
    now = now or timezone.now()
    closed = selectors.closed_lists(thread)
    due = sorted({plan.list for plan in _my_plans(thread) if plan.at <= now})
    done = []
    for name in due:
        if name in closed:
            continue
        try:
            list_close(thread=thread, list_name=name)
        except ThreadServiceError:
            continue  # refused after all: the plan stays, shown
        done.append(name)
    return done
