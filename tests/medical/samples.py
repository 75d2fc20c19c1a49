"""Sample FHIR R4B resources for the medical app's tests, as a clinic's system would send them.

One builder per type the record keeps (``fhir.TYPES``), each valid R4B and already in the
canonical shape a check keeps (no empty fields), so a resource written and read back is equal to
what a builder made. Every builder takes an optional ``id`` (none: the resource has no id, as in
a new entry), and the patient-linked ones a ``subject`` reference.

``bundle(n, bad=k, seed=s)`` is a Bundle (type collection) of ``n`` valid resources of mixed
types, in an order fixed by the seed, with ``k`` malformed entries spread among them: a wrong
resourceType, a missing required field, a bad date, an entry that is not an object, a type the
record does not keep. ``malformed(kind)`` gives one of them alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CVX = "http://hl7.org/fhir/sid/cvx"
UCUM = "http://unitsofmeasure.org"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SUBJECT = "Patient/me"

Resource = dict[str, Any]


def _coded(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _with_id(resource: Resource, id: str | None) -> Resource:
    """The resource with its id first when given (FHIR ids: letters, digits, '-' and '.')."""
    return {"resourceType": resource["resourceType"], **({"id": id} if id else {}), **resource}


def _quantity(value: float, unit: str, code: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _vital(code: str, display: str, when: str, subject: str) -> Resource:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [_coded(OBS_CATEGORY, "vital-signs", "Vital Signs")],
        "code": _coded(LOINC, code, display),
        "subject": {"reference": subject},
        "effectiveDateTime": when,
    }


def patient(
    *, id: str | None = None, name: str = "Ada Lovelace", birth_date: str = "1985-12-10",
    gender: str = "female",
) -> Resource:  # fmt: skip
    given, _, family = name.rpartition(" ")
    human: dict[str, Any] = {"text": name, "family": family}
    if given:
        human["given"] = given.split()
    return _with_id(
        {"resourceType": "Patient", "name": [human], "gender": gender, "birthDate": birth_date}, id
    )


def observation_bp(
    systolic: int = 128, diastolic: int = 82, *, when: str = "2026-03-01T08:30:00Z",
    id: str | None = None, subject: str = SUBJECT,
) -> Resource:  # fmt: skip
    """Blood pressure panel (LOINC 85354-9) with systolic and diastolic components."""
    resource = _vital("85354-9", "Blood pressure panel with all children optional", when, subject)
    resource["component"] = [
        {
            "code": _coded(LOINC, "8480-6", "Systolic blood pressure"),
            "valueQuantity": _quantity(systolic, "mmHg", "mm[Hg]"),
        },
        {
            "code": _coded(LOINC, "8462-4", "Diastolic blood pressure"),
            "valueQuantity": _quantity(diastolic, "mmHg", "mm[Hg]"),
        },
    ]
    return _with_id(resource, id)


def heart_rate(
    bpm: int = 64, *, when: str = "2026-03-01T08:31:00Z", id: str | None = None,
    subject: str = SUBJECT,
) -> Resource:  # fmt: skip
    resource = _vital("8867-4", "Heart rate", when, subject)
    resource["valueQuantity"] = _quantity(bpm, "beats/minute", "/min")
    return _with_id(resource, id)


def hba1c(
    percent: float = 6.4, *, when: str = "2026-02-14", id: str | None = None,
    subject: str = SUBJECT,
) -> Resource:  # fmt: skip
    """A lab result: hemoglobin A1c in percent (LOINC 4548-4)."""
    return _with_id(
        {
            "resourceType": "Observation",
            "status": "final",
            "category": [_coded(OBS_CATEGORY, "laboratory", "Laboratory")],
            "code": _coded(LOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
            "subject": {"reference": subject},
            "effectiveDateTime": when,
            "valueQuantity": _quantity(percent, "%", "%"),
        },
        id,
    )


def allergy(
    *, id: str | None = None, subject: str = SUBJECT, code: str = "764146007",
    display: str = "Penicillin", recorded: str = "2019-05-02",
) -> Resource:  # fmt: skip
    """An allergy (to penicillin unless told), active and confirmed, high criticality."""
    return _with_id(
        {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                "active",
                "Active",
            ),
            "verificationStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                "confirmed",
                "Confirmed",
            ),
            "type": "allergy",
            "category": ["medication"],
            "criticality": "high",
            "code": _coded(SNOMED, code, display),
            "patient": {"reference": subject},
            "recordedDate": recorded,
            "reaction": [{"manifestation": [_coded(SNOMED, "247472004", "Hives")]}],
        },
        id,
    )


def medication(
    *, id: str | None = None, subject: str = SUBJECT, code: str = "860975",
    display: str = "Metformin hydrochloride 500 MG Oral Tablet", start: str = "2024-01-10",
) -> Resource:  # fmt: skip
    """A MedicationStatement (metformin unless told), active, twice a day."""
    return _with_id(
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": _coded(RXNORM, code, display),
            "subject": {"reference": subject},
            "effectivePeriod": {"start": start},
            "dosage": [{"text": "500 mg twice a day with meals"}],
        },
        id,
    )


def condition(
    *, id: str | None = None, subject: str = SUBJECT, code: str = "44054006",
    display: str = "Diabetes mellitus type 2", onset: str = "2023-11-20",
) -> Resource:  # fmt: skip
    """A problem-list Condition (type 2 diabetes unless told), active and confirmed."""
    return _with_id(
        {
            "resourceType": "Condition",
            "clinicalStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
            ),
            "verificationStatus": _coded(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "confirmed",
                "Confirmed",
            ),
            "category": [
                _coded(
                    "http://terminology.hl7.org/CodeSystem/condition-category",
                    "problem-list-item",
                    "Problem List Item",
                )
            ],
            "code": _coded(SNOMED, code, display),
            "subject": {"reference": subject},
            "onsetDateTime": onset,
        },
        id,
    )


def immunization(
    *, id: str | None = None, subject: str = SUBJECT, when: str = "2025-10-15",
) -> Resource:  # fmt: skip
    """A seasonal influenza vaccination (CVX 141)."""
    return _with_id(
        {
            "resourceType": "Immunization",
            "status": "completed",
            "vaccineCode": _coded(CVX, "141", "Influenza, seasonal, injectable"),
            "patient": {"reference": subject},
            "occurrenceDateTime": when,
            "lotNumber": "FL2025-0193",
        },
        id,
    )


def procedure(
    *, id: str | None = None, subject: str = SUBJECT, when: str = "2024-06-03",
) -> Resource:  # fmt: skip
    """A completed colonoscopy."""
    return _with_id(
        {
            "resourceType": "Procedure",
            "status": "completed",
            "code": _coded(SNOMED, "73761001", "Colonoscopy"),
            "subject": {"reference": subject},
            "performedDateTime": when,
        },
        id,
    )


def encounter(
    *, id: str | None = None, subject: str = SUBJECT, start: str = "2026-03-01T08:15:00Z",
    end: str = "2026-03-01T08:45:00Z",
) -> Resource:  # fmt: skip
    """A finished ambulatory visit."""
    return _with_id(
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
            "type": [_coded(SNOMED, "185349003", "Encounter for check up")],
            "subject": {"reference": subject},
            "period": {"start": start, "end": end},
        },
        id,
    )


def report(
    *, id: str | None = None, subject: str = SUBJECT, when: str = "2026-02-14",
    results: list[str] | None = None,
) -> Resource:  # fmt: skip
    """A final complete blood count report (LOINC 58410-2), citing its results if given."""
    resource: Resource = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": _coded(LOINC, "58410-2", "CBC panel - Blood by Automated count"),
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "conclusion": "Within normal limits.",
    }
    if results:
        resource["result"] = [{"reference": ref} for ref in results]
    return _with_id(resource, id)


def document(
    *, id: str | None = None, subject: str = SUBJECT, title: str = "Discharge letter",
    when: str = "2026-01-20T10:00:00Z", data: str = "SGVsbG8sIGRvY3RvciE=",
) -> Resource:  # fmt: skip
    """A current DocumentReference with its content inline (base64 text by default)."""
    return _with_id(
        {
            "resourceType": "DocumentReference",
            "status": "current",
            "type": _coded(LOINC, "18842-5", "Discharge summary"),
            "subject": {"reference": subject},
            "date": when,
            "description": title,
            "content": [
                {"attachment": {"contentType": "text/plain", "data": data, "title": title}}
            ],
        },
        id,
    )


# Every type the record keeps, with a builder: bundle() and tests that go over all types use it.
BUILDERS: dict[str, Callable[..., Resource]] = {
    "Patient": patient,
    "AllergyIntolerance": allergy,
    "Condition": condition,
    "MedicationStatement": medication,
    "Immunization": immunization,
    "Observation": observation_bp,
    "Procedure": procedure,
    "DiagnosticReport": report,
    "DocumentReference": document,
    "Encounter": encounter,
}


def every_type(*, prefix: str = "s") -> list[Resource]:
    """One resource of each type the record keeps, with ids ``<prefix>-<n>``."""
    return [build(id=f"{prefix}-{n}") for n, build in enumerate(BUILDERS.values())]


def _varied(rng: random.Random, index: int, id: str | None) -> Resource:
    """A valid resource of some type (no Patient: a record has one), its values varied."""
    day = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    kind = rng.randrange(10)
    if kind < 4:  # most of a record is observations
        when = f"{day}T{rng.randint(6, 21):02d}:{rng.randint(0, 59):02d}:00Z"
        return observation_bp(rng.randint(100, 170), rng.randint(60, 100), when=when, id=id)
    if kind == 4:
        return heart_rate(rng.randint(48, 120), when=f"{day}T07:00:00Z", id=id)
    if kind == 5:
        return hba1c(round(rng.uniform(4.8, 9.5), 1), when=day, id=id)
    return [condition, medication, immunization, procedure][kind - 6](id=id)


MALFORMED_KINDS = ("wrong_type", "missing_field", "bad_date", "not_object", "unknown_type")


def malformed(kind: str, *, id: str) -> Any:
    """An entry's resource a check must refuse, of one of ``MALFORMED_KINDS``."""
    if kind == "wrong_type":  # not a FHIR resource type at all
        return {**observation_bp(id=id), "resourceType": "Observaton"}
    if kind == "missing_field":  # an Observation needs its code
        resource = observation_bp(id=id)
        del resource["code"]
        return resource
    if kind == "bad_date":
        return {**allergy(id=id), "recordedDate": "2024-13-45"}
    if kind == "not_object":
        return ["Observation", id]
    if kind == "unknown_type":  # a valid FHIR resource, of a type this record does not keep
        return {
            "resourceType": "Appointment",
            "id": id,
            "status": "booked",
            "participant": [{"actor": {"reference": SUBJECT}, "status": "accepted"}],
        }
    raise ValueError(f"no malformed kind {kind!r}")


