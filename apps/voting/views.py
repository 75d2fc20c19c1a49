"""Voting pages: a thread's polls (enable voting, open a poll) and each poll (vote, withdraw,
close, the result). Thin: forms validate, services write, refusals show as messages in plain
words; every action is a form that posts and redirects, the live socket only saves the reload.
Reading a page also does what is due: planned closes whose task was lost, and this member's
duties as a trustee."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads.pages import tabs
from apps.core.threads.registry import thread_database
from apps.core.threads.selectors import thread_roles
from apps.core.threads.services import ThreadServiceError
from apps.voting import selectors, services
from apps.voting.display import Shown, shown
from apps.voting.forms import PollForm, ballot_from, reordered
from apps.voting.policy import APP
from apps.voting.selectors import OPEN, PollView
from apps.voting.tally import MAX_SCORE
from apps.voting.words import RANKED_NAMED, guarantees

OPENERS = ("owner", "admin", "writer")
ADMINS = ("owner", "admin")


def _thread(thread_id: str) -> Thread:
    thread = selectors.thread_find(thread_id)
    if thread is None:
        raise Http404("no such thread on this node")
    return thread


def _poll(thread: Thread, poll_id: str) -> PollView:
    poll = selectors.poll(thread, poll_id) if selectors.enabled(thread) else None
    if poll is None:
        raise Http404("no such poll in this thread")
    return poll


def _to_list(thread: Thread) -> HttpResponse:
    return redirect(reverse("voting:polls", args=[thread.id]))


def _to_poll(thread: Thread, poll_id: str, query: str = "", anchor: str = "") -> HttpResponse:
    return redirect(reverse("voting:poll", args=[thread.id, poll_id]) + query + anchor)


def said(exc: ThreadServiceError) -> str:
    """A service's refusal as a sentence for the page."""
    text = str(exc).strip() or "The thread refused this."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _due(thread: Thread) -> None:
    """What reading the polls makes good: a planned close whose task was lost with a restart,
    and this member's part as a trustee (normally done as ops arrive)."""
    if selectors.enabled(thread):
        services.polls_due(thread=thread)
        services.duties(thread=thread)


def _active(thread: Thread) -> bool:
    return thread.state == Thread.State.ACTIVE


def members(thread: Thread) -> list[tuple[str, str]]:
    """The thread's members now, by name (the trustees' checkboxes)."""
    state = thread_database(thread.thread).replica().control.state
    names = selectors.member_names(thread)
    found = [(m.hex(), names[m.hex()]) for m, s in state.members.items() if s.active]
    return sorted(found, key=lambda pair: (pair[0] != thread.member_id, pair[1].casefold()))


def poll_form(thread: Thread, data=None) -> PollForm:
    return PollForm(
        data,
        roles=thread_roles(thread),
        default_roles=services.default_roles(thread),
        members=members(thread),
    )


def list_context(thread: Thread) -> dict:
    """The polls list (also what its live socket renders)."""
    enabled = selectors.enabled(thread)
    return {
        "thread": thread,
        "enabled": enabled,
        "polls": [shown(p) for p in selectors.polls(thread)] if enabled else [],
    }


