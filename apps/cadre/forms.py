"""Forms of the devices pages: add a device (which kind, what to call it) and join with a
device link. They check the shape; ``apps.cadre.link`` checks the rest and says why in words."""

from __future__ import annotations

from django import forms

from apps.cadre.models import LABEL

# A device link is a short CBOR document in base64url (a few hundred characters with its
# addresses); anything much longer is not one, and is refused before it is parsed.
LINK_MAX = 4000

KIND_CHOICES = (
    ("full", "Another device of mine: it holds my threads and writes as me"),
    ("mirror", "A mirror: an always-on box that keeps encrypted copies and can read nothing"),
)


class AddDeviceForm(forms.Form):
    kind = forms.ChoiceField(
        label="What are you adding?", choices=KIND_CHOICES, initial="full", widget=forms.RadioSelect
    )
    label = forms.CharField(
        max_length=LABEL,
        required=False,
        label="A name for it (optional)",
        help_text="Only you see it, on this list: for example “Phone” or “Home box”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


def link_check(text: str) -> str:
    """The link as pasted (spaces and line breaks a chat app adds are dropped), if it parses."""
    from apps.cadre.control import CadreError
    from apps.cadre.link import link_parse

    link = "".join(text.split())
    try:
        link_parse(link)
    except CadreError as exc:
        raise forms.ValidationError(exc.words) from exc
    return link


class JoinForm(forms.Form):
    link = forms.CharField(
        max_length=LINK_MAX,
        label="The device link",
        help_text="On your other device: Settings → Your devices → Add a device. Copy the link "
        "it shows and paste it here, or scan its QR code.",
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_link(self) -> str:
        return link_check(self.cleaned_data["link"])
