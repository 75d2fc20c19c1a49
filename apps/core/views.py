"""Node pages: claim, login, dashboard and settings. Thin: forms validate, services write."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from apps.core import identity, selectors, services
from apps.core.forms import ClaimForm, DeviceClaimForm, PassphraseForm, RevealPhraseForm
from apps.core.models import Thread
from apps.core.node_addresses import running_config
from apps.core.threads import pages
from apps.core.threads import services as thread_services
from apps.core.threads.qr import qr_svg

CLAIM_SESSION_KEY = "sereus_claim_token"


def _secret_page(response: HttpResponse) -> HttpResponse:
    # Pages showing a secret must not be kept by the browser cache or the service worker.
    response["Cache-Control"] = "no-store"
    return response


@login_not_required
@never_cache
@require_http_methods(["GET", "POST"])
def claim(request: HttpRequest) -> HttpResponse:
    """The one-time claim URL printed at start-up: create the owner, show the recovery phrase."""
    if not services.node_needs_claim():
        messages.info(request, "This node already has an owner. Log in instead.")
        return redirect("core:login")

    token = request.GET.get("token")
    if token is not None:
        # Move the token out of the address bar (and out of history and Referer headers).
        if not services.claim_token_valid(token=token):
            return render(request, "core/claim_invalid.html", status=403)
        request.session[CLAIM_SESSION_KEY] = token
        return redirect("core:claim")

    token = request.session.get(CLAIM_SESSION_KEY, "")
    if not services.claim_token_valid(token=token):
        return render(request, "core/claim_invalid.html", status=403)

    # "This is another device of mine": the account as usual, then the device link (which
    # brings the person's secret, so no phrase is shown here) starts the join.
    joining = request.GET.get("as") == "device"
    form = (DeviceClaimForm if joining else ClaimForm)(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = services.owner_claim(
                token=token,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                passphrase=form.cleaned_data.get("passphrase") or None,
                joining=joining,
            )
        except services.NodeSetupError as exc:
            return render(request, "core/claim_invalid.html", {"reason": str(exc)}, status=403)
        request.session.pop(CLAIM_SESSION_KEY, None)
        login(request, result.user, backend="django.contrib.auth.backends.ModelBackend")
        if joining:
            return _join_start(request, form.cleaned_data["link"])
        if result.recovery_phrase is None:
            return redirect("core:dashboard")
        return _secret_page(
            render(
                request,
                "core/recovery_phrase.html",
                {"words": result.recovery_phrase.split(), "after_claim": True},
            )
        )
    context = {"form": form, "joining": joining, "mirror": settings.SEREUS.mirror}
    return render(request, "core/claim.html", context)


def _join_start(request: HttpRequest, link: str) -> HttpResponse:
    """After a claim with a device link: start the join, and show how far it is."""
    from apps.cadre.control import CadreError
    from apps.cadre.link import join_start

    try:
        join_start(link=link)
    except CadreError as exc:
        messages.error(request, exc.words)
    return redirect("cadre:join")


def dashboard(request: HttpRequest) -> HttpResponse:
    """Home: the person's threads, those with something new or waiting first; a first-run path
    when there are none. The node's own status is on the Network page."""
    return render(
        request,
        "core/dashboard.html",
        {
            "recovery_pending": selectors.recovery_phrase_pending(),
            "threads": pages.activity(
                thread_services.thread_list().filter(state=Thread.State.ACTIVE)
            ),
            "joining": Thread.objects.filter(state=Thread.State.JOINING).count(),
        },
    )


def network(request: HttpRequest) -> HttpResponse:
    """How this node reaches the others: the p2p worker, connections and sync, live."""
    return render(
        request,
        "core/network.html",
        {
            "info": selectors.node_info(),
            "config": running_config(),
            "scale_out": settings.SEREUS.scale_out,
        },
    )


def ui_gallery(request: HttpRequest) -> HttpResponse:
    """Every component of the design system with sample content (docs/ui.md's screenshots)."""
    link = "sereus:invite/sample-link-not-an-invite-0000000000000000000000000000000000000000"
    samples = [
        ("Book club", "book-club", "Sam: see you at 8", 3),
        ("Amira", "amira", "You: thanks!", 0),
        ("Moving day", "moving-day", "Checklist", 0),
    ]
    share = {
        "link": link,
        "qr": mark_safe(qr_svg(link)),  # noqa: S308 - segno's SVG: no script, the text escaped
        "about": "Send this link (or show the QR code) to the person you invite. It works once.",
        "title": "Join Book club",
    }
    return render(request, "core/ui_gallery.html", {"samples": samples, "share": share})


def _settings_page(
    request: HttpRequest, *, passphrase_form: PassphraseForm | None = None, status: int = 200
) -> HttpResponse:
    sealed = selectors.master_secret_sealed()
    return render(
        request,
        "core/settings.html",
        {
            "info": selectors.node_info(),
            "sealed": sealed,
            "passphrase_form": passphrase_form or PassphraseForm(sealed=sealed),
            "recovery_pending": selectors.recovery_phrase_pending(),
            "config": running_config(),
        },
        status=status,
    )


def node_settings(request: HttpRequest) -> HttpResponse:
    return _settings_page(request)


@require_POST
def passphrase_change(request: HttpRequest) -> HttpResponse:
    sealed = selectors.master_secret_sealed()
    form = PassphraseForm(request.POST, sealed=sealed)
    if form.is_valid():
        try:
            services.master_passphrase_set(
                old_passphrase=form.cleaned_data.get("current") or None,
                new_passphrase=form.cleaned_data["new"] or None,
            )
        except identity.WrongPassphrase:
            form.add_error("current", "That passphrase does not open the master secret.")
        else:
            messages.success(
                request,
                "Passphrase set." if form.cleaned_data["new"] else "Passphrase removed.",
            )
            return redirect("core:settings")
    return _settings_page(request, passphrase_form=form, status=400)


@never_cache
@require_http_methods(["GET", "POST"])
def recovery_reveal(request: HttpRequest) -> HttpResponse:
    """Show the recovery phrase once to an owner created without the claim page."""
    if not selectors.recovery_phrase_pending():
        messages.info(request, "The recovery phrase was already shown once.")
        return redirect("core:settings")
    sealed = selectors.master_secret_sealed()
    form = RevealPhraseForm(request.POST or None, user=request.user, sealed=sealed)
    if request.method == "POST" and form.is_valid():
        try:
            phrase = services.recovery_phrase_reveal(
                passphrase=form.cleaned_data.get("passphrase") or None
            )
        except identity.KeyFileError as exc:
            form.add_error("passphrase" if sealed else None, str(exc))
        else:
            return _secret_page(
                render(request, "core/recovery_phrase.html", {"words": phrase.split()})
            )
    return render(request, "core/recovery_reveal.html", {"form": form})


@require_POST
def api_token_create(request: HttpRequest) -> HttpResponse:
    token = services.api_token_create(user=request.user)
    return _secret_page(
        render(
            request,
            "core/token_created.html",
            {"token": token, "api_url": request.build_absolute_uri(reverse("api:node"))},
        )
    )


@require_POST
def api_tokens_revoke(request: HttpRequest) -> HttpResponse:
    count = services.api_tokens_revoke_all(user=request.user)
    messages.success(request, f"Revoked {count} API token{'s' if count != 1 else ''}.")
    return redirect("core:settings")


class LogoutView(auth_views.LogoutView):
    """Django's logout, and the browser forgets what the service worker kept for offline use
    (conversation pages, queued messages): a shared phone keeps nothing of the owner's."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        response["Clear-Site-Data"] = '"cache", "storage"'
        return response
