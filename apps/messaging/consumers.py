"""A conversation page's live socket (``ws/messages/<id>/``): the thread page's socket (owner
only, coalesced renders of the last state on every change) re-rendering the message list."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from apps.core.threads.consumers import ThreadLiveConsumer
from apps.messaging import selectors, services


class ConversationConsumer(ThreadLiveConsumer):
    def find(self, thread_id: str):
        return selectors.conversation_find(thread_id)

    def live_html(self) -> str:
        from apps.messaging.views import page_context

        thread = selectors.conversation_find(self.thread_id)
        if thread is None:
            return ""
        context = {**page_context(thread), "csrf_token": self._csrf_token, "oob": True}
        html = render_to_string("messaging/_messages.html", context)
        # The page is open on its newest messages: they are read. (The receipt's own op comes
        # back as one more change, whose render writes nothing: receipts only move forward.)
        services.conversation_read(thread=thread)
        return html

    async def status_received(self, status: dict[str, Any]) -> None:
        # The conversation page shows no sync panel; the thread page does.
        return
