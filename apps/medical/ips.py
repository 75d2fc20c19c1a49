"""The record's International Patient Summary (issue 16 §4, §6): an IPS document Bundle and the
plain summary pages and the emergency link show.

``ips_bundle`` follows the IPS (HL7 FHIR IPS, on R4): a Bundle of type document whose first
entry is a Composition (LOINC 60591-5 "Patient summary Document") with the three required
sections (allergies 48765-2, medications 10160-0, problems 11450-4), then the Patient and the
resources the sections cite; immunizations and results are added when the record has some.
A required section with nothing to say cites an entry coded from IPS's "absent or unknown"
code system ("No information about allergies"), as the IPS asks instead of an empty list.
Entries of the record's sensitive part are left out unless asked for: a summary is made to
be handed to others (a doctor, an emergency link). Every resource is as the record stores it,
its references to the patient and to resources of the document rewritten to the document's
own ``urn:uuid`` addresses. Given ``now`` the Bundle is the same each time (ids are derived
from the thread, the resources and ``now``).

``summary_of`` reads such a Bundle back into a ``Summary`` of plain lists, so a page can show
an IPS this node made earlier (the emergency link keeps only the encrypted Bundle).
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.core.models import Thread
from apps.medical import fhir, selectors

LOINC = "http://loinc.org"
ABSENT = "http://hl7.org/fhir/uv/ips/CodeSystem/absent-unknown-uv-ips"
IPS = "http://hl7.org/fhir/uv/ips/StructureDefinition/"
_NS = uuid.UUID("0f8d7c1e-2b4a-5d6e-8f90-16a7b3c4d5e6")  # this app's uuid5 namespace
XHTML = "http://www.w3.org/1999/xhtml"

# Statuses that say an entry does not belong in a summary of what is true now.
_WRONG = {"entered-in-error", "refuted"}
_PAST_PROBLEM = {"inactive", "resolved", "remission"}
_CURRENT_MEDICATION = {"active", "intended", "on-hold", "unknown", ""}
_RESULTS = 10  # newest results in the summary


@dataclass(frozen=True)
class Section:
    key: str
    code: str  # LOINC
    display: str
    title: str
    resource_type: str
    absent: str  # the IPS "no information" code when the section is required, else ""
    absent_words: str = ""


SECTIONS = (
    Section("allergies", "48765-2", "Allergies and adverse reactions Document",
            "Allergies and Intolerances", "AllergyIntolerance", "no-allergy-info",
            "No information about allergies"),
    Section("medications", "10160-0", "History of Medication use Narrative",
            "Medication Summary", "MedicationStatement", "no-medication-info",
            "No information about medications"),
    Section("problems", "11450-4", "Problem list - Reported", "Problem List", "Condition",
            "no-problem-info", "No information about problems"),
    Section("immunizations", "11369-6", "History of Immunization Narrative", "Immunizations",
            "Immunization", ""),
    Section("results", "30954-2", "Relevant diagnostic tests/laboratory data Narrative",
            "Results", "Observation", ""),
)  # fmt: skip


# -- what the summary shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One line of the summary: what it is, and a few words more."""

    text: str
    status: str = ""
    date: str = ""
    detail: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Summary:
    """The patient summary as plain lists (empty: the record has no information)."""

    name: str = ""
    birth_date: str = ""
    gender: str = ""
    made_at: str = ""  # when the summary was made (ISO instant)
    allergies: list[Item] = field(default_factory=list)
    medications: list[Item] = field(default_factory=list)
    problems: list[Item] = field(default_factory=list)
    immunizations: list[Item] = field(default_factory=list)
    results: list[Item] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Summary:
        lists = {s.key: [Item(**item) for item in data.get(s.key) or []] for s in SECTIONS}
        plain = {k: str(data.get(k) or "") for k in ("name", "birth_date", "gender", "made_at")}
        return cls(**plain, **lists)


def _include(section: Section, entry: selectors.Entry) -> bool:
    """Whether a record entry belongs in the section: what holds now, not mistakes."""
    verification = (entry.resource.get("verificationStatus") or {}).get("coding") or [{}]
    if entry.status in _WRONG or verification[0].get("code") in _WRONG:
        return False
    if section.key == "problems":
        return entry.status not in _PAST_PROBLEM
    if section.key == "medications":
        return entry.status in _CURRENT_MEDICATION
    if section.key == "immunizations":
        return entry.status == "completed"
    if section.key == "results":
        return entry.status in ("final", "amended", "corrected", "preliminary")
    return True


