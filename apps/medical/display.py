"""What the record's pages say about an entry, in words rather than FHIR: a date as people read
it, a coded concept by its name, a reading with its unit ("120/80 mmHg"), a status ("Active",
"Entered in error"), and per resource type the list of what the entry says (an allergy: its
substance, reaction, risk, when it was recorded). Reads only the resource; no writes here."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from apps.medical.chart import (
    BP_PANEL,
    DIASTOLIC,
    SYSTOLIC,
    component_value,
    key_of,
    number,
    when_of,
)
from apps.timeline.display import said

__all__ = ["date_words", "facts", "said", "summary", "value_words"]

Facts = list[tuple[str, str]]

# What a signed op did to a resource, as the provenance table says it.
ACTIONS = {"insert": "created", "update": "changed", "delete": "deleted"}

# UCUM units as people write them.
UNITS = {"mm[Hg]": "mmHg", "/min": "beats/min", "Cel": "°C", "[degF]": "°F", "kg": "kg"}

STATUS = {
    "entered-in-error": "Entered in error",
    "intended": "Planned",
    "not-taken": "Not taken",
    "on-hold": "On hold",
    "in-progress": "In progress",
    "not-done": "Not done",
    "unable-to-assess": "Unable to assess",
}

CRITICALITY = {"low": "Low risk", "high": "High risk", "unable-to-assess": "Unable to assess"}


def date_words(text: str | None) -> str:
    """A FHIR date or dateTime as people read it: "2 May 2024", "2 May 2024, 08:30",
    "May 2024", "2024"; what is not a date stays as it was given."""
    text = (text or "").strip()
    if not text:
        return ""
    if len(text) == 4 and text.isdigit():
        return text
    at = when_of(text)
    if at is None:
        return text
    if len(text) == 7:
        return f"{at:%B %Y}"
    if len(text) == 10:
        return f"{at.day} {at:%b %Y}"
    return f"{at.day} {at:%b %Y}, {at:%H:%M}"


def moment(at: datetime | None) -> str:
    """When a version was written (an aware datetime) as people read it."""
    if at is None:
        return ""
    return f"{at.day} {at:%b %Y}, {at:%H:%M}"


def status_words(code: str | None) -> str:
    code = (code or "").strip()
    return STATUS.get(code, code.replace("-", " ").capitalize())


def unit_words(unit: str | None) -> str:
    return UNITS.get(unit or "", unit or "")


def concept(value: dict | None) -> str:
    """A CodeableConcept by its name: its text, else its first coding's display, else code."""
    if not isinstance(value, dict):
        return ""
    if value.get("text"):
        return str(value["text"])
    for coding in value.get("coding") or []:
        if coding.get("display") or coding.get("code"):
            return str(coding.get("display") or coding.get("code"))
    return ""


def _code_of(value: dict | None) -> str:
    """The first coding of a concept as "code (system)", for the entry page's details."""
    for coding in (value or {}).get("coding") or []:
        if coding.get("code"):
            system = str(coding.get("system") or "").removeprefix("http://")
            known = {"loinc.org": "LOINC", "snomed.info/sct": "SNOMED CT"}.get(system, system)
            return f"{coding['code']} ({known})" if known else str(coding["code"])
    return ""


def _concepts(values: list | None) -> str:
    return ", ".join(filter(None, (concept(v) for v in values or [])))


def _notes(resource: dict) -> str:
    return " ".join(str(n.get("text", "")) for n in resource.get("note") or [] if n.get("text"))


def _quantity(value: dict | None) -> str:
    if not isinstance(value, dict) or not isinstance(value.get("value"), int | float):
        return ""
    unit = unit_words(value.get("unit") or value.get("code"))
    return f"{number(float(value['value']))} {unit}".strip()


