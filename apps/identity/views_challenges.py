"""Challenges and duels pages: the list with the form to challenge (a claim, a won challenge
back, or a member to a duel), the claim page's challenge form, accepting the judges, and
judging."""

from __future__ import annotations

from contextlib import suppress

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.models import Thread
from apps.identity import services
from apps.identity.display import challenge_form, challenges_context, claim_context, takes_part
from apps.identity.forms import ChallengeForm, JudgeForm
from apps.identity.views_common import (
    REFUSED,
    act,
    claim_view,
    due,
    enabled_thread,
    render_page,
    said,
    to,
)


@require_http_methods(["GET", "POST"])
def challenges(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    due(thread)
    part = takes_part(thread)
    posted = part and request.method == "POST"
    against = request.POST.get("against") or request.GET.get("against") or ""
    form = None
    if part:
        data, initial = (request.POST, None) if posted else (None, {"against": against})
        form = challenge_form(thread, data, initial=initial, against=against)
    if posted and form is not None and form.is_valid():
        if _made(request, thread, form):
            return to("challenges", thread)
    elif request.method == "POST" and not part:
        flash.error(request, "You cannot challenge in this thread.")
        return to("challenges", thread)
    context = {**challenges_context(thread), "form": form, "against": against}
    status = 400 if form is not None and form.errors else 200
    return render_page(request, "identity/challenges.html", thread, context, status)


def _made(request: HttpRequest, thread: Thread, form: ChallengeForm) -> bool:
    arguments = form.service_arguments()
    try:
        services.challenge_make(thread=thread, **arguments)
    except REFUSED as exc:
        form.add_error(None, said(exc))
        return False
    how = (
        "its poll is open in the Polls tab"
        if arguments["mode"] == "poll"
        else "it waits for the member you challenged to accept the judges"
    )
    flash.success(request, f"Your challenge is made: {how}.")
    return True


@require_POST
def claim_challenge(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    """The claim page's challenge form: back to the claim with the form's errors."""
    thread = enabled_thread(thread_id)
    if not takes_part(thread):
        flash.error(request, "You cannot challenge in this thread.")
        return to("claim", thread, claim_id)
    context = claim_context(thread, claim_view(thread, claim_id))
    form = challenge_form(thread, request.POST, claim=context["claim"].view)
    if form.is_valid() and _made(request, thread, form):
        return to("challenges", thread)
    context["challenge_form"] = form
    return render_page(request, "identity/claim.html", thread, context, 400)


@require_POST
def challenge_accept(request: HttpRequest, thread_id: str, challenge_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    act(
        request,
        lambda: services.challenge_accept(thread=thread, challenge=challenge_id),
        "You did not accept",
        "You accepted the challenge and its judges: they can now decide it.",
    )
    return to("challenges", thread)


@require_POST
def challenge_judge(request: HttpRequest, thread_id: str, challenge_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    form = JudgeForm(request.POST)
    if not form.is_valid():
        flash.error(request, "Choose who wins before you judge.")
        return to("challenges", thread)
    winner, note = form.cleaned_data["winner"], form.cleaned_data["note"]

    def judged() -> None:
        services.judge(thread=thread, challenge=challenge_id, winner=winner, note=note)
        with suppress(*REFUSED):  # the judgement stands; the outcome follows as ops arrive
            services.outcome_record(thread=thread, challenge=challenge_id)

    act(request, judged, "Your judgement was not recorded", "Your judgement is recorded.")
    return to("challenges", thread)
