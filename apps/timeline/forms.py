"""The timeline pages' forms. They check shape and size in plain words; the services check the
rest (who may post, what a repost may point at) and every replica checks the policy again."""

from __future__ import annotations

import re
from collections.abc import Mapping

from django import forms

from apps.messaging.forms import MultipleFileField, PlainName
from apps.messaging.models import MAX_NAME
from apps.timeline import ranking
from apps.timeline.models import MAX_LONG, MAX_SHORT, MAX_TITLE
from apps.timeline.ranking import (
    MAX_HALF_LIFE,
    MIN_HALF_LIFE,
    NEWEST,
    RANKED,
    WEIGHT_LIMIT,
    RulesError,
)

MAX_TIMELINE_NAME = 200
MAX_FEED_NAME = ranking.MAX_NAME
RECIPE_MAX_BYTES = 64 * 1024


class Text(forms.CharField):
    """Text as a person sees it: a browser's CR LF line breaks count as one character."""

    def to_python(self, value: object) -> str:
        return super().to_python(value).replace("\r\n", "\n")


class TimelineForm(forms.Form):
    name = PlainName(
        limit=MAX_TIMELINE_NAME,
        what="a timeline's name",
        label="Timeline name",
        help_text="For example “Alice's notes”. Your followers see it.",
    )
    my_name = PlainName(
        limit=MAX_NAME,
        what="your name",
        required=False,
        label="Your name in it",
        help_text="Followers see your posts under this name.",
    )


class PostForm(forms.Form):
    text = Text(required=False, label="Post", widget=forms.Textarea({"rows": 3}))
    title = PlainName(
        limit=MAX_TITLE,
        what="a title",
        required=False,
        label="Title (for a long post)",
        help_text="A title makes it a long post, like a blog entry.",
    )
    files = MultipleFileField(required=False, label="Photos and files")
    public = forms.BooleanField(required=False, label="Also on my public blog")

    def clean(self) -> dict:
        data = super().clean()
        body = (data.get("text") or "").strip()
        most = MAX_LONG if data.get("title") else MAX_SHORT
        if len(body) > most:
            self.add_error(
                "text", f"A post holds at most {most} characters; this one has {len(body)}."
            )
        elif not body and not data.get("files") and "text" not in self.errors:
            raise forms.ValidationError("Write something or add a photo.")
        return data


class EditForm(forms.Form):
    text = Text(label="Post", widget=forms.Textarea({"rows": 4}), max_length=MAX_LONG)
    title = PlainName(limit=MAX_TITLE, what="a title", required=False, label="Title")

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "id_edit_%s")  # beside the reply form on the same page
        super().__init__(*args, **kwargs)


class ReplyForm(forms.Form):
    text = Text(label="Your reply", widget=forms.Textarea({"rows": 2}), max_length=MAX_SHORT)
    reply_to = forms.UUIDField(required=False, widget=forms.HiddenInput)


class ReplyEditForm(forms.Form):
    text = Text(label="Reply", widget=forms.Textarea({"rows": 2}), max_length=MAX_SHORT)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "id_reply_edit_%s")
        super().__init__(*args, **kwargs)


class ReactionForm(forms.Form):
    emoji = forms.CharField(max_length=16)
    target = forms.UUIDField()
    on = forms.BooleanField(required=False)


class ShareForm(forms.Form):
    """Repost a post to one of my timelines, or quote it with words of my own."""

    timeline = forms.ChoiceField(label="To my timeline")
    text = Text(
        required=False,
        label="Your words (makes it a quote)",
        widget=forms.Textarea({"rows": 2}),
        max_length=MAX_SHORT,
    )

    def __init__(self, *args, timelines: list[tuple[str, str]], **kwargs) -> None:
        kwargs.setdefault("auto_id", "id_share_%s")
        super().__init__(*args, **kwargs)
        self.fields["timeline"].choices = timelines


# --- the feed rules editor ---


class FeedNameForm(forms.Form):
    name = PlainName(limit=MAX_FEED_NAME, what="a feed's name", label="New feed's name")

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "id_add_%s")  # beside the recipe form on the same page
        super().__init__(*args, **kwargs)


