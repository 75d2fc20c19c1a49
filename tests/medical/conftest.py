"""Fixtures the medical tests share: this node (claimed, its thread databases allowed), the
patient's record on it, and a provider and a caregiver on nodes of their own in this process
who joined the record with the grant the patient chose (``access_support.provider_joins``: the
invite redeemed, this node's duty writing the grant). A test file may define its own."""

from __future__ import annotations

import pytest

from apps.core.models import Thread
from apps.medical import services
from apps.medical.policy import CAREGIVER
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.medical.access_support import Provider, provider_joins


@pytest.fixture
def record(node) -> Thread:  # noqa: F811 - the fixture
    """Ada's record, on this node: she is its patient."""
    return services.record_create(name="Ada Lovelace", birth_date="1985-12-10", gender="female")


@pytest.fixture
def provider(record: Thread, tmp_path) -> Provider:
    """Dr. Lee: reads everything, writes results and problems."""
    return provider_joins(record, tmp_path, "Dr. Lee", write=["Observation", "Condition"])


@pytest.fixture
def caregiver(record: Thread, tmp_path) -> Provider:
    """Cara, Ada's daughter: reads the record, writes nothing."""
    return provider_joins(record, tmp_path, "Cara", role=CAREGIVER, label="Cara, daughter")
