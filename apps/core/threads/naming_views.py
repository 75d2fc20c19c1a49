"""Name pages and forms (ADR 16): the display name (Settings), this member's name in one thread,
and the name only this node gives another member. Thin: the services check and write; a refusal
is shown as a message; every form redirects back where it came from."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.forms import DisplayNameForm
from apps.core.threads import naming
from apps.core.threads.names import thread_names
from apps.core.threads.services import ThreadServiceError
from apps.core.threads.views import _thread


class ThreadNameForm(forms.Form):
    """A name in one thread; empty: the usual one (the display name, or the member's own)."""

    name = forms.CharField(max_length=200, required=False, label="Name")


def _back(request: HttpRequest, default: str) -> HttpResponse:
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return redirect(target if target and safe else default)


def _save(request: HttpRequest, form: forms.Form, action, done: str) -> None:
    if not form.is_valid():
        messages.error(request, "A name has at most 80 characters.")
        return
    try:
        action(form.cleaned_data["name"])
    except ThreadServiceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)


@require_POST
def display_name(request: HttpRequest) -> HttpResponse:
    _save(
        request,
        DisplayNameForm(request.POST),
        lambda name: naming.display_name_set(name=name),
        "Your name is saved; your threads get it as your nodes connect.",
    )
    return _back(request, reverse("core:settings"))


@require_POST
def my_name(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    _save(
        request,
        ThreadNameForm(request.POST),
        lambda name: naming.my_name_set(thread=thread, name=name),
        f"Your name in {thread.name} is saved.",
    )
    return _back(request, reverse("core:thread", args=[thread.id]))


@require_http_methods(["GET", "POST"])
def member(request: HttpRequest, thread_id: str, member_id: str) -> HttpResponse:
    """One member of a thread: the name it gave itself, and the name this node gives it."""
    thread = _thread(thread_id)
    member_id = member_id.lower()
    if member_id not in naming.members_ever(thread):
        raise Http404("no such member in this thread")
    if request.method == "POST":
        _save(
            request,
            ThreadNameForm(request.POST),
            lambda name: naming.contact_name_set(thread=thread, member_id=member_id, name=name),
            "Saved. Only you see this name.",
        )
        return redirect("core:thread_member", thread_id=thread.id, member_id=member_id)
    names = thread_names(thread)
    role = thread.members.filter(member_id=member_id).values_list("role", flat=True).first()
    person = names.person(member_id, role=role or "")
    context = {
        "thread": thread,
        "person": person,
        "devices": names.devices(names.devices_of(member_id)),
        "form": ThreadNameForm(initial={"name": person.contact_name}),
    }
    return render(request, "core/thread_member.html", context)
