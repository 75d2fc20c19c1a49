"""The record's add and edit forms, one per common resource type, in a person's words: each
checks what was typed, builds the FHIR resource the record keeps (codes from LOINC and the
FHIR code systems where the form names a known kind) and, when editing, keeps whatever the form
does not show (an imported coding, a note) as it was. The services validate the result with the
FHIR library and write it; their refusals come back as the form's error."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django import forms

from apps.medical.chart import BP_PANEL, DIASTOLIC, SYSTOLIC
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


class AllergyForm(RecordForm):
    resource_type = "AllergyIntolerance"
    subject_field = "patient"
    substance = _text("Substance", example="Penicillin")
    code = _text(SNOMED_CODE, required=False, size=40)
    reaction = _text("Reaction", required=False, example="Hives, swelling")
    criticality = _pick("Risk", CRITICALITY_CHOICES, required=False)
    status = _pick("Status", ALLERGY_STATUS)
    recorded = _day("Recorded on")

    def fields_of(self, old: dict) -> dict[str, Any]:
        data = self.cleaned_data
        reaction = data["reaction"].strip()
        old_reaction = (old.get("reaction") or [{}])[0]
        shown = ", ".join(concept(m) for m in old_reaction.get("manifestation") or [])
        if reaction and reaction != shown:
            reactions = [{"manifestation": [{"text": reaction}]}, *(old.get("reaction") or [])[1:]]
        else:
            reactions = old.get("reaction") if reaction else None
        return {
            "code": _coded(
                data["substance"], data["code"], "http://snomed.info/sct", old.get("code")
            ),
            "reaction": reactions,
            "criticality": data["criticality"] or None,
            "clinicalStatus": _status_concept("allergyintolerance-clinical", data["status"]),
            "recordedDate": _iso_date(data["recorded"]),
        }

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        reaction = (resource.get("reaction") or [{}])[0]
        return {
            **super().initial_of(resource),
            "substance": concept(resource.get("code")),
            "code": _first_code(resource.get("code")),
            "reaction": ", ".join(concept(m) for m in reaction.get("manifestation") or []),
            "criticality": resource.get("criticality", ""),
            "status": _first_code(resource.get("clinicalStatus")) or "active",
            "recorded": _date_of(resource.get("recordedDate")),
        }


class ConditionForm(RecordForm):
    resource_type = "Condition"
    problem = _text("Problem", example="Asthma")
    code = _text(SNOMED_CODE, required=False, size=40)
    onset = _day("Since")
    status = _pick("Status", CONDITION_STATUS)

    def fields_of(self, old: dict) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "code": _coded(
                data["problem"], data["code"], "http://snomed.info/sct", old.get("code")
            ),
            "clinicalStatus": _status_concept("condition-clinical", data["status"]),
            "onsetDateTime": _iso_date(data["onset"]),
        }

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        return {
            **super().initial_of(resource),
            "problem": concept(resource.get("code")),
            "code": _first_code(resource.get("code")),
            "onset": _date_of(resource.get("onsetDateTime")),
            "status": _first_code(resource.get("clinicalStatus")) or "active",
        }


class MedicationForm(RecordForm):
    resource_type = "MedicationStatement"
    medication = _text("Medication", example="Metformin 500 mg")
    dose = _text("Dose", required=False, example="One tablet twice a day")
    status = _pick("Status", MEDICATION_STATUS)
    start = _day("Started on")

    def fields_of(self, old: dict) -> dict[str, Any]:
        data = self.cleaned_data
        dose = data["dose"].strip()
        dosage = [{"text": dose}, *(old.get("dosage") or [])[1:]] if dose else None
        started = _iso_date(data["start"])
        period = dict(old.get("effectivePeriod") or {})
        if period:  # an imported period keeps its end; the form moves its start
            period["start"] = started
            period = {k: v for k, v in period.items() if v}
        return {
            "medicationCodeableConcept": _coded(
                data["medication"], old=old.get("medicationCodeableConcept")
            ),
            "status": data["status"],
            "dosage": dosage,
            "effectivePeriod": period or None,
            "effectiveDateTime": None if period else started,
        }

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        dosage = resource.get("dosage") or [{}]
        started = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get(
            "start"
        )
        return {
            **super().initial_of(resource),
            "medication": concept(resource.get("medicationCodeableConcept")),
            "dose": dosage[0].get("text", ""),
            "status": resource.get("status", "active"),
            "start": _date_of(started),
        }


class ImmunizationForm(RecordForm):
    resource_type = "Immunization"
    subject_field = "patient"
    vaccine = _text("Vaccine", example="Tetanus booster")
    given = _day("Given on", required=True)
    lot = _text("Batch number", required=False, size=60)

    def fields_of(self, old: dict) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "vaccineCode": _coded(data["vaccine"], old=old.get("vaccineCode")),
            "status": old.get("status") or "completed",
            "occurrenceDateTime": _iso_date(data["given"]),
            "lotNumber": data["lot"].strip() or None,
        }

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        return {
            **super().initial_of(resource),
            "vaccine": concept(resource.get("vaccineCode")),
            "given": _date_of(resource.get("occurrenceDateTime")),
            "lot": resource.get("lotNumber", ""),
        }


# The readings the form names: (words, LOINC code, UCUM unit, unit in words, category).
KINDS: dict[str, tuple[str, str, str, str, str]] = {
    "bp": ("Blood pressure", BP_PANEL, "mm[Hg]", "mmHg", "vital-signs"),
    "heart": ("Heart rate", "8867-4", "/min", "beats/minute", "vital-signs"),
    "weight": ("Body weight", "29463-7", "kg", "kg", "vital-signs"),
    "temperature": ("Body temperature", "8310-5", "Cel", "°C", "vital-signs"),
    "glucose": ("Blood glucose", "2339-0", "mg/dL", "mg/dL", "laboratory"),
}
KIND_OF_CODE = {code: kind for kind, (_w, code, *_rest) in KINDS.items()}


def _quantity(value: Decimal, unit: str, words: str) -> dict:
    made: dict[str, Any] = {"value": float(value), "unit": words or unit}
    if unit:
        made.update(system=UCUM, code=unit)
    return made


def _category(code: str) -> list[dict]:
    words = {"vital-signs": "Vital Signs", "laboratory": "Laboratory"}[code]
    return [{"coding": [{"system": TERMINOLOGY + "observation-category", "code": code,
                         "display": words}]}]  # fmt: skip


class ObservationForm(RecordForm):
    resource_type = "Observation"
    kind = _pick(
        "What was measured", [*((k, v[0]) for k, v in KINDS.items()), ("other", "Something else")]
    )
    systolic = _number("Systolic (upper, mmHg)", min_value=0, help_text="For blood pressure")
    diastolic = _number("Diastolic (lower, mmHg)", min_value=0, help_text="For blood pressure")
    value = _number("Value", help_text="For anything but blood pressure, in the usual unit")
    name = _text("Name (for something else)", required=False, example="Cholesterol")
    unit = _text("Unit (for something else)", required=False, example="mmol/L", size=40)
    code = _text("LOINC code (optional, for something else)", required=False, size=40)
    taken = forms.DateTimeField(
        label="Taken at", widget=_when_input(), input_formats=["%Y-%m-%dT%H:%M"]
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if kind == "bp":
            if data.get("systolic") is None or data.get("diastolic") is None:
                raise forms.ValidationError("Please give both blood pressure numbers.")
        elif data.get("value") is None:
            raise forms.ValidationError("Please give the value that was measured.")
        if kind == "other" and not (data.get("name") or "").strip():
            raise forms.ValidationError("Please say what was measured.")
        return data

    def fields_of(self, old: dict) -> dict[str, Any]:
        data = self.cleaned_data
        kind = data["kind"]
        when = _iso_moment(data["taken"])
        if kind == "other":
            name, unit = data["name"].strip(), data["unit"].strip()
            return {
                "status": old.get("status") or "final",
                "code": _coded(name, data["code"], LOINC, old.get("code")),
                "effectiveDateTime": when,
                "valueQuantity": _quantity(data["value"], "", unit) if unit else
                {"value": float(data["value"])},
                "component": None,
            }  # fmt: skip
        words, code, unit, unit_words, category = KINDS[kind]
        made: dict[str, Any] = {
            "status": old.get("status") or "final",
            "category": old.get("category") or _category(category),
            "code": {"coding": [{"system": LOINC, "code": code, "display": words}], "text": words},
            "effectiveDateTime": when,
        }
        if kind == "bp":
            made["valueQuantity"] = None
            made["component"] = [
                {"code": {"coding": [{"system": LOINC, "code": part, "display": label}],
                          "text": label},
                 "valueQuantity": _quantity(data[field], unit, unit_words)}
                for part, label, field in ((SYSTOLIC, "Systolic blood pressure", "systolic"),
                                           (DIASTOLIC, "Diastolic blood pressure", "diastolic"))
            ]  # fmt: skip
        else:
            made["valueQuantity"] = _quantity(data["value"], unit, unit_words)
            made["component"] = None
        return made

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        code = _first_code(resource.get("code"))
        kind = KIND_OF_CODE.get(code, "other")
        parts = {
            _first_code(p.get("code")): (p.get("valueQuantity") or {}).get("value")
            for p in resource.get("component") or []
        }
        quantity = resource.get("valueQuantity") or {}
        return {
            **super().initial_of(resource),
            "kind": kind,
            "name": concept(resource.get("code")) if kind == "other" else "",
            "code": code if kind == "other" else "",
            "value": quantity.get("value"),
            "unit": quantity.get("unit", "") if kind == "other" else "",
            "systolic": parts.get(SYSTOLIC),
            "diastolic": parts.get(DIASTOLIC),
            "taken": _moment_of(resource.get("effectiveDateTime")),
        }


class ProcedureForm(RecordForm):
    resource_type = "Procedure"
    procedure = _text("Procedure", example="Appendectomy")
    code = _text(SNOMED_CODE, required=False, size=40)
    done = _day("Done on")
    status = _pick("Status", PROCEDURE_STATUS)

    def fields_of(self, old: dict) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "code": _coded(
                data["procedure"], data["code"], "http://snomed.info/sct", old.get("code")
            ),
            "status": data["status"],
            "performedDateTime": _iso_date(data["done"]),
        }

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        return {
            **super().initial_of(resource),
            "procedure": concept(resource.get("code")),
            "code": _first_code(resource.get("code")),
            "done": _date_of(resource.get("performedDateTime")),
            "status": resource.get("status", "completed"),
        }


ENCOUNTER_CLASSES = {
    "AMB": "Clinic visit",
    "VR": "Video or phone call",
    "HH": "Home visit",
    "EMER": "Emergency",
    "IMP": "Hospital stay",
}


class EncounterForm(RecordForm):
    resource_type = "Encounter"
    visit = _pick("Kind of visit", list(ENCOUNTER_CLASSES.items()))
    reason = _text("Reason", required=False, example="Yearly check-up")
    start = _day("On", required=True)
    end = _day("Until (a stay)")
    where = _text("Where", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            raise forms.ValidationError("A visit cannot end before it starts.")
        return data

    def fields_of(self, old: dict) -> dict[str, Any]:
        data = self.cleaned_data
        visit = data["visit"]
        period = {"start": _iso_date(data["start"]), "end": _iso_date(data["end"])}
        reason = data["reason"].strip()
        old_reason = (old.get("reasonCode") or [None])[0]
        where = data["where"].strip()
        return {
            "status": old.get("status") or "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": visit,
                      "display": ENCOUNTER_CLASSES[visit]},
            "period": {k: v for k, v in period.items() if v},
            "reasonCode": [_coded(reason, old=old_reason)] if reason else None,
            "location": [{"location": {"display": where}}] if where else None,
        }  # fmt: skip

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        period = resource.get("period") or {}
        places = resource.get("location") or [{}]
        return {
            **super().initial_of(resource),
            "visit": (resource.get("class") or {}).get("code", "AMB"),
            "reason": concept((resource.get("reasonCode") or [None])[0]),
            "start": _date_of(period.get("start")),
            "end": _date_of(period.get("end")),
            "where": (places[0].get("location") or {}).get("display", ""),
        }


class PatientForm(RecordForm):
    resource_type = "Patient"
    subject_field = ""
    name = _text("Name")
    birth_date = _day("Birth date")
    gender = _pick("Gender", GENDERS, required=False)

    def fields_of(self, old: dict) -> dict[str, Any]:
        data = self.cleaned_data
        name = data["name"].strip()
        names = old.get("name") or []
        if not names or (names[0].get("text") or "") != name:
            names = [{"text": name}, *names[1:]]
        return {
            "name": names,
            "birthDate": _iso_date(data["birth_date"]),
            "gender": data["gender"] or None,
        }

    @classmethod
    def initial_of(cls, resource: dict) -> dict[str, Any]:
        from apps.medical.display import _human_name

        return {
            **super().initial_of(resource),
            "name": _human_name(resource),
            "birth_date": _date_of(resource.get("birthDate")),
            "gender": resource.get("gender", ""),
        }


class DocumentForm(forms.Form):
    """A scan or a PDF: the file travels as a blob, the DocumentReference names it."""

    file = forms.FileField(label="File", help_text="A scan, a photo or a PDF")
    title = _text("Title", example="Discharge letter")
    date = _day("Date of the document")
    sensitive = forms.BooleanField(required=False, label="Mark sensitive", help_text=SENSITIVE_HELP)

    def __init__(self, *args: Any, may_mark_sensitive: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not may_mark_sensitive:
            del self.fields["sensitive"]


class RecordCreateForm(forms.Form):
    """ "Start my record": the patient's own details, the record's first entry."""

    name = _text("Your name")
    birth_date = _day("Birth date")
    gender = PatientForm.base_fields["gender"]


# Which form adds and edits each kind of entry (page slug -> form); reports come by import.
FORMS: dict[str, type[RecordForm]] = {
    "patient": PatientForm,
    "allergies": AllergyForm,
    "conditions": ConditionForm,
    "medications": MedicationForm,
    "immunizations": ImmunizationForm,
    "observations": ObservationForm,
    "procedures": ProcedureForm,
    "encounters": EncounterForm,
}
