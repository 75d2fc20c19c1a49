"""Conversation pages: the list, one conversation (send, reply, edit, delete, react), and the
name a member shows. Thin: forms validate, services write, refusals show as messages; every page
works without JavaScript, the live socket only saves the reload."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.apps import apps as django_apps
from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST
from uuid6 import uuid7

from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.core.threads.invite_roles import invite_role_default
from apps.core.threads.invite_words import expires_words
from apps.core.threads.naming import name_in
from apps.core.threads.pages import tabs
from apps.core.threads.qr import qr_svg
from apps.core.threads.services import ThreadServiceError
from apps.messaging import attachments, chat_list, selectors, services, undelivered
from apps.messaging import shown as chat
from apps.messaging.forms import (
    ConversationForm,
    InviteSomeoneForm,
    MessageEditForm,
    MessageForm,
    ReactionForm,
    too_long,
)
from apps.messaging.models import MAX_TEXT
from apps.messaging.policy import APP


def _conversation(thread_id: str) -> Thread:
    thread = selectors.conversation_find(thread_id)
    if thread is None:
        raise Http404("no such conversation on this node")
    return thread


def _back(thread: Thread, anchor: str = "end") -> HttpResponse:
    """Back to the conversation: at its end (under the newest message, where the composer is),
    or at the message just acted on (``m-<id>``), also for a browser without the page's script."""
    return redirect(reverse("messaging:conversation", args=[thread.id]) + "#" + anchor)


@require_http_methods(["GET", "POST"])
def conversation_list(request: HttpRequest) -> HttpResponse:
    """Chats: every conversation as a line (unread first, then the newest), and the form that
    starts a new one (``#start``: Home's first-run path links to it)."""
    form = ConversationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            thread = services.conversation_create(**form.cleaned_data)
        except ThreadServiceError as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("messaging:conversation", thread_id=thread.id)
    status = 400 if form.errors else 200
    context = {"chats": chat_list.chats(), "form": form}
    return render(request, "messaging/list.html", context, status=status)


# How long the link of "Invite someone" works: long enough to be answered by someone who
# reads their messages once a day or so; it works once.
INVITE_FOR = timedelta(days=7)


@require_http_methods(["GET", "POST"])
def invite_someone(request: HttpRequest) -> HttpResponse:
    """Invite one person to chat in one step: a new conversation and an invite for them at the
    conversation's ordinary member role, then the link to send them (``invited``)."""
    form = InviteSomeoneForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        thread = None
        try:
            thread = services.conversation_create(name=form.cleaned_data["name"])
            created = threads.invite_create(
                thread=thread,
                role=invite_role_default(thread) or "",
                expires_in=INVITE_FOR,
                uses=1,
                label=form.cleaned_data["label"],
            )
        except ThreadServiceError as exc:
            if thread is None:
                form.add_error(None, f"The conversation could not be started: {exc}.")
            else:  # the conversation is there; its People tab makes invites too
                flash.error(request, f"The invite could not be made: {exc}.")
                return redirect("core:thread_people", thread_id=thread.id)
        else:
            args = [thread.id, created.record.invite_id]
            return redirect(reverse("messaging:invited", args=args))
    status = 400 if form.errors else 200
    context = {"form": form, "days": INVITE_FOR.days}
    return render(request, "messaging/invite_someone.html", context, status=status)


def invited(request: HttpRequest, thread_id: str, invite_id: str) -> HttpResponse:
    """The invite just made, to pass on: its link, Copy, Share and QR code, what to do with it,
    and the way into the conversation. Drawn again on a reload, while the invite is open."""
    thread = _conversation(thread_id)
    invite = thread.invites.filter(invite_id=invite_id.lower()).exclude(link="").first()
    if invite is None:
        raise Http404("no invite made by this node with this id")
    who = invite.label or "the person you invite"
    expires = expires_words(invite.expires_at)
    closed = {
        "redeemed": f"{who} joined with it",
        "used up": "it has been used",
        "revoked": "it was revoked",
    }.get(invite.status, "it has expired" if expires == "expired" else "")
    share = {
        "link": invite.link,
        "qr": mark_safe(qr_svg(invite.link)),  # noqa: S308 - segno's SVG: no script, escaped
        "title": f"Join {thread.name}",
    }
    context = {
        "thread": thread,
        "invite": invite,
        "who": who,
        "expires": expires,
        "closed": closed,
        "share": share,
    }
    response = render(request, "messaging/invited.html", context)
    response["Cache-Control"] = "no-store"  # the page holds the invite's secret
    return response


def page_context(thread: Thread, *, before: str | None = None, query: str = "") -> dict:
    try:
        if query:
            page = selectors.search(thread, query)
        else:
            # One more than a page: whether there are older messages to link to.
            page = selectors.messages(thread, before=before, limit=selectors.PAGE + 1)
    except ValueError:
        raise Http404("no such page") from None
    shown = page[: selectors.PAGE]
    attachments.fetch_missing(thread, shown)
    ordered = list(reversed(shown))  # oldest at the top, as a conversation reads
    chat.annotate(thread, ordered)
    return {
        "query": query,
        "before": before,
        "thread": thread,
        # Links on the page are absolute: it is also drawn at other addresses (a refused edit).
        "base": reverse("messaging:conversation", args=[thread.id]),
        "page": ordered,
        "older": shown[-1].cursor if len(page) > selectors.PAGE and not query else None,
        "reactions": services.REACTIONS,
        "can_post": thread.role in ("owner", "admin", "writer"),
        # What the conversation refused of this member's writes, with the text they wrote.
        "undelivered": undelivered.refused(thread),
    }


