"""The record's pages (issue 16 §7): the records this node holds and "Start my record"; a
record's overview (patient, problems, allergies, medications, recent results, what each kind
holds, who has access); a list per kind of entry; a result chart; and what a record's pages
share (the record found, its navigation, may this member write). An entry's pages (in words,
its forms, a document's file) are ``entry_views``. Thin: the forms build FHIR, the services
check and write it and refuse in words, shown on the page; every action is a form that posts
and redirects, and the live socket only saves the reload. Sharing, audit, import/export and
the emergency link have pages of their own (their modules)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods

from apps.core.models import Thread
from apps.core.thread.policy import OWNER
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.pages import tabs
from apps.core.threads.services import ThreadServiceError
from apps.medical import chart as charts
from apps.medical import display, selectors, services
from apps.medical.display import said
from apps.medical.fhir import TYPE_BY_SLUG, TYPES, FhirInvalid, FhirType
from apps.medical.forms import FORMS, RecordCreateForm
from apps.medical.policy import CAREGIVER, PROVIDER, SHAPE

# Who this node is in a record, as the records list and the overview say it.
ROLE_SAID = {
    OWNER: "Your record",
    PROVIDER: "You are a care provider in this record",
    CAREGIVER: "You are a caregiver in this record",
}
ROLE_NOUN = {PROVIDER: "care provider", CAREGIVER: "caregiver"}
DOCUMENTS = "documents"
NAV_KINDS = ("allergies", "conditions", "medications", "observations", DOCUMENTS)


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: bool


@dataclass(frozen=True)
class Row:
    """An entry as a list shows it."""

    entry: selectors.Entry
    title: str
    summary: str
    url: str


def record_thread(thread_id: str) -> Thread:
    thread = app_thread_find(thread_id)
    if thread is None or thread.app != SHAPE or selectors.is_sensitive(thread):
        raise Http404("no such record on this node")
    return thread


def _kind(slug: str) -> FhirType:
    kind = TYPE_BY_SLUG.get(slug)
    if kind is None:
        raise Http404("no such kind of entry")
    return kind


def _entry(thread: Thread, kind: FhirType, fhir_id: str) -> selectors.Entry:
    found = selectors.entry_get(thread, kind.name, fhir_id)
    if found is None:
        raise Http404("no such entry in this record")
    return found


def is_patient(thread: Thread) -> bool:
    return thread.role == OWNER and thread.state == Thread.State.ACTIVE


def may_write(thread: Thread, kind: FhirType) -> bool:
    return thread.state == Thread.State.ACTIVE and selectors.may_write(thread, kind.name)


def _url(name: str, *args: str) -> str:
    """A page's address, or "" while the page that would serve it is not installed."""
    try:
        return reverse(f"medical:{name}", args=args)
    except NoReverseMatch:
        return ""


def nav(thread: Thread, current: str) -> list[NavItem]:
    """The record's navigation: the overview, each kind of entry, the chart, and the patient's
    own pages (sharing, audit, emergency link); ``current`` names the page shown."""
    items = [("record", "Overview", _url("record", thread.id))]
    # The kinds most looked at; the others are one tap away on the overview ("Everything in
    # the record"), and shown here while one of them is open.
    kinds = [t for t in TYPES.values() if t.slug in NAV_KINDS or t.slug == current]
    items += [(t.slug, t.plural.capitalize(), _url("type_list", thread.id, t.slug)) for t in kinds]
    items.append(("chart", "Results chart", _url("chart", thread.id)))
    if is_patient(thread):
        items.append(("share", "Share & access", _url("access", thread.id)))
        items.append(("audit", "Audit", _url("audit", thread.id)))
    items.append(("io", "Import & export", _url("io", thread.id)))
    if is_patient(thread):
        items.append(("emergency", "Emergency", _url("emergency_manage", thread.id)))
    return [NavItem(label, url, key == current) for key, label, url in items if url]


def _page(thread: Thread, current: str, /, **context: object) -> dict:
    return {
        "thread": thread,
        "nav": nav(thread, current),
        "tabs": tabs(thread, SHAPE),
        "active": thread.state == Thread.State.ACTIVE,
        "patient_name": _patient_name(thread),
        **context,
    }


def _patient_name(thread: Thread) -> str:
    patient = selectors.overview(thread).patient
    return display.title(patient) if patient is not None else thread.name


def _row(thread: Thread, entry: selectors.Entry) -> Row:
    kind = TYPES[entry.type]
    return Row(
        entry=entry,
        title=display.title(entry),
        summary=display.summary(entry),
        url=reverse("medical:entry", args=[thread.id, kind.slug, entry.fhir_id]),
    )


def subject_of(thread: Thread) -> dict:
    """Who the record's entries are about: its Patient resource, else the record's name."""
    patient = selectors.overview(thread).patient
    if patient is not None:
        return {"reference": f"Patient/{patient.fhir_id}", "display": display.title(patient)}
    return {"display": thread.name}


# -- the records ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordLine:
    thread: Thread
    url: str
    name: str
    said: str


@require_http_methods(["GET", "POST"])
def records(request: HttpRequest) -> HttpResponse:
    form = RecordCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        birth = data["birth_date"].isoformat() if data["birth_date"] else ""
        try:
            thread = services.record_create(
                name=data["name"].strip(), birth_date=birth, gender=data["gender"]
            )
        except (ThreadServiceError, FhirInvalid) as exc:
            form.add_error(None, said(exc))
        else:
            flash.success(
                request, "Your record is ready. Only your devices hold it until you share it."
            )
            return redirect(reverse("medical:record", args=[thread.id]))
    lines = [
        RecordLine(
            thread,
            reverse("medical:record", args=[thread.id]),
            _patient_name(thread),
            ROLE_SAID.get(thread.role, "You can read this record"),
        )
        for thread in selectors.records()
    ]
    mine = any(line.thread.role == OWNER for line in lines)
    context = {"lines": lines, "form": form, "has_own": mine}
    return render(request, "medical/records.html", context, status=400 if form.errors else 200)


