"""The voting pages' live sockets: ``ws/voting/<thread>/`` re-renders the polls list and
``ws/voting/<thread>/<poll>/`` a poll's turnout and result (never its ballot form: a render
must not undo what the person is choosing). The thread page's machinery does the rest (owner
only, coalesced renders whenever ops arrive or this node writes); a render is sent only when
what it shows changed."""

from __future__ import annotations

from django.template.loader import render_to_string

from apps.core.models import Thread
from apps.core.threads.consumers import AppLiveConsumer
from apps.voting import selectors


class PollsConsumer(AppLiveConsumer):
    def find(self, thread_id: str) -> Thread | None:
        thread = selectors.thread_find(thread_id)
        return thread if thread is not None and selectors.enabled(thread) else None

    def render(self, thread: Thread) -> str:
        from apps.voting.views import list_context

        return render_to_string("voting/_polls.html", {**list_context(thread), "oob": True})


class PollConsumer(PollsConsumer):
    def render(self, thread: Thread) -> str:
        from apps.voting.views import poll_context

        poll_id = self.scope["url_route"]["kwargs"]["poll_id"]
        found = selectors.poll(thread, poll_id)
        if found is None:
            return ""
        context = {**poll_context(thread, found), "oob": True, "csrf_token": self._csrf_token}
        return render_to_string("voting/_poll_live.html", context)
