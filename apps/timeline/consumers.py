"""The timeline pages' live sockets. ``ws/feed/?feed=<name>`` joins the feed's group: a new post
from a followed timeline re-renders the newest page of the open feed, so it shows at the top.
``ws/timeline/<thread>/`` and ``ws/timeline/<thread>/<post>/`` re-render a timeline's posts and
a post with its replies when the thread changes (``ThreadLiveConsumer``: owner only, coalesced).
A render is sent only when what it shows changed; the forms on the page are never re-rendered,
so nothing a person is typing is lost."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core.consumers import OwnerStatusSocket
from apps.core.models import Thread
from apps.core.threads.consumers import COALESCE_SECONDS, AppLiveConsumer, csrf_token_for
from apps.core.timezones import zone_of_cookies
from apps.timeline import selectors

logger = logging.getLogger(__name__)


def _in_zone(scope: dict[str, Any], render) -> str:
    """Times as the page showed them: in the time zone its browser reported."""
    zone = zone_of_cookies(scope.get("cookies"))
    if zone is None:
        return render()
    with timezone.override(zone):
        return render()


class TimelineConsumer(AppLiveConsumer):
    def find(self, thread_id: str) -> Thread | None:
        return selectors.thread_find(thread_id)

    def render(self, thread: Thread) -> str:
        from apps.timeline.views import timeline_context

        context = {**timeline_context(thread), "oob": True, "csrf_token": self._csrf_token}
        return render_to_string("timeline/_posts.html", context)


class PostConsumer(TimelineConsumer):
    def render(self, thread: Thread) -> str:
        from apps.timeline.views import post_context

        found = selectors.post(thread, self.scope["url_route"]["kwargs"]["post_id"])
        if found is None:
            return ""
        context = {**post_context(thread, found), "oob": True, "csrf_token": self._csrf_token}
        return render_to_string("timeline/_post_live.html", context)


class FeedConsumer(OwnerStatusSocket):
    """The open feed page: joins the feed's group and renders its newest page when told that
    the feed changed, at most once per ``COALESCE_SECONDS`` and always after the last change."""

    _renderer: asyncio.Future | None = None
    _changed = False
    _joined = False
    _shown = ""
    feed_name = ""

    async def opened(self) -> None:
        from apps.timeline.feed_index import FEED_GROUP

        query = parse_qs(self.scope.get("query_string", b"").decode("utf-8", "replace"))
        self.feed_name = (query.get("feed") or [""])[0][:200]
        self._csrf_token = await database_sync_to_async(csrf_token_for)(self.scope)
        await self.channel_layer.group_add(FEED_GROUP, self.channel_name)
        self._joined = True
        # Posts that came between the page's render and this socket would otherwise wait for
        # the next change to show.
        await self.feed_changed({})

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self._renderer is not None:
            self._renderer.cancel()
        if self._joined:
            from apps.timeline.feed_index import FEED_GROUP

            await self.channel_layer.group_discard(FEED_GROUP, self.channel_name)

    async def feed_changed(self, message: dict[str, Any]) -> None:
        self._changed = True
        if self._renderer is None or self._renderer.done():
            self._renderer = asyncio.ensure_future(self._render_changes())

    async def _render_changes(self) -> None:
        while self._changed:
            self._changed = False
            try:
                html = await database_sync_to_async(self._html)()
                if html and html != self._shown:
                    self._shown = html
                    await self.send(text_data=html)
            except Exception:  # a failed render must not end the page's updates
                logger.exception("rendering the feed for a live page failed")
            await asyncio.sleep(COALESCE_SECONDS)

    def _html(self) -> str:
        return _in_zone(self.scope, self.render)

    def render(self) -> str:
        from apps.timeline.views_feed import _chosen, feed_context

        _, name = _chosen(self.feed_name)
        if not name:
            return ""
        context = {**feed_context(name), "oob": True, "csrf_token": self._csrf_token}
        return render_to_string("timeline/_feed_posts.html", context)

    async def status_received(self, status: dict[str, Any]) -> None:
        return  # the feed shows no sync panel
