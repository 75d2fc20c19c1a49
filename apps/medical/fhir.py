"""FHIR resources as the record keeps them: which types, how one is checked, and the columns
pages search on.

Checking is the FHIR library's (``fhir.resources``, R4B: FHIR 4.3.0, the R4 family; ADR 23), not
hand-written rules. ``resource_check`` is also what every replica's rules run on a row, so it
must be pure and decide alike everywhere: the model classes are imported here, once, and the
canonical text is a function of the resource alone (sorted keys, no spaces).

The columns (code, display, date, status, value, unit) are derived from the resource by
``columns_of``; the rules refuse a row whose columns say something else than its resource, so a
page that searches on them shows what the resource says.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.allergyintolerance import AllergyIntolerance
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.immunization import Immunization
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure
from pydantic import ValidationError

from apps.medical import policy

FHIR_VERSION = "4.3.0"
MAX_RESOURCE = 256 * 1024  # bytes of canonical JSON; documents' files travel as blobs
ID_RE = re.compile(r"\A[A-Za-z0-9\-.]{1,64}\Z")  # FHIR's id datatype

# The classes people choose to keep apart (APPS.md §3), as the page offers them.
SENSITIVE_CLASSES = (
    ("mental", "Mental health"),
    ("sexual", "Sexual and reproductive health"),
    ("substance", "Substance use"),
    ("other", "Something else I keep private"),
)


@dataclass(frozen=True)
class FhirType:
    name: str  # the resourceType
    table: str
    model_name: str  # the class in apps.medical.models
    label: str  # one, in words
    plural: str
    slug: str  # in page addresses

    def model(self) -> Any:
        from apps.medical import models

        return getattr(models, self.model_name)


_CLASSES: dict[str, Any] = {
    "Patient": Patient,
    "AllergyIntolerance": AllergyIntolerance,
    "Condition": Condition,
    "MedicationStatement": MedicationStatement,
    "Immunization": Immunization,
    "Observation": Observation,
    "Procedure": Procedure,
    "DiagnosticReport": DiagnosticReport,
    "DocumentReference": DocumentReference,
    "Encounter": Encounter,
}

_T, _P = FhirType, policy
TYPES: dict[str, FhirType] = {
    t.name: t
    for t in (
        _T("Patient", _P.PATIENT, "Patient", "patient details", "patient details", "patient"),
        _T("AllergyIntolerance", _P.ALLERGY, "Allergy", "allergy", "allergies", "allergies"),
        _T("Condition", _P.CONDITION, "Condition", "problem", "problems", "conditions"),
        _T("MedicationStatement", _P.MEDICATION, "Medication", "medication", "medications",
           "medications"),
        _T("Immunization", _P.IMMUNIZATION, "Immunization", "vaccination", "vaccinations",
           "immunizations"),
        _T("Observation", _P.OBSERVATION, "Observation", "result", "results", "observations"),
        _T("Procedure", _P.PROCEDURE, "Procedure", "procedure", "procedures", "procedures"),
        _T("DiagnosticReport", _P.REPORT, "Report", "report", "reports", "reports"),
        _T("DocumentReference", _P.DOCUMENT, "Document", "document", "documents", "documents"),
        _T("Encounter", _P.ENCOUNTER, "Encounter", "visit", "visits", "encounters"),
    )
}  # fmt: skip
TYPE_BY_SLUG = {t.slug: t for t in TYPES.values()}
TYPE_BY_TABLE = {t.table: t for t in TYPES.values()}
COLUMNS = ("code", "display", "date", "status", "value", "unit")


class FhirInvalid(ValueError):
    """A resource the record does not take; the message says why, in words."""


@dataclass(frozen=True)
class Checked:
    resource_type: str
    resource: dict[str, Any]  # canonical: as the library reads it, empty values left out
    json: str  # canonical text
    columns: dict[str, Any]


def canonical(resource: Mapping[str, Any]) -> str:
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _problem(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
        message = str(error.get("msg", "not valid")).removeprefix("Value error, ").rstrip(".")
        parts.append(f"{where}: {message}" if where else message)
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def resource_check(resource_type: str, data: Mapping[str, Any] | str | bytes) -> Checked:
    """The resource as the record keeps it, or ``FhirInvalid`` saying why not."""
    kind = TYPES.get(resource_type)
    if kind is None:
        raise FhirInvalid(f"This record does not keep {resource_type or 'that kind of'} resources.")
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_RESOURCE:
            raise FhirInvalid(f"This {resource_type} is larger than {MAX_RESOURCE // 1024} KiB.")
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise FhirInvalid(f"This {resource_type} is not JSON.") from None
    if not isinstance(data, Mapping):
        said = _a(resource_type)
        raise FhirInvalid(f"{said[:1].upper()}{said[1:]} must be a JSON object.")
    given = data.get("resourceType")
    if given != resource_type:
        said = _a(given) if isinstance(given, str) and given else "a resource without a type"
        raise FhirInvalid(f"This is {said[:80]}, not {_a(resource_type)}.")
    rid = data.get("id")
    if rid is not None and (not isinstance(rid, str) or not ID_RE.match(rid)):
        raise FhirInvalid("A resource's id is 1 to 64 letters, digits, '-' or '.'.")
    try:
        model = _CLASSES[resource_type].model_validate(dict(data))
    except ValidationError as exc:
        raise FhirInvalid(f"This {resource_type} is not valid FHIR: {_problem(exc)}.") from None
    except (ValueError, TypeError) as exc:
        raise FhirInvalid(f"This {resource_type} is not valid FHIR: {exc}.") from None
    resource = json.loads(model.model_dump_json(exclude_none=True))
    problem = _codes_problem(resource_type, resource)
    if problem:
        raise FhirInvalid(f"This {resource_type} is not valid FHIR: {problem}.")
    text = canonical(resource)
    if len(text.encode()) > MAX_RESOURCE:
        raise FhirInvalid(f"This {resource_type} is larger than {MAX_RESOURCE // 1024} KiB.")
    return Checked(resource_type, resource, text, columns_of(resource_type, resource))


def _a(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


# Required bindings the library does not check (it checks structure and datatypes, not value
# sets): the codes pages and summaries rely on. From the FHIR R4 value sets of these elements.
_STATUS = {
    "Observation": "registered preliminary final amended corrected cancelled entered-in-error "
    "unknown",
    "MedicationStatement": "active completed entered-in-error intended stopped on-hold unknown "
    "not-taken",
    "Immunization": "completed entered-in-error not-done",
    "Procedure": "preparation in-progress not-done on-hold stopped completed entered-in-error "
    "unknown",
    "DiagnosticReport": "registered partial preliminary final amended corrected appended "
    "cancelled entered-in-error unknown",
    "DocumentReference": "current superseded entered-in-error",
    "Encounter": "planned arrived triaged in-progress onleave finished cancelled "
    "entered-in-error unknown",
}
_CODES = {
    ("Patient", "gender"): "male female other unknown",
    ("AllergyIntolerance", "criticality"): "low high unable-to-assess",
    ("AllergyIntolerance", "type"): "allergy intolerance",
    **{(kind, "status"): codes for kind, codes in _STATUS.items()},
}


def _codes_problem(resource_type: str, resource: Mapping[str, Any]) -> str | None:
    for (kind, element), codes in _CODES.items():
        value = resource.get(element) if kind == resource_type else None
        if value is not None and value not in codes.split():
            return f"{element}: {str(value)[:40]!r} is not one of {', '.join(codes.split())}"
    return None


# -- the columns pages search on ------------------------------------------------------------


def _concept(value: Any) -> tuple[str, str]:
    """(system|code, words) of a CodeableConcept."""
    if not isinstance(value, Mapping):
        return "", ""
    codings = value.get("coding") or []
    first = codings[0] if codings and isinstance(codings[0], Mapping) else {}
    code = first.get("code") or ""
    system = first.get("system") or ""
    words = value.get("text") or first.get("display") or code
    return (f"{system}|{code}" if code else ""), str(words)


def _status(resource: Mapping[str, Any]) -> str:
    """``status``, or the code of ``clinicalStatus`` (allergies and problems have no status)."""
    status = resource.get("status")
    if isinstance(status, str):
        return status
    code, words = _concept(resource.get("clinicalStatus"))
    return code.rpartition("|")[2] or words


def _first(resource: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = resource.get(name)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, Mapping):
            start = value.get("start") or value.get("end")
            if isinstance(start, str):
                return start
    return ""


# LOINC codes whose value is in components (a blood pressure's systolic comes first).
_SYSTOLIC = "8480-6"


def _quantity(resource: Mapping[str, Any]) -> tuple[float | None, str]:
    quantity = resource.get("valueQuantity")
    if not isinstance(quantity, Mapping):
        for part in resource.get("component") or []:
            code, _ = _concept(part.get("code")) if isinstance(part, Mapping) else ("", "")
            if code.endswith("|" + _SYSTOLIC) and isinstance(part.get("valueQuantity"), Mapping):
                quantity = part["valueQuantity"]
                break
    if not isinstance(quantity, Mapping):
        return None, ""
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None, ""
    return float(value), str(quantity.get("unit") or quantity.get("code") or "")


def columns_of(resource_type: str, resource: Mapping[str, Any]) -> dict[str, Any]:
    """What pages search and sort on, read from the resource itself."""
    code, display, date, value, unit = "", "", "", None, ""
    if resource_type == "Patient":
        names = resource.get("name") or [{}]
        first = names[0] if isinstance(names[0], Mapping) else {}
        display = (
            first.get("text")
            or " ".join([*(first.get("given") or []), first.get("family") or ""]).strip()
        )
        date = resource.get("birthDate") or ""
    elif resource_type == "MedicationStatement":
        code, display = _concept(resource.get("medicationCodeableConcept"))
        if not display:
            display = (resource.get("medicationReference") or {}).get("display", "")
        date = _first(resource, "effectiveDateTime", "effectivePeriod", "dateAsserted")
    elif resource_type == "Immunization":
        code, display = _concept(resource.get("vaccineCode"))
        date = _first(resource, "occurrenceDateTime", "recorded")
    elif resource_type == "DocumentReference":
        code, display = _concept(resource.get("type"))
        content = resource.get("content") or [{}]
        attachment = content[0].get("attachment", {}) if isinstance(content[0], Mapping) else {}
        display = resource.get("description") or attachment.get("title") or display
        date = _first(resource, "date") or attachment.get("creation", "")
    elif resource_type == "Encounter":
        code, display = _concept((resource.get("type") or [{}])[0])
        if not display:
            display = (resource.get("class") or {}).get("display") or (
                resource.get("class") or {}
            ).get("code", "")
        date = _first(resource, "period")
    else:
        code, display = _concept(resource.get("code"))
        date = _first(
            resource,
            "effectiveDateTime",
            "effectivePeriod",
            "issued",
            "onsetDateTime",
            "recordedDate",
            "performedDateTime",
            "performedPeriod",
            "onsetPeriod",
        )
        if resource_type == "Observation":
            value, unit = _quantity(resource)
    return {
        "code": code[:200],
        "display": str(display)[:300],
        "date": str(date)[:40],
        "status": _status(resource)[:40],
        "value": value,
        "unit": unit[:40],
    }
