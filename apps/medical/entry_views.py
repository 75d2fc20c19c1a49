"""A record entry's pages: an entry in words with its raw FHIR and its provenance from the
signed ops, the add, edit and delete forms (a document's upload among them), and a document's
file. The record's other pages, and what these share with them, are ``views``."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.models import Thread
from apps.core.threads.services import ThreadServiceError
from apps.medical import display, selectors, services
from apps.medical.display import said
from apps.medical.fhir import FhirInvalid, FhirType
from apps.medical.forms import FORMS, DocumentForm, RecordForm
from apps.medical.views import (
    DOCUMENTS,
    _entry,
    _kind,
    _page,
    _url,
    is_patient,
    may_write,
    record_thread,
    subject_of,
)


@dataclass(frozen=True)
class VersionLine:
    who: str
    when: str
    what: str


@require_GET
def entry(request: HttpRequest, thread_id: str, slug: str, fhir_id: str) -> HttpResponse:
    thread = record_thread(thread_id)
    kind = _kind(slug)
    found = _entry(thread, kind, fhir_id)
    versions = [
        VersionLine(v.name, display.moment(v.at), display.ACTIONS.get(v.action, v.action))
        for v in selectors.provenance(thread, kind.name, fhir_id)
    ]
    key = display.chart_key(found)
    context = _page(
        thread,
        slug,
        kind=kind,
        entry=found,
        title=display.title(found),
        facts=display.facts(kind.name, found.resource),
        raw=json.dumps(found.resource, indent=2, ensure_ascii=False, sort_keys=True),
        versions=versions,
        editable=slug in FORMS and may_write(thread, kind),
        deletable=is_patient(thread),
        download=_url("document", thread.id, fhir_id) if kind.slug == DOCUMENTS else "",
        chart_url=_url("chart", thread.id, key) if key else "",
    )
    return render(request, "medical/entry.html", context)


def _refused(thread: Thread, kind: FhirType) -> str:
    """Why this node may not add or change ``kind`` here, in words ("" when it may)."""
    problem = selectors.write_problem(thread, kind.name)
    if problem is None:
        return ""
    return f"{problem} The patient decides what each provider may write in the record."


def _form_class(kind: FhirType) -> type[RecordForm]:
    form = FORMS.get(kind.slug)
    if form is None:
        raise Http404("this kind of entry is not written with a form")
    return form


def _form_page(
    request: HttpRequest, thread: Thread, kind: FhirType, form, found, status: int = 200
) -> HttpResponse:
    context = _page(
        thread,
        kind.slug,
        kind=kind,
        form=form,
        entry=found,
        title=display.title(found) if found else "",
        upload=kind.slug == DOCUMENTS,
        refused=_refused(thread, kind),
    )
    return render(
        request, "medical/entry_form.html", context, status=400 if form.errors else status
    )


def _write(
    request: HttpRequest, thread: Thread, kind: FhirType, form: RecordForm, found
) -> HttpResponse | None:
    """Write what the form built; the entry's page on success, None with the form's error."""
    old = found.resource if found is not None else None
    sensitive = True if form.cleaned_data.get("sensitive") else None
    try:
        written = services.resource_write(
            thread,
            kind.name,
            form.resource(subject_of(thread), old),
            fhir_id=found.fhir_id if found is not None else None,
            sensitive=sensitive,
        )
    except (ThreadServiceError, FhirInvalid) as exc:
        form.add_error(None, said(exc))
        return None
    flash.success(request, "Saved." if found is not None else f"Added to the {kind.plural}.")
    return redirect(reverse("medical:entry", args=[thread.id, kind.slug, written.fhir_id]))


def _now_initial(slug: str) -> dict:
    """A new reading is usually taken now, a vaccine given or a visit made today."""
    now = timezone.localtime().replace(second=0, microsecond=0)
    field = {"observations": "taken", "immunizations": "given", "encounters": "start"}.get(slug)
    if field is None:
        return {}
    return {field: now if field == "taken" else now.date()}


@require_http_methods(["GET", "POST"])
def entry_new(request: HttpRequest, thread_id: str, slug: str) -> HttpResponse:
    thread = record_thread(thread_id)
    kind = _kind(slug)
    if slug == DOCUMENTS:
        return _document_new(request, thread, kind)
    form_class = _form_class(kind)
    form = form_class(
        request.POST or None,
        initial=_now_initial(slug),
        may_mark_sensitive=is_patient(thread) and slug != "patient",
    )
    if request.method == "POST" and form.is_valid():
        done = _write(request, thread, kind, form, None)
        if done is not None:
            return done
    return _form_page(request, thread, kind, form, None, 200 if may_write(thread, kind) else 403)


@require_http_methods(["GET", "POST"])
def entry_edit(request: HttpRequest, thread_id: str, slug: str, fhir_id: str) -> HttpResponse:
    thread = record_thread(thread_id)
    kind = _kind(slug)
    form_class = _form_class(kind)
    found = _entry(thread, kind, fhir_id)
    if request.method == "POST":
        form = form_class(request.POST)
        if form.is_valid():
            done = _write(request, thread, kind, form, found)
            if done is not None:
                return done
    else:
        form = form_class(initial=form_class.initial_of(found.resource))
    return _form_page(request, thread, kind, form, found, 200 if may_write(thread, kind) else 403)


@require_POST
def entry_delete(request: HttpRequest, thread_id: str, slug: str, fhir_id: str) -> HttpResponse:
    thread = record_thread(thread_id)
    kind = _kind(slug)
    found = _entry(thread, kind, fhir_id)
    try:
        services.resource_delete(thread, kind.name, found.fhir_id)
    except ThreadServiceError as exc:
        flash.error(request, f"Nothing was deleted: {said(exc)}")
        return redirect(reverse("medical:entry", args=[thread.id, slug, fhir_id]))
    flash.success(request, f"Deleted from the {kind.plural}: {display.title(found)}.")
    return redirect(reverse("medical:type_list", args=[thread.id, slug]))


def _document_new(request: HttpRequest, thread: Thread, kind: FhirType) -> HttpResponse:
    form = DocumentForm(
        request.POST or None, request.FILES or None, may_mark_sensitive=is_patient(thread)
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            written = services.document_add(
                thread,
                upload=data["file"],
                title=data["title"].strip(),
                date=data["date"].isoformat() if data["date"] else "",
                sensitive=bool(data.get("sensitive")),
            )
        except (ThreadServiceError, FhirInvalid) as exc:
            form.add_error(None, said(exc))
        else:
            flash.success(request, "The document is in your record.")
            return redirect(reverse("medical:entry", args=[thread.id, kind.slug, written.fhir_id]))
    return _form_page(request, thread, kind, form, None, 200 if may_write(thread, kind) else 403)


@require_GET
def document(request: HttpRequest, thread_id: str, fhir_id: str) -> HttpResponse:
    thread = record_thread(thread_id)
    try:
        name, mime, data = services.document_bytes(thread, fhir_id)
    except ThreadServiceError as exc:
        return HttpResponse(said(exc), status=503, content_type="text/plain; charset=utf-8")
    response = HttpResponse(data, content_type=mime or "application/octet-stream")
    safe = "".join(c for c in name if c.isprintable() and c not in '"\\') or "document"
    response["Content-Disposition"] = f'attachment; filename="{safe}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
