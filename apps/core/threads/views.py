"""Thread pages of the node UI: list and create, join with a link, members and roles, invites.

Thin: forms validate, services write; a service's refusal is shown as a message on the page.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads import invite_terms, selectors, services, thread_apps, writes
from apps.core.threads.forms import InviteForm, JoinForm, RoleForm, ThreadCreateForm
from apps.core.threads.invite_roles import invite_role_default, invite_roles
from apps.core.threads.invite_words import invite_lines
from apps.core.threads.pages import SETTINGS_TAB, app_label, app_labels, links, open_url, tabs
from apps.core.threads.qr import qr_svg
from apps.core.threads.registry import thread_database
from apps.core.threads.roles_words import roles_in_words

# The states of a thread this node was in (so it may have written there) with a database to read.
WROTE_IN = (Thread.State.ACTIVE, Thread.State.REMOVED, Thread.State.LEFT)


def _thread(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise Http404("no such thread on this node")
    return thread


def _qr(link: str) -> str:
    return mark_safe(qr_svg(link))  # noqa: S308 - segno's SVG: no script, the link escaped


def _share(thread: Thread, link: str, uses: int | None, label: str) -> dict:
    """What the share sheet shows of an invite link: the link, its QR code and how to pass it on."""
    if uses == 1:
        about = (
            "Send this link (or show the QR code) to the person you invite, by a channel you "
            "trust. It works once."
        )
    else:
        reach = f"up to {uses} people can" if uses else "anyone who has this link can"
        about = (
            f"{f'“{label}”: ' if label else ''}{reach} join with this link, until it expires or "
            "you revoke it. Share it only as widely as you mean to."
        )
    return {"link": link, "qr": _qr(link), "about": about, "title": f"Join {thread.name}"}


@require_http_methods(["GET", "POST"])
def thread_list(request: HttpRequest) -> HttpResponse:
    form = ThreadCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            thread = services.thread_create(**form.cleaned_data)
        except services.ThreadServiceError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Thread {thread.name} created.")
            return redirect("core:thread", thread_id=thread.id)
    threads = [(thread, app_labels(thread)) for thread in services.thread_list()]
    return render(request, "core/threads.html", {"threads": threads, "form": form})


@require_http_methods(["GET", "POST"])
def thread_join(request: HttpRequest) -> HttpResponse:
    form = JoinForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            thread = services.invite_redeem(link=form.cleaned_data["link"])
        except services.ThreadServiceError as exc:
            form.add_error("link", str(exc))
        else:
            if thread.state == Thread.State.JOINING:
                messages.info(
                    request,
                    f"Joining {thread.name}: the inviter's node did not finish answering. "
                    "This node keeps trying in the background.",
                )
            else:
                messages.success(request, f"You joined {thread.name}.")
            return redirect("core:thread", thread_id=thread.id)
    return render(request, "core/thread_join.html", {"form": form})


def thread_open(request: HttpRequest, thread_id: str) -> HttpResponse:
    """Opening a thread opens its app (the conversation, the checklist...); People is a tab."""
    return redirect(open_url(_thread(thread_id)))


def thread_detail(request: HttpRequest, thread_id: str) -> HttpResponse:
    """A thread's People tab: members, invites, roles in words, apps; the technical view
    (sync, devices, op log) behind a disclosure for those who manage the thread."""
    thread = _thread(thread_id)
    live = selectors.thread_live(thread)
    context: dict = {"thread": thread, "live": live, "labels": app_labels(thread)}
    if thread.state in WROTE_IN:
        # Also (above all) when this node was removed: what it wrote meanwhile was refused.
        context["refused_writes"] = writes.writes_count(thread_database(thread.thread))
    if thread.state == Thread.State.ACTIVE:
        context["key_problems"] = selectors.key_problems(thread)
        context["tabs"] = tabs(thread, SETTINGS_TAB)
        context["apps"] = [
            (app, app_label(app.app) or "Plain thread")
            for app in thread_apps.thread_apps_list(thread=thread)
            if app.installed
        ]
        context["manages"] = selectors.thread_manages(thread)
        context["roles"] = roles_in_words(thread)
        context.update(
            invite_form=InviteForm(
                roles=invite_roles(thread),
                open_roles=selectors.thread_open_roles(thread),
                role=invite_role_default(thread),
            ),
            invites=invite_lines(thread.invites.filter(status="open").exclude(link="")),
        )
        if thread.app in invite_terms.ALWAYS:
            # Its app makes every invite (a medical record's carries a grant): send people there.
            context["invite_elsewhere"] = open_url(thread)
    created = request.session.pop("sereus_new_invite", None)
    if created and created.get("thread") == thread.id:
        context["new_invite"] = _share(
            thread, created["link"], created.get("uses", 1), created.get("label", "")
        )
    return render(request, "core/thread.html", context)


WRITE_FILTERS = (("refused", "Not accepted"), ("accepted", "Accepted"), ("", "All"))


def thread_writes(request: HttpRequest, thread_id: str) -> HttpResponse:
    """This node's writes in the thread and what became of each; the refused ones first."""
    thread = _thread(thread_id)
    if thread.state not in WROTE_IN:
        raise Http404("this node has no writes in this thread")
    state = request.GET.get("state", "refused")
    state = state if state in writes.STATES else None
    try:
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        raise Http404("no such page") from None
    page = writes.writes_list(thread_database(thread.thread), state=state, before=before)
    app_url = links([thread])[0].url  # where the thread's app shows it (if it has a page)
    removed = thread.state == Thread.State.REMOVED
    context = {
        "thread": thread,
        "state": state or "",
        "filters": WRITE_FILTERS,
        "writes": [
            (write, writes.write_summary(write), writes.refusal_text(write.refusal, removed))
            for write in page.writes
        ],
        "older": page.next,
        "app_url": app_url if app_url != reverse("core:thread_people", args=[thread.id]) else None,
    }
    return render(request, "core/thread_writes.html", context)


