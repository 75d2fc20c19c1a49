"""Forms of the thread pages: create, join, invite, change a role."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms

from apps.core.thread.payloads import MAX_INVITE_LABEL, MAX_INVITE_USES
from apps.core.thread.policy import OWNER, policy_templates
from apps.core.threads.invite_words import role_words

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


ONE, SOME, ANYONE = "one", "some", "anyone"
WHO_CHOICES = [
    (ONE, "One person"),
    (SOME, "Up to a number of people"),
    (ANYONE, "Anyone with the link"),
]


class InviteForm(forms.Form):
    # First: with a name on each, the open invites are told apart (and the right one revoked).
    label = forms.CharField(
        max_length=MAX_INVITE_LABEL,
        required=False,
        label="Who is it for?",
        help_text="For example “Sam” or “Book club”, so you can tell your invites apart. "
        "The thread's members see it; it is not in the link.",
    )
    role = forms.ChoiceField(choices=())
    who = forms.ChoiceField(
        choices=WHO_CHOICES,
        initial=ONE,
        required=False,  # left out: one person
        widget=forms.RadioSelect,
        label="How many people may use this link",
    )
    up_to = forms.IntegerField(
        min_value=2,
        max_value=MAX_INVITE_USES,
        required=False,
        label="Up to how many people",
        help_text="For a link for a number of people.",
    )
    expires_in = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="86400", label="Valid for")

    def __init__(
        self,
        *args: Any,
        roles: list[str],
        open_roles: list[str] | None = None,
        role: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``roles``: those this member may invite at; ``role``: the one offered first (the
        thread's ordinary member role, never admin by default)."""
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r, role_words(r).capitalize()) for r in roles]
        self.fields["role"].initial = role
        if open_roles is not None:
            self.fields["who"].help_text = (
                f"A link for more than one person can make someone {' or '.join(open_roles)}."
                if open_roles
                else "In this thread, every link is for one person."
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        data["who"] = data.get("who") or ONE
        if data["who"] != SOME:
            self._errors.pop("up_to", None)  # a number left there does not matter
            data["up_to"] = None
        elif data.get("up_to") is None and "up_to" not in self._errors:
            self.add_error("up_to", "Say how many people may use the link (2 or more).")
        return data

    def uses(self) -> int | None:
        """How many redemptions the invite admits; None: no cap."""
        who = self.cleaned_data["who"]
        return 1 if who == ONE else None if who == ANYONE else self.cleaned_data["up_to"]

    def expiry(self) -> timedelta:
        return timedelta(seconds=int(self.cleaned_data["expires_in"]))


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=())

    def __init__(self, *args: Any, roles: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(r, r) for r in roles if r != OWNER]
