"""What every achievements page starts from: the thread (404 when it is not here or the app is
off), a service call whose refusal comes back as a message in plain words, the redirect after a
form, and the render with the thread's tabs."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.core.models import Thread
from apps.core.threads.app_kit import app_enabled, app_thread_find
from apps.core.threads.pages import tabs
from apps.core.threads.services import ThreadServiceError
from apps.identity import selectors, services
from apps.identity.display import manages
from apps.identity.policy import APP
from apps.identity.selector_views import ClaimView


def thread_of(thread_id: str) -> Thread:
    thread = app_thread_find(thread_id)
    if thread is None:
        raise Http404("no such thread on this node")
    return thread


def enabled_thread(thread_id: str) -> Thread:
    thread = thread_of(thread_id)
    if not app_enabled(thread, APP):
        raise Http404("achievements are not enabled in this thread")
    return thread


def said(exc: Exception) -> str:
    """A service's refusal as a sentence for the page."""
    text = str(getattr(exc, "words", "") or exc).strip() or "The thread refused this."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


REFUSED = (services.IdentityError, ThreadServiceError)


def act(request: HttpRequest, action: Callable[[], Any], failed: str, done: str) -> bool:
    """Run one service call and say what happened, in words."""
    try:
        action()
    except REFUSED as exc:
        flash.error(request, f"{failed}: {said(exc)}")
        return False
    flash.success(request, done)
    return True


def to(name: str, thread: Thread, *args: str, anchor: str = "") -> HttpResponse:
    return redirect(reverse(f"identity:{name}", args=[thread.id, *args]) + anchor)


def claim_view(thread: Thread, claim_id: str) -> ClaimView:
    try:
        found = selectors.claim(thread, claim_id)
    except REFUSED as exc:
        raise Http404("no such claim in this thread") from exc
    if found is None:
        raise Http404("no such claim in this thread")
    return found


def due(thread: Thread) -> None:
    """What reading the pages makes good: outcomes of decided challenges this member is a side
    of (normally written as ops arrive)."""
    with suppress(*REFUSED):  # shown undecided; the next op or reading tries again
        services.outcomes_due(thread=thread)


def render_page(request: HttpRequest, template: str, thread: Thread, context: dict, status=200):
    context.update(thread=thread, tabs=tabs(thread, APP), manages=manages(thread))
    return render(request, template, context, status=status)
