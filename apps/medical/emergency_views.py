"""The emergency link's pages: the patient's "Emergency access" page under the record (make a
link, see each link's state and every try to open it, revoke) and the public page at
``/e/<link>/`` that whoever holds the link opens with its passcode.

The public page needs no login and shows nothing of the node's private pages (its own small
layout, no navigation). The link's key is after ``#`` in the link, so it never reaches the node
in a URL (nor a proxy's or the node's logs): the page's script copies it into the form, and it
comes back in the POST body with the passcode. Every answer of both pages is ``no-store`` and
sends a referrer only to the node itself, so neither the summary nor a new link stays in a
cache or leaks by a click. (Not ``no-referrer``: a browser then posts the page's own forms with
``Origin: null``, which the CSRF check refuses; a referrer never carries the ``#`` part.)
"""

from __future__ import annotations

import ipaddress
import json
import uuid
from datetime import timedelta

from django import forms
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.views.decorators.http import require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads.qr import qr_svg
from apps.core.threads.services import ThreadServiceError
from apps.medical import emergency
from apps.medical import views as record_views
from apps.medical.ips import Summary

EXPIRY_CHOICES = (
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
)
DOWNLOAD_NAME = "emergency-summary.json"
MADE = "medical_emergency_made"  # session key: the forms that made a link (no key, no link)


