"""The thread's achievement rules page (owner and admins change them): k witnesses and when a
witness is flagged, the kinds of achievement, and the members trusted for a kind."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.models import Thread
from apps.identity import services
from apps.identity.display import manages, people, settings_context
from apps.identity.forms import KindForm, SettingsForm
from apps.identity.views_common import act, enabled_thread, render_page, thread_of, to


def manager_thread(request: HttpRequest, thread_id: str) -> Thread | None:
    thread = enabled_thread(thread_id)
    if not manages(thread):
        flash.error(request, "Only the owner and admins change the thread's achievement rules.")
        return None
    return thread


@require_http_methods(["GET", "POST"])
def settings(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = enabled_thread(thread_id)
    if request.method == "POST":
        if manager_thread(request, thread_id) is None:
            return to("settings", thread)
        form = SettingsForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            if act(
                request,
                lambda: services.settings_set(
                    thread=thread, witnesses=data["witnesses"], flag_after=data["flag_after"]
                ),
                "The rules were not changed",
                "The new rules are in force on every member's node.",
            ):
                return to("settings", thread)
        context = settings_context(thread, settings_form=form)
        return render_page(request, "identity/settings.html", thread, context, 400)
    return render_page(request, "identity/settings.html", thread, settings_context(thread))


@require_POST
def kind_add(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = manager_thread(request, thread_id)
    if thread is None:
        return to("settings", thread_of(thread_id))
    form = KindForm(request.POST)
    if not form.is_valid():
        context = settings_context(thread, kind_form=form)
        return render_page(request, "identity/settings.html", thread, context, 400)
    slug, label = form.cleaned_data["slug"], form.cleaned_data["label"]
    act(
        request,
        lambda: services.kind_add(thread=thread, slug=slug, label=label),
        "The kind was not added",
        f"Members can now claim “{label}”.",
    )
    return to("settings", thread, anchor="#kinds")


@require_POST
def kind_retire(request: HttpRequest, thread_id: str, slug: str) -> HttpResponse:
    thread = manager_thread(request, thread_id)
    if thread is None:
        return to("settings", thread_of(thread_id))
    act(
        request,
        lambda: services.kind_retire(thread=thread, slug=slug),
        "The kind was not retired",
        "Nobody can claim that kind any more; its claims stay.",
    )
    return to("settings", thread, anchor="#kinds")


def _authority(request: HttpRequest, thread_id: str, revoke: bool) -> HttpResponse:
    thread = manager_thread(request, thread_id)
    if thread is None:
        return to("settings", thread_of(thread_id))
    kind, member = request.POST.get("kind", ""), request.POST.get("member", "")
    name = dict(people(thread)).get(member)
    if not kind or name is None:
        flash.error(request, "Choose a kind and a member of this thread.")
        return to("settings", thread, anchor="#authorities")
    service = services.authority_revoke if revoke else services.authority_add
    act(
        request,
        lambda: service(thread=thread, kind=kind, member=member),
        "The trust was not revoked" if revoke else "The trust was not given",
        f"{name} is no longer trusted for it." if revoke else f"{name} is trusted for it now.",
    )
    return to("settings", thread, anchor="#authorities")


@require_POST
def authority_add(request: HttpRequest, thread_id: str) -> HttpResponse:
    return _authority(request, thread_id, revoke=False)


@require_POST
def authority_revoke(request: HttpRequest, thread_id: str) -> HttpResponse:
    return _authority(request, thread_id, revoke=True)