@require_http_methods(["GET", "POST"])
def polls(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    enabled = selectors.enabled(thread)
    can_open = enabled and _active(thread) and thread.role in OPENERS
    form = poll_form(thread, request.POST) if can_open and request.method == "POST" else None
    if form is not None and form.is_valid():
        try:
            poll = services.poll_open(thread=thread, **form.service_arguments())
        except ThreadServiceError as exc:
            form.add_error(None, said(exc))
        else:
            flash.success(request, "Your poll is open: every member's node has it.")
            return _to_poll(thread, poll.id.hex)
    if request.method == "GET":
        _due(thread)
    context = list_context(thread)
    context.update(
        tabs=tabs(thread, APP),
        can_open=can_open,
        can_enable=not enabled and _active(thread) and thread.role in ADMINS,
        form=form or (poll_form(thread) if can_open else None),
        ranked_named=RANKED_NAMED,
        zone=timezone.get_current_timezone_name(),
    )
    status = 400 if form is not None and form.errors else 200
    return render(request, "voting/polls.html", context, status=status)


@require_POST
def enable(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    try:
        services.voting_enable(thread=thread)
    except ThreadServiceError as exc:
        flash.error(request, said(exc))
    else:
        flash.success(request, "Voting is on in this thread: every member sees its polls.")
    return _to_list(thread)


def ranking_order(poll: PollView, asked: str) -> list[int]:
    """The order a ranked ballot shows: as the up and down buttons left it (``?order=``), else
    this member's ballot, else the poll's."""
    count = len(poll.shape.options)
    order = [int(v) for v in asked.split(",") if v.isdigit()] if asked else []
    if sorted(order) == list(range(count)):
        return order
    ranking = list((poll.my_ballot or {}).get("ranking") or [])
    if all(isinstance(i, int) and 0 <= i < count for i in ranking):
        return ranking + [i for i in range(count) if i not in ranking]
    return list(range(count))


def ballot_choices(poll: PollView, order: list[int]) -> list[dict]:
    """Each option as the ballot form shows it, with what this member's ballot says of it."""
    mine = poll.my_ballot or {}
    options = poll.shape.options
    if poll.shape.method == "ranked":
        return [{"index": i, "option": options[i], "rank": n} for n, i in enumerate(order, 1)]
    scores = mine.get("scores") or []
    return [
        {
            "index": i,
            "option": option,
            "checked": mine.get("choice") == i or i in (mine.get("choices") or []),
            "score": scores[i] if i < len(scores) else 0,
        }
        for i, option in enumerate(options)
    ]


def poll_context(thread: Thread, poll: PollView, *, order: str = "") -> dict:
    view: Shown = shown(poll)
    return {
        "thread": thread,
        "poll": poll,
        "view": view,
        "guarantees": guarantees(poll.shape),
        "choices": ballot_choices(poll, ranking_order(poll, order)),
        "scores": range(MAX_SCORE + 1),
        "can_close": _active(thread) and poll.mine and poll.state != selectors.CLOSED,
        "can_withdraw": _active(thread) and poll.voted and poll.state == OPEN,
        "live": _active(thread) and poll.state != selectors.CLOSED,
    }


@require_http_methods(["GET"])
def poll(request: HttpRequest, thread_id: str, poll_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    _due(thread)
    found = _poll(thread, poll_id)
    context = poll_context(thread, found, order=request.GET.get("order", ""))
    context.update(tabs=tabs(thread, APP), moved="order" in request.GET)
    return render(request, "voting/poll.html", context)


@require_POST
def vote(request: HttpRequest, thread_id: str, poll_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = _poll(thread, poll_id)
    shape = found.shape
    move = request.POST.get("move", "")
    if move:  # an up or down press without the page's script: show the new order, cast nothing
        posted = [int(v) for v in request.POST.getlist("ranking") if v.isdigit()]
        order = reordered(posted, move, len(shape.options))
        query = "?order=" + ",".join(str(i) for i in order)
        return _to_poll(thread, found.id, query, "#ballot")
    ballot = ballot_from(shape.method, len(shape.options), request.POST)
    if ballot is None:
        flash.error(request, "Choose before you vote: your ballot was not cast.")
        return _to_poll(thread, found.id, anchor="#ballot")
    try:
        services.ballot_cast(thread=thread, poll_id=found.id, ballot=ballot)
    except ThreadServiceError as exc:
        flash.error(request, f"Your ballot was not cast: {said(exc)}")
    else:
        again = "replaced your earlier one" if found.voted else "counts"
        flash.success(request, f"Your ballot {again}. You can change it until the poll closes.")
    return _to_poll(thread, found.id)


def _act(request: HttpRequest, thread_id: str, poll_id: str, service, failed: str, done: str):
    """Run one action on a poll and come back to it with what happened, in words."""
    thread = _thread(thread_id)
    found = _poll(thread, poll_id)
    try:
        service(thread=thread, poll_id=found.id)
    except ThreadServiceError as exc:
        flash.error(request, f"{failed}: {said(exc)}")
    else:
        flash.success(request, done)
    return _to_poll(thread, found.id)


@require_POST
def withdraw(request: HttpRequest, thread_id: str, poll_id: str) -> HttpResponse:
    return _act(
        request,
        thread_id,
        poll_id,
        services.ballot_withdraw,
        "Your ballot was not withdrawn",
        "Your ballot is withdrawn: it no longer counts.",
    )


@require_POST
def close(request: HttpRequest, thread_id: str, poll_id: str) -> HttpResponse:
    return _act(
        request,
        thread_id,
        poll_id,
        services.poll_close,
        "The poll was not closed",
        "The poll is closed: the ballots your node had are the ones that count.",
    )


def thread_polls(thread: Thread) -> list[Shown]:
    """The open polls of a thread, for the card on its conversation page (none when voting is
    not enabled)."""
    if not selectors.enabled(thread):
        return []
    return [shown(p) for p in selectors.polls(thread) if p.state != selectors.CLOSED]