def _act(request: HttpRequest, thread: Thread, action, success: str) -> HttpResponse:
    try:
        action()
    except services.ThreadServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, success)
    return redirect("core:thread_people", thread_id=thread.id)


@require_POST
def member_role(request: HttpRequest, thread_id: str, member_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    form = RoleForm(request.POST, roles=selectors.thread_roles(thread))
    if not form.is_valid():
        messages.error(request, "Choose one of the thread's roles.")
        return redirect("core:thread_people", thread_id=thread.id)
    role = form.cleaned_data["role"]
    return _act(
        request,
        thread,
        lambda: services.member_set_role(thread=thread, member_id=member_id, role=role),
        f"Role changed to {role}.",
    )


@require_POST
def member_remove(request: HttpRequest, thread_id: str, member_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    return _act(
        request,
        thread,
        lambda: services.member_remove(thread=thread, member_id=member_id),
        "Member removed; the thread's keys were rotated without them.",
    )


@require_POST
def invite_create(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    if thread.app in invite_terms.ALWAYS:
        messages.error(
            request, "Invite people to this thread from its own page: it asks what they may do."
        )
        return redirect("core:thread_people", thread_id=thread.id)
    form = InviteForm(request.POST, roles=invite_roles(thread))
    if not form.is_valid():
        if form.has_error("up_to"):
            messages.error(request, f"Up to how many people: {' '.join(form.errors['up_to'])}")
        else:
            messages.error(request, "Choose a role, who may use the link and how long it is valid.")
        return redirect("core:thread_people", thread_id=thread.id)
    try:
        created = services.invite_create(
            thread=thread,
            role=form.cleaned_data["role"],
            expires_in=form.expiry(),
            uses=form.uses(),
            label=form.cleaned_data["label"],
        )
    except services.ThreadServiceError as exc:
        messages.error(request, str(exc))
    else:
        # Shown once on the next page (a redirect keeps the secret out of the browser history).
        request.session["sereus_new_invite"] = {
            "thread": thread.id,
            "link": created.link,
            "uses": created.record.uses,
            "label": created.record.label,
        }
    return redirect("core:thread_people", thread_id=thread.id)


@require_POST
def invite_revoke(request: HttpRequest, thread_id: str, invite_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    return _act(
        request,
        thread,
        lambda: services.invite_revoke(thread=thread, invite_id=invite_id),
        "Invite revoked.",
    )


@require_http_methods(["GET", "POST"])
def thread_leave(request: HttpRequest, thread_id: str) -> HttpResponse:
    """Leaving a thread: a page that says what it means (GET), then the leave (POST)."""
    thread = _thread(thread_id)
    joining = thread.state in (Thread.State.JOINING, Thread.State.NOT_ADMITTED)
    context = {
        "thread": thread,
        "joining": joining,
        "gone": thread.state in (Thread.State.LEFT, Thread.State.REMOVED),
        "owner": thread.role == "owner",
    }
    if request.method == "POST":
        try:
            told = services.thread_leave(thread=thread)
        except services.ThreadServiceError as exc:
            return render(request, "core/thread_leave_confirm.html", {**context, "error": exc})
        if joining:
            messages.success(request, f"This node stopped joining {thread.name}.")
        elif told:
            messages.success(request, f"You left {thread.name}. The other members know.")
        else:
            messages.success(
                request,
                f"You left {thread.name}. The other members' nodes could not be reached just "
                "now: this node tells them as soon as it reaches one.",
            )
        return redirect("core:threads")
    return render(request, "core/thread_leave_confirm.html", context)


def invite_qr(request: HttpRequest, thread_id: str, invite_id: str) -> HttpResponse:
    invite = _thread(thread_id).invites.filter(invite_id=invite_id.lower()).exclude(link="").first()
    if invite is None:
        raise Http404("no invite made by this node with this id")
    context = {
        "invite": invite,
        "line": invite_lines([invite])[0],
        "share": _share(invite.thread, invite.link, invite.uses, invite.label),
    }
    response = render(request, "core/invite_qr.html", context)
    response["Cache-Control"] = "no-store"
    return response
