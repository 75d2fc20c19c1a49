"""Timeline pages: a timeline (its posts, newest first, and the compose form for its owner and
co-authors), a post with its threaded replies, its edit history, and the actions on them. Thin:
forms check shape, services write, refusals show as messages in plain words; every action is a
form that posts and redirects, the live socket only saves the reload. The feed and its rules
are in ``views_feed.py``; both draw posts as ``display.Card``s."""

from __future__ import annotations

import uuid

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads.context import thread_context
from apps.core.threads.pages import tabs
from apps.core.threads.services import ThreadServiceError
from apps.messaging import attachments as serving
from apps.messaging.selectors import AttachmentView as Served
from apps.messaging.services import REACTIONS, Upload
from apps.timeline import selectors, services, text
from apps.timeline.display import (
    active,
    can_post,
    can_reply,
    cards,
    post_url,
    said,
    served,
    threaded,
)
from apps.timeline.forms import (
    EditForm,
    PostForm,
    ReactionForm,
    ReplyEditForm,
    ReplyForm,
    ShareForm,
)
from apps.timeline.policy import APP, FOLLOWER
from apps.timeline.post import PostView

PAGE = 20


def _thread(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise Http404("no such timeline on this node")
    return thread


def _post(thread: Thread, post_id: str) -> PostView:
    found = selectors.post(thread, post_id)
    if found is None:
        raise Http404("no such post in this timeline")
    return found


def _uploads(files) -> list[Upload]:
    return list(files or [])  # Django's uploaded files are what the services read


def timeline_context(thread: Thread, *, before: str | None = None) -> dict:
    """A page of the timeline's posts (also what its live socket renders)."""
    try:
        page = selectors.posts(thread, before=before, limit=PAGE + 1)
    except ValueError:
        raise Http404("no such page") from None
    shown = page[:PAGE]
    return {
        "thread": thread,
        "cards": cards(shown, {thread.id: thread}),
        "older": shown[-1].cursor if len(page) > PAGE else None,
        "before": before,
        "reactions": REACTIONS,
        "back": reverse("timeline:timeline", args=[thread.id]),
    }


@require_http_methods(["GET", "POST"])
def timeline(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    form = PostForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.post_create(
                thread=thread,
                text_=data["text"],
                title=data["title"],
                public=data["public"],
                files=_uploads(data["files"]),
                cover=bool(data["title"]),
            )
        except ThreadServiceError as exc:
            if not can_post(thread):  # a forged form: no compose form to show it beside
                flash.error(request, f"Your post was not published: {said(exc)}")
                return redirect("timeline:timeline", thread_id=thread.id)
            form.add_error(None, said(exc))
        else:
            flash.success(request, "Posted: your followers' nodes get it as they sync.")
            return redirect("timeline:timeline", thread_id=thread.id)
    before = request.GET.get("before") or None
    context = timeline_context(thread, before=before)
    context.update(
        tabs=tabs(thread, APP),
        form=form if can_post(thread) else None,
        owner=thread.role == "owner",
        live=active(thread) and not before,
        role=_role_words(thread),
    )
    status = 400 if form.errors else 200
    return render(request, "timeline/timeline.html", context, status=status)


def _role_words(thread: Thread) -> str:
    words = {
        "owner": "you own it",
        "admin": "you manage it",
        "writer": "you are a co-author",
        FOLLOWER: "you follow it",
        "reader": "you follow it (read only)",
    }
    if not active(thread):
        return f"you are no longer in it ({thread.get_state_display()})"
    return words.get(thread.role, "you follow it")


def post_context(thread: Thread, found: PostView) -> dict:
    """A post with its replies (also what its live socket renders)."""
    return {
        "thread": thread,
        "card": cards([found], {thread.id: thread})[0],
        "replies": threaded(thread, selectors.replies(thread, found.id)),
        "reactions": REACTIONS,
        "can_reply": can_reply(thread) and not found.deleted,
        "can_edit": can_post(thread),  # the author's role still lets them change posts
        "back": post_url(thread.id, found.id),
    }


def _reply_id(value: object) -> str | None:
    try:
        return uuid.UUID(str(value)).hex if value else None
    except ValueError:
        return None


def _shares(thread: Thread) -> list[tuple[str, str]]:
    """My timelines a post could be reposted to (not the one it is in)."""
    return [
        (t.id, t.name)
        for t in selectors.timelines()
        if t.id != thread.id and t.role in services.PUBLISHERS and active(t)
    ]


@require_http_methods(["GET", "POST"])
def post(request: HttpRequest, thread_id: str, post_id: str) -> HttpResponse:
    """The post and its conversation; a POST is a reply."""
    thread = _thread(thread_id)
    found = _post(thread, post_id)
    form = ReplyForm(
        request.POST or None, initial={"reply_to": _reply_id(request.GET.get("reply"))}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.reply_create(
                thread=thread,
                post_id=found.id,
                text_=form.cleaned_data["text"],
                reply_to=form.cleaned_data["reply_to"],
            )
        except ThreadServiceError as exc:
            if not can_reply(thread):  # a forged form: no reply form to show it beside
                flash.error(request, f"Your reply was not sent: {said(exc)}")
                return redirect(post_url(thread.id, found.id))
            form.add_error(None, said(exc))
        else:
            return redirect(post_url(thread.id, found.id) + "#replies-end")
    context = post_context(thread, found)
    editing = request.GET.get("edit") == "1" and found.mine and not found.deleted
    edit_reply = _reply_id(request.GET.get("edit_reply"))
    replying = _reply_id(form["reply_to"].value())
    shares = _shares(thread) if not found.deleted else []
    context.update(
        tabs=tabs(thread, APP),
        form=form,
        editing=editing,
        edit_form=EditForm(initial={"text": found.text, "title": found.title}),
        edit_reply=edit_reply,
        reply_edit_form=ReplyEditForm(
            initial={
                "text": next(
                    (r.reply.text for r in context["replies"] if r.reply.id == edit_reply), ""
                )
            }
        ),
        replying=next((r.reply for r in context["replies"] if r.reply.id == replying), None),
        share_form=ShareForm(timelines=shares) if shares else None,
        live=active(thread) and not editing and not edit_reply,
    )
    status = 400 if form.errors else 200
    return render(request, "timeline/post.html", context, status=status)


def _act(request: HttpRequest, action, failed: str, done: str = "") -> bool:
    try:
        action()
    except ThreadServiceError as exc:
        flash.error(request, f"{failed}: {said(exc)}")
        return False
    if done:
        flash.success(request, done)
    return True


@require_POST
def post_edit(request: HttpRequest, thread_id: str, post_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _post(thread, post_id)
    form = EditForm(request.POST)
    if not form.is_valid():
        flash.error(
            request,
            "Your edit was not saved: "
            + " ".join(str(e) for errors in form.errors.values() for e in errors),
        )
        return redirect(post_url(thread.id, found.id) + "?edit=1")
    data = form.cleaned_data
    _act(
        request,
        lambda: services.post_edit(
            thread=thread,
            post_id=found.id,
            text_=data["text"],
            title=data["title"] if found.title else None,
        ),
        "Your edit was not saved",
        "Saved. Earlier versions stay in the post's history.",
    )
    return redirect(post_url(thread.id, found.id))


@require_POST
def post_delete(request: HttpRequest, thread_id: str, post_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _post(thread, post_id)
    ok = _act(
        request,
        lambda: services.post_delete(thread=thread, post_id=found.id),
        "The post was not deleted",
        "The post is deleted for everyone.",
    )
    return (
        redirect("timeline:timeline", thread_id=thread.id)
        if ok
        else redirect(post_url(thread.id, found.id))
    )


@require_POST
def react(request: HttpRequest, thread_id: str, post_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _post(thread, post_id)
    form = ReactionForm(request.POST)
    back = request.POST.get("back", "")
    anchor = f"#p-{found.id}"
    if not form.is_valid():
        flash.error(request, "That reaction was not understood.")
    else:
        target = form.cleaned_data["target"].hex
        anchor = anchor if target == found.id else f"#r-{target}"
        _act(
            request,
            lambda: services.reaction_set(
                thread=thread,
                target=target,
                emoji=form.cleaned_data["emoji"],
                on=form.cleaned_data["on"],
            ),
            "Your reaction was not saved",
        )
    # Back to where the button was: the feed, the timeline or the post (only our own pages).
    if not (back.startswith("/node/") and "//" not in back and "#" not in back):
        back = post_url(thread.id, found.id)
    return redirect(back + anchor)


@require_POST
def reply_edit(request: HttpRequest, thread_id: str, post_id: str, reply_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _post(thread, post_id)
    form = ReplyEditForm(request.POST)
    if form.is_valid():
        _act(
            request,
            lambda: services.reply_edit(
                thread=thread, reply_id=reply_id, text_=form.cleaned_data["text"]
            ),
            "Your reply was not changed",
        )
    else:
        flash.error(request, "Your reply was not changed: write something.")
    return redirect(post_url(thread.id, found.id) + f"#r-{_reply_id(reply_id) or ''}")


@require_POST
def reply_delete(request: HttpRequest, thread_id: str, post_id: str, reply_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _post(thread, post_id)
    _act(
        request,
        lambda: services.reply_delete(thread=thread, reply_id=reply_id),
        "The reply was not deleted",
    )
    return redirect(post_url(thread.id, found.id))


@require_POST
def share(request: HttpRequest, thread_id: str, post_id: str) -> HttpResponse:
    """Repost this post to one of my timelines, or quote it with words of my own."""
    thread = _thread(thread_id)
    found = _post(thread, post_id)
    form = ShareForm(request.POST, timelines=_shares(thread))
    if not form.is_valid():
        flash.error(request, "Not reposted: choose one of your timelines.")
        return redirect(post_url(thread.id, found.id))
    target = _thread(form.cleaned_data["timeline"])
    words = form.cleaned_data["text"].strip()
    ok = _act(
        request,
        lambda: services.post_create(
            thread=target,
            text_=words,
            repost_of=None if words else found.key,
            quote_of=found.key if words else None,
        ),
        "Not reposted",
        f"Shared on {target.name}.",
    )
    if ok:
        return redirect("timeline:timeline", thread_id=target.id)
    return redirect(post_url(thread.id, found.id))


@require_GET
def history(request: HttpRequest, thread_id: str, post_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _post(thread, post_id)
    versions = [
        {"version": v, "html": text.render(found.kind, v.text)}
        for v in reversed(selectors.history(thread, found.id))
    ]
    context = {"thread": thread, "post": found, "versions": versions, "tabs": tabs(thread, APP)}
    return render(request, "timeline/history.html", context)


def _file(thread: Thread, attachment_id: str) -> Served | None:
    try:
        pk = uuid.UUID(str(attachment_id)).hex
    except ValueError:
        return None
    from apps.timeline.models import Attachment

    with thread_context(thread.thread):
        row = Attachment.objects.filter(pk=pk).values_list("target", flat=True).first()
    if row is None:
        return None
    found = selectors.post(thread, row.hex)
    if found is None or found.deleted:
        return None
    files = selectors.attachments(thread, [found.id]).get(found.id, [])
    match = next((f for f in files if f.id == pk), None)
    return served(thread, match) if match is not None else None


def attachment(request: HttpRequest, thread_id: str, attachment_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _file(thread, attachment_id)
    if found is None:
        raise Http404("no such file")
    return serving.download(thread, found)


def attachment_thumb(request: HttpRequest, thread_id: str, attachment_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _file(thread, attachment_id)
    response = serving.thumbnail(thread, found) if found is not None else None
    if response is None:
        raise Http404("no thumbnail")
    return response
