"""The record's sharing pages (issue 16 §3, §5): "Share with a provider" / "Add a caregiver"
(the grant, the period, the link's lifetime, the sensitive part) and the single-use link with
its QR code; the access page (who holds the record, on which devices, synced when; open
invites; change what someone may do; revoke access after a confirm step); the audit log.

Thin: the forms check the shape, ``services`` write and refuse in words, shown on the page.
Sharing, changing and revoking are the patient's; a provider or caregiver sees who holds the
record and the audit, and changes nothing."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.models import Thread, ThreadInvite
from apps.core.thread.policy import OWNER
from apps.core.threads import services as threads
from apps.core.threads.invite_words import expires_words
from apps.core.threads.pages import tabs
from apps.core.threads.qr import qr_svg
from apps.core.threads.services import ThreadServiceError
from apps.medical import access, audit, sharing
from apps.medical.access_forms import GrantForm, ShareForm
from apps.medical.policy import CAREGIVER, PROVIDER, SHAPE

REVOKE_WORDS = (
    "{name} keeps what their devices already hold; nothing written from now on reaches them."
)


def _record(thread_id: str) -> Thread:
    from apps.medical.views import record_thread

    return record_thread(thread_id)


def _patient(thread: Thread) -> bool:
    return thread.role == OWNER and thread.state == Thread.State.ACTIVE


def _nav_template() -> str | None:
    """The record pages' navigation, when that template is installed."""
    try:
        get_template("medical/_nav.html")
    except TemplateDoesNotExist:
        return None
    return "medical/_nav.html"


def _page(thread: Thread, current: str, **context: object) -> dict:
    from apps.medical.views import nav

    return {
        "thread": thread,
        "nav": nav(thread, current),
        "nav_template": _nav_template(),
        "tabs": tabs(thread, SHAPE),
        "patient": _patient(thread),
        **context,
    }


def _words(exc: ThreadServiceError) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:]


def _patient_only(request: HttpRequest, thread: Thread) -> HttpResponse | None:
    if _patient(thread):
        return None
    flash.error(request, "Only the patient shares this record and changes who holds it.")
    return redirect(reverse("medical:access", args=[thread.id]))


# -- share ---------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def share(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _record(thread_id)
    refused = _patient_only(request, thread)
    if refused is not None:
        return refused
    role = request.GET.get("role") if request.GET.get("role") in (PROVIDER, CAREGIVER) else None
    initial = {"role_choice": role or PROVIDER}
    if role == CAREGIVER:
        initial["preset"] = "read_all"
    form = ShareForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            made = sharing.share_invite(
                thread,
                role=form.role(),
                label=data["label"],
                read=data["read"],
                write=data["write"],
                start=data["start"],
                end=data["end"],
                expires_in=form.expires_in(),
                sensitive=data["sensitive"],
            )
        except ThreadServiceError as exc:
            form.add_error(None, _words(exc))
        else:
            return redirect(reverse("medical:shared", args=[thread.id, made.record.invite_id]))
    context = _page(thread, "share", form=form, caregiver=role == CAREGIVER)
    return render(request, "medical/share.html", context, status=400 if form.errors else 200)


def _invite(thread_id: str, invite_id: str) -> tuple[Thread, ThreadInvite]:
    thread = _record(thread_id)
    if not _patient(thread):
        raise Http404("only the patient's node shows its invites")
    invite = thread.invites.filter(invite_id=invite_id.lower()).exclude(link="").first()
    if invite is None:
        raise Http404("no invite made by this node with this id")
    return thread, invite


def _closed(invite: ThreadInvite, who: str, expires: str) -> str:
    """Why the invite no longer lets anyone in ("" while it does)."""
    return {
        "redeemed": f"{who} joined with it",
        "used up": "it has been used",
        "revoked": "it was revoked",
    }.get(invite.status, "it has expired" if expires == "expired" else "")


@require_GET
def shared(request: HttpRequest, thread_id: str, invite_id: str) -> HttpResponse:
    """The invite just made: its QR code and link, single use, its expiry, the grant it gives,
    and how the provider's node joins with it. Drawn again on a reload while it is open; the
    page asks every few seconds whether it was used (``shared_status``) and then says so."""
    thread, invite = _invite(thread_id, invite_id)
    opened = access.open_invites(thread)
    pending = next((i for i in opened if i.invite_id == invite.invite_id), None)
    who = invite.label or "the person you share with"
    expires = expires_words(invite.expires_at)
    share_sheet = {
        "link": invite.link,
        "qr": mark_safe(qr_svg(invite.link)),  # noqa: S308 - segno's SVG: no script, escaped
        "title": f"Join {thread.name}",
        "label": "The link to your record",
        "scan": "Or let them scan this code on their node's Join page.",
    }
    context = _page(
        thread,
        "share",
        invite=invite,
        pending=pending,
        who=who,
        expires=expires,
        closed=_closed(invite, who, expires),
        share=share_sheet,
        role=access.ROLE_NAMES.get(invite.role, invite.role),
        join_url=reverse("core:thread_join"),
    )
    response = render(request, "medical/share_link.html", context)
    response["Cache-Control"] = "no-store"  # the page holds the invite's secret
    return response


