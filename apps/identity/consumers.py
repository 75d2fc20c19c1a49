"""The achievements pages' live sockets: ``ws/identity/<thread>/`` re-renders the page of
claims it was opened from (its query string), ``.../challenges/`` the challenges, and
``.../<claim>/`` a claim's badge and its attestations (out-of-band swaps; never the forms,
so a render does not undo what the person is typing). The thread page's machinery does the
rest (owner only, coalesced renders whenever ops arrive or this node writes); a render is sent
only when what it shows changed, so the badge turns Verified on an open page as the
witnesses' attestations arrive."""

from __future__ import annotations

from urllib.parse import parse_qs

from django.template.loader import render_to_string

from apps.core.models import Thread
from apps.core.threads.app_kit import app_enabled, app_thread_find
from apps.core.threads.consumers import AppLiveConsumer
from apps.identity.policy import APP


class ClaimsConsumer(AppLiveConsumer):
    def find(self, thread_id: str) -> Thread | None:
        thread = app_thread_find(thread_id)
        return thread if thread is not None and app_enabled(thread, APP) else None

    def render(self, thread: Thread) -> str:
        from apps.identity.display import list_context
        from apps.identity.views import PAGE_ASKS

        # The page the socket was opened from (its query string): the same claims re-rendered.
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        asked = {k: (query.get(k) or [""])[0].strip().lower() or None for k in PAGE_ASKS}
        context = {**list_context(thread, **asked), "oob": True, "csrf_token": self._csrf_token}
        return render_to_string("identity/_claims.html", context)


class ChallengesConsumer(ClaimsConsumer):
    def render(self, thread: Thread) -> str:
        from apps.identity.display import challenges_context

        context = {**challenges_context(thread), "oob": True, "csrf_token": self._csrf_token}
        return render_to_string("identity/_challenges.html", context)


class ClaimConsumer(ClaimsConsumer):
    def render(self, thread: Thread) -> str:
        from apps.identity import selectors
        from apps.identity.display import claim_context

        found = selectors.claim(thread, self.scope["url_route"]["kwargs"]["claim_id"])
        if found is None:
            return ""
        context = {**claim_context(thread, found), "oob": True, "csrf_token": self._csrf_token}
        return render_to_string("identity/_claim_live.html", context)