def _message_id(value: object) -> str | None:
    """A message id from the address (as the page writes it), or None when it is not one."""
    try:
        return uuid.UUID(str(value)).hex if value else None
    except ValueError:
        return None


def _page(
    request: HttpRequest,
    thread: Thread,
    form: MessageForm,
    *,
    editing: str | None = None,
    edit_form: MessageEditForm | None = None,
) -> HttpResponse:
    before = request.GET.get("before") or None
    query = request.GET.get("q", "").strip()[:200]
    context = page_context(thread, before=before, query=query)
    if before is None and not query:
        services.conversation_read(thread=thread)  # the newest messages are on screen
    editing = editing or _message_id(request.GET.get("edit"))
    replying = _message_id(form["reply_to"].value())
    thread_tabs = tabs(thread, APP)
    open_polls = []
    if django_apps.is_installed("apps.voting"):  # a card of the thread's open polls
        from apps.voting.views import thread_polls

        open_polls = thread_polls(thread)
    if edit_form is None:
        edit_form = MessageEditForm(
            initial={"text": next((m.text for m in context["page"] if m.id == editing), "")}
        )
    context.update(
        tabs=thread_tabs,
        # The owner and admins may add a checklist to the conversation (its page enables it).
        checklist_addable=django_apps.is_installed("apps.checklist")
        and thread.state == Thread.State.ACTIVE
        and thread.role in ("owner", "admin")
        and not any(tab.app == "checklist" for tab in thread_tabs),
        open_polls=open_polls,
        form=form,
        my_name=name_in(thread),
        editing=editing,
        # A delete asks first: the message is drawn with a confirmation in place of its menu.
        deleting=_message_id(request.GET.get("delete")),
        reply_quote=chat.quotes(thread, [], [replying])[replying] if replying else None,
        edit_form=edit_form,
        text_limit=MAX_TEXT,
        too_long=too_long(),
    )
    status = 400 if form.errors or edit_form.errors else 200
    return render(request, "messaging/conversation.html", context, status=status)


@require_http_methods(["GET", "POST"])
def conversation(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _conversation(thread_id)
    form = MessageForm(
        request.POST or None,
        request.FILES or None,
        initial={"reply_to": _message_id(request.GET.get("reply")), "id": uuid7()},
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.message_send(thread=thread, **form.cleaned_data)
        except ThreadServiceError as exc:
            form.add_error(None, str(exc))
        else:
            return _back(thread)
    return _page(request, thread, form)


def _at(message_id: str) -> str:
    """The anchor of a message on the page, to come back to it."""
    pk = _message_id(message_id)
    return f"m-{pk}" if pk else "end"


def _act(request: HttpRequest, thread: Thread, action, anchor: str = "end") -> HttpResponse:
    try:
        action()
    except ThreadServiceError as exc:
        flash.error(request, str(exc))
    return _back(thread, anchor)


@require_POST
def message_edit(request: HttpRequest, thread_id: str, message_id: str) -> HttpResponse:
    thread = _conversation(thread_id)
    form = MessageEditForm(request.POST)
    if not form.is_valid():
        # The page again, the edit open with what was typed and why it is refused: a redirect
        # would lose the text.
        blank = MessageForm(initial={"id": uuid7()})
        return _page(request, thread, blank, editing=_message_id(message_id), edit_form=form)
    return _act(
        request,
        thread,
        lambda: services.message_edit(
            thread=thread, message_id=message_id, text=form.cleaned_data["text"]
        ),
        _at(message_id),
    )


@require_POST
def message_delete(request: HttpRequest, thread_id: str, message_id: str) -> HttpResponse:
    thread = _conversation(thread_id)
    return _act(
        request, thread, lambda: services.message_delete(thread=thread, message_id=message_id)
    )


@require_POST
def message_react(request: HttpRequest, thread_id: str, message_id: str) -> HttpResponse:
    thread = _conversation(thread_id)
    form = ReactionForm(request.POST)
    emoji = form.cleaned_data["emoji"] if form.is_valid() else ""
    return _act(
        request,
        thread,
        lambda: services.reaction_toggle(thread=thread, message_id=message_id, emoji=emoji),
        _at(message_id),
    )


def attachment_get(request: HttpRequest, thread_id: str, attachment_id: str) -> HttpResponse:
    thread = _conversation(thread_id)
    found = selectors.attachment(thread, attachment_id)
    if found is None:
        raise Http404("no such attachment")
    return attachments.download(thread, found)


def attachment_thumb(request: HttpRequest, thread_id: str, attachment_id: str) -> HttpResponse:
    thread = _conversation(thread_id)
    found = selectors.attachment(thread, attachment_id)
    response = attachments.thumbnail(thread, found) if found is not None else None
    if response is None:
        raise Http404("no thumbnail")
    return response
