"""The forms of the record's sharing pages: share with a provider or a caregiver (what they may
read and write, for how long, how long the link lasts, whether they also join the sensitive
part) and change what someone may do. They check the shape of what was chosen; the services
judge the grant and say in words what is wrong."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms

from apps.core.thread.payloads import MAX_INVITE_LABEL
from apps.medical import fhir
from apps.medical.policy import CAREGIVER, PROVIDER

TYPE_CHOICES = [(t.name, t.plural.capitalize()) for t in fhir.TYPES.values()]
ALL = [t.name for t in fhir.TYPES.values()]
CLINICAL = ["Observation", "Condition"]  # what a provider adds most: results and problems

CUSTOM = "custom"
# Presets: (words, read, write). A preset fills both lists; "custom" takes the boxes as ticked.
PRESETS: dict[str, tuple[str, list[str], list[str]]] = {
    "read_all": ("Read everything, write nothing", ALL, []),
    "read_all_write_clinical": ("Read everything, add results and problems", ALL, CLINICAL),
    "read_all_write_all": ("Read everything, add and change everything", ALL, ALL),
    CUSTOM: ("Choose below", [], []),
}
PRESET_CHOICES = [(key, words) for key, (words, _, _) in PRESETS.items()]

LIFETIMES = {
    "1h": ("1 hour", timedelta(hours=1)),
    "1d": ("1 day", timedelta(days=1)),
    "3d": ("3 days", timedelta(days=3)),
    "7d": ("7 days", timedelta(days=7)),
}

ROLE_CHOICES = [
    (PROVIDER, "A provider (a doctor, a nurse, a clinic): reads and adds what you allow"),
    (CAREGIVER, "A caregiver (family, a friend who helps): reads only"),
]


def _date() -> forms.DateField:
    return forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )


class GrantFields(forms.Form):
    """What someone may read and write, and when."""

    label = forms.CharField(
        max_length=MAX_INVITE_LABEL,
        required=False,
        label="Who is it for?",
        help_text="For example “Dr. Lee, Riverside Clinic”: you see it on your access page.",
    )
    preset = forms.ChoiceField(
        choices=PRESET_CHOICES,
        initial="read_all_write_clinical",
        label="What they may do",
        widget=forms.RadioSelect,
    )
    read = forms.MultipleChoiceField(
        choices=TYPE_CHOICES,
        required=False,
        label="They read",
        widget=forms.CheckboxSelectMultiple,
    )
    write = forms.MultipleChoiceField(
        choices=TYPE_CHOICES,
        required=False,
        label="They add and change",
        help_text="Whatever they may add, they may also read.",
        widget=forms.CheckboxSelectMultiple,
    )
    start = _date()
    end = _date()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["start"].label = "From (optional)"
        self.fields["end"].label = "Until (optional)"
        self.fields["end"].help_text = "Leave both empty for access until you revoke it."

    def role(self) -> str:
        return PROVIDER

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        preset = data.get("preset") or CUSTOM
        if preset != CUSTOM:
            _, read, write = PRESETS[preset]
            data["read"], data["write"] = list(read), list(write)
        if self.role() == CAREGIVER:
            if preset == CUSTOM and data.get("write"):
                self.add_error("write", "A caregiver reads the record and adds nothing.")
            data["write"] = []
        if preset == CUSTOM and not data.get("read") and not data.get("write"):
            self.add_error("read", "Tick at least one kind of entry they may read.")
        start: date | None = data.get("start")
        end: date | None = data.get("end")
        if start and end and end < start:
            self.add_error("end", "The access must end on or after the day it starts.")
        return data


class ShareForm(GrantFields):
    """Share the record: the grant, who it is for, how long the link lasts."""

    role_choice = forms.ChoiceField(
        choices=ROLE_CHOICES, initial=PROVIDER, label="Share with", widget=forms.RadioSelect
    )
    lifetime = forms.ChoiceField(
        choices=[(key, words) for key, (words, _) in LIFETIMES.items()],
        initial="1d",
        label="The link works for",
        help_text="It works once: for the first node that joins with it.",
    )
    sensitive = forms.BooleanField(
        required=False,
        label="Also the sensitive part",
        help_text="Entries you mark sensitive are kept in a separate part of your record. "
        "Tick this only for someone you trust with them.",
    )

    field_order = ["role_choice", "label", "preset", "read", "write", "start", "end"]

    def role(self) -> str:
        return self.cleaned_data.get("role_choice") or PROVIDER

    def expires_in(self) -> timedelta:
        return LIFETIMES[self.cleaned_data["lifetime"]][1]


class GrantForm(GrantFields):
    """Change what a member may do; ``role`` is theirs (a caregiver adds nothing)."""

    def __init__(self, *args: Any, holder_role: str = PROVIDER, **kwargs: Any) -> None:
        self._role = holder_role
        super().__init__(*args, **kwargs)
        self.fields["label"].label = "Label"
        self.fields["label"].help_text = ""
        if holder_role == CAREGIVER:
            del self.fields["write"]
            self.fields["preset"].choices = [
                (k, w) for k, w in PRESET_CHOICES if k in ("read_all", CUSTOM)
            ]

    def role(self) -> str:
        return self._role

    @staticmethod
    def initial_of(grant: Any) -> dict[str, Any]:
        """The form's initial values from a GrantView."""
        read, write = list(grant.read), list(grant.write)
        preset = next(
            (
                key
                for key, (_, r, w) in PRESETS.items()
                if key != CUSTOM and set(r) == set(read) and set(w) == set(write)
            ),
            CUSTOM,
        )
        return {
            "label": grant.label,
            "preset": preset,
            "read": read,
            "write": write,
            "start": grant.start.date() if grant.start else None,
            # The grant's end is the first moment after its last day (services._ms).
            "end": (grant.end - timedelta(days=1)).date() if grant.end else None,
        }