class RecipeForm(forms.Form):
    recipe = forms.FileField(label="Recipe file")
    name = PlainName(
        limit=MAX_FEED_NAME,
        what="a feed's name",
        required=False,
        label="Name it (optional)",
        help_text="Left empty, it keeps the name in the file.",
    )

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", "id_recipe_%s")
        super().__init__(*args, **kwargs)

    def clean_recipe(self):
        upload = self.cleaned_data["recipe"]
        if upload.size > RECIPE_MAX_BYTES:
            raise forms.ValidationError(
                "This file is too big to be a feed recipe (a recipe is at most 64 KiB)."
            )
        return upload


_PAIR = re.compile(r"^(?P<word>.+?)\s*(?:[:=]\s*|\s+)(?P<weight>[+-]?\d+(?:[.,]\d+)?)$")


def weighted_lines(text: str, what: str) -> dict[str, float]:
    """Lines of "word 2" or "word: -1.5" as a mapping (a line without a number weighs 1)."""
    found: dict[str, float] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.strip()
        if not line:
            continue
        match = _PAIR.match(line)
        word, weight = (
            (match["word"], float(match["weight"].replace(",", ".")))
            if match
            else (
                line,
                1.0,
            )
        )
        if not -WEIGHT_LIMIT <= weight <= WEIGHT_LIMIT:
            raise RulesError(
                f"A weight is a number from -{WEIGHT_LIMIT} to {WEIGHT_LIMIT}; "
                f"the one for {what} “{word}” is {weight:g}."
            )
        found[word.strip()] = weight
    return found


def weighted_text(weights: Mapping[str, float], shown=lambda key: key) -> str:
    return "\n".join(f"{shown(key)} {weight:g}" for key, weight in weights.items())


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


class FeedRulesForm(forms.Form):
    """One named feed's rules as a person edits them; people by name, timelines by checkbox."""

    name = PlainName(limit=MAX_FEED_NAME, what="a feed's name", label="Name")
    order = forms.ChoiceField(
        label="Order",
        choices=[(NEWEST, "Newest first"), (RANKED, "Ranked by these rules")],
    )
    timelines = forms.MultipleChoiceField(
        required=False,
        label="Timelines in it (none ticked: all I follow)",
        widget=forms.CheckboxSelectMultiple,
    )
    people = Text(
        required=False,
        label="People up or down (a name and a weight a line)",
        widget=forms.Textarea({"rows": 2, "placeholder": "Alice 2"}),
    )
    keywords = Text(
        required=False,
        label="Keywords up or down (a word and a weight a line)",
        widget=forms.Textarea({"rows": 2, "placeholder": "garden 1"}),
    )
    tags = Text(
        required=False,
        label="Tags up or down (#tag and a weight a line)",
        widget=forms.Textarea({"rows": 2, "placeholder": "#news -1"}),
    )
    mute_words = Text(
        required=False,
        label="Mute words (a post with one is hidden; one a line)",
        widget=forms.Textarea({"rows": 2}),
    )
    hide_replies_to_unfollowed = forms.BooleanField(
        required=False, label="Hide replies to people I don't follow"
    )
    dedupe_reposts = forms.BooleanField(required=False, label="Show a reposted post once")
    half_life_hours = forms.FloatField(
        label="Half-life in hours (how fast a post sinks)",
        min_value=MIN_HALF_LIFE,
        max_value=MAX_HALF_LIFE,
    )

    def __init__(self, *args, timelines: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["timelines"].choices = timelines
        # One weight per timeline this node follows ("timeline weights"), by its name.
        for thread_id, label in timelines:
            self.fields[f"weight_{thread_id}"] = forms.FloatField(
                required=False,
                label=f"Weight of {label}",
                min_value=-WEIGHT_LIMIT,
                max_value=WEIGHT_LIMIT,
                widget=forms.NumberInput({"step": "0.5"}),
            )

    def weight_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith("weight_")]
