"""An admin site for the replicated models of one thread (apps register their models here).

Its URLs cannot carry the thread (Django's admin reverses its own URLs without it), so the thread
is chosen once (``/node/threads/<id>/data/``), kept in the session, and made the current thread
of every request to the site by ``ThreadContextMiddleware``. Every save and delete made here is an
ORM write on the thread's database: captured and packed into an op like any other.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from apps.core.models import Thread
from apps.core.threads.context import thread_context

SESSION_KEY = "sereus_data_admin_thread"
PREFIX = "/node/thread-data/"


class ThreadDataAdminSite(admin.AdminSite):
    site_header = "Thread data"
    site_title = "Thread data"
    index_title = "Rows of this thread"

    def each_context(self, request: HttpRequest) -> dict:
        context = super().each_context(request)
        thread = Thread.objects.filter(pk=request.session.get(SESSION_KEY, "")).first()
        context["site_header"] = f"Thread data: {thread}" if thread else self.site_header
        return context


thread_data_site = ThreadDataAdminSite(name="thread_data")


def thread_data_select(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = Thread.objects.filter(pk=thread_id.lower(), state=Thread.State.ACTIVE).first()
    if thread is None:
        raise Http404("no active thread with this id")
    request.session[SESSION_KEY] = thread.id
    return redirect("thread_data:index")


class ThreadContextMiddleware:
    """Requests to the thread data admin run in the thread chosen for it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(PREFIX):
            return self.get_response(request)
        thread_id = request.session.get(SESSION_KEY)
        if not thread_id:
            return self.get_response(request)
        with thread_context(bytes.fromhex(thread_id)):
            return self.get_response(request)
