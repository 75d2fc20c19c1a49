"""The checklist page's live socket (``ws/checklist/<id>/``): the thread page's machinery (owner
only, coalesced renders of the last state whenever ops arrive or this node writes), rendering
the lists as one out-of-band swap, sent only when it changed."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string

from apps.checklist import selectors
from apps.core.threads.consumers import ThreadLiveConsumer


class ChecklistConsumer(ThreadLiveConsumer):
    _shown = ""

    def find(self, thread_id: str):
        thread = selectors.thread_find(thread_id)
        return thread if thread is not None and selectors.enabled(thread) else None

    def live_html(self) -> str:
        from apps.checklist.views import page_context

        thread = selectors.thread_find(self.thread_id)
        if thread is None:
            return ""
        context = {**page_context(thread), "csrf_token": self._csrf_token, "oob": True}
        html = render_to_string("checklist/_lists.html", context)
        if html == self._shown:
            return ""
        self._shown = html
        return html

    async def status_received(self, status: dict[str, Any]) -> None:
        return  # the checklist page shows no sync panel
