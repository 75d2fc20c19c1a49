"""Achievements pages: a thread's claims (enable Identity, claim one with evidence), a claim
(attest, retract, withdraw, challenge, the credential), challenges and duels (accept, judge),
witness standing, and the thread's settings. Thin: forms validate, services write, refusals
come back as messages in plain words; every action is a form that posts and redirects, and the
live socket only saves the reload."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from django.conf import settings as django_settings
from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from PIL import Image

from apps.core import blobs
from apps.core.models import Thread
from apps.core.threads.app_kit import app_enabled, app_thread_find
from apps.core.threads.pages import tabs
from apps.core.threads.services import ThreadServiceError
from apps.identity import evidence as evidence_files
from apps.identity import selectors, services
from apps.identity.display import (
    challenge_form,
    challenges_context,
    claim_context,
    claim_form,
    file_name,
    list_context,
    manages,
    people,
    rule_words,
    settings_context,
    takes_part,
    you_are,
)
from apps.identity.forms import (
    AttestForm,
    ChallengeForm,
    JudgeForm,
    KindForm,
    RetractForm,
    SettingsForm,
)
from apps.identity.policy import APP

PREVIEW = (480, 480)
MAX_PREVIEW_SOURCE = 32 * 1024 * 1024  # bigger images get their link, not a preview
MAX_PIXELS = 50_000_000


def _thread(thread_id: str) -> Thread:
    thread = app_thread_find(thread_id)
    if thread is None:
        raise Http404("no such thread on this node")
    return thread


def _enabled_thread(thread_id: str) -> Thread:
    thread = _thread(thread_id)
    if not app_enabled(thread, APP):
        raise Http404("achievements are not enabled in this thread")
    return thread


def said(exc: Exception) -> str:
    """A service's refusal as a sentence for the page."""
    text = str(getattr(exc, "words", "") or exc).strip() or "The thread refused this."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


REFUSED = (services.IdentityError, ThreadServiceError)


def _act(request: HttpRequest, action: Callable[[], Any], failed: str, done: str) -> bool:
    """Run one service call and say what happened, in words."""
    try:
        action()
    except REFUSED as exc:
        flash.error(request, f"{failed}: {said(exc)}")
        return False
    flash.success(request, done)
    return True


def _to(name: str, thread: Thread, *args: str, anchor: str = "") -> HttpResponse:
    return redirect(reverse(f"identity:{name}", args=[thread.id, *args]) + anchor)


def _claim_view(thread: Thread, claim_id: str):
    try:
        found = selectors.claim(thread, claim_id)
    except REFUSED as exc:
        raise Http404("no such claim in this thread") from exc
    if found is None:
        raise Http404("no such claim in this thread")
    return found


def _due(thread: Thread) -> None:
    """What reading the pages makes good: outcomes of decided challenges this member is a side
    of (normally written as ops arrive)."""
    with suppress(*REFUSED):  # shown undecided; the next op or reading tries again
        services.outcomes_due(thread=thread)


def _render(request: HttpRequest, template: str, thread: Thread, context: dict, status=200):
    context.update(thread=thread, tabs=tabs(thread, APP), manages=manages(thread))
    return render(request, template, context, status=status)


# -- the tab ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def achievements(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
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
                return _to("claim", thread, made)
    elif request.method == "POST":
        flash.error(request, "You cannot claim achievements in this thread.")
        return _to("achievements", thread)
    context: dict[str, Any] = {
        "enabled": enabled,
        "can_enable": not enabled and manages(thread),
        "can_claim": can_claim,
        "form": form,
        "has_kinds": bool(form and form.fields["kind"].choices),
        "you_are": you_are(thread),
    }
    if enabled:
        context.update(list_context(thread))
        context["rule"] = rule_words(selectors.settings(thread))
    status = 400 if form is not None and form.errors else 200
    return _render(request, "identity/achievements.html", thread, context, status)


