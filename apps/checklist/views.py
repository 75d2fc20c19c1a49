"""Checklist pages: a thread's lists with their items (add, claim, give back, done, approve,
edit, delete, close a list), and turning the checklist on in a thread. Thin: forms validate,
services write, refusals show as messages; every action is a form that posts and redirects, the
live socket only saves the reload."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from apps.checklist import selectors, services
from apps.checklist.forms import WHEN, CloseForm, ItemEditForm, ItemForm
from apps.checklist.policy import APP
from apps.checklist.refusals import WHAT, refused_writes
from apps.checklist.selectors import ItemView
from apps.core.models import Thread
from apps.core.threads.pages import tabs
from apps.core.threads.services import ThreadServiceError

WRITERS = ("owner", "admin", "writer")
ADMINS = ("owner", "admin")


def _thread(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise Http404("no such thread on this node")
    return thread


def _back(thread: Thread, anchor: str = "") -> HttpResponse:
    return redirect(reverse("checklist:checklist", args=[thread.id]) + anchor)


def actions(thread: Thread, item: ItemView) -> list[str]:
    """What this member may do with an item, as the rules will judge it (the page offers only
    these; the replica decides anyway)."""
    if thread.state != Thread.State.ACTIVE or thread.role not in WRITERS:
        return []
    me, admin = thread.member_id, thread.role in ADMINS
    if item.closed:  # nothing changes it any more; admins may still sign it off
        return ["approve"] if admin and not item.approved_by_me else []
    holds = item.claimed_by == me
    found = []
    if not item.claimed_by:
        found.append("claim")
    elif holds or admin:
        found.append("unclaim")
    if not item.done and (holds or admin or not item.claimed_by):
        found.append("done")
    elif item.done and (holds or admin):
        found.append("undone")
    if admin and not item.approved_by_me:
        found.append("approve")
    if item.mine or admin:
        found += ["edit", "delete"]
    return found


def page_context(thread: Thread, *, editing: str | None = None) -> dict:
    enabled = selectors.enabled(thread)
    lists = selectors.lists(thread) if enabled else []
    shown = {item.id for entry in lists for item in entry.items}
    return {
        "thread": thread,
        "enabled": enabled,
        "lists": [
            (entry, [(item, actions(thread, item)) for item in entry.items]) for entry in lists
        ],
        "list_names": [entry.name for entry in lists],
        # Refused writes about items not on the page (an item never added, a list's close).
        "refused": [w for w in refused_writes(thread) if w.item not in shown] if enabled else [],
        "editing": editing,
        "edit_form": ItemEditForm(
            initial={"text": next((i.text for e in lists for i in e.items if i.id == editing), "")}
        ),
        "can_write": thread.state == Thread.State.ACTIVE and thread.role in WRITERS,
        "is_admin": thread.state == Thread.State.ACTIVE and thread.role in ADMINS,
        "close_choices": [(key, label) for key, (label, _) in WHEN.items()],
    }


@require_http_methods(["GET", "POST"])
def checklist(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    form = ItemForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            item = services.item_add(
                thread=thread,
                text=form.cleaned_data["text"],
                list_name=form.cleaned_data["list_name"],
            )
        except ThreadServiceError as exc:
            form.add_error(None, _said(exc, "add"))
        else:
            return _back(thread, f"#item-{item.id.hex}")
    if request.method == "GET":
        services.closes_due(thread=thread)  # a planned close whose task was lost
    context = page_context(thread, editing=request.GET.get("edit"))
    context.update(form=form, tabs=tabs(thread, APP))
    return render(request, "checklist/checklist.html", context, status=400 if form.errors else 200)


def _said(exc: ThreadServiceError, what: str) -> str:
    """A service's refusal, as the page says it."""
    if exc.code in ("refused", "forbidden"):
        return f"Your {WHAT[what]} was refused: {exc}."
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


@require_POST
def enable(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    try:
        services.checklist_enable(thread=thread)
    except ThreadServiceError as exc:
        flash.error(request, _said(exc, "add"))
    else:
        flash.success(request, "This thread has a checklist now: every member sees it.")
    return _back(thread)


_ACTIONS = {
    "claim": lambda thread, item: services.item_claim(thread=thread, item_id=item),
    "unclaim": lambda thread, item: services.item_unclaim(thread=thread, item_id=item),
    "done": lambda thread, item: services.item_done(thread=thread, item_id=item),
    "undone": lambda thread, item: services.item_done(thread=thread, item_id=item, done=False),
    "approve": lambda thread, item: services.item_approve(thread=thread, item_id=item),
    "delete": lambda thread, item: services.item_delete(thread=thread, item_id=item),
}


@require_POST
def item_action(request: HttpRequest, thread_id: str, item_id: str, action: str) -> HttpResponse:
    thread = _thread(thread_id)
    act = _ACTIONS.get(action)
    if act is None:
        raise Http404("no such action")
    try:
        act(thread, item_id)
    except ThreadServiceError as exc:
        flash.error(request, _said(exc, action))
    return _back(thread, "" if action == "delete" else f"#item-{item_id}")


@require_POST
def item_edit(request: HttpRequest, thread_id: str, item_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    form = ItemEditForm(request.POST)
    if not form.is_valid():
        flash.error(request, f"An item has 1 to {form.fields['text'].max_length} characters.")
        return _back(thread, f"?edit={item_id}#item-{item_id}")
    try:
        services.item_edit(thread=thread, item_id=item_id, text=form.cleaned_data["text"])
    except ThreadServiceError as exc:
        flash.error(request, _said(exc, "edit"))
    return _back(thread, f"#item-{item_id}")


@require_POST
def list_close(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    form = CloseForm(request.POST)
    if not form.is_valid():
        flash.error(request, "Say which list to close, and when.")
        return _back(thread)
    name, when = form.cleaned_data["list_name"], form.cleaned_data["when"]
    try:
        if when:
            at = timezone.now() + WHEN[when][1]
            services.list_close_plan(thread=thread, list_name=name, at=at)
            flash.success(request, f"{name} closes {WHEN[when][0]}: your node will close it.")
        else:
            services.list_close(thread=thread, list_name=name)
            flash.success(request, f"{name} is closed.")
    except ThreadServiceError as exc:
        flash.error(request, _said(exc, "close"))
    return _back(thread)
