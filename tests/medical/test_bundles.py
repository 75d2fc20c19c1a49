"""Importing and exporting FHIR Bundles on this node's record (issue 16 §6): a 200-resource
Bundle with malformed entries stores the valid ones and reports each refused one with its place
and reason; a file that is not a Bundle is refused whole, in words, writing nothing; export
round-trips to an equal Bundle (the same entries) and is itself valid FHIR R4B; entries
without ids get ids and keep their references; sensitive entries go back to the sensitive
part."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fhir.resources.R4B.bundle import Bundle

from apps.core.threads.signals import ops_written
from apps.medical import bundles, duties, ips, selectors, services
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import templates_copied  # noqa: F401
from tests.medical import samples

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("templates_copied", "node", "no_duties"),
]


@pytest.fixture
def no_duties() -> Iterator[None]:
    """The record's duties (work a node does when ops arrive) run on a worker thread outside
    the test's database; what is tested here is this node's own writes."""
    ops_written.disconnect(dispatch_uid="medical-duties")
    yield
    ops_written.connect(duties.on_ops_written, dispatch_uid="medical-duties")


@pytest.fixture
def record():
    return services.record_create(name="Ada Lovelace", birth_date="1985-12-10", gender="female")


def _entries_set(bundle: dict) -> set[str]:
    """A Bundle's resources as a set of canonical texts (order does not matter)."""
    return {json.dumps(e["resource"], sort_keys=True) for e in bundle["entry"]}


def test_a_bundle_of_200_with_15_malformed_stores_the_valid_and_says_why_for_each_refused(record):
    data = samples.bundle(200, bad=15, seed=3)
    bad = samples.bad_entries(data)
    report = bundles.bundle_import(record, json.dumps(data).encode())

    assert report.total == 215
    assert [o.index for o in report.refused] == bad
    assert len(report.imported) == 200
    assert all(o.ok for o in report.imported)
    reasons = {}
    for outcome in report.refused:
        resource = data["entry"][outcome.index]["resource"]
        reasons[resource["id"] if isinstance(resource, dict) else "list"] = outcome.reason
    for outcome in report.refused:
        assert not outcome.ok
        assert outcome.reason
        assert "Traceback" not in outcome.reason
    by_kind = {samples.MALFORMED_KINDS[int(k.rpartition("-")[2]) % 5]: v
               for k, v in reasons.items() if k != "list"}  # fmt: skip
    assert by_kind["wrong_type"] == "This record does not keep Observaton."
    assert "code" in by_kind["missing_field"]
    assert "recordedDate" in by_kind["bad_date"]
    assert by_kind["unknown_type"] == "This record does not keep Appointment."
    assert "no resource" in reasons["list"]

    stored = sum(len(selectors.entries(record, t)) for t in ("Observation", "Condition",
             "MedicationStatement", "Immunization", "Procedure"))  # fmt: skip
    assert stored == 200
    one = data["entry"][0]["resource"]
    entry = selectors.entry_get(record, one["resourceType"], one["id"])
    assert entry is not None
    assert entry.resource == one


@pytest.mark.parametrize("ids", [True, False], ids=["with ids", "without ids"])
def test_importing_the_same_bundle_again_changes_nothing(record, ids):
    data = samples.bundle(12, seed=4, ids=ids)
    first = bundles.bundle_import(record, data)
    again = bundles.bundle_import(record, data)
    assert {o.action for o in first.imported} == {"added"}
    assert {o.action for o in again.imported} == {"unchanged"}
    assert len(selectors.entries(record, "Observation")) == sum(
        1 for e in data["entry"] if e["resource"]["resourceType"] == "Observation"
    )


def test_export_round_trips_to_an_equal_bundle_and_is_valid_fhir(record):
    patient = selectors.entries(record, "Patient")[0]
    data = samples.bundle(30, seed=5)
    data["entry"] += [{"resource": r} for r in samples.every_type(prefix="t")[1:]]
    report = bundles.bundle_import(record, data)
    assert not report.refused

    exported = bundles.bundle_export(record)
    Bundle.model_validate(exported)  # the library reads it as a FHIR R4B Bundle
    assert exported["type"] == "collection"
    expected = _entries_set(data) | {json.dumps(bundles.resource_json(patient), sort_keys=True)}
    assert _entries_set(exported) == expected

    # ...and importing the export into another record gives the same export again, but for
    # the patient's details: the file's are written as that record's own patient.
    other = services.record_create(name="Copy")
    bundles.bundle_import(other, json.dumps(exported))
    again = bundles.bundle_export(other)
    mine = selectors.entries(other, "Patient")
    assert [p.display for p in mine] == ["Ada Lovelace"]
    for entry in again["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"]["id"] = patient.fhir_id
    assert _entries_set(again) == _entries_set(exported)


