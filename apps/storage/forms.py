"""Forms of the storage pages. They check the shape; the services (``backup``, ``restore``,
``hold``, ``retention``) check the rest and refuse in words, shown next to the field."""

from __future__ import annotations

from django import forms

from apps.storage.models import LABEL

PATH_MAX = 4096  # the longest path Linux takes
QUOTA_MB_MAX = 64 << 20  # 64 TiB in MB: anything more is a typo
KEEP_MAX = 10_000


def _path_field(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        max_length=PATH_MAX,
        label=label,
        help_text=help_text,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "off"}
        ),
    )


def _absolute(value: str) -> str:
    value = value.strip()
    if "\x00" in value:
        raise forms.ValidationError("A folder's name cannot hold that character.")
    if not value.startswith("/"):
        raise forms.ValidationError(
            "Give the whole path of the folder on this node, starting with “/”, "
            "for example /home/alice/Documents."
        )
    return value


class BackupForm(forms.Form):
    path = _path_field(
        "Folder to back up",
        "The whole path of a folder on this node, for example /home/alice/Documents.",
    )
    label = forms.CharField(
        max_length=LABEL,
        required=False,
        label="A name for this backup (optional)",
        help_text="Shown in the list, for example “Photos before the trip”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean_path(self) -> str:
        return _absolute(self.cleaned_data["path"])


SCOPE_CHOICES = (("all", "The whole backup"), ("here", "Only this folder"))


class RestoreForm(forms.Form):
    target = _path_field(
        "Restore into",
        "An empty folder on this node (it is made if it does not exist). Nothing there is "
        "overwritten.",
    )
    scope = forms.ChoiceField(
        choices=SCOPE_CHOICES, initial="all", required=False, widget=forms.RadioSelect
    )
    path = forms.CharField(max_length=PATH_MAX, required=False, widget=forms.HiddenInput)

    def clean_target(self) -> str:
        return _absolute(self.cleaned_data["target"])


class InviteForm(forms.Form):
    quota_mb = forms.IntegerField(
        min_value=1,
        max_value=QUOTA_MB_MAX,
        initial=10_240,
        label="Room to ask for (MB)",
        help_text="How much of their disk your friend sets aside for your backups; 1024 MB is "
        "1 GB. They can change it later.",
    )
    label = forms.CharField(
        max_length=LABEL,
        required=False,
        label="Who is it for? (optional)",
        help_text="Only you see it, on this page: for example “Sam's home box”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


def _keep(label: str) -> forms.IntegerField:
    return forms.IntegerField(min_value=0, max_value=KEEP_MAX, label=label)


class RetentionForm(forms.Form):
    keep_last = _keep("Keep the last")
    keep_daily = _keep("One a day, for days")
    keep_weekly = _keep("One a week, for weeks")
    keep_monthly = _keep("One a month, for months")


class GrantForm(forms.Form):
    quota_mb = forms.IntegerField(
        min_value=0,
        max_value=QUOTA_MB_MAX,
        label="Room you give them (MB)",
        help_text="0 stops taking new shares from them; what you already hold stays.",
    )
