"""The form for a result (an Observation): the common readings by their LOINC codes (blood
pressure as systolic and diastolic components), or anything else by name, value and unit."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from apps.medical.chart import BP_PANEL, DIASTOLIC, SYSTOLIC
from apps.medical.display import concept
from apps.medical.form_parts import (
    LOINC,
    TERMINOLOGY,
    UCUM,
    RecordForm,
    _coded,
    _first_code,
    _iso_moment,
    _moment_of,
    _number,
    _pick,
    _text,
    _when_input,
)

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