def value_words(resource: dict) -> str:
    """An Observation's reading: "120/80 mmHg", "72 beats/min", "Positive"."""
    codes = [c.get("code") for c in (resource.get("code") or {}).get("coding") or []]
    if BP_PANEL in codes or (component_value(resource, SYSTOLIC) is not None):
        high, low = component_value(resource, SYSTOLIC), component_value(resource, DIASTOLIC)
        if high is not None and low is not None:
            return f"{number(high)}/{number(low)} mmHg"
    if "valueQuantity" in resource:
        return _quantity(resource["valueQuantity"])
    if "valueCodeableConcept" in resource:
        return concept(resource["valueCodeableConcept"])
    for key in ("valueString", "valueBoolean", "valueInteger", "valueDateTime"):
        if key in resource:
            return str(resource[key])
    parts = [
        f"{concept(p.get('code'))} {_quantity(p.get('valueQuantity'))}".strip()
        for p in resource.get("component") or []
    ]
    return ", ".join(p for p in parts if p)


def _human_name(resource: dict) -> str:
    for name in resource.get("name") or []:
        if name.get("text"):
            return str(name["text"])
        words = [*(name.get("given") or []), name.get("family") or ""]
        if any(words):
            return " ".join(w for w in words if w)
    return ""


def _period(value: dict | None) -> str:
    value = value or {}
    start, end = date_words(value.get("start")), date_words(value.get("end"))
    if start and end:
        return f"{start} to {end}"
    return start or (f"until {end}" if end else "")


def _when(resource: dict, *names: str) -> str:
    for name in names:
        if name.endswith("Period") and resource.get(name):
            return _period(resource[name])
        if resource.get(name):
            return date_words(str(resource[name]))
    return ""


def _patient(r: dict) -> Facts:
    telecom = ", ".join(str(t.get("value")) for t in r.get("telecom") or [] if t.get("value"))
    address = "; ".join(
        a.get("text") or ", ".join([*(a.get("line") or []), a.get("city") or ""]).strip(", ")
        for a in r.get("address") or []
    )
    return [
        ("Name", _human_name(r)),
        ("Born", date_words(r.get("birthDate"))),
        ("Gender", status_words(r.get("gender"))),
        ("Contact", telecom),
        ("Address", address),
    ]


def _allergy(r: dict) -> Facts:
    reactions = r.get("reaction") or []
    return [
        ("Substance", concept(r.get("code"))),
        ("Reaction", ", ".join(_concepts(x.get("manifestation")) for x in reactions)),
        (
            "Severity",
            ", ".join(status_words(x.get("severity")) for x in reactions if x.get("severity")),
        ),
        ("Risk", CRITICALITY.get(r.get("criticality") or "", "")),
        ("Status", status_words(concept(r.get("clinicalStatus")))),
        ("Recorded", date_words(r.get("recordedDate"))),
    ]


def _condition(r: dict) -> Facts:
    return [
        ("Problem", concept(r.get("code"))),
        ("Status", status_words(concept(r.get("clinicalStatus")))),
        ("Since", _when(r, "onsetDateTime", "onsetPeriod", "onsetString")),
        ("Resolved", _when(r, "abatementDateTime", "abatementString")),
        ("Recorded", date_words(r.get("recordedDate"))),
    ]


def _medication(r: dict) -> Facts:
    medicine = concept(r.get("medicationCodeableConcept")) or str(
        (r.get("medicationReference") or {}).get("display") or ""
    )
    return [
        ("Medication", medicine),
        ("Dose", "; ".join(str(d.get("text")) for d in r.get("dosage") or [] if d.get("text"))),
        ("Status", status_words(r.get("status"))),
        ("Taken", _when(r, "effectiveDateTime", "effectivePeriod")),
        ("Reason", _concepts(r.get("reasonCode"))),
    ]


def _immunization(r: dict) -> Facts:
    return [
        ("Vaccine", concept(r.get("vaccineCode"))),
        ("Given", _when(r, "occurrenceDateTime", "occurrenceString")),
        ("Status", status_words(r.get("status"))),
        ("Batch", str(r.get("lotNumber") or "")),
    ]


def _observation(r: dict) -> Facts:
    return [
        ("Measured", concept(r.get("code"))),
        ("Result", value_words(r)),
        ("Taken", _when(r, "effectiveDateTime", "effectivePeriod", "issued")),
        ("Kind", _concepts(r.get("category"))),
        ("Interpretation", _concepts(r.get("interpretation"))),
        ("Status", status_words(r.get("status"))),
    ]


