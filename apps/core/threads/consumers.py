"""A thread page's live socket (``ws/threads/<id>/``): ops that arrive re-render the page's
activity, members and devices; the p2p worker's status fills in the thread's sync state."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from channels.db import database_sync_to_async
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware, get_token
from django.template.loader import render_to_string
from django.utils import timezone

from apps.core.consumers import OwnerStatusSocket
from apps.core.threads.selectors import (
    thread_find,
    thread_live,
    thread_manages,
    thread_sync_states,
)
from apps.core.timezones import zone_of_cookies
from apps.p2p.client import live_group

logger = logging.getLogger(__name__)

CLOSE_NOT_FOUND = 4404
COALESCE_SECONDS = 0.25  # the longest pause after a render
PAUSE_RENDERS = 3  # the pause after a render, in renders: renders take at most a quarter
PAUSE_MIN = 0.02
MEMBERS_TEMPLATE = "core/_thread_members.html"
# The technical view's parts, on the page of those who manage the thread only.
TECHNICAL_TEMPLATES = ("core/_thread_activity.html", "core/_thread_devices.html")


class ThreadLiveConsumer(OwnerStatusSocket):
    """Owner only, for a thread this node has. Joins the thread's live group (``thread.changed``
    is sent there after every transaction that added ops) and renders at once, then pauses a few
    renders' time (at most ``COALESCE_SECONDS``), always including the last change."""

    thread_id: str = ""
    coalesce_seconds = COALESCE_SECONDS
    _group: str | None = None
    _renderer: asyncio.Future | None = None
    _changed = False
    # Whether the page shows the technical view (sync, devices, activity): swapping in a part
    # the page does not have is an error in the page (htmx's oobErrorNoTarget).
    _technical = False

    async def refusal(self) -> int | None:
        code = await super().refusal()
        if code is not None:
            return code
        thread = await database_sync_to_async(self.find)(
            self.scope["url_route"]["kwargs"]["thread_id"]
        )
        if thread is None:
            return CLOSE_NOT_FOUND
        self.thread_id = thread.id
        return None

    def find(self, thread_id: str):
        """The thread this socket may follow, or None (a 4404 close)."""
        return thread_find(thread_id)

    def _shows_technical(self) -> bool:
        """As the page decided when it was rendered, a moment ago (core/thread.html)."""
        thread = thread_find(self.thread_id)
        return thread is not None and thread_manages(thread)

    async def opened(self) -> None:
        # The role and remove forms in re-rendered fragments need the page's CSRF token.
        self._csrf_token = await database_sync_to_async(csrf_token_for)(self.scope)
        self._technical = await database_sync_to_async(self._shows_technical)()
        self._group = live_group(bytes.fromhex(self.thread_id))
        await self.channel_layer.group_add(self._group, self.channel_name)
        # Ops that came between the page's render and this socket would otherwise wait for
        # the next change to show.
        await self.thread_changed({})

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        if self._renderer is not None:
            self._renderer.cancel()
        if self._group is not None:
            await self.channel_layer.group_discard(self._group, self.channel_name)

    async def thread_changed(self, message: dict[str, Any]) -> None:
        self._changed = True
        if self._renderer is None or self._renderer.done():
            self._renderer = asyncio.ensure_future(self._render_changes())

    async def _render_changes(self) -> None:
        # Leading edge at once, then a pause: changes during a render or the pause are folded
        # into one more render after it, so a burst costs a render per pause and the last state
        # shows.
        # The pause is a few renders long (at most ``coalesce_seconds``): what it guards is the
        # node's time, and a page that renders in milliseconds need not hold a message that
        # comes just after another for a tenth of a second.
        while self._changed:
            self._changed = False
            started = time.monotonic()
            try:
                html = await database_sync_to_async(self._live_html_in_zone)()
                if html:  # nothing that shows changed: nothing to send
                    await self.send(text_data=html)
                await self.rendered()
            except Exception:  # a failed render must not end the page's updates
                logger.exception("rendering thread %s for a live page failed", self.thread_id[:12])
            spent = time.monotonic() - started
            await asyncio.sleep(min(self.coalesce_seconds, max(PAUSE_MIN, PAUSE_RENDERS * spent)))

    async def thread_typing(self, message: dict[str, Any]) -> None:
        """Sent to the thread's group for app pages that show it (a conversation's); the
        thread page shows nothing of it, but must take it."""

    async def rendered(self) -> None:
        """Called after each render was sent (subclasses do what may wait until then)."""

    def _live_html_in_zone(self) -> str:
        # Times as the page showed them: in the time zone its browser reported.
        zone = zone_of_cookies(self.scope.get("cookies"))
        if zone is None:
            return self.live_html()
        with timezone.override(zone):
            return self.live_html()

    def live_html(self) -> str:
        """What a change re-renders (subclasses for app pages render their own parts)."""
        return thread_live_html(self.thread_id, self._csrf_token, technical=self._technical)

    async def status_received(self, status: dict[str, Any]) -> None:
        if not self._technical:
            return  # the sync state is in the technical view
        html = await database_sync_to_async(thread_sync_html)(self.thread_id, status)
        await self.send(text_data=html)


class AppLiveConsumer(ThreadLiveConsumer):
    """An app page's live part: ``render(thread)`` re-rendered at each change and sent only
    when it differs from what the page shows; app pages have no sync panel."""

    _shown = ""

    def render(self, thread) -> str:
        raise NotImplementedError

    def live_html(self) -> str:
        thread = self.find(self.thread_id)
        if thread is None:
            return ""
        html = self.render(thread)
        if html == self._shown:
            return ""
        self._shown = html
        return html

    async def status_received(self, status: dict[str, Any]) -> None:
        return


def thread_live_html(thread_id: str, csrf_token: str, *, technical: bool = True) -> str:
    """The thread page's members, and with ``technical`` its activity and devices, as
    out-of-band swaps."""
    thread = thread_find(thread_id)
    if thread is None:
        return ""
    context = {"live": thread_live(thread), "csrf_token": csrf_token, "oob": True}
    names = (MEMBERS_TEMPLATE, *TECHNICAL_TEMPLATES) if technical else (MEMBERS_TEMPLATE,)
    return "".join(render_to_string(name, context) for name in names)


def thread_sync_html(thread_id: str, status: dict[str, Any]) -> str:
    """The thread page's sync state for a ``p2p.status`` answer, as an out-of-band swap."""
    sync = next((s for s in thread_sync_states(status) if s.thread == thread_id), None)
    context = {"status": status, "sync": sync, "oob": True}
    return render_to_string("core/_thread_sync.html", context)


def csrf_token_for(scope: dict[str, Any]) -> str:
    """A token for the secret in the page's CSRF cookie, as the page itself would get."""
    request = HttpRequest()
    request.COOKIES = dict(scope.get("cookies") or {})
    request.session = scope.get("session")
    # The middleware parses (and checks) the cookie the same way it will on the form's POST.
    CsrfViewMiddleware(lambda request: None).process_request(request)
    return get_token(request)