def bundle(
    n: int, bad: int = 0, seed: int = 0, *, ids: bool = True, kind: str = "collection"
) -> dict:
    """A Bundle of ``n`` valid resources (ids ``r<seed>-<i>`` unless ``ids`` is False) and
    ``bad`` malformed entries (ids ``bad<seed>-<j>``, kinds in turn) at places the seed picks."""
    rng = random.Random(seed)
    resources: list[Any] = [_varied(rng, i, f"r{seed}-{i}" if ids else None) for i in range(n)]
    for j in range(bad):
        where = rng.randint(0, len(resources))
        resources.insert(
            where, malformed(MALFORMED_KINDS[j % len(MALFORMED_KINDS)], id=f"bad{seed}-{j}")
        )
    entries = []
    for resource in resources:
        entry: dict[str, Any] = {"resource": resource}
        if isinstance(resource, dict) and resource.get("id"):
            entry = {"fullUrl": f"{resource['resourceType']}/{resource['id']}", **entry}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def bad_entries(data: dict) -> list[int]:
    """The indexes of a bundle()'s malformed entries (ids starting with "bad", or not objects)."""
    out = []
    for index, entry in enumerate(data["entry"]):
        resource = entry["resource"]
        if not isinstance(resource, dict) or str(resource.get("id", "")).startswith("bad"):
            out.append(index)
    return out
