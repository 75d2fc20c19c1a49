"""The market pages' forms. They check only the shape of what was typed (lengths, a field left
empty, a choice); amounts are parsed in the listing's currency by the views (``display``) and
everything else is judged by the services, which say in words what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.utils import timezone

from apps.market import deal as deal_rules
from apps.market.display import AmountProblem, amount_parse, amount_value
from apps.market.listing_shape import (
    CATEGORIES,
    CONDITION_LABELS,
    CONDITIONS,
    MAX_DESCRIPTION,
    MAX_PLACE,
    MAX_SUMMARY,
    MAX_TITLE,
    STATUSES,
)
from apps.market.models import MAX_ABOUT, MAX_MESSAGE, MAX_NAME
from apps.market.ratings import MAX_COMMENT

AMOUNT_ATTRS = {"inputmode": "decimal", "autocomplete": "off"}
STATUS_LABELS = {
    "draft": "Draft: only the shop sees it",
    "active": "Active: for sale",
    "sold": "Sold",
    "withdrawn": "Withdrawn",
}
STARS = [("", "—")] + [(str(n), "★" * n) for n in range(5, 0, -1)]


def _amount(label: str, help_text: str = "", required: bool = True) -> forms.CharField:
    # Text, not a number field: the views parse it exactly in the listing's currency, and a
    # browser's number field would round or refuse what a person typed ("12,50").
    return forms.CharField(
        max_length=24,
        label=label,
        help_text=help_text,
        required=required,
        widget=forms.TextInput(attrs=AMOUNT_ATTRS),
    )


class LinesField(forms.CharField):
    """Text of several lines: a browser sends a textarea's line ends as CR LF, and the rules
    refuse control characters, so they become plain line feeds here."""

    def to_python(self, value: object) -> str:
        text = super().to_python(value)
        return text.replace("\r\n", "\n").replace("\r", "\n")


def _text(label: str, most: int, help_text: str = "", rows: int = 0) -> forms.CharField:
    kind = LinesField if rows else forms.CharField
    widget = forms.Textarea(attrs={"rows": rows}) if rows else forms.TextInput()
    return kind(max_length=most, required=False, label=label, help_text=help_text, widget=widget)


class ShopForm(forms.Form):
    name = forms.CharField(max_length=MAX_NAME, label="Shop name")
    about = _text("About the shop", MAX_ABOUT, "Optional: what you sell, where you ship.", 3)


class ListingForm(forms.Form):
    title = forms.CharField(max_length=MAX_TITLE, label="Title")
    summary = _text("Summary", MAX_SUMMARY, "One line shown in lists and search results.")
    description = _text(
        "Description", MAX_DESCRIPTION, "Markdown: *emphasis*, lists, links. No images here.", 6
    )
    price = _amount("Price", "For one item, like 12.50. An auction's start price.")
    currency = forms.CharField(
        max_length=3, label="Currency", initial="EUR", help_text="A code like EUR, USD or JPY."
    )
    category = forms.ChoiceField(
        label="Category", choices=[(c, c.capitalize()) for c in CATEGORIES]
    )
    condition = forms.ChoiceField(
        label="Condition", choices=[(c, CONDITION_LABELS[c].capitalize()) for c in CONDITIONS]
    )
    quantity = forms.IntegerField(label="Quantity", min_value=0, initial=1)
    status = forms.ChoiceField(
        label="Status", choices=[(s, STATUS_LABELS[s]) for s in STATUSES], initial="active"
    )
    tags = _text("Tags", 400, "Words separated by commas, like “bike, vintage”.")
    place = _text("Place", MAX_PLACE, "Where the item is, like “Lyon”.")
    shipping = _text(
        "Shipping",
        2_000,
        "One option a line: region, price, days. Like “France, 8.50, 3”.",
        3,
    )
    auction = forms.BooleanField(required=False, label="Sell by auction")
    increment = _amount("Minimum increment", "Each bid beats the best by this much.", False)
    reserve = _amount("Reserve", "Optional: below it, nobody wins.", False)
    ends_at = forms.DateTimeField(
        required=False,
        label="Auction ends at",
        help_text="Your local time.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
    )
    soft_close = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=1440,
        label="Soft close (minutes)",
        help_text="A bid this close to the end moves the end by as much. 0 or empty: none.",
    )
    photo = forms.FileField(
        required=False,
        label="Add a photo",
        widget=forms.ClearableFileInput(attrs={"accept": "image/*"}),
    )


class PhotoForm(forms.Form):
    photo = forms.FileField(
        label="Photo", widget=forms.ClearableFileInput(attrs={"accept": "image/*"})
    )


class OfferForm(forms.Form):
    price = _amount("Your price", "For the whole quantity.")
    quantity = forms.IntegerField(label="Quantity", min_value=1, initial=1)
    message = _text("Message", MAX_MESSAGE, "Optional: anything the seller should know.", 2)


class BidForm(forms.Form):
    amount = _amount("Your bid", "Or leave it empty and give a maximum.", False)
    maximum = _amount(
        "Your maximum",
        "Optional: your node bids for you up to it; it never leaves your node.",
        False,
    )

    def clean(self) -> dict:
        data = super().clean()
        if not (data.get("amount") or "").strip() and not (data.get("maximum") or "").strip():
            raise forms.ValidationError("Give a bid, a maximum, or both.")
        return data


class StepForm(forms.Form):
    """One deal step; the fields that step needs are checked by the deal's rules."""

    step = forms.ChoiceField(choices=[(s, s) for s in deal_rules.STEPS], widget=forms.HiddenInput)
    reference = _text("Payment reference", deal_rules.MAX_REFERENCE, "Optional.")
    carrier = _text("Carrier", deal_rules.MAX_CARRIER)
    tracking = _text("Tracking number", deal_rules.MAX_TRACKING)
    reason = _text("Reason", deal_rules.MAX_REASON, "", 2)
    outcome = forms.ChoiceField(
        required=False,
        label="Outcome",
        choices=[
            ("", "—"),
            (deal_rules.REFUND, "Refund the buyer"),
            (deal_rules.RELEASE, "Release to the seller"),
            (deal_rules.SPLIT, "Split"),
        ],
    )
    split_amount = _amount("Back to the buyer", "Of a split: how much the buyer gets back.", False)


