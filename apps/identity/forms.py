"""The achievements pages' forms. Choices come from the thread (its kinds, its members by name),
so a page offers only what the thread has; the services and the rules judge anyway, and their
refusals come back in words."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from django import forms

from apps.identity.models import (
    MAX_DESCRIPTION,
    MAX_EVIDENCE,
    MAX_FEAT,
    MAX_LABEL,
    MAX_NAME,
    MAX_NOTE,
    MAX_PLACE,
    MAX_TITLE,
)
from apps.messaging.forms import MultipleFileField

Choices = Sequence[tuple[str, str]]

VERDICTS = {"witnessed": "I witnessed it", "disputed": "I dispute it"}
WINNERS = {"defendant": "The defendant wins", "challenger": "The challenger wins"}
MODES = {
    "judges": "Judges I name (the one I challenge accepts them)",
    "poll": "A poll of the thread's members",
}
# The slug of a kind: what the rules accept (lower-case letters, digits and dashes).
SLUG_HELP = "Lower-case letters, digits and dashes, as in “first-aid”."


class ClaimForm(forms.Form):
    kind = forms.ChoiceField(label="Kind")
    title = forms.CharField(max_length=MAX_TITLE, label="What you achieved")
    description = forms.CharField(
        max_length=MAX_DESCRIPTION,
        required=False,
        label="Description",
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    event_date = forms.DateField(
        required=False, label="When", widget=forms.DateInput(attrs={"type": "date"})
    )
    place = forms.CharField(max_length=MAX_PLACE, required=False, label="Where")
    evidence = MultipleFileField(
        required=False,
        label="Evidence",
        help_text=f"Photos, videos or PDFs, up to {MAX_EVIDENCE} files. Every member can see them.",
    )

    def __init__(self, *args, kinds: Choices = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = list(kinds)
        self.fields["evidence"].widget.attrs["accept"] = "image/*,video/*,application/pdf"

    def clean_evidence(self) -> list:
        files = self.cleaned_data.get("evidence") or []
        if len(files) > MAX_EVIDENCE:
            raise forms.ValidationError(f"A claim carries at most {MAX_EVIDENCE} files.")
        return files

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        when: datetime.date | None = data.get("event_date")
        return {
            "kind": data["kind"],
            "title": data["title"],
            "description": data.get("description", ""),
            "event_date": when.isoformat() if when else "",
            "place": data.get("place", ""),
            "files": tuple(data.get("evidence") or ()),
        }


class AttestForm(forms.Form):
    verdict = forms.ChoiceField(choices=list(VERDICTS.items()), label="Your word")
    note = forms.CharField(max_length=MAX_NOTE, required=False, label="Note")


class RetractForm(forms.Form):
    reason = forms.CharField(max_length=MAX_NOTE, required=False, label="Why you take it back")


class ChallengeForm(forms.Form):
    """A challenge of a claim (``claim``), of a won challenge (``against``), or a duel with a
    member (``defendant``): the page sets the hidden target; a duel picks the member."""

    claim = forms.CharField(required=False, widget=forms.HiddenInput)
    against = forms.CharField(required=False, widget=forms.HiddenInput)
    defendant = forms.ChoiceField(required=False, label="Whom you challenge")
    feat = forms.CharField(
        max_length=MAX_FEAT,
        label="The feat",
        help_text="What must be shown, in a sentence.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    deadline = forms.DateField(
        required=False, label="By when", widget=forms.DateInput(attrs={"type": "date"})
    )
    mode = forms.ChoiceField(
        choices=list(MODES.items()),
        initial="judges",
        label="Who decides",
        widget=forms.RadioSelect,
    )
    judges = forms.MultipleChoiceField(
        required=False, label="Judges", widget=forms.CheckboxSelectMultiple
    )

    def __init__(
        self, *args, members: Choices = (), judges: Choices = (), duel: bool = False, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.duel = duel
        self.fields["defendant"].choices = [("", "Choose a member"), *members]
        self.fields["judges"].choices = list(judges)
        if not duel:
            del self.fields["defendant"]

    def clean(self) -> dict:
        data = super().clean()
        if self.duel and not data.get("defendant"):
            self.add_error("defendant", "Choose the member you challenge.")
        if data.get("mode") == "judges" and not data.get("judges"):
            self.add_error("judges", "Name at least one judge, or let a poll decide.")
        return data

    def service_arguments(self) -> dict:
        data = self.cleaned_data
        when: datetime.date | None = data.get("deadline")
        return {
            "feat": data["feat"],
            "mode": data["mode"],
            "deadline": when.isoformat() if when else "",
            "claim": data.get("claim") or None,
            "against": data.get("against") or None,
            "defendant": data.get("defendant") or None,
            "judges": tuple(data.get("judges") or ()) if data["mode"] == "judges" else (),
        }


class JudgeForm(forms.Form):
    winner = forms.ChoiceField(choices=list(WINNERS.items()), label="Your judgement")
    note = forms.CharField(max_length=MAX_NOTE, required=False, label="Note")


class SettingsForm(forms.Form):
    witnesses = forms.IntegerField(
        min_value=1,
        max_value=50,
        label="Witnesses needed",
        help_text="How many members must witness a claim for it to be verified.",
    )
    flag_after = forms.IntegerField(
        min_value=1,
        max_value=50,
        label="Flag a witness after",
        help_text="Retracted or overturned attestations; a flagged witness no longer counts.",
    )


class KindForm(forms.Form):
    label = forms.CharField(max_length=MAX_LABEL, label="New kind")
    slug = forms.SlugField(max_length=MAX_NAME, required=False, label="Short name")

    def clean(self) -> dict:
        data = super().clean()
        if not data.get("slug") and data.get("label"):
            from django.utils.text import slugify

            data["slug"] = slugify(data["label"])[:MAX_NAME]
            if not data["slug"]:
                self.add_error("slug", f"Give it a short name. {SLUG_HELP}")
        return data


class AuthorityForm(forms.Form):
    kind = forms.ChoiceField(label="For the kind")
    member = forms.ChoiceField(label="Trusted member")

    def __init__(self, *args, kinds: Choices = (), members: Choices = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = list(kinds)
        self.fields["member"].choices = list(members)
