"""The International Patient Summary of a record (issue 16 §4, §6): a document Bundle the FHIR
library reads as R4B, its Composition first with the three required sections, every reference
in it resolving inside the document, "no information" entries where the record has nothing,
the same Bundle for the same moment, and the plain summary pages show read back from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from apps.medical import bundles, ips, services
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import templates_copied  # noqa: F401
from tests.medical import samples
from tests.medical.test_bundles import no_duties  # noqa: F401

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("templates_copied", "node", "no_duties"),
]

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def record():
    return services.record_create(name="Ada Lovelace", birth_date="1985-12-10", gender="female")


def _valid(bundle: dict) -> None:
    """The library reads the Bundle and every resource in it as FHIR R4B."""
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def _references(value) -> list[str]:
    if isinstance(value, dict):
        found = [value["reference"]] if isinstance(value.get("reference"), str) else []
        return found + [r for item in value.values() for r in _references(item)]
    if isinstance(value, list):
        return [r for item in value for r in _references(item)]
    return []


def _sections(bundle: dict) -> dict[str, list[dict]]:
    """LOINC code of each section -> the resources it cites."""
    by_url = {e["fullUrl"]: e["resource"] for e in bundle["entry"]}
    composition = bundle["entry"][0]["resource"]
    return {
        s["code"]["coding"][0]["code"]: [by_url[ref["reference"]] for ref in s["entry"]]
        for s in composition["section"]
    }


def test_the_ips_of_a_record_is_a_valid_document_with_its_allergies_medications_problems(record):
    data = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": samples.allergy(id="pen")},
            {"resource": samples.medication(id="met")},
            {"resource": samples.condition(id="dm2")},
            {"resource": samples.condition(id="old", display="Appendicitis") | {
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "resolved"}]}}},
            {"resource": samples.immunization(id="flu")},
            *({"resource": samples.observation_bp(120 + i, 80, id=f"bp{i}",
               when=f"2026-02-{i + 1:02d}T08:00:00Z")} for i in range(12)),
        ],
    }  # fmt: skip
    assert not bundles.bundle_import(record, data).refused

    document = ips.ips_bundle(record, now=NOW)
    _valid(document)
    assert document["type"] == "document"
    assert document["timestamp"] == "2026-03-02T09:30:00Z"
    composition = document["entry"][0]["resource"]
    assert composition["resourceType"] == "Composition"
    assert composition["type"]["coding"][0]["code"] == "60591-5"
    assert composition["subject"]["reference"] == document["entry"][1]["fullUrl"]
    assert document["entry"][1]["resource"]["resourceType"] == "Patient"

    sections = _sections(document)
    assert list(sections)[:3] == ["48765-2", "10160-0", "11450-4"]
    assert [r["id"] for r in sections["48765-2"]] == ["pen"]
    assert [r["id"] for r in sections["10160-0"]] == ["met"]
    assert [r["id"] for r in sections["11450-4"]] == ["dm2"]  # the resolved one is history
    assert [r["id"] for r in sections["11369-6"]] == ["flu"]
    assert [r["id"] for r in sections["30954-2"]] == [f"bp{i}" for i in range(11, 1, -1)]

    # Every reference in the document points at an entry of the document.
    urls = {e["fullUrl"] for e in document["entry"]}
    assert all(url.startswith("urn:uuid:") for url in urls)
    assert set(_references(document)) <= urls
    assert ips.ips_bundle(record, now=NOW) == document  # the same moment, the same document


def test_an_empty_record_says_no_information_as_the_ips_asks(record):
    document = ips.ips_bundle(record, now=NOW)
    _valid(document)
    sections = _sections(document)
    assert list(sections) == ["48765-2", "10160-0", "11450-4"]
    cited = [r for resources in sections.values() for r in resources]
    codes = [(r.get("code") or r.get("medicationCodeableConcept"))["coding"][0] for r in cited]
    assert [(c["system"], c["code"]) for c in codes] == [
        (ips.ABSENT, "no-allergy-info"),
        (ips.ABSENT, "no-medication-info"),
        (ips.ABSENT, "no-problem-info"),
    ]
    summary = ips.summary_of(document)
    assert (summary.allergies, summary.medications, summary.problems) == ([], [], [])
    assert summary.name == "Ada Lovelace"


def test_the_summary_in_plain_words_and_back_from_its_dict(record):
    bundles.bundle_import(record, {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": samples.allergy(id="pen")},
        {"resource": samples.medication(id="met")},
        {"resource": samples.condition(id="dm2")},
        {"resource": samples.hba1c(7.2, id="a1c")},
    ]})  # fmt: skip
    summary = ips.ips_summary(record, now=NOW)
    assert (summary.name, summary.birth_date, summary.gender) == (
        "Ada Lovelace",
        "1985-12-10",
        "female",
    )
    assert summary.made_at == "2026-03-02T09:30:00Z"
    assert [str(i) for i in summary.allergies] == ["Penicillin"]
    assert summary.allergies[0].detail == "high criticality; Hives"
    assert [str(i) for i in summary.medications] == ["Metformin hydrochloride 500 MG Oral Tablet"]
    assert summary.medications[0].detail == "500 mg twice a day with meals"
    assert [(str(i), i.detail) for i in summary.problems] == [
        ("Diabetes mellitus type 2", "since 2023-11-20")
    ]
    assert [str(i) for i in summary.results] == ["Hemoglobin A1c/Hemoglobin.total in Blood: 7.2 %"]
    assert ips.Summary.from_dict(json.loads(json.dumps(summary.as_dict()))) == summary


def test_the_sensitive_part_stays_out_of_the_summary_unless_asked_for(record):
    bundles.bundle_import(record, {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": samples.medication(id="met")},
    ]})  # fmt: skip
    private = samples.medication(id="lith", display="Lithium carbonate 300 MG")
    bundles.bundle_import(record, {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": private}]}, sensitive=True)  # fmt: skip

    shared = ips.ips_summary(record, now=NOW)
    assert [str(i) for i in shared.medications] == ["Metformin hydrochloride 500 MG Oral Tablet"]
    assert "Lithium" not in json.dumps(ips.ips_bundle(record, now=NOW))
    whole = ips.ips_bundle(record, now=NOW, sensitive=True)
    _valid(whole)
    assert sorted(str(i) for i in ips.summary_of(whole).medications) == [
        "Lithium carbonate 300 MG",
        "Metformin hydrochloride 500 MG Oral Tablet",
    ]