# -- the overview ---------------------------------------------------------------------------


def _access_line(thread: Thread) -> str:
    active = [g for g in selectors.grants(thread) if g.status == "active"]
    if not active:
        return "Only you hold this record." if is_patient(thread) else ""
    names = ", ".join(
        f"{g.name} ({ROLE_NOUN.get(g.role or '', 'no longer a member')})" for g in active[:4]
    )
    more = f" and {len(active) - 4} more" if len(active) > 4 else ""
    people = "1 person" if len(active) == 1 else f"{len(active)} people"
    return f"{people} besides the patient: {names}{more}."


def _my_grant(thread: Thread) -> str:
    """For a provider: what the patient's grant lets this node write, in words."""
    if thread.role != PROVIDER:
        return ""
    grant = selectors.grant_of(thread, thread.member_id)
    if grant is None or grant.status != "active":
        return "The patient has not given you access to write in this record."
    kinds = [kind.plural for name, kind in TYPES.items() if name in grant.write]
    until = f" until {display.moment(grant.end)}" if grant.end else ""
    if not kinds:
        return f"You may read this record{until}; the patient has not let you add entries."
    said = ", ".join(kinds[:-1]) + f" and {kinds[-1]}" if len(kinds) > 1 else kinds[0]
    return f"You may add and change {said}{until}."


def record_live_context(thread: Thread) -> dict:
    """The part of the overview that changes as entries arrive (what its socket renders)."""
    view = selectors.overview(thread)

    def rows(entries: list) -> list[Row]:
        return [_row(thread, e) for e in entries]

    counts = [
        (
            kind,
            view.counts.get(kind.name, 0),
            reverse("medical:type_list", args=[thread.id, kind.slug]),
        )
        for kind in TYPES.values()
        if kind.name != "Patient"
    ]
    patient = view.patient
    return {
        "thread": thread,
        "patient": patient,
        "patient_facts": display.facts("Patient", patient.resource)[1:] if patient else [],
        "problems": rows(view.problems),
        "allergies": rows(view.allergies),
        "medications": rows(view.medications),
        "results": rows(view.results),
        "counts": counts,
        "access": _access_line(thread),
        "my_grant": _my_grant(thread),
    }


def record_live_html(thread: Thread, csrf_token: str) -> str:
    context = {**record_live_context(thread), "oob": True, "csrf_token": csrf_token}
    return render_to_string("medical/_record_live.html", context)


@require_GET
def record(request: HttpRequest, thread_id: str) -> HttpResponse:
    thread = record_thread(thread_id)
    context = _page(thread, "record", **record_live_context(thread))
    context["role_said"] = ROLE_SAID.get(thread.role, "You can read this record")
    context["is_patient"] = is_patient(thread)
    return render(request, "medical/record.html", context)


# -- a kind of entry ------------------------------------------------------------------------


def list_live_context(thread: Thread, kind: FhirType) -> dict:
    rows = [_row(thread, e) for e in selectors.entries(thread, kind.name)]
    return {"thread": thread, "kind": kind, "rows": rows}


def list_live_html(thread: Thread, slug: str, csrf_token: str) -> str:
    kind = TYPE_BY_SLUG.get(slug)
    if kind is None:
        return ""
    context = {**list_live_context(thread, kind), "oob": True, "csrf_token": csrf_token}
    return render_to_string("medical/_list_live.html", context)


def _addable(thread: Thread, kind: FhirType) -> bool:
    return (kind.slug in FORMS or kind.slug == DOCUMENTS) and may_write(thread, kind)


@require_GET
def type_list(request: HttpRequest, thread_id: str, slug: str) -> HttpResponse:
    thread = record_thread(thread_id)
    kind = _kind(slug)
    context = _page(thread, slug, **list_live_context(thread, kind))
    context["addable"] = _addable(thread, kind) and not (slug == "patient" and context["rows"])
    context["chartable"] = slug == "observations" and bool(context["rows"])
    return render(request, "medical/type_list.html", context)


# -- the chart ------------------------------------------------------------------------------


@require_GET
def chart(request: HttpRequest, thread_id: str, code: str = "") -> HttpResponse:
    thread = record_thread(thread_id)
    observations = selectors.entries(thread, "Observation")
    series = charts.series_in(observations)
    chosen = (
        next((s for s in series if s.key == code), None)
        if code
        else (series[0] if series else None)
    )
    if code and chosen is None:
        raise Http404("no such result in this record")
    lines = charts.lines_of(observations, chosen.key) if chosen else []
    unit = display.unit_words(chosen.unit) if chosen else ""
    title = f"{chosen.label} over time" if chosen else ""
    context = _page(
        thread,
        "chart",
        series=[
            (s, reverse("medical:chart", args=[thread.id, s.key]), s is chosen) for s in series
        ],
        chosen=chosen,
        unit=unit,
        svg=mark_safe(charts.chart_svg(lines, title=title, unit=unit)),  # noqa: S308 - every text escaped
        legend=charts.legend(lines),
        rows=charts.table_rows(lines),
        title=title,
    )
    return render(request, "medical/chart.html", context)
