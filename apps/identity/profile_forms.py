"""The profile page's forms: the fields (with a photo upload turned into a data: URL here, on
the server, re-encoded so no camera metadata such as a GPS position goes with it) and sharing.
Values are checked by ``profile``'s own checks, so the page and the API say the same words."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence

from django import forms
from django.core.files.uploadedfile import UploadedFile

from apps.identity import profile
from apps.identity.models import MAX_LABEL, MAX_TEXT
from apps.identity.profile import FREE_PREFIX, STANDARD, FieldView

MAX_UPLOAD = 15 * 1024 * 1024  # what a phone's camera makes; it is shrunk below
PHOTO_SIDE = 640  # px: a profile picture, not the original
NEW = "new"

_HELP = {
    "name": "What people call you.",
    "birth_date": "",
    "location": "A town or region is enough.",
    "contact": "An email address, a phone number: how to reach you.",
    "links": "Web addresses, one per line (at most 10).",
}


def photo_from_upload(upload: UploadedFile) -> str:
    """The uploaded picture as a JPEG data: URL of at most 290 KiB and 640 px a side."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if upload.size and upload.size > MAX_UPLOAD:
        raise profile.ProfileError("invalid", "That picture is over 15 MB: choose a smaller one.")
    data = upload.read(MAX_UPLOAD + 1)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            picture = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise profile.ProfileError(
            "invalid", "That file is not a picture this node can read: use a JPEG, PNG or WebP."
        ) from exc
    side = PHOTO_SIDE
    square = min(picture.size)
    picture = ImageOps.fit(picture, (square, square))  # a profile picture is square
    while True:
        copy = picture.copy()
        copy.thumbnail((side, side))
        out = io.BytesIO()
        copy.save(out, format="JPEG", quality=82, optimize=True)  # no EXIF is written
        if out.tell() <= profile.MAX_PHOTO_BYTES or side <= 80:
            return profile.photo_data_url(out.getvalue())
        side = side * 3 // 4


def slug_of(label: str, taken: Sequence[str]) -> str:
    """A free field's name from its label: x-<slug>, made unique among ``taken``."""
    slug = re.sub(r"[^a-z0-9]+", "-", label.casefold()).strip("-")[:30].strip("-") or "field"
    name, n = FREE_PREFIX + slug, 2
    while name in taken:
        name, n = f"{FREE_PREFIX}{slug}-{n}", n + 1
    return name


class FieldsForm(forms.Form):
    """Every standard field, each field of one's own (label and value), one new field, and the
    photo (upload or remove)."""

    def __init__(self, data=None, files=None, *, current: Sequence[FieldView] = ()) -> None:
        super().__init__(data, files)
        self.current = {f.name: f for f in current}
        for name, label in STANDARD.items():
            if name == "photo":
                continue
            widget: forms.Widget = forms.TextInput()
            if name in ("contact", "links"):
                widget = forms.Textarea(attrs={"rows": 3})
            if name == "birth_date":
                widget = forms.DateInput(attrs={"type": "date"})
            self.fields[name] = forms.CharField(
                label=label,
                required=False,
                max_length=MAX_TEXT,
                widget=widget,
                help_text=_HELP.get(name, ""),
                initial=self.current[name].value if name in self.current else "",
            )
        self.fields["photo"] = forms.FileField(
            label="Photo",
            required=False,
            help_text="A JPEG, PNG or WebP picture; it is made small and its camera details "
            "(such as where it was taken) are left out.",
            widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg,image/png,image/webp"}),
        )
        if "photo" in self.current:
            self.fields["photo_remove"] = forms.BooleanField(
                label="Remove my photo", required=False
            )
        for name, field in self.current.items():
            if field.standard:
                continue
            self.fields[f"label:{name}"] = forms.CharField(
                label="Label", max_length=MAX_LABEL, required=False, initial=field.label
            )
            self.fields[f"value:{name}"] = forms.CharField(
                label="Value",
                max_length=MAX_TEXT,
                required=False,
                initial=field.value,
                help_text="Empty it to delete this field.",
            )
        self.fields["label:new"] = forms.CharField(
            label="A field of your own: its label",
            max_length=MAX_LABEL,
            required=False,
            help_text="Like “Shoe size” or “Climbing grade”.",
        )
        self.fields["value:new"] = forms.CharField(
            label="Its value", max_length=MAX_TEXT, required=False
        )

    def standard_fields(self) -> list[forms.BoundField]:
        return [self[n] for n in STANDARD if n != "photo"]

    def own_fields(self) -> list[tuple[str, forms.BoundField, forms.BoundField]]:
        return [
            (f.label, self[f"label:{n}"], self[f"value:{n}"])
            for n, f in self.current.items()
            if not f.standard
        ]

    def new_fields(self) -> list[forms.BoundField]:
        return [self["label:new"], self["value:new"]]

    def clean(self) -> dict:
        cleaned = super().clean()
        values: dict[str, dict[str, str]] = {}
        for name in STANDARD:
            if name == "photo":
                continue
            values[name] = {"value": profile.value_clean(name, cleaned.get(name) or "")}
        upload = cleaned.get("photo")
        if upload:
            try:
                values["photo"] = {"value": photo_from_upload(upload)}
            except profile.ProfileError as exc:
                self.add_error("photo", exc.words)
        elif cleaned.get("photo_remove"):
            values["photo"] = {"value": ""}
        for name, field in self.current.items():
            if not field.standard:
                values[name] = {
                    "label": (cleaned.get(f"label:{name}") or "").strip() or field.label,
                    "value": (cleaned.get(f"value:{name}") or "").strip(),
                }
        new_label = (cleaned.get("label:new") or "").strip()
        new_value = (cleaned.get("value:new") or "").strip()
        if new_label or new_value:
            if not new_label:
                self.add_error("label:new", "Give your new field a label.")
            elif not new_value:
                self.add_error("value:new", "Give your new field a value.")
            else:
                name = slug_of(new_label, list(self.current))
                values[name] = {"label": new_label, "value": new_value}
        for name, given in values.items():
            value = given["value"]
            problem = profile.value_problem(name, value) if value else None
            if problem is not None:
                where = name if name in self.fields else f"value:{name}"
                self.add_error(where if where in self.fields else "value:new", problem)
        self.values = {
            name: given
            for name, given in values.items()
            if given["value"] or name in self.current  # an empty unknown field: nothing to do
        }
        return cleaned


class ShareForm(forms.Form):
    thread = forms.ChoiceField(label="Share with")
    fields_ = forms.MultipleChoiceField(
        label="Which fields", widget=forms.CheckboxSelectMultiple, required=True
    )

    def __init__(
        self, data=None, *, threads: Sequence[tuple[str, str]], fields: Mapping[str, str]
    ) -> None:
        super().__init__(data)
        self.fields["thread"].choices = list(threads)
        self.fields["fields_"].choices = list(fields.items())
        self.fields["fields_"].error_messages["required"] = "Choose at least one field to share."
