"""The record's "Import and export" page (issue 16 §6) and its downloads.

- ``io_page``: upload a FHIR Bundle (JSON); after an import the page shows what happened: how
  many entries were imported, and each refused one with its place, kind and the reason in words.
  The report is kept in the session for the redirect that follows the upload, so reloading the
  page does not import again.
- ``export``: the whole record as a FHIR Bundle; ``ips``: the International Patient Summary
  document; ``resource_json``: one entry's resource; ``consents``: the grants as FHIR Consents.

Downloads are ``application/fhir+json`` attachments. Nothing here writes but
``bundles.bundle_import`` (through the services), and a file that cannot be read is said in
words, never a 500.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods

from apps.core.models import Thread
from apps.core.thread.policy import OWNER
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.services import ThreadServiceError
from apps.medical import bundles, consent, display, fhir, ips, selectors
from apps.medical import views as record_views
from apps.medical.policy import SHAPE

FHIR_JSON = "application/fhir+json"
REPORT = "medical_import_report"  # session key: the last import's report, shown once
REFUSED_SHOWN = 500  # refused entries listed on the page (the rest counted)
# An id a machine made (a uuid, a row id): it says nothing to a person, the entry's place does.
MACHINE_ID = re.compile(r"[0-9A-Fa-f]{12,}")


class BundleForm(forms.Form):
    bundle = forms.FileField(
        label="FHIR Bundle (JSON file)",
        error_messages={
            "required": "Choose a Bundle file to import.",
            "empty": "The file is empty.",
        },
    )
    sensitive = forms.BooleanField(
        required=False, label="Keep everything in this file in the sensitive part of my record"
    )


def record_thread(thread_id: str) -> Thread:
    thread = app_thread_find(thread_id)
    if thread is None or thread.app != SHAPE:
        raise Http404("no such medical record on this node")
    return selectors.main_of(thread) or thread


def _download(data: Any, name: str) -> HttpResponse:
    body = json.dumps(data, ensure_ascii=False, indent=2)
    response = HttpResponse(body, content_type=f"{FHIR_JSON}; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "no-store"  # health data: no copies in caches
    return response


def _file_name(thread: Thread, what: str) -> str:
    day = datetime.now(UTC).date().isoformat()
    return f"{slugify(thread.name) or 'record'}-{what}-{day}.json"


def _patient_name(thread: Thread) -> str:
    patient = selectors.entries(thread, "Patient")
    return display.title(patient[0]) if patient else thread.name


def _kind_words(resource_type: str) -> str:
    """A kind the record keeps in words ("Allergy"); another as the file names it."""
    kind = fhir.TYPES.get(resource_type)
    return kind.label.capitalize() if kind else resource_type


def _report_for_page(report: bundles.ImportReport, name: str) -> dict[str, Any]:
    """What the page shows of an import (and keeps in the session until shown)."""
    actions: dict[str, int] = {}
    for outcome in report.imported:
        actions[outcome.action or "added"] = actions.get(outcome.action or "added", 0) + 1
    refused = [
        {
            "place": o.index + 1,
            "kind": _kind_words(o.resource_type),
            "id": "" if MACHINE_ID.search(o.fhir_id) else o.fhir_id,
            "reason": o.reason,
        }
        for o in report.refused[:REFUSED_SHOWN]
    ]  # fmt: skip
    return {
        "name": name[:200],
        "total": report.total,
        "imported": len(report.imported),
        "added": actions.get("added", 0),
        "changed": actions.get("changed", 0),
        "unchanged": actions.get("unchanged", 0),
        "refused_count": len(report.refused),
        "refused": refused,
        "refused_more": max(0, len(report.refused) - REFUSED_SHOWN),
    }


@require_http_methods(["GET", "POST"])
def io_page(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = record_thread(thread_id)
    status = 200
    if request.method == "POST":
        form = BundleForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["bundle"]
            sensitive = form.cleaned_data["sensitive"] and thread.role == OWNER
            try:  # read no more than the limit and one byte: a larger file is said so
                data = upload.read(bundles.MAX_BUNDLE + 1)
                report = bundles.bundle_import(thread, data, sensitive=sensitive)
            except (fhir.FhirInvalid, ThreadServiceError) as exc:
                form.add_error("bundle", str(exc))
            else:
                request.session[REPORT] = _report_for_page(report, upload.name or "")
                (flash.success if not report.refused else flash.warning)(request, report.words())
                return redirect(reverse("medical:io", args=[thread.id]) + "#report")
        status = 400
    else:
        form = BundleForm()
    context = {
        "thread": thread,
        "form": form,
        "report": request.session.pop(REPORT, None) if request.method == "GET" else None,
        "is_patient": thread.role == OWNER,
        "has_sensitive": selectors.sensitive_of(thread) is not None,
        "types": [t.plural for t in fhir.TYPES.values()],
        "max_mib": bundles.MAX_BUNDLE // 2**20,
        "nav": record_views.nav(thread, "io"),
        "patient_name": _patient_name(thread),
    }
    return render(request, "medical/io.html", context, status=status)


@require_GET
def export(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = record_thread(thread_id)
    return _download(bundles.bundle_export(thread), _file_name(thread, "record"))


@require_GET
def ips_download(request: HttpRequest, thread_id: str) -> HttpResponse:
    """The patient summary; ``?sensitive=1``: with the entries of the sensitive part (this node
    holds them anyway, so only the person asking decides)."""
    thread = record_thread(thread_id)
    sensitive = request.GET.get("sensitive") == "1"
    summary = ips.ips_bundle(thread, sensitive=sensitive)
    return _download(summary, _file_name(thread, "patient-summary"))


@require_GET
def consents(request: HttpRequest, thread_id: str) -> HttpResponse:
    """Every grant of the record as a FHIR Consent, in a collection Bundle."""
    thread = record_thread(thread_id)
    entries = [
        {"fullUrl": f"Consent/{grant.pk}", "resource": consent.grant_consent(thread, grant)}
        for grant in selectors.grants(thread)
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
    return _download(bundle, _file_name(thread, "consents"))


@require_GET
def resource_json(request: HttpRequest, thread_id: str, slug: str, fhir_id: str) -> HttpResponse:
    thread = record_thread(thread_id)
    kind = fhir.TYPE_BY_SLUG.get(slug)
    if kind is None:
        raise Http404("no such kind of entry")
    entry = selectors.entry_get(thread, kind.name, fhir_id)
    if entry is None:
        raise Http404("no such entry in this record")
    name = f"{kind.name}-{slugify(entry.fhir_id) or 'entry'}.json"
    return _download(bundles.resource_json(entry), name)