def private(response: HttpResponse) -> HttpResponse:
    """Kept by no cache, and no referrer to another site (``SecurityMiddleware`` keeps a
    Referrer-Policy already set)."""
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def client_address(request: HttpRequest) -> str:
    """Where a try came from: the peer's address, or, behind the node's own reverse proxy on
    this machine, the address that proxy saw (the last one it appended)."""
    peer = request.META.get("REMOTE_ADDR", "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    try:
        behind_proxy = bool(forwarded) and ipaddress.ip_address(peer).is_loopback
    except ValueError:
        behind_proxy = False
    if behind_proxy:
        return forwarded.split(",")[-1].strip()[:100]
    return peer[:100]


# -- the patient's page ------------------------------------------------------------------------


class LinkForm(forms.Form):
    # Names this one form: the same form posted again (a reload) makes no second link.
    once = forms.CharField(widget=forms.HiddenInput, max_length=40)
    passcode = forms.CharField(
        label="Passcode",
        max_length=40,
        help_text="4 to 12 letters or digits. Whoever opens the link must type it: give it "
        "apart from the link (write it on the card, or say it).",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    expires_in = forms.ChoiceField(
        label="The link works for", choices=EXPIRY_CHOICES, initial="604800"
    )
    max_attempts = forms.IntegerField(
        label="Wrong passcodes before it locks",
        min_value=emergency.ATTEMPTS_MIN,
        max_value=emergency.ATTEMPTS_MAX,
        initial=emergency.ATTEMPTS_DEFAULT,
    )
    sensitive = forms.BooleanField(
        label="Also show the entries I marked sensitive",
        required=False,
        help_text="Off: the summary leaves out what you keep in your record's sensitive part "
        "(mental health, sexual and reproductive health, substance use).",
    )


def _manage_page(
    request: HttpRequest, thread: Thread, form: LinkForm, created: dict | None = None
) -> HttpResponse:
    patient = record_views.is_patient(thread)
    context = {
        "thread": thread,
        "nav": record_views.nav(thread, "emergency"),
        "patient": patient,
        "form": form,
        "created": created,
        "links": emergency.emergency_links(thread) if patient else [],
    }
    status = 403 if request.method == "POST" and not patient else 200
    return private(render(request, "medical/emergency_manage.html", context, status=status))


@require_http_methods(["GET", "POST"])
def manage(request: HttpRequest, thread_id: str) -> HttpResponse:
    """The record's emergency links. A new link is shown in the answer to its POST, once: it is
    never stored, so there is no page to come back to (and no redirect through the session)."""
    thread = record_views.record_thread(thread_id)
    if request.method == "GET":
        return _manage_page(request, thread, new_form())
    form = LinkForm(request.POST)
    if not record_views.is_patient(thread):
        return _manage_page(request, thread, form)  # says that only the patient makes links
    if not form.is_valid():
        return _manage_page(request, thread, form)
    data = form.cleaned_data
    made = request.session.get(MADE, [])
    if data["once"] in made:
        flash.info(request, "That link was made already: it is listed below. Its key was shown "
                   "only once; if it was not kept, revoke it and make a new one.")  # fmt: skip
        return redirect(reverse("medical:emergency_manage", args=[thread.id]))
    try:
        link, path = emergency.emergency_create(
            thread,
            passcode=data["passcode"],
            expires_in=timedelta(seconds=int(data["expires_in"])),
            max_attempts=data["max_attempts"],
            sensitive=data["sensitive"],
        )
    except ThreadServiceError as exc:
        form.add_error(None, capfirst(str(exc)))
        return _manage_page(request, thread, form)
    request.session[MADE] = [*made, data["once"]][-20:]
    url = request.build_absolute_uri(path)
    created = {
        "link": url,
        "qr": mark_safe(qr_svg(url)),  # noqa: S308 - segno's SVG: no script, the link escaped
        "passcode": emergency.passcode_normal(data["passcode"]),
        "expires_at": link.expires_at,
        "max_attempts": link.max_attempts,
        "sensitive": data["sensitive"],
        "title": f"Emergency summary of {thread.name}",
        "label": "The emergency link",
        "rows": 2,
        "scan": "Or let them scan this code with a phone's camera.",
    }
    return _manage_page(request, thread, new_form(), created)


def new_form() -> LinkForm:
    """An empty form with a suggested passcode (six digits) and its own ``once`` mark."""
    return LinkForm(initial={"passcode": emergency.passcode_suggest(), "once": uuid.uuid4().hex})


@require_POST
def revoke(request: HttpRequest, thread_id: str, link_id: str) -> HttpResponse:
    thread = record_views.record_thread(thread_id)
    try:
        emergency.emergency_revoke(thread, link_id)
    except ThreadServiceError as exc:
        flash.error(request, f"The link was not revoked: {exc}.")
    else:
        flash.success(request, "The emergency link no longer opens.")
    return redirect(reverse("medical:emergency_manage", args=[thread.id]))


# -- the public page ---------------------------------------------------------------------------

STATUS_OF = {
    "unknown": 404,
    "incomplete": 400,
    "expired": 410,
    "revoked": 410,
    "locked": 423,
    "wrong": 403,
}


def _public(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    return private(render(request, f"medical/{template}", context, status=status))


@login_not_required
@require_http_methods(["GET", "POST"])
def open_link(request: HttpRequest, link_id: str) -> HttpResponse:
    """GET: the passcode form (nothing of the record), or why the link no longer opens.
    POST: the summary, the IPS document (``download``), or the form again with what was wrong."""
    if request.method == "GET":
        state = emergency.emergency_state(link_id)
        if state != "active":
            words = emergency.REFUSALS[state]
            return _public(request, "emergency_refused.html", {"words": words}, STATUS_OF[state])
        return _public(request, "emergency_open.html", {"key": "", "problem": ""})
    key = request.POST.get("key", "")[:100]
    passcode = request.POST.get("passcode", "")[:100]
    try:
        opened = emergency.emergency_open(link_id, key, passcode, client_address(request))
    except emergency.EmergencyRefused as exc:
        status = STATUS_OF.get(exc.kind, 403)
        if exc.kind == "wrong":
            context = {"key": key, "problem": str(exc)}
            return _public(request, "emergency_open.html", context, status)
        return _public(request, "emergency_refused.html", {"words": str(exc)}, status)
    if request.POST.get("download"):
        body = json.dumps(opened.bundle, indent=2, ensure_ascii=False)
        response = HttpResponse(body, content_type="application/fhir+json; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{DOWNLOAD_NAME}"'
        return private(response)
    context = {
        "summary": opened.summary,
        "sections": sections(opened.summary),
        "as_of": parse_datetime(opened.summary.made_at.replace("Z", "+00:00")),
        "key": key,
        "passcode": passcode,
    }
    return _public(request, "emergency_summary.html", context)


def sections(summary: Summary) -> list[tuple[str, list, str]]:
    """What the summary page lists: what an emergency needs first; vaccinations if any."""
    shown = [
        ("Allergies and intolerances", summary.allergies, "Nothing recorded about allergies."),
        ("Medications", summary.medications, "Nothing recorded about medications."),
        ("Health problems", summary.problems, "Nothing recorded about health problems."),
    ]
    if summary.immunizations:
        shown.append(("Vaccinations", summary.immunizations, ""))
    return shown
