"""The record's add and edit forms, one per common resource type, in a person's words: each
checks what was typed, builds the FHIR resource the record keeps (codes from LOINC and the
FHIR code systems where the form names a known kind) and, when editing, keeps whatever the form
does not show (an imported coding, a note) as it was. The services validate the result with the
FHIR library and write it; their refusals come back as the form's error."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.medical.display import concept
from apps.medical.form_parts import (
    ALLERGY_STATUS,
    CONDITION_STATUS,
    CRITICALITY_CHOICES,
    GENDERS,
    MEDICATION_STATUS,
    PROCEDURE_STATUS,
    SENSITIVE_HELP,
    SNOMED_CODE,
    RecordForm,
    _coded,
    _date_of,
    _day,
    _first_code,
    _iso_date,
    _pick,
    _status_concept,
    _text,
)
from apps.medical.observation_form import ObservationForm


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
