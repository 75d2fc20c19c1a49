"""What every writer of a medical record shares: one op per transaction with the replica's
refusal in words, who may do what before writing, and the FHIR check as an error in words."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, TypeVar

from apps.core.models import Thread
from apps.core.thread.policy import OWNER
from apps.core.threads.app_kit import app_write
from apps.core.threads.services import ThreadServiceError
from apps.medical import fhir
from apps.medical.policy import RULES_APP, SHAPE

T = TypeVar("T")
MAX_NAME = 200  # a record's name (the patient's)
NOT_ENABLED = "This thread is not a medical record."

# Set while this node creates a sensitive part: its thread gets no patient row of its own.
creating_part: contextvars.ContextVar[bool] = contextvars.ContextVar("part", default=False)


def _plain(reason: str) -> str:
    """A refusal of the rules as the page and API say it."""
    reason = reason.split(": ", 1)[-1] if reason.startswith("medical_record_") else reason
    return reason[:1].upper() + reason[1:] + ("" if reason.endswith(".") else ".")


def record_write(thread: Thread, action: Callable[[], T]) -> T:
    return app_write(thread, action, app=RULES_APP, not_enabled=NOT_ENABLED, plain=_plain)


def patient_only(thread: Thread, what: str) -> None:
    if thread.role != OWNER:
        raise ThreadServiceError("forbidden", f"Only the patient can {what}.")


def record_only(thread: Thread) -> Thread:
    if thread.app != SHAPE:
        raise ThreadServiceError("not_enabled", NOT_ENABLED)
    return thread


def member_of(thread: Thread) -> bytes:
    return bytes.fromhex(thread.member_id)


def fhir_check(resource_type: str, data: Any) -> fhir.Checked:
    try:
        return fhir.resource_check(resource_type, data)
    except fhir.FhirInvalid as exc:
        raise ThreadServiceError("invalid", str(exc)) from exc
