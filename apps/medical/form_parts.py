"""What the record's forms share: the code systems, field makers, FHIR value builders and
``RecordForm``, the base that builds a resource over the one it edits."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from django import forms

from apps.medical.display import concept

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"

SENSITIVE_HELP = (
    "Kept in a separate part of your record that only the providers you choose can read. "
    "Providers you did not choose never receive it."
)


def _date_input() -> forms.DateInput:
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


def _when_input() -> forms.DateTimeInput:
    return forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _iso_date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _iso_moment(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _date_of(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def _moment_of(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _coded(text: str, code: str = "", system: str = "", old: dict | None = None) -> dict:
    """A CodeableConcept for what was typed. Editing an entry without touching its name or
    code keeps the concept it had (with the codings an import brought)."""
    text, code = text.strip(), code.strip()
    if old and concept(old) == text and not code:
        return old
    made: dict[str, Any] = {"text": text}
    if code:
        coding = {"code": code, "display": text}
        made["coding"] = [{"system": system, **coding} if system else coding]
    return made


def _first_code(value: dict | None) -> str:
    for coding in (value or {}).get("coding") or []:
        if coding.get("code"):
            return str(coding["code"])
    return ""


def _status_concept(system: str, code: str) -> dict:
    return {"coding": [{"system": TERMINOLOGY + system, "code": code}]}


def _note(text: str, old: dict | None) -> list[dict] | None:
    """The note the form shows is the first; others an import brought stay."""
    rest = list((old or {}).get("note") or [])[1:]
    text = text.strip()
    notes = ([{"text": text}] if text else []) + rest
    return notes or None


def _text(
    label: str, *, required: bool = True, example: str = "", size: int = 200
) -> forms.CharField:
    help_text = f"e.g. {example}" if example else ""
    return forms.CharField(required=required, label=label, max_length=size, help_text=help_text)


def _pick(
    label: str, choices: list[tuple[str, str]], *, required: bool = True
) -> forms.ChoiceField:
    return forms.ChoiceField(required=required, label=label, choices=choices)


def _day(label: str, *, required: bool = False) -> forms.DateField:
    return forms.DateField(required=required, label=label, widget=_date_input())


def _number(label: str, **given: Any) -> forms.DecimalField:
    return forms.DecimalField(required=False, label=label, max_digits=12, decimal_places=4, **given)


SNOMED_CODE = "SNOMED CT code (optional)"
CRITICALITY_CHOICES = [("", "Not known"), ("low", "Low risk"), ("high", "High risk"),
                       ("unable-to-assess", "Unable to assess")]  # fmt: skip
ALLERGY_STATUS = [("active", "Active"), ("inactive", "Inactive"), ("resolved", "Resolved")]
CONDITION_STATUS = [("active", "Active"), ("recurrence", "Came back"),
                    ("remission", "In remission"), ("inactive", "Inactive"),
                    ("resolved", "Resolved")]  # fmt: skip
MEDICATION_STATUS = [("active", "Taking it"), ("completed", "Finished"), ("stopped", "Stopped"),
                     ("on-hold", "On hold"), ("intended", "Planned"),
                     ("not-taken", "Not taken")]  # fmt: skip
PROCEDURE_STATUS = [("completed", "Done"), ("in-progress", "In progress"),
                    ("preparation", "Planned"), ("stopped", "Stopped")]  # fmt: skip
GENDERS = [("", "Not said"), ("female", "Female"), ("male", "Male"), ("other", "Other"),
           ("unknown", "Unknown")]  # fmt: skip


class RecordForm(forms.Form):
    """What every record form shares: the sensitive choice (the patient only, when adding) and
    the resource built over the one it edits."""

    resource_type = ""
    sensitive = forms.BooleanField(required=False, label="Mark sensitive", help_text=SENSITIVE_HELP)
    note = forms.CharField(
        required=False, label="Note", max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )

    def __init__(self, *args: Any, may_mark_sensitive: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not may_mark_sensitive:
            del self.fields["sensitive"]
        # The note goes last, after the type's own fields.
        self.order_fields([*(n for n in self.fields if n not in ("note", "sensitive")), "note"])

    def fields_of(self, old: dict) -> dict[str, Any]:
        """The resource's fields this form sets (None: leave it out)."""
        raise NotImplementedError

    def resource(self, subject: dict, old: dict | None = None) -> dict:
        """The resource to write: ``old`` (when editing) with what the form sets."""
        made = dict(old or {})
        made["resourceType"] = self.resource_type
        for name, value in self.fields_of(old or {}).items():
            if value in (None, "", []):
                made.pop(name, None)
            else:
                made[name] = value
        made["note"] = _note(self.cleaned_data.get("note") or "", old)
        if made["note"] is None:
            made.pop("note")
        if self.subject_field:
            made.setdefault(self.subject_field, subject)
        return made

    subject_field = "subject"

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        notes = resource.get("note") or []
        return {"note": notes[0].get("text", "") if notes else ""}
