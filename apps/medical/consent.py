"""A grant as the FHIR Consent it stands for (issue 16 §1): what the patient allowed one member.

The record keeps a grant as a row its rules read (``models.Grant``); this gives it in the
standard's words, for export and for anyone who wants to check a grant with FHIR tools: a
patient-privacy Consent that permits the grantee (the actor, named by the grant's label), for
the grant's period, to read the listed resource types (action "access") and to write the
listed ones (action "correct"), each a nested provision whose classes are the types. A revoked
grant is an inactive Consent. Checked with the FHIR library (R4B) before it is handed out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.consent import Consent

from apps.core.models import Thread
from apps.medical import fhir, selectors

SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CATEGORY = "http://loinc.org"
ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
ROLE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
POLICY = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
MEMBER = "urn:sereus:member"  # the grantee's member key in the record (hex)


def _instant(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _ordered(types: list[str]) -> list[str]:
    """The types in the record's order (``fhir.TYPES``), whatever order the grant keeps."""
    order = {name: n for n, name in enumerate(fhir.TYPES)}
    return sorted(set(types), key=lambda t: (order.get(t, len(order)), t))


def _provision(action: str, words: str, types: list[str]) -> dict[str, Any]:
    return {
        "type": "permit",
        "action": [
            {"coding": [{"system": ACTION, "code": action, "display": action.title()}],
             "text": words}
        ],
        "class": [{"system": RESOURCE_TYPES, "code": t} for t in _ordered(types)],
    }  # fmt: skip


def _patient_ref(thread: Thread) -> dict[str, str]:
    found = selectors.entries(thread, "Patient")
    if not found:
        return {"display": "the patient"}
    return {
        "reference": f"Patient/{found[0].fhir_id}",
        "display": found[0].display or "the patient",
    }


def grant_consent(thread: Thread, grant: selectors.GrantView) -> dict[str, Any]:
    """The grant as a FHIR R4B Consent (JSON object), checked by the FHIR library."""
    patient = _patient_ref(thread)
    period = {
        k: v for k, v in (("start", _instant(grant.start)), ("end", _instant(grant.end))) if v
    }
    nested = []
    if grant.read:
        nested.append(_provision("access", "read", list(grant.read)))
    if grant.write:
        nested.append(_provision("correct", "write", list(grant.write)))
    provision: dict[str, Any] = {
        "type": "permit",
        "actor": [
            {
                "role": {
                    "coding": [
                        {"system": ROLE, "code": "PRCP", "display": "primary information recipient"}
                    ]
                },
                "reference": {
                    "identifier": {"system": MEMBER, "value": grant.member},
                    "display": grant.label or grant.name or "a member of the record",
                },
            }
        ],
    }
    if period:
        provision["period"] = period
    if nested:
        provision["provision"] = nested
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "status": "active" if grant.status == "active" else "inactive",
        "scope": {
            "coding": [{"system": SCOPE, "code": "patient-privacy", "display": "Privacy Consent"}]
        },
        "category": [
            {"coding": [{"system": CATEGORY, "code": "59284-0", "display": "Patient Consent"}]}
        ],
        "patient": patient,
        "performer": [patient],
        "policyRule": {"coding": [{"system": POLICY, "code": "OPTIN", "display": "opt-in"}]},
        "provision": provision,
    }
    if grant.pk:
        consent = {"resourceType": "Consent", "id": grant.pk, **consent}
    if grant.start:
        consent["dateTime"] = _instant(grant.start)
    # The library's check: a Consent it would not read is a bug here, not the patient's.
    checked = Consent.model_validate(consent)
    return json.loads(checked.model_dump_json(exclude_none=True))
