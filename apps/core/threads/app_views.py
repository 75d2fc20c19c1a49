"""Turning a thread's apps on and off from its page (the thread page's "Apps" card)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.core.threads import thread_apps
from apps.core.threads.pages import app_label
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.views import _thread


@require_POST
def thread_app_toggle(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    app = request.POST.get("app", "")
    turn_on = request.POST.get("action") == "enable"
    try:
        if turn_on:
            thread_apps.app_enable(thread=thread, app=app)
        else:
            thread_apps.app_disable(thread=thread, app=app)
    except ThreadServiceError as exc:
        messages.error(request, str(exc))
    else:
        done = "added to" if turn_on else "turned off in"
        messages.success(request, f"{app_label(app) or app} {done} this thread.")
    return redirect("core:thread_people", thread_id=thread.id)
