"""Forms of the thread pages: create, join, invite, change a role."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms

from apps.core.thread.policy import OWNER, policy_templates

EXPIRY_CHOICES = [
    ("3600", "1 hour"),
    ("86400", "1 day"),
    ("604800", "7 days"),
    ("2592000", "30 days"),
]


class ThreadCreateForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="Members see this name.")
    app = forms.ChoiceField(choices=(), initial="default", label="Kind of thread")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["app"].choices = [(name, name) for name in policy_templates()]


class JoinForm(forms.Form):
    link = forms.CharField(
        max_length=4096,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off", "spellcheck": "false"}),
        help_text="Paste the invite link you received (it starts with sereus:invite/).",
    )


class InviteForm(forms.Form):
    role = forms.ChoiceField(choices=())
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="86400", label="Valid for")

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r, r) for r in roles]

    def expiry(self) -> timedelta:
        return timedelta(seconds=int(self.cleaned_data["expires_in"]))


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=())

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r, r) for r in roles if r != OWNER]