@require_GET
def shared_status(request: HttpRequest, thread_id: str, invite_id: str) -> HttpResponse:
    """Asked by the invite's page: 204 while the invite is open, else the card that says what
    became of it (in place of the QR code)."""
    thread, invite = _invite(thread_id, invite_id)
    who = invite.label or "the person you share with"
    closed = _closed(invite, who, expires_words(invite.expires_at))
    if not closed:
        return HttpResponse(status=204)
    context = {"thread": thread, "invite": invite, "closed": closed}
    response = render(request, "medical/_share_closed.html", context)
    response["Cache-Control"] = "no-store"
    return response


# -- access --------------------------------------------------------------------------------------


@require_GET
def access_page(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _record(thread_id)
    patient = _patient(thread)
    context = _page(
        thread,
        "share",
        holders=access.holders(thread),
        former=access.former(thread),
        invites=access.open_invites(thread) if patient else [],
    )
    return render(request, "medical/access.html", context)


@require_POST
def invite_revoke(request: HttpRequest, thread_id: str, invite_id: str) -> HttpResponse:
    thread = _record(thread_id)
    refused = _patient_only(request, thread)
    if refused is not None:
        return refused
    invite = thread.invites.filter(invite_id=invite_id.lower(), status="open").first()
    if invite is None:
        flash.error(request, "That invite is not open any more: nothing to revoke.")
    else:
        try:
            threads.invite_revoke(thread=thread, invite_id=invite.invite_id)
        except ThreadServiceError as exc:
            flash.error(request, f"The invite could not be revoked: {_words(exc)}")
        else:
            who = f"for {invite.label} " if invite.label else ""
            flash.success(request, f"The invite {who}is revoked: the link no longer works.")
    return redirect(reverse("medical:access", args=[thread.id]))


@require_http_methods(["GET", "POST"])
def grant_edit(request: HttpRequest, thread_id: str, member_id: str) -> HttpResponse:
    thread = _record(thread_id)
    refused = _patient_only(request, thread)
    if refused is not None:
        return refused
    holder = access.holder(thread, member_id)
    if holder is None or holder.is_me or holder.role not in (PROVIDER, CAREGIVER):
        raise Http404("this person does not hold the record as a provider or caregiver")
    initial = GrantForm.initial_of(holder.grant) if holder.grant is not None else {}
    form = GrantForm(request.POST or None, initial=initial, holder_role=holder.role)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            sharing.grant_set(
                thread,
                member_id=holder.member,
                read=data["read"],
                write=data.get("write") or [],
                label=data["label"],
                start=data["start"],
                end=data["end"],
            )
        except ThreadServiceError as exc:
            form.add_error(None, _words(exc))
        else:
            flash.success(request, f"What {holder.name} may do is changed.")
            return redirect(reverse("medical:access", args=[thread.id]))
    context = _page(thread, "share", form=form, holder=holder)
    return render(request, "medical/access_grant.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def access_revoke(request: HttpRequest, thread_id: str, member_id: str) -> HttpResponse:
    """GET asks first (what revoking does and does not do); POST revokes."""
    thread = _record(thread_id)
    refused = _patient_only(request, thread)
    if refused is not None:
        return refused
    back = redirect(reverse("medical:access", args=[thread.id]))
    holder = access.holder(thread, member_id)
    if holder is None or holder.is_me:
        flash.error(
            request,
            "You hold the record yourself: your own access cannot be revoked."
            if holder is not None
            else "This person does not hold the record: there is nothing to revoke.",
        )
        return back
    if request.method == "POST":
        try:
            sharing.access_revoke(thread, member_id=holder.member)
        except ThreadServiceError as exc:
            flash.error(request, f"{holder.name}'s access could not be revoked: {_words(exc)}")
        else:
            flash.success(
                request,
                f"{holder.name} no longer holds the record. "
                + REVOKE_WORDS.format(name=holder.name),
            )
        return back
    context = _page(
        thread, "share", holder=holder, consequence=REVOKE_WORDS.format(name=holder.name)
    )
    return render(request, "medical/access_revoke.html", context)


# -- audit ---------------------------------------------------------------------------------------


def _entry_url(thread: Thread, entry: audit.AuditEntry) -> str:
    if not entry.slug or entry.part:
        return ""
    try:
        return reverse("medical:entry", args=[thread.id, entry.slug, entry.fhir_id])
    except NoReverseMatch:
        return ""


@require_GET
def audit_page(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = _record(thread_id)
    kind = request.GET.get("kind") or None
    if kind not in audit.KINDS:
        kind = None
    member = (request.GET.get("person") or "").lower() or None
    people = audit.audit_people(thread)
    if member not in {m for m, _ in people}:
        member = None
    try:
        number = max(1, min(int(request.GET.get("page") or 1), 10_000))
    except ValueError:
        number = 1
    page = audit.audit_page(thread, kind=kind, member=member, page=number)
    rows = [(entry, _entry_url(thread, entry)) for entry in page.entries]
    query = {k: v for k, v in (("kind", kind), ("person", member)) if v}
    context = _page(
        thread,
        "audit",
        page=page,
        rows=rows,
        kinds=list(audit.KINDS.items()),
        people=people,
        kind=kind or "",
        person=member or "",
        query=urlencode(query),
        devices=[
            device
            for holder in (access.holders(thread) if number == 1 else [])
            for device in holder.devices
            if not device.this_device
        ],
    )
    return render(request, "medical/audit.html", context)