def _chosen(thread: Thread, section: Section, sensitive: bool) -> list[selectors.Entry]:
    limit = _RESULTS if section.key == "results" else None
    chosen = [
        e
        for e in selectors.entries(thread, section.resource_type)
        if _include(section, e) and (sensitive or not e.sensitive)
    ]
    return chosen[:limit] if limit else chosen


# -- the document --------------------------------------------------------------------------------


def _url(thread: Thread, name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NS, f'{thread.id}/{name}')}"


def _rewrite(value: Any, targets: Mapping[str, str], patient_url: str) -> Any:
    """References to the patient and to resources in the document, made document addresses."""
    if isinstance(value, dict):
        out = {key: _rewrite(item, targets, patient_url) for key, item in value.items()}
        reference = out.get("reference")
        if isinstance(reference, str):
            if reference in targets:
                out["reference"] = targets[reference]
            elif reference.startswith("Patient/"):
                out["reference"] = patient_url
        return out
    if isinstance(value, list):
        return [_rewrite(item, targets, patient_url) for item in value]
    return value


def _absent(section: Section, patient_url: str, day: str) -> dict[str, Any]:
    """The IPS's "no information" entry for a required section with nothing to cite."""
    code = {"coding": [{"system": ABSENT, "code": section.absent, "display": section.absent_words}]}
    if section.resource_type == "AllergyIntolerance":
        return {"resourceType": "AllergyIntolerance", "code": code,
                "patient": {"reference": patient_url}}  # fmt: skip
    if section.resource_type == "MedicationStatement":
        return {"resourceType": "MedicationStatement", "status": "unknown",
                "medicationCodeableConcept": code, "subject": {"reference": patient_url},
                "effectiveDateTime": day}  # fmt: skip
    return {"resourceType": "Condition", "code": code, "subject": {"reference": patient_url}}


def _narrative(lines: list[str]) -> dict[str, str]:
    items = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
    return {"status": "generated", "div": f'<div xmlns="{XHTML}"><ul>{items}</ul></div>'}


def _line(entry: selectors.Entry) -> str:
    words = entry.display or entry.type
    extra = ", ".join(x for x in (entry.status, entry.date[:10]) if x)
    return f"{words} ({extra})" if extra else words


def _patient(thread: Thread, fhir_id: str) -> dict[str, Any]:
    found = selectors.entries(thread, "Patient")
    if found:
        resource = dict(found[0].resource)
        resource["id"] = found[0].fhir_id
        return resource
    return {"resourceType": "Patient", "id": fhir_id}