class MessageForm(forms.Form):
    text = LinesField(
        max_length=MAX_MESSAGE, label="Message", widget=forms.Textarea(attrs={"rows": 2})
    )


class RatingForm(forms.Form):
    overall = forms.ChoiceField(label="Overall", choices=STARS[1:])
    as_described = forms.ChoiceField(label="Item as described", choices=STARS, required=False)
    communication = forms.ChoiceField(label="Communication", choices=STARS, required=False)
    shipping = forms.ChoiceField(label="Shipping", choices=STARS, required=False)
    comment = _text("Comment", MAX_COMMENT, "Optional.", 2)

    def stars(self) -> dict:
        """The rating as the services take it (numbers, None for an aspect left out)."""
        data = self.cleaned_data
        aspects = ("as_described", "communication", "shipping")
        found = {name: int(data[name]) if data.get(name) else None for name in aspects}
        return {"overall": int(data["overall"]), **found, "comment": data.get("comment", "")}


class LinkForm(forms.Form):
    link = forms.CharField(
        max_length=4_000,
        label="Link",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, label: str = "Link", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["link"].label = label


class IndexForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="Run a market index on this node")
    name = _text("The index's name", MAX_NAME, "What people see when they add it.")


# -- between the listing form and the services --------------------------------------------------


def _shipping_lines(text: str, currency: str) -> list[dict]:
    """ "France, 8.50, 3" a line -> ``[{region, price, days}]``; AmountProblem says which line."""
    found = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.rsplit(",", 2)]
        if len(parts) != 3 or not parts[2].isdigit():
            raise AmountProblem(
                f"Shipping line {number} should read “region, price, days”, like “France, 8.50, 3”."
            )
        price = amount_parse(parts[1], currency, f"shipping price on line {number}")
        found.append({"region": parts[0], "price": price, "days": int(parts[2])})
    return found


def fields_of(data: dict, *, now_ms: int | None = None) -> dict:
    """The listing's columns for ``services.listing_save`` from a valid ``ListingForm``
    (amounts in minor units of its currency); AmountProblem for an amount that is not one."""
    currency = (data.get("currency") or "").strip().upper()
    fields = {
        "title": data["title"],
        "summary": data.get("summary", ""),
        "description": data.get("description", ""),
        "price": amount_parse(data["price"], currency, "price"),
        "currency": currency,
        "category": data["category"],
        "condition": data["condition"],
        "quantity": data["quantity"],
        "status": data["status"],
        "tags": [t.strip() for t in (data.get("tags") or "").split(",") if t.strip()],
        "place": data.get("place", ""),
        "shipping": _shipping_lines(data.get("shipping", ""), currency),
        "auction": None,
    }
    if data.get("auction"):
        if data.get("ends_at") is None:
            raise AmountProblem("An auction needs the time it ends.")
        minutes = data.get("soft_close") or 0
        reserve = (data.get("reserve") or "").strip()
        fields["auction"] = {
            "increment": amount_parse(data.get("increment") or "", currency, "minimum increment"),
            "reserve": amount_parse(reserve, currency, "reserve") if reserve else None,
            "ends_at_ms": int(data["ends_at"].timestamp() * 1000),
            "soft_close_ms": minutes * 60_000 if minutes else None,
            "extend_ms": minutes * 60_000,
        }
    return fields


def initial_of(item) -> dict:
    """A ``ListingForm``'s initial values from a ``listing_selectors.ListingView``."""
    initial = {
        "title": item.title,
        "summary": item.summary,
        "description": item.description,
        "price": amount_value(item.price, item.currency),
        "currency": item.currency,
        "category": item.category,
        "condition": item.condition,
        "quantity": item.quantity,
        "status": item.status,
        "tags": ", ".join(item.tags),
        "place": item.place,
        "shipping": "\n".join(
            f"{s.region}, {amount_value(s.price, item.currency)}, {s.days}" for s in item.shipping
        ),
    }
    found = item.auction
    if found is not None:
        terms = found.terms
        initial.update(
            auction=True,
            increment=amount_value(terms.increment, item.currency),
            reserve=amount_value(terms.reserve, item.currency) if terms.reserve else "",
            ends_at=timezone.localtime(
                datetime.fromtimestamp(terms.ends_at_ms / 1000, tz=UTC)
            ).strftime("%Y-%m-%dT%H:%M"),
            soft_close=(terms.soft_close_ms or 0) // 60_000 or None,
        )
    return initial