def _procedure(r: dict) -> Facts:
    return [
        ("Procedure", concept(r.get("code"))),
        ("Done", _when(r, "performedDateTime", "performedPeriod", "performedString")),
        ("Reason", _concepts(r.get("reasonCode"))),
        ("Status", status_words(r.get("status"))),
    ]


def _report(r: dict) -> Facts:
    results = r.get("result") or []
    return [
        ("Report", concept(r.get("code"))),
        ("Date", _when(r, "effectiveDateTime", "effectivePeriod", "issued")),
        ("Conclusion", str(r.get("conclusion") or "")),
        ("Results", f"{len(results)} result{'s' if len(results) != 1 else ''}" if results else ""),
        ("Status", status_words(r.get("status"))),
    ]


def _document(r: dict) -> Facts:
    files = [c.get("attachment") or {} for c in r.get("content") or []]
    sizes = [f"{f.get('title') or 'file'} ({_size(f.get('size'))})" for f in files if f.get("size")]
    return [
        ("Title", str(r.get("description") or "") or next((f.get("title", "") for f in files), "")),
        ("Kind", concept(r.get("type"))),
        ("Date", date_words(r.get("date"))),
        ("File", ", ".join(sizes)),
        ("Status", status_words(r.get("status"))),
    ]


def _size(size: object) -> str:
    if not isinstance(size, int):
        return ""
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return ""


def _encounter(r: dict) -> Facts:
    kind = _concepts(r.get("type")) or str((r.get("class") or {}).get("display") or "")
    places = ", ".join(
        str((x.get("location") or {}).get("display") or "") for x in r.get("location") or []
    )
    return [
        ("Visit", kind),
        ("When", _period(r.get("period"))),
        ("Reason", _concepts(r.get("reasonCode"))),
        ("Where", places or str((r.get("serviceProvider") or {}).get("display") or "")),
        ("Status", status_words(r.get("status"))),
    ]


FACTS: dict[str, Callable[[dict], Facts]] = {
    "Patient": _patient,
    "AllergyIntolerance": _allergy,
    "Condition": _condition,
    "MedicationStatement": _medication,
    "Immunization": _immunization,
    "Observation": _observation,
    "Procedure": _procedure,
    "DiagnosticReport": _report,
    "DocumentReference": _document,
    "Encounter": _encounter,
}

# The concept each type names itself by, for the entry page's "code" line.
CODED = {
    "AllergyIntolerance": "code",
    "Condition": "code",
    "MedicationStatement": "medicationCodeableConcept",
    "Immunization": "vaccineCode",
    "Observation": "code",
    "Procedure": "code",
    "DiagnosticReport": "code",
    "Encounter": "type",
}


def facts(resource_type: str, resource: dict) -> Facts:
    """What an entry says, label by label, leaving out what it does not say."""
    found = FACTS.get(resource_type, lambda r: [])(resource)
    coded = CODED.get(resource_type)
    value = resource.get(coded) if coded else None
    if isinstance(value, list):
        value = value[0] if value else None
    code = _code_of(value)
    found += [("Code", code), ("Note", _notes(resource))]
    return [(label, text) for label, text in found if text]


def title(entry) -> str:
    """An entry's name in a list: its display column, else what its resource says first."""
    if entry.display:
        return str(entry.display)
    shown = facts(entry.type, entry.resource)
    return shown[0][1] if shown else "Untitled entry"


def summary(entry) -> str:
    """The line under an entry's name in a list: its reading or status, and its date."""
    parts = []
    if entry.type == "Observation":
        parts.append(value_words(entry.resource))
    elif entry.type in ("AllergyIntolerance",):
        parts.append(CRITICALITY.get(entry.resource.get("criticality") or "", ""))
    if entry.status and entry.type not in ("Observation", "Patient"):
        parts.append(status_words(entry.status))
    parts.append(date_words(entry.date))
    return " · ".join(p for p in parts if p)


def chart_key(entry) -> str:
    """Where an Observation's chart is (its code), or "" for one with no number to draw."""
    if entry.type != "Observation" or entry.value is None:
        return ""
    return key_of(entry.code, entry.display)
