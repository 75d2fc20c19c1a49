"""The new-poll form, and reading a ballot from the poll page's form. The thread's roles and
members are the form's choices: the page offers only what the thread has; the services and the
rules judge anyway."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django import forms

from apps.voting.models import MAX_DESCRIPTION, MAX_QUESTION
from apps.voting.shape import MAX_OPTIONS, MIN_OPTIONS
from apps.voting.tally import MAX_SCORE
from apps.voting.words import METHOD_WORDS

RESULTS = {"live": "Show results while the poll is open", "hidden": "Only after it closes"}


def role_words(role: str) -> str:
    """A role as the form names its holders ("Writers")."""
    return role.replace("_", " ").capitalize() + "s"


class PollForm(forms.Form):
    question = forms.CharField(max_length=MAX_QUESTION, label="Question")
    description = forms.CharField(
        max_length=MAX_DESCRIPTION,
        required=False,
        label="Description",
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    options = forms.CharField(
        label="Options",
        help_text=f"One per line, {MIN_OPTIONS} to {MAX_OPTIONS}.",
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    method = forms.ChoiceField(choices=list(METHOD_WORDS.items()), label="How people vote")
    roles = forms.MultipleChoiceField(
        required=False, label="Who votes", widget=forms.CheckboxSelectMultiple
    )
    quorum = forms.IntegerField(
        min_value=0,
        required=False,
        initial=0,
        label="Ballots needed for the result to stand",
        help_text="0: any number.",
    )
    results = forms.ChoiceField(
        choices=list(RESULTS.items()), initial="live", label="Results", widget=forms.RadioSelect
    )
    secret = forms.BooleanField(required=False, label="Secret ballots")
    trustees = forms.MultipleChoiceField(
        required=False, label="Trustees", widget=forms.CheckboxSelectMultiple
    )
    threshold = forms.IntegerField(
        min_value=2,
        required=False,
        label="Trustees needed to count",
        help_text="Empty: more than half of them.",
    )
    ends_at = forms.DateTimeField(
        required=False,
        label="Planned end",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )

    def __init__(
        self,
        *args: Any,
        roles: Sequence[str] = (),
        default_roles: Sequence[str] = (),
        members: Sequence[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fields["roles"].choices = [(role, role_words(role)) for role in roles]
        self.fields["roles"].initial = list(default_roles)
        self.fields["trustees"].choices = list(members)

    def clean_options(self) -> list[str]:
        lines = [" ".join(line.split()) for line in self.cleaned_data["options"].splitlines()]
        return [line for line in lines if line]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("secret") and data.get("method") not in ("single", "approval"):
            self.add_error("secret", "Only single choice and approval polls can be secret.")
        if data.get("secret") and len(data.get("trustees") or []) < 2:
            self.add_error("trustees", "A secret poll needs at least 2 trustees.")
        return data

    def service_arguments(self) -> dict[str, Any]:
        """The form as ``services.poll_open`` takes it."""
        data = self.cleaned_data
        secret = bool(data["secret"])
        return {
            "question": data["question"],
            "description": data["description"],
            "options": data["options"],
            "method": data["method"],
            "roles": data["roles"] or None,
            "quorum": data["quorum"] or 0,
            "results_visible": data["results"] == "live",
            "secret": secret,
            "trustees": data["trustees"] if secret else (),
            "threshold": data["threshold"] if secret else None,
            "ends_at": data["ends_at"],
        }


def _number(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def ballot_from(method: str, options: int, post: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ballot the poll page's form posted (``services.ballot_cast`` checks it), or None when
    nothing was chosen. ``post`` is a QueryDict (``getlist``)."""
    getlist = post.getlist  # type: ignore[attr-defined]
    if method == "single":
        choice = _number(post.get("choice", ""))
        return None if choice is None else {"choice": choice}
    if method == "approval":
        return {"choices": [n for v in getlist("choices") if (n := _number(v)) is not None]}
    if method == "ranked":
        ranking = [n for v in getlist("ranking") if (n := _number(v)) is not None]
        return {"ranking": ranking} if ranking else None
    scores = [_number(post.get(f"score-{i}", "")) for i in range(options)]
    if any(s is None or not 0 <= s <= MAX_SCORE for s in scores):
        return None
    return {"scores": scores}


def reordered(order: Sequence[int], move: str, options: int) -> list[int]:
    """A ranking after one up or down press (``"up:2"``: option 2 one place higher); a ranking
    that is not one of the poll's options in some order starts from the poll's order."""
    if sorted(order) != list(range(options)):
        order = list(range(options))
    ranking = list(order)
    direction, _, value = move.partition(":")
    option = _number(value)
    if option is None or option not in ranking:
        return ranking
    at = ranking.index(option)
    to = at - 1 if direction == "up" else at + 1
    if 0 <= to < len(ranking):
        ranking[at], ranking[to] = ranking[to], ranking[at]
    return ranking
