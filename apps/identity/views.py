"""Achievements pages: a thread's claims a page at a time (enable Identity, claim one with
evidence) and a claim (attest, retract, withdraw, the credential). Thin: forms validate,
services write, refusals come back as messages in plain words; every action is a form that
posts and redirects, and the live socket only saves the reload. Evidence files, challenges,
witnesses and the rules have their pages in ``views_evidence``, ``views_challenges``,
``views_witnesses`` and ``views_settings``."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.threads.app_kit import app_enabled
from apps.identity import evidence as evidence_files
from apps.identity import selectors, services
from apps.identity.display import (
    challenge_form,
    claim_context,
    claim_form,
    file_name,
    list_context,
    manages,
    rule_words,
    takes_part,
    you_are,
)
from apps.identity.forms import AttestForm, RetractForm
from apps.identity.policy import APP
from apps.identity.views_common import (
    REFUSED,
    act,
    claim_view,
    due,
    enabled_thread,
    render_page,
    said,
    thread_of,
    to,
)

PAGE_ASKS = ("before", "after", "subject")

# -- the tab ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def achievements(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = thread_of(thread_id)
    enabled = app_enabled(thread, APP)
    can_claim = enabled and takes_part(thread)
    form = None
    if can_claim:
        posted = request.method == "POST"
        form = claim_form(thread, request.POST if posted else None, request.FILES or None)
        if posted and form.is_valid():
            try:
                made = services.claim_make(thread=thread, **form.service_arguments())
            except REFUSED as exc:
                form.add_error(None, said(exc))
            else:
                flash.success(request, "Your claim is made: members who saw it can now witness it.")
                return to("claim", thread, made)
    elif request.method == "POST":
        flash.error(request, "You cannot claim achievements in this thread.")
        return to("achievements", thread)
    context: dict[str, Any] = {
        "enabled": enabled,
        "can_enable": not enabled and manages(thread),
        "can_claim": can_claim,
        "form": form,
        "has_kinds": bool(form and form.fields["kind"].choices),
        "you_are": you_are(thread),
    }
    if enabled:
        # A page of claims (``before``/``after``: a claim id from the page's links), of one
        # member's if ``subject`` says so.
        asked = {k: request.GET.get(k, "").strip().lower() or None for k in PAGE_ASKS}
        context.update(list_context(thread, **asked))
        context["rule"] = rule_words(selectors.settings(thread))
    status = 400 if form is not None and form.errors else 200
    return render_page(request, "identity/achievements.html", thread, context, status)


@require_POST
def enable(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = thread_of(thread_id)
    act(
        request,
        lambda: services.identity_enable(thread=thread),
        "Achievements were not enabled",
        "Achievements are on in this thread: members can claim them and witness each other's.",
    )
    return to("achievements", thread)


# -- a claim ----------------------------------------------------------------------------------


@require_GET
def claim(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    due(thread)
    context = claim_context(thread, claim_view(thread, claim_id))
    view = context["claim"].view
    if context["can_challenge"]:
        initial = {"claim": view.id}
        context["challenge_form"] = challenge_form(thread, initial=initial, claim=view)
    missing = [f for f in view.evidence if not f.complete]
    if missing:
        evidence_files.fetch_missing(thread, missing)
    return render_page(request, "identity/claim.html", thread, context)


@require_POST
def attest(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    form = AttestForm(request.POST)
    if not form.is_valid():
        flash.error(request, "Choose whether you witnessed it or dispute it.")
        return to("claim", thread, claim_id)
    verdict, note = form.cleaned_data["verdict"], form.cleaned_data["note"]
    done = (
        "You witnessed this claim: your signed word is with it."
        if verdict == "witnessed"
        else "You disputed this claim: your signed word is with it."
    )
    act(
        request,
        lambda: services.attest(thread=thread, claim=claim_id, verdict=verdict, note=note),
        "Your word was not recorded",
        done,
    )
    return to("claim", thread, claim_id)


@require_POST
def retract(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    form = RetractForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    act(
        request,
        lambda: services.retract(thread=thread, claim=claim_id, reason=reason),
        "Your attestation was not retracted",
        "You took your word back: it no longer counts, and it counts against your standing.",
    )
    return to("claim", thread, claim_id)


@require_POST
def withdraw(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    act(
        request,
        lambda: services.claim_withdraw(thread=thread, claim=claim_id),
        "Your claim was not withdrawn",
        "Your claim is withdrawn: it is no longer verified, and nobody can witness it.",
    )
    return to("claim", thread, claim_id)


@require_GET
def credential(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    """The verified claim as an Open Badges credential (JSON), for the subject to keep."""
    from apps.identity import export

    thread = enabled_thread(thread_id)
    view = claim_view(thread, claim_id)
    try:
        made = export.claim_credential(thread=thread, claim=claim_id)
    except (export.ExportError, *REFUSED) as exc:
        flash.error(request, f"No credential: {said(exc)}")
        return to("claim", thread, claim_id)
    response = HttpResponse(
        json.dumps(made, indent=2, ensure_ascii=False), content_type="application/json"
    )
    name = file_name(view.title) or "achievement"
    response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response