def test_the_bundles_patient_is_the_records_and_references_to_it_follow(record):
    mine = selectors.entries(record, "Patient")[0].fhir_id
    data = samples.bundle(2, seed=8)
    data["entry"][:0] = [
        {"fullUrl": "Patient/me", "resource": samples.patient(id="me", name="Ada King")},
        {"resource": samples.patient(id="other", name="Someone Else")},
    ]
    report = bundles.bundle_import(record, data)
    assert [o.index for o in report.imported] == [0, 2, 3]
    assert report.refused[0].reason.startswith("A record is about one patient; entry 1")
    patients = selectors.entries(record, "Patient")
    assert [(p.fhir_id, p.display) for p in patients] == [(mine, "Ada King")]
    first = data["entry"][2]["resource"]
    stored = selectors.entry_get(record, first["resourceType"], first["id"])
    assert stored is not None
    assert stored.resource["subject"] == {"reference": f"Patient/{mine}"}


def test_entries_without_ids_get_ids_and_their_references_follow(record):
    obs = samples.hba1c()
    report_resource = samples.report(results=["urn:uuid:9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"])
    data = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d", "resource": obs,
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": report_resource, "request": {"method": "POST", "url": "DiagnosticReport"}},
        ],
    }  # fmt: skip
    report = bundles.bundle_import(record, data)
    assert not report.refused
    assert len(report.imported) == 2
    assert report.imported[0].fhir_id == "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
    stored = selectors.entry_get(record, "DiagnosticReport", report.imported[1].fhir_id)
    assert stored is not None
    assert stored.resource["result"] == [
        {"reference": "Observation/9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"}
    ]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe not text", "not text"),
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not an object"),
        (json.dumps(samples.allergy()).encode(), "an AllergyIntolerance, not a Bundle"),
        (json.dumps({"resourceType": "Bundle", "type": "history"}).encode(), "cannot be imported"),
        (
            json.dumps({"resourceType": "Bundle", "type": "batch", "entry": {}}).encode(),
            "not a list",
        ),
        (b'{"entry": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    ],
)
def test_a_file_that_is_not_a_bundle_is_refused_in_words_and_writes_nothing(record, data, words):
    with pytest.raises(bundles.BundleInvalid) as refused:
        bundles.bundle_import(record, data)
    assert words in str(refused.value)
    assert selectors.entries(record, "AllergyIntolerance") == []


def test_a_file_over_the_limit_is_refused_saying_the_limit(record, monkeypatch):
    monkeypatch.setattr(bundles, "MAX_BUNDLE", 1024)
    with pytest.raises(bundles.BundleInvalid, match="larger than 0 MiB, the most a Bundle may be"):
        bundles.bundle_import(record, json.dumps(samples.bundle(20)).encode())


def test_duplicates_in_one_bundle_deletes_and_bad_ids_are_reported(record):
    data = samples.bundle(2, seed=6)
    data["entry"].append(dict(data["entry"][0]))
    data["entry"].append({"request": {"method": "DELETE", "url": "Observation/x"}})
    data["entry"].append({"resource": samples.allergy() | {"id": "not an id!"}})
    data["entry"].append({"resource": samples.allergy() | {"id": 5}})
    report = bundles.bundle_import(record, data)
    assert len(report.imported) == 2
    assert [(o.index, o.reason) for o in report.refused] == [
        (2, "Entry 1 has the same id."),
        (3, "Deleting through a Bundle is not taken: delete the entry in the record."),
        (4, bundles.ID_WORDS),
        (5, bundles.ID_WORDS),
    ]
    assert selectors.entries(record, "AllergyIntolerance") == []


def test_sensitive_entries_go_to_the_sensitive_part_and_come_back_marked(record):
    report = bundles.bundle_import(record, samples.bundle(3, seed=7), sensitive=True)
    assert len(report.imported) == 3
    part = selectors.sensitive_of(record)
    assert part is not None
    exported = bundles.bundle_export(record)
    marked = [e for e in exported["entry"] if e.get("extension")]
    assert len(marked) == 3
    assert all(e["extension"][0]["url"] == bundles.SENSITIVE_EXTENSION for e in marked)

    other = services.record_create(name="Copy")
    bundles.bundle_import(other, exported)
    moved = [e for t in ("Observation", "Condition", "MedicationStatement", "Immunization",
             "Procedure") for e in selectors.entries(other, t)]  # fmt: skip
    assert [e.sensitive for e in moved] == [True, True, True]


def test_a_patient_summary_imports_its_entries_not_its_table_of_contents_or_empty_sections(record):
    bundles.bundle_import(record, {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": samples.allergy(id="pen")}, {"resource": samples.condition(id="dm2")},
    ]})  # fmt: skip
    summary = ips.ips_bundle(record)  # no medications: a "no information" entry
    other = services.record_create(name="Copy")
    report = bundles.bundle_import(other, summary)
    assert [o.resource_type for o in report.imported] == ["Patient", "AllergyIntolerance",
                                                          "Condition"]  # fmt: skip
    assert [(o.resource_type, o.reason) for o in report.refused] == [
        ("Composition", bundles.DOCUMENT_WORDS),
        ("MedicationStatement", bundles.NOTHING_WORDS),
    ]
    assert selectors.entries(other, "MedicationStatement") == []
    (allergy,) = selectors.entries(other, "AllergyIntolerance")
    mine = selectors.entries(other, "Patient")[0].fhir_id
    assert allergy.resource["patient"] == {"reference": f"Patient/{mine}"}
