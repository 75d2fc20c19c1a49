"""A grant as a FHIR Consent (issue 16 §1): the grant a provider joined with, read back from the
record, is a patient-privacy Consent the FHIR library reads as R4B, permitting the provider
(named by the grant's label) to read and to write exactly the types the patient chose, for
the grant's period; a revoked grant is an inactive Consent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.consent import Consent

from apps.medical import consent, selectors, services
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import templates_copied  # noqa: F401
from tests.medical.access_support import provider_joins
from tests.medical.test_bundles import no_duties  # noqa: F401

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("templates_copied", "node", "no_duties"),
]


def _actions(resource: dict) -> dict[str, list[str]]:
    """Action code -> the resource types the nested provision names."""
    return {
        p["action"][0]["coding"][0]["code"]: [c["code"] for c in p["class"]]
        for p in resource["provision"].get("provision", [])
    }


def test_a_providers_grant_is_a_valid_consent_naming_what_it_may_read_and_write(tmp_path):
    record = services.record_create(name="Ada Lovelace", birth_date="1985-12-10")
    provider = provider_joins(
        record, tmp_path, "Dr. Lee", read=["Observation", "Condition", "AllergyIntolerance"],
        write=["Observation", "Condition"],
    )  # fmt: skip
    grant = selectors.grant_of(record, provider.member)
    assert grant is not None

    made = consent.grant_consent(record, grant)
    Consent.model_validate(made)  # the library reads it as a FHIR R4B Consent
    assert made["status"] == "active"
    assert made["scope"]["coding"][0]["code"] == "patient-privacy"
    patient = selectors.entries(record, "Patient")[0]
    assert made["patient"] == {"reference": f"Patient/{patient.fhir_id}", "display": "Ada Lovelace"}
    assert made["provision"]["type"] == "permit"
    actor = made["provision"]["actor"][0]["reference"]
    assert actor["display"] == "Dr. Lee, Riverside Clinic"
    assert actor["identifier"]["value"] == provider.member
    assert _actions(made) == {
        "access": ["AllergyIntolerance", "Condition", "Observation"],  # the record's order
        "correct": ["Condition", "Observation"],
    }
    if grant.start is not None:
        assert made["provision"]["period"]["start"] == made["dateTime"]


def test_a_revoked_grant_with_a_period_and_nothing_to_write(node):  # noqa: F811
    record = services.record_create(name="Ada Lovelace")
    grant = selectors.GrantView(
        member="ab" * 32,
        name="Sam",
        role="caregiver",
        label="Sam, my brother",
        read=["MedicationStatement"],
        write=[],
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end=datetime(2026, 6, 30, 23, 59, 59, tzinfo=UTC),
        status="revoked",
        sensitive=False,
        pk="cd" * 16,
    )
    made = consent.grant_consent(record, grant)
    Consent.model_validate(made)
    assert made["id"] == "cd" * 16
    assert made["status"] == "inactive"
    assert made["provision"]["period"] == {
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-06-30T23:59:59Z",
    }
    assert _actions(made) == {"access": ["MedicationStatement"]}
