"""Witness standing pages: every witness with the inputs of their standing, and one witness's
page (that witness's standing only)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from apps.identity import selectors, services
from apps.identity.display import rule_words
from apps.identity.views_common import enabled_thread, render_page


@require_GET
def witnesses(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    context = {
        "witnesses": selectors.witnesses(thread),
        "rule": rule_words(selectors.settings(thread)),
    }
    return render_page(request, "identity/witnesses.html", thread, context)


@require_GET
def witness(request: HttpRequest, thread_id: str, member: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    found = selectors.witness(thread, member)
    # A member now, or anyone who attested here once (a former member's standing stays).
    if found is None or (not found.attested and found.member not in services.members_now(thread)):
        raise Http404("no such member in this thread")
    context = {"witness": found, "rule": rule_words(selectors.settings(thread))}
    return render_page(request, "identity/witness.html", thread, context)
