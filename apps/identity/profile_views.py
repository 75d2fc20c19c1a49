"""Profile pages: "Your profile" (the fields, where each is shared, share and stop sharing) and
a person as a thread sees them (the fields they shared into it). Thin: forms check, the
profile module writes, refusals show in plain words; every action posts and redirects."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads.app_kit import app_enabled, app_thread_find
from apps.core.threads.names import thread_names
from apps.identity import policy, profile
from apps.identity.profile import ProfileError
from apps.identity.profile_forms import FieldsForm, ShareForm
from apps.identity.profile_selectors import shared_in

KEPT = (
    "A copy once shared stays with the people who received it: stopping sends no more updates "
    "and deletes your copy in that conversation, but their devices may keep what they saw."
)
LINKED = (
    "Everything you share carries the same proof that it is your profile, so people in two "
    "conversations you share into can tell, if they compare, that it is the same person. To "
    "keep two groups apart, share with one of them only."
)


def _said(exc: ProfileError) -> str:
    text = exc.words.strip() or "That could not be done."
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _back() -> HttpResponse:
    return redirect(reverse("identity_profile:profile"))


def _labels(fields: list[profile.FieldView]) -> dict[str, str]:
    return {f.name: f.label for f in fields}


def _share_form(fields: list[profile.FieldView], data=None) -> ShareForm:
    threads = [(t.id, t.name) for t in profile.share_targets()]
    return ShareForm(data, threads=threads, fields=_labels(fields))


def _page(request: HttpRequest, *, form=None, share_form=None, status: int = 200):
    try:
        fields = profile.fields()
    except ProfileError as exc:
        flash.error(request, _said(exc))
        fields = []
    context = {
        "fields": fields,
        "form": form or FieldsForm(current=fields),
        "share_form": share_form or _share_form(fields),
        "has_targets": bool(profile.share_targets()),
        "shared": [f for f in fields if f.shares],
        "kept": KEPT,
        "linked": LINKED,
    }
    return render(request, "identity/profile/profile.html", context, status=status)


@require_http_methods(["GET", "POST"])
def profile_page(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request)
    form = FieldsForm(request.POST, request.FILES, current=profile.fields())
    if form.is_valid():
        try:
            changed = profile.fields_set(form.values)
        except ProfileError as exc:
            form.add_error(None, _said(exc))
        else:
            if changed:
                flash.success(
                    request,
                    "Your profile is saved. Conversations you share a changed field with get "
                    "the new value.",
                )
            else:
                flash.info(request, "Nothing changed.")
            return _back()
    return _page(request, form=form, status=400)


@require_POST
def share(request: HttpRequest) -> HttpResponse:
    fields = profile.fields()
    form = _share_form(fields, request.POST)
    if not form.is_valid():
        return _page(request, share_form=form, status=400)
    thread = app_thread_find(form.cleaned_data["thread"])
    if thread is None:
        raise Http404("no such thread on this node")
    try:
        done = profile.share(thread=thread, names=form.cleaned_data["fields_"])
    except ProfileError as exc:
        flash.error(request, f"Nothing was shared: {_said(exc)}")
    else:
        labels = _labels(fields)
        what = ", ".join(labels.get(n, n) for n in done)
        flash.success(request, f"{thread.name} now sees your {what}.")
    return _back()


@require_POST
def unshare(request: HttpRequest) -> HttpResponse:
    thread = app_thread_find(request.POST.get("thread", ""))
    name = request.POST.get("field", "")
    if thread is None:
        raise Http404("no such thread on this node")
    label = profile.field_label(name)
    try:
        profile.unshare(thread=thread, names=[name])
    except ProfileError as exc:
        flash.error(request, f"Sharing did not stop: {_said(exc)}")
    else:
        flash.success(
            request, f"You no longer share your {label.lower()} with {thread.name}. {KEPT}"
        )
    return _back()


@require_http_methods(["GET"])
def credential(request: HttpRequest) -> HttpResponse:
    """Chosen fields as an SD-JWT presentation to save and hand to someone outside every
    thread: the commitment and those fields' disclosures only."""
    names = request.GET.getlist("fields")
    try:
        token = profile.presentation(names)
    except ProfileError as exc:
        flash.error(request, f"No credential was made: {_said(exc)}")
        return _back()
    response = HttpResponse(token + "\n", content_type="application/sd-jwt")
    response["Content-Disposition"] = 'attachment; filename="profile.sd-jwt"'
    return response


def _thread(thread_id: str) -> Thread:
    thread = app_thread_find(thread_id)
    if thread is None:
        raise Http404("no such thread on this node")
    return thread


def _member_of(thread: Thread, member: str) -> bool:
    from apps.core.threads.registry import thread_database

    try:
        key = bytes.fromhex(member)
    except ValueError:
        return False
    state = thread_database(thread.thread).replica().control.state
    return key in state.members


def _maybe(name: str, *args: str) -> str:
    """A page of another part of Identity, if it is served (achievements, a witness)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


@require_http_methods(["GET"])
def thread_people(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _thread(thread_id)
    found = shared_in(thread)
    people = [
        {
            "first": views[0],
            "fields": views,
            "photo": next((v.value for v in views if v.is_photo), ""),
            "full_name": next((v.value for v in views if v.name == "name"), ""),
        }
        for views in sorted(
            found.values(), key=lambda v: (not v[0].mine, v[0].member_name.casefold())
        )
    ]
    return render(
        request,
        "identity/profile/people.html",
        {
            "thread": thread,
            "people": people,
            "enabled": app_enabled(thread, policy.APP),
            "shareable": profile.shareable(thread),
            "mine_shared": thread.member_id in found,
        },
    )


@require_http_methods(["GET"])
def thread_profile(request: HttpRequest, thread_id: str, member: str) -> HttpResponse:
    thread = _thread(thread_id)
    if not _member_of(thread, member):
        raise Http404("no such person in this thread")
    names = thread_names(thread, me_as="you")
    mine = member == thread.member_id
    return render(
        request,
        "identity/profile/person.html",
        {
            "thread": thread,
            "mine": mine,
            "name": names[member],
            "fields": shared_in(thread).get(member, []),
            "enabled": app_enabled(thread, policy.APP),
            "achievements": _maybe("identity:achievements", thread.id),
            "witness": _maybe("identity:witness", thread.id, member),
        },
    )