def ips_bundle(
    thread: Thread, *, now: datetime | None = None, sensitive: bool = False
) -> dict[str, Any]:
    """The record's IPS document Bundle (FHIR R4B JSON); entries of the record's sensitive
    part only when asked (``sensitive``): a summary is made to be handed to others."""
    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    stamp = when.isoformat().replace("+00:00", "Z")
    run = f"ips/{stamp}"
    patient = _patient(thread, "patient")
    patient_url = _url(thread, f"Patient/{patient['id']}")
    chosen = {s.key: _chosen(thread, s, sensitive) for s in SECTIONS}
    targets = {
        f"{e.type}/{e.fhir_id}": _url(thread, f"{e.type}/{e.fhir_id}")
        for entries in chosen.values()
        for e in entries
    } | {f"Patient/{patient['id']}": patient_url}
    resources: list[tuple[str, dict[str, Any]]] = []
    sections = []
    for section in SECTIONS:
        entries = chosen[section.key]
        if not entries and not section.absent:
            continue  # an optional section the record has nothing for
        refs, lines = [], []
        for entry in entries:
            url = targets[f"{entry.type}/{entry.fhir_id}"]
            resource = _rewrite(dict(entry.resource), targets, patient_url)
            resource["id"] = entry.fhir_id
            resources.append((url, resource))
            refs.append({"reference": url})
            lines.append(_line(entry))
        if not entries:
            url = _url(thread, f"{run}/{section.absent}")
            absent = _absent(section, patient_url, stamp[:10])
            resources.append((url, {**absent, "id": url.rpartition(":")[2]}))
            refs.append({"reference": url})
            lines.append(section.absent_words)
        sections.append(
            {
                "title": section.title,
                "code": {"coding": [{"system": LOINC, "code": section.code,
                                     "display": section.display}]},
                "text": _narrative(lines),
                "entry": refs,
            }
        )  # fmt: skip
    name = fhir.columns_of("Patient", patient)["display"] or "the patient"
    composition_url = _url(thread, f"{run}/Composition")
    composition = {
        "resourceType": "Composition",
        "id": composition_url.rpartition(":")[2],
        "meta": {"profile": [IPS + "Composition-uv-ips"]},
        "status": "final",
        "type": {"coding": [{"system": LOINC, "code": "60591-5",
                             "display": "Patient summary Document"}]},
        "subject": {"reference": patient_url},
        "date": stamp,
        "author": [{"reference": patient_url}],
        "title": f"Patient summary of {name} as of {stamp[:10]}",
        "confidentiality": "N",
        "section": sections,
    }  # fmt: skip
    bundle_url = _url(thread, run)
    entries = [(composition_url, composition), (patient_url, patient), *resources]
    return {
        "resourceType": "Bundle",
        "id": bundle_url.rpartition(":")[2],
        "meta": {"profile": [IPS + "Bundle-uv-ips"]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": bundle_url},
        "type": "document",
        "timestamp": stamp,
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }


# -- reading a summary back ----------------------------------------------------------------------


def _words(concept: Any) -> str:
    if not isinstance(concept, Mapping):
        return ""
    coding = (concept.get("coding") or [{}])[0]
    return str(concept.get("text") or coding.get("display") or coding.get("code") or "")


def _detail(resource: Mapping[str, Any]) -> str:
    """A few words more than the name: criticality and reactions, dosage, onset."""
    kind = resource.get("resourceType")
    parts: list[str] = []
    if kind == "AllergyIntolerance":
        if resource.get("criticality"):
            parts.append(f"{resource['criticality']} criticality")
        for reaction in resource.get("reaction") or []:
            for manifestation in reaction.get("manifestation") or []:
                words = _words(manifestation)
                if words:
                    parts.append(words)
    elif kind == "MedicationStatement":
        parts += [d["text"] for d in resource.get("dosage") or [] if d.get("text")]
    elif kind == "Condition" and isinstance(resource.get("onsetDateTime"), str):
        parts.append(f"since {resource['onsetDateTime'][:10]}")
    return "; ".join(parts)


def _item(resource: Mapping[str, Any]) -> Item:
    kind = str(resource.get("resourceType") or "")
    columns = fhir.columns_of(kind, resource)
    text = columns["display"] or kind
    if kind == "Observation" and columns["value"] is not None:
        value = f"{columns['value']:g}"
        text = f"{text}: {value} {columns['unit']}".rstrip()
    return Item(text, columns["status"], columns["date"][:10], _detail(resource))


def summary_of(bundle: Mapping[str, Any]) -> Summary:
    """The plain summary an IPS document Bundle says (the "no information" entries give empty
    lists)."""
    by_url = {
        e.get("fullUrl"): e.get("resource") or {}
        for e in bundle.get("entry") or []
        if isinstance(e, Mapping)
    }
    composition = next(iter(by_url.values()), {})
    patient = by_url.get((composition.get("subject") or {}).get("reference"), {})
    lists: dict[str, list[Item]] = {}
    codes = {s.code: s.key for s in SECTIONS}
    for section in composition.get("section") or []:
        codings = (section.get("code") or {}).get("coding") or [{}]
        key = codes.get(codings[0].get("code"))
        if key is None:
            continue
        for ref in section.get("entry") or []:
            resource = by_url.get(ref.get("reference"), {})
            coding = ((resource.get("code") or resource.get("medicationCodeableConcept") or {})
                      .get("coding") or [{}])[0]  # fmt: skip
            if not resource or coding.get("system") == ABSENT:
                continue
            lists.setdefault(key, []).append(_item(resource))
    return Summary(
        name=fhir.columns_of("Patient", patient)["display"] if patient else "",
        birth_date=str(patient.get("birthDate") or ""),
        gender=str(patient.get("gender") or ""),
        made_at=str(bundle.get("timestamp") or ""),
        **lists,
    )


def ips_summary(thread: Thread, *, now: datetime | None = None, sensitive: bool = False) -> Summary:
    """The record's summary for display (the same as its IPS says)."""
    return summary_of(ips_bundle(thread, now=now, sensitive=sensitive))
