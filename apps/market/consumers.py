"""The market pages' live sockets: ``ws/market/shop/<thread>/`` re-renders a shop's listings,
``ws/market/shop/<thread>/<listing>/`` a listing's auction, bids and offers, and
``ws/market/deal/<thread>/`` a deal's timeline, actions and chat, whenever ops arrive or this
node writes (never a form a person may be typing in). The thread page's machinery does the rest
(owner only, coalesced renders, sent only when what it shows changed)."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.consumers import AppLiveConsumer
from apps.market.policy import DEAL_APP, SHOP_APP


def _shaped(thread_id: str, shape: str) -> Thread | None:
    thread = app_thread_find(thread_id)
    return thread if thread is not None and thread.app == shape else None


class ShopConsumer(AppLiveConsumer):
    def find(self, thread_id: str) -> Thread | None:
        return _shaped(thread_id, SHOP_APP)

    def render(self, thread: Thread) -> str:
        from apps.market import views

        listing = self.scope["url_route"]["kwargs"].get("listing")
        if listing:
            return views.listing_live_html(thread, listing, self._csrf_token)
        return views.shop_live_html(thread, self._csrf_token)


class DealConsumer(AppLiveConsumer):
    """Each part (the timeline, the actions, the chat) is sent only when it changed, so the
    action forms are not re-rendered under a person typing while a message arrives."""

    _parts: dict[str, str] | None = None

    def find(self, thread_id: str) -> Thread | None:
        return _shaped(thread_id, DEAL_APP)

    def live_html(self) -> str:
        from apps.market import deal_views

        thread = self.find(self.thread_id)
        if thread is None:
            return ""
        parts = deal_views.deal_live_parts(thread, self._csrf_token)
        shown = self._parts or {}
        self._parts = parts
        return "".join(html for name, html in parts.items() if shown.get(name) != html)
