"""Forms of the node pages: claiming the node, the master-secret passphrase, the phrase reveal."""

from __future__ import annotations

import copy
from typing import Any

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.models import AbstractBaseUser

MIN_PASSPHRASE_LENGTH = 10


def _passphrase_check(value: str) -> None:
    if value and len(value) < MIN_PASSPHRASE_LENGTH:
        raise forms.ValidationError(
            f"A passphrase needs at least {MIN_PASSPHRASE_LENGTH} characters; "
            "several unrelated words make a good one."
        )


class ClaimForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        initial="owner",
        help_text="The name you log in to this node with. Nobody else sees it.",
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    passphrase = forms.CharField(
        required=False,
        strip=False,
        label="Passphrase for your master secret (optional)",
        help_text="Encrypts the secret on this machine's disk. You will need it to unlock "
        "the secret later; the recovery phrase still restores it if you forget.",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        validators=[_passphrase_check],
    )

    def clean_username(self) -> str:
        username: str = self.cleaned_data["username"]
        get_user_model().username_validator(username)
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            user = get_user_model()(username=data.get("username", ""))
            try:
                password_validation.validate_password(p1, user)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class DeviceClaimForm(ClaimForm):
    """Claiming a node that is another device of someone who has one: the account, and the
    device link from their other device (which brings their secret: no passphrase here; it can
    be set in Settings once the secret is here)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from apps.cadre.forms import JoinForm  # the core names no app at import time

        super().__init__(*args, **kwargs)
        del self.fields["passphrase"]
        self.fields["link"] = copy.deepcopy(JoinForm.base_fields["link"])

    def clean_link(self) -> str:
        from apps.cadre.forms import link_check

        return link_check(self.cleaned_data["link"])


class PassphraseForm(forms.Form):
    current = forms.CharField(
        required=False,
        strip=False,
        label="Current passphrase",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
    new = forms.CharField(
        required=False,
        strip=False,
        label="New passphrase",
        help_text="Leave empty to remove the passphrase.",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        validators=[_passphrase_check],
    )
    confirm = forms.CharField(
        required=False,
        strip=False,
        label="New passphrase again",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args: Any, sealed: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sealed = sealed
        if not sealed:
            del self.fields["current"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.sealed and not data.get("current"):
            self.add_error("current", "Enter the current passphrase.")
        if data.get("new", "") != data.get("confirm", ""):
            self.add_error("confirm", "The two passphrases differ.")
        if not self.sealed and not data.get("new"):
            self.add_error("new", "Enter a passphrase.")
        return data


class RevealPhraseForm(forms.Form):
    password = forms.CharField(
        strip=False,
        label="Your account password",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    passphrase = forms.CharField(
        required=False,
        strip=False,
        label="Master secret passphrase",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )

    def __init__(self, *args: Any, user: AbstractBaseUser, sealed: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if not sealed:
            del self.fields["passphrase"]

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password.")
        return password


class DisplayNameForm(forms.Form):
    """The name this person goes by in every thread (``naming.display_name_set``)."""

    name = forms.CharField(
        max_length=200,  # the service says what a name may be, in words
        label="Your name",
        help_text="The other members of your threads see it. A thread can have its own.",
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
