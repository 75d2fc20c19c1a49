"""A tally page's live socket: ``ws/ledger/<thread>/`` re-renders its balance, requests and
history whenever ops arrive or this node writes (never its forms: a render must not undo what
the person is typing). The thread page's machinery does the rest (owner only, coalesced
renders, sent only when what it shows changed)."""

from __future__ import annotations

from django.template.loader import render_to_string

from apps.core.models import Thread
from apps.core.threads.consumers import AppLiveConsumer
from apps.ledger import selectors


class TallyConsumer(AppLiveConsumer):
    def find(self, thread_id: str) -> Thread | None:
        return selectors.thread_find(thread_id)

    def render(self, thread: Thread) -> str:
        from apps.ledger.views import live_context

        context = {**live_context(thread), "oob": True, "csrf_token": self._csrf_token}
        return render_to_string("ledger/_tally_live.html", context)
