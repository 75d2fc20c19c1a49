"""The record's foundation on one node: creating a record gives it its rules and patient row,
resources are checked and kept with their columns, and the patient's own writes go through the
same rules every replica runs."""

from __future__ import annotations

import pytest

from apps.core.threads import services as threads
from apps.core.threads.services import ThreadServiceError
from apps.medical import selectors, services
from apps.medical.policy import SHAPE
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.medical import samples

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_record_starts_with_its_patient(node):  # noqa: F811
    record = services.record_create(name="Alice Martin", birth_date="1980-04-02", gender="female")
    patient = selectors.entries(record, "Patient")
    assert [p.display for p in patient] == ["Alice Martin"]
    assert patient[0].date == "1980-04-02"
    assert patient[0].resource["gender"] == "female"


def test_a_thread_made_through_the_threads_service_is_a_record(node):  # noqa: F811
    thread = threads.thread_create(name="Bob Stone", app=SHAPE)
    assert selectors.entries(thread, "Patient")[0].display == "Bob Stone"


def test_resources_are_kept_with_their_columns_and_history(node):  # noqa: F811
    record = services.record_create(name="Alice Martin")
    made = services.resource_write(record, "Observation", samples.observation_bp(120, 80))
    assert made.value == 120.0
    assert made.unit == "mmHg"
    assert made.fhir_id == made.pk
    changed = services.resource_write(
        record, "Observation", samples.observation_bp(135, 85), fhir_id=made.fhir_id
    )
    assert changed.value == 135.0
    assert changed.pk == made.pk
    versions = selectors.provenance(record, "Observation", made.fhir_id)
    assert [v.action for v in versions] == ["insert", "update"]
    assert {v.name for v in versions} == {"you"}


def test_invalid_fhir_is_refused_in_words_and_nothing_is_written(node):  # noqa: F811
    record = services.record_create(name="Alice Martin")
    with pytest.raises(ThreadServiceError) as refused:
        services.resource_write(record, "Condition", {"resourceType": "Condition"})
    assert "not valid FHIR" in str(refused.value)
    assert "subject" in str(refused.value)
    assert selectors.entries(record, "Condition") == []


def test_a_sensitive_entry_lives_in_the_sensitive_part(node):  # noqa: F811
    record = services.record_create(name="Alice Martin")
    entry = services.resource_write(record, "Condition", samples.condition(), sensitive=True)
    part = selectors.sensitive_of(record)
    assert part is not None
    assert entry.thread_id == part.id
    assert entry.sensitive
    assert selectors.main_of(part).id == record.id
    assert [e.fhir_id for e in selectors.entries(record, "Condition")] == [entry.fhir_id]
    assert selectors.entries(record, "Patient", own_only=True)
    assert selectors.entries(part, "Patient", own_only=True) == []
    assert selectors.records() == [record]