@require_POST
def enable(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    _act(
        request,
        lambda: services.identity_enable(thread=thread),
        "Achievements were not enabled",
        "Achievements are on in this thread: members can claim them and witness each other's.",
    )
    return _to("achievements", thread)


# -- a claim ----------------------------------------------------------------------------------


@require_GET
def claim(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    _due(thread)
    context = claim_context(thread, _claim_view(thread, claim_id))
    view = context["claim"].view
    if context["can_challenge"]:
        initial = {"claim": view.id}
        context["challenge_form"] = challenge_form(thread, initial=initial, claim=view)
    missing = [f for f in view.evidence if not f.complete]
    if missing:
        evidence_files.fetch_missing(thread, missing)
    return _render(request, "identity/claim.html", thread, context)


@require_POST
def attest(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    form = AttestForm(request.POST)
    if not form.is_valid():
        flash.error(request, "Choose whether you witnessed it or dispute it.")
        return _to("claim", thread, claim_id)
    verdict, note = form.cleaned_data["verdict"], form.cleaned_data["note"]
    done = (
        "You witnessed this claim: your signed word is with it."
        if verdict == "witnessed"
        else "You disputed this claim: your signed word is with it."
    )
    _act(
        request,
        lambda: services.attest(thread=thread, claim=claim_id, verdict=verdict, note=note),
        "Your word was not recorded",
        done,
    )
    return _to("claim", thread, claim_id)


@require_POST
def retract(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    form = RetractForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    _act(
        request,
        lambda: services.retract(thread=thread, claim=claim_id, reason=reason),
        "Your attestation was not retracted",
        "You took your word back: it no longer counts, and it counts against your standing.",
    )
    return _to("claim", thread, claim_id)


@require_POST
def withdraw(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    _act(
        request,
        lambda: services.claim_withdraw(thread=thread, claim=claim_id),
        "Your claim was not withdrawn",
        "Your claim is withdrawn: it is no longer verified, and nobody can witness it.",
    )
    return _to("claim", thread, claim_id)


@require_GET
def credential(request: HttpRequest, thread_id: str, claim_id: str) -> HttpResponse:
    """The verified claim as an Open Badges credential (JSON), for the subject to keep."""
    from apps.identity import export

    thread = _enabled_thread(thread_id)
    view = _claim_view(thread, claim_id)
    try:
        made = export.claim_credential(thread=thread, claim=claim_id)
    except (export.ExportError, *REFUSED) as exc:
        flash.error(request, f"No credential: {said(exc)}")
        return _to("claim", thread, claim_id)
    response = HttpResponse(
        json.dumps(made, indent=2, ensure_ascii=False), content_type="application/json"
    )
    name = file_name(view.title) or "achievement"
    response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response


def _evidence(thread_id: str, claim_id: str, index: int):
    thread = _enabled_thread(thread_id)
    view = _claim_view(thread, claim_id)
    item = next((f for f in view.evidence if f.index == index), None)
    if item is None:
        raise Http404("no such file with this claim")
    return thread, view, item


def _untrusted(response: HttpResponse, name: str, *, inline: bool) -> HttpResponse:
    # The bytes are whatever a member sent: never let the browser sniff or run them.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=not inline, filename=name
    )
    return response


@require_GET
def evidence(request: HttpRequest, thread_id: str, claim_id: str, index: int) -> HttpResponse:
    thread, _view, item = _evidence(thread_id, claim_id, index)
    if not item.complete:
        evidence_files.fetch_missing(thread, [item])
        text = f"Still fetching this file from the other members ({item.percent}%)."
        words = {"content_type": "text/plain; charset=utf-8", "headers": {"Retry-After": "2"}}
        return HttpResponse(text, status=503, **words)
    kind = item.mime if item.is_image else "application/octet-stream"
    response = StreamingHttpResponse(evidence_files.file_bytes(thread, item), content_type=kind)
    response["Content-Length"] = str(item.size)
    return _untrusted(response, item.name, inline=item.is_image)


@require_GET
def evidence_preview(request: HttpRequest, thread_id: str, claim_id: str, index: int):
    """A small JPEG of an image, made here from the whole file (never one the sender made)."""
    thread, view, item = _evidence(thread_id, claim_id, index)
    if not item.is_image or not item.complete or item.size > MAX_PREVIEW_SOURCE:
        raise Http404("no preview of this file")
    path = Path(django_settings.DATA_DIR) / "thumbs" / thread.id / f"claim-{view.id}-{index}.jpg"
    if not path.exists():
        try:
            made = preview_of(b"".join(evidence_files.file_bytes(thread, item)))
        except (OSError, ValueError, Image.DecompressionBombError, blobs.BlobError) as exc:
            raise Http404("this image cannot be previewed") from exc
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(made)
        partial.replace(path)
    response = HttpResponse(path.read_bytes(), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return _untrusted(response, item.name, inline=True)


def preview_of(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        if image.width * image.height > MAX_PIXELS:  # a small file that decodes to a huge one
            raise ValueError("the image is too large to draw")
        image.thumbnail(PREVIEW)
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=80)
        return out.getvalue()


# -- challenges -------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def challenges(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    _due(thread)
    part = takes_part(thread)
    posted = part and request.method == "POST"
    against = request.POST.get("against") or request.GET.get("against") or ""
    form = None
    if part:
        data, initial = (request.POST, None) if posted else (None, {"against": against})
        form = challenge_form(thread, data, initial=initial, against=against)
    if posted and form is not None and form.is_valid():
        if _made(request, thread, form):
            return _to("challenges", thread)
    elif request.method == "POST" and not part:
        flash.error(request, "You cannot challenge in this thread.")
        return _to("challenges", thread)
    context = {**challenges_context(thread), "form": form, "against": against}
    status = 400 if form is not None and form.errors else 200
    return _render(request, "identity/challenges.html", thread, context, status)


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
    thread = _enabled_thread(thread_id)
    if not takes_part(thread):
        flash.error(request, "You cannot challenge in this thread.")
        return _to("claim", thread, claim_id)
    context = claim_context(thread, _claim_view(thread, claim_id))
    form = challenge_form(thread, request.POST, claim=context["claim"].view)
    if form.is_valid() and _made(request, thread, form):
        return _to("challenges", thread)
    context["challenge_form"] = form
    return _render(request, "identity/claim.html", thread, context, 400)


@require_POST
def challenge_accept(request: HttpRequest, thread_id: str, challenge_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    _act(
        request,
        lambda: services.challenge_accept(thread=thread, challenge=challenge_id),
        "You did not accept",
        "You accepted the challenge and its judges: they can now decide it.",
    )
    return _to("challenges", thread)


@require_POST
def challenge_judge(request: HttpRequest, thread_id: str, challenge_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    form = JudgeForm(request.POST)
    if not form.is_valid():
        flash.error(request, "Choose who wins before you judge.")
        return _to("challenges", thread)
    winner, note = form.cleaned_data["winner"], form.cleaned_data["note"]

    def judged() -> None:
        services.judge(thread=thread, challenge=challenge_id, winner=winner, note=note)
        with suppress(*REFUSED):  # the judgement stands; the outcome follows as ops arrive
            services.outcome_record(thread=thread, challenge=challenge_id)

    _act(request, judged, "Your judgement was not recorded", "Your judgement is recorded.")
    return _to("challenges", thread)


# -- witnesses --------------------------------------------------------------------------------


@require_GET
def witnesses(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    context = {
        "witnesses": selectors.witnesses(thread),
        "rule": rule_words(selectors.settings(thread)),
    }
    return _render(request, "identity/witnesses.html", thread, context)


@require_GET
def witness(request: HttpRequest, thread_id: str, member: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    member = member.lower()
    known = member in services.members_now(thread) or selectors.witnesses(thread, member=member)
    found = selectors.witness(thread, member) if known else None
    if found is None:
        raise Http404("no such member in this thread")
    context = {"witness": found, "rule": rule_words(selectors.settings(thread))}
    return _render(request, "identity/witness.html", thread, context)


# -- settings ---------------------------------------------------------------------------------


def _manager_thread(request: HttpRequest, thread_id: str) -> Thread | None:
    thread = _enabled_thread(thread_id)
    if not manages(thread):
        flash.error(request, "Only the owner and admins change the thread's achievement rules.")
        return None
    return thread


@require_http_methods(["GET", "POST"])
def settings(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _enabled_thread(thread_id)
    if request.method == "POST":
        if _manager_thread(request, thread_id) is None:
            return _to("settings", thread)
        form = SettingsForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            if _act(
                request,
                lambda: services.settings_set(
                    thread=thread, witnesses=data["witnesses"], flag_after=data["flag_after"]
                ),
                "The rules were not changed",
                "The new rules are in force on every member's node.",
            ):
                return _to("settings", thread)
        context = settings_context(thread, settings_form=form)
        return _render(request, "identity/settings.html", thread, context, 400)
    return _render(request, "identity/settings.html", thread, settings_context(thread))


@require_POST
def kind_add(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _manager_thread(request, thread_id)
    if thread is None:
        return _to("settings", _thread(thread_id))
    form = KindForm(request.POST)
    if not form.is_valid():
        context = settings_context(thread, kind_form=form)
        return _render(request, "identity/settings.html", thread, context, 400)
    slug, label = form.cleaned_data["slug"], form.cleaned_data["label"]
    _act(
        request,
        lambda: services.kind_add(thread=thread, slug=slug, label=label),
        "The kind was not added",
        f"Members can now claim “{label}”.",
    )
    return _to("settings", thread, anchor="#kinds")


@require_POST
def kind_retire(request: HttpRequest, thread_id: str, slug: str) -> HttpResponse:
    thread = _manager_thread(request, thread_id)
    if thread is None:
        return _to("settings", _thread(thread_id))
    _act(
        request,
        lambda: services.kind_retire(thread=thread, slug=slug),
        "The kind was not retired",
        "Nobody can claim that kind any more; its claims stay.",
    )
    return _to("settings", thread, anchor="#kinds")


def _authority(request: HttpRequest, thread_id: str, revoke: bool) -> HttpResponse:
    thread = _manager_thread(request, thread_id)
    if thread is None:
        return _to("settings", _thread(thread_id))
    kind, member = request.POST.get("kind", ""), request.POST.get("member", "")
    name = dict(people(thread)).get(member)
    if not kind or name is None:
        flash.error(request, "Choose a kind and a member of this thread.")
        return _to("settings", thread, anchor="#authorities")
    service = services.authority_revoke if revoke else services.authority_add
    _act(
        request,
        lambda: service(thread=thread, kind=kind, member=member),
        "The trust was not revoked" if revoke else "The trust was not given",
        f"{name} is no longer trusted for it." if revoke else f"{name} is trusted for it now.",
    )
    return _to("settings", thread, anchor="#authorities")


@require_POST
def authority_add(request: HttpRequest, thread_id: str) -> HttpResponse:
    return _authority(request, thread_id, revoke=False)


@require_POST
def authority_revoke(request: HttpRequest, thread_id: str) -> HttpResponse:
    return _authority(request, thread_id, revoke=True)
