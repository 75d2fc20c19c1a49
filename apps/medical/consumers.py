"""The record pages' live socket: ``ws/medical/<record>/`` re-renders the overview and
``ws/medical/<record>/<kind>/`` a list of one kind whenever ops arrive or this node writes.
Entries marked sensitive live in the record's companion thread, so the socket follows that
thread's changes too when this node holds it. Forms are never re-rendered under a person."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from apps.core.models import Thread
from apps.core.threads.consumers import AppLiveConsumer
from apps.p2p.client import live_group


def _record(thread_id: str) -> Thread | None:
    from apps.medical import views

    try:
        return views.record_thread(thread_id)
    except Exception:  # Http404: not a record this node holds
        return None


def _companion_group(thread_id: str) -> str | None:
    from apps.medical import selectors

    thread = _record(thread_id)
    companion = selectors.sensitive_of(thread) if thread is not None else None
    return live_group(companion.thread) if companion is not None else None


class RecordConsumer(AppLiveConsumer):
    _companion: str | None = None

    def find(self, thread_id: str) -> Thread | None:
        return _record(thread_id)

    async def opened(self) -> None:
        await super().opened()
        self._companion = await database_sync_to_async(_companion_group)(self.thread_id)
        if self._companion is not None:
            await self.channel_layer.group_add(self._companion, self.channel_name)

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self._companion is not None:
            await self.channel_layer.group_discard(self._companion, self.channel_name)

    def render(self, thread: Thread) -> str:
        from apps.medical import views

        kwargs: dict[str, Any] = self.scope["url_route"]["kwargs"]
        slug = kwargs.get("slug")
        if slug:
            return views.list_live_html(thread, slug, self._csrf_token)
        return views.record_live_html(thread, self._csrf_token)
