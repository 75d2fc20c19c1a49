"""A conversation page's live socket (``ws/messages/<id>/``): the thread page's socket (owner
only, coalesced renders of the last state on every change) re-rendering the message list, and
the typing indicator: the page says its member is typing, the p2p node tells the other members'
nodes, whose pages show "… is typing" for a few seconds. Typing is never stored."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from channels.db import database_sync_to_async
from django.template.loader import render_to_string
from django.utils.html import format_html

from apps.core.threads import services as threads
from apps.core.threads.consumers import ThreadLiveConsumer
from apps.messaging import selectors, services

TYPING_EVERY = 2.0  # seconds between typing signals this page passes on
TYPING_SHOWN = 5.0  # seconds "… is typing" stays without a new signal
MAX_INPUT = 4096  # what the page sends is small; anything bigger is not from it
READ_AFTER = 1.0  # seconds of quiet on an open page before its newest messages count as read
ITEM_OOB = ' hx-swap-oob="true"'  # what messaging/_message.html adds to its item for item_oob


class ConversationConsumer(ThreadLiveConsumer):
    # Renders are a few kB (only what changed): a short pause between them is enough.
    coalesce_seconds = 0.1
    _shown: dict[str, str] | None = None  # message id -> its html, as last sent
    # message id -> (what its html was drawn from, the html): a change re-renders only the
    # messages it changed, not the page's fifty (rendering them was most of a change's cost).
    _drawn: dict[str, tuple[str, str]] | None = None
    _undelivered = ""  # the refused-writes section, as last sent
    _read_later: asyncio.Task | None = None
    _typing_sent = 0.0
    _typing_clear: asyncio.Task | None = None

    def find(self, thread_id: str):
        return selectors.conversation_find(thread_id)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > MAX_INPUT:
            return
        try:
            data = json.loads(text_data)
        except ValueError:
            return
        if not isinstance(data, dict) or data.get("typing") is not True:
            return
        now = time.monotonic()
        if now - self._typing_sent < TYPING_EVERY:
            return
        self._typing_sent = now
        network = threads.network
        if network is not None:
            await database_sync_to_async(network.typing)(bytes.fromhex(self.thread_id))

    async def thread_typing(self, message: dict[str, Any]) -> None:
        member = message.get("member")
        thread = await database_sync_to_async(selectors.conversation_find)(self.thread_id)
        if thread is None or not isinstance(member, str) or member == thread.member_id:
            return
        names = await database_sync_to_async(selectors.member_names)(thread)
        who = names[member]
        await self.send(text_data=_typing_html(f"{who} is typing…"))
        if self._typing_clear is not None:
            self._typing_clear.cancel()
        self._typing_clear = asyncio.ensure_future(self._clear_typing())

    async def _clear_typing(self) -> None:
        await asyncio.sleep(TYPING_SHOWN)
        await self.send(text_data=_typing_html(""))

    async def disconnect(self, code: int) -> None:
        for task in (self._typing_clear, self._read_later):
            if task is not None:
                task.cancel()
        await super().disconnect(code)

    def live_html(self) -> str:
        """The changes since this socket's last render, as out-of-band swaps of single messages
        (new ones appended, changed ones replaced, gone ones deleted): a new message costs a few
        kB, not the whole list. The whole list when that is simpler (first render, or a message
        that arrived late and belongs between others)."""
        from apps.messaging.views import page_context

        thread = selectors.conversation_find(self.thread_id)
        if thread is None:
            return ""
        context = {**page_context(thread), "csrf_token": self._csrf_token}
        shown = self._drawn_page(context)
        # The section of refused writes changes when a removal (or the like) arrives: the
        # message it takes from the list shows up there, with its text.
        undelivered = render_to_string("messaging/_undelivered.html", {**context, "oob": True})
        extra = "" if undelivered == self._undelivered else undelivered
        self._undelivered = undelivered
        before, self._shown = self._shown, shown
        if not before or not shown or not _appended_only(list(before), list(shown)):
            return extra + render_to_string("messaging/_messages.html", {**context, "oob": True})
        parts = [
            format_html('<li id="m-{}" hx-swap-oob="delete"></li>', gone)
            for gone in before
            if gone not in shown
        ]
        parts += [html for key, html in shown.items() if key in before and before[key] != html]
        added = [key for key in shown if key not in before]
        if added:
            # The same items without their own swap (the list's swap appends them): the one
            # attribute the template adds for ``item_oob``, taken off its first tag.
            items = "".join(shown[key].replace(ITEM_OOB, "", 1) for key in added)
            parts.append(f'<ol hx-swap-oob="beforeend:#messages">{items}</ol>')
        return extra + "".join(parts)

    def _drawn_page(self, context: dict[str, Any]) -> dict[str, str]:
        """Each message of the page as an out-of-band item, rendered again only when anything
        it is drawn from changed: the message as shown (text, author, reactions, receipts,
        attachments, its day and run, its quote) and what of the page it shows (the thread's
        state, whether this member may post; the token and time zone are the socket's)."""
        page_key = repr((context["thread"].state, context["can_post"], self._csrf_token))
        before = self._drawn or {}
        drawn: dict[str, tuple[str, str]] = {}
        for message in context["page"]:
            key = page_key + repr(vars(message))
            kept = before.get(message.id)
            if kept is None or kept[0] != key:
                item = {**context, "message": message, "item_oob": True}
                kept = (key, render_to_string("messaging/_message.html", item))
            drawn[message.id] = kept
        self._drawn = drawn
        return {key: html for key, (_drawn_from, html) in drawn.items()}

    async def rendered(self) -> None:
        # The page is open on its newest messages: they are read. Said once things are quiet,
        # not on every render: the receipt is a signed op of its own, and its change notice
        # would otherwise take the next render's turn from a message arriving just after.
        if self._read_later is not None:
            self._read_later.cancel()
        self._read_later = asyncio.ensure_future(self._mark_read())

    async def _mark_read(self) -> None:
        await asyncio.sleep(READ_AFTER)
        thread = await database_sync_to_async(selectors.conversation_find)(self.thread_id)
        if thread is not None:
            await database_sync_to_async(services.conversation_read)(thread=thread)

    async def status_received(self, status: dict[str, Any]) -> None:
        # The conversation page shows no sync panel; the thread page does.
        return


def _typing_html(text: str) -> str:
    return format_html(
        '<p id="typing" class="muted typing" aria-live="polite" hx-swap-oob="true">{}</p>', text
    )


def _appended_only(before: list[str], after: list[str]) -> bool:
    """Whether ``after`` is ``before`` with some of its oldest gone and new ones at the end (what
    appending and deleting single messages can draw)."""
    kept = [key for key in before if key in after]
    return after[: len(kept)] == kept
