"""A listing row read as a listing: what every replica, service and page agrees a listing is.

A row may have been written by any peer (a modified node included), so ``listing_shape`` trusts
nothing: wrong types, bools where numbers belong, NaN, huge values and over-long text are all
refused with a sentence a person can read. Columns it does not know (photos, ids) are left to
their own rules. List and map columns (tags, shipping, auction) are accepted as the JSON text a
model's text column holds, or as the value itself. Pure: no Django, no DB, no clock.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pycountry

MAX_TITLE = 140
MAX_SUMMARY = 300
MAX_DESCRIPTION = 20_000
# 10**12 minor units is ten billion euros: beyond any classified ad, well inside int64.
MAX_PRICE = 10**12
MAX_TAGS, MAX_TAG = 10, 30
MAX_PLACE = 120
MAX_QUANTITY = 100_000
MAX_SHIPPING, MAX_REGION = 10, 60
MIN_DAYS, MAX_DAYS = 1, 120
# A JSON column longer than this is refused before it is parsed (10 shipping options fit
# many times over); the auction terms are small too.
MAX_JSON_CHARS = 20_000

CATEGORIES = (
    "antiques",
    "art",
    "baby",
    "books",
    "clothing",
    "electronics",
    "garden",
    "health",
    "home",
    "jewellery",
    "music",
    "services",
    "sports",
    "tools",
    "toys",
    "vehicles",
    "other",
)
CONDITIONS = ("new", "used", "refurbished", "for_parts")
# Stored values are single tokens (they go into query strings); pages show the labels.
CONDITION_LABELS = {"new": "new", "used": "used", "refurbished": "refurbished"} | {
    "for_parts": "for parts"
}
DRAFT, ACTIVE, SOLD, WITHDRAWN = "draft", "active", "sold", "withdrawn"
STATUSES = (DRAFT, ACTIVE, SOLD, WITHDRAWN)
# "XXX" means "no currency" and "XTS" is reserved for tests: neither prices a thing.
_NOT_PRICES = frozenset({"XXX", "XTS"})
# ISO 4217 codes, read from pycountry's file once, at import: a rule judging a row must never
# open a file (strict judges refuse it), and a set answers at once.
CURRENCIES = frozenset(currency.alpha_3 for currency in pycountry.currencies)


class ListingProblem(ValueError):
    """What is wrong with a listing row, as a sentence for a person."""


@dataclass(frozen=True)
class ShippingOption:
    region: str
    price: int  # minor units of the listing's currency; 0 is free shipping
    days: int  # delivery time promised, in days


@dataclass(frozen=True)
class ListingShape:
    title: str
    summary: str
    description: str  # Markdown, rendered (and sanitised) by the pages
    price: int  # minor units of ``currency`` (cents for EUR, yen for JPY)
    currency: str  # ISO 4217 code, capitals
    category: str
    tags: tuple[str, ...]
    place: str
    lat: float | None
    lon: float | None
    quantity: int
    condition: str
    status: str
    shipping: tuple[ShippingOption, ...]
    # Opaque here (the auction rules check it); excluded from the hash because a dict has none.
    auction: dict[str, Any] | None = field(default=None, hash=False)


def _int(
    cols: Mapping[str, Any], name: str, what: str, low: int, high: int, *, money: bool = False
) -> int:
    value = cols.get(name)
    # bool is an int to Python, but True is not a price.
    if type(value) is not int:
        raise ListingProblem(f"The {what} must be a whole number.")
    if value < low:
        if low == 0:
            raise ListingProblem(f"The {what} cannot be negative.")
        if low == 1:
            raise ListingProblem(f"The {what} must be more than zero.")
        raise ListingProblem(f"The {what} must be at least {low:,}.")
    if value > high:
        if money:  # the limit is in minor units, which would only confuse a person
            raise ListingProblem(f"The {what} is too large.")
        raise ListingProblem(f"The {what} can be at most {high:,}.")
    return value


def _text(
    cols: Mapping[str, Any], name: str, what: str, most: int, *, required: bool, lines: bool
) -> str:
    value = cols.get(name)
    if value is None:
        if required:
            raise ListingProblem(f"Please give the {what}.")
        value = ""
    if type(value) is not str:
        raise ListingProblem(f"The {what} must be text.")
    if len(value) > most:
        raise ListingProblem(
            f"The {what} can be at most {most:,} characters; it has {len(value):,}."
        )
    if required and not value.strip():
        raise ListingProblem(f"Please give the {what}.")
    allowed = "\n\t" if lines else ""
    # Control characters hide text or break a page's layout; a description may have lines.
    if any(unicodedata.category(c) == "Cc" and c not in allowed for c in value):
        raise ListingProblem(f"The {what} contains characters that are not allowed.")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _json(value: Any, what: str) -> Any:
    """A list or map column: the value itself, or the JSON text a model's column holds."""
    if type(value) is not str:
        return value
    if len(value) > MAX_JSON_CHARS:
        raise ListingProblem(f"The {what} are far too long.")
    try:
        # NaN and Infinity are not JSON, though Python's reader accepts them.
        return json.loads(value, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise ListingProblem(f"The {what} are not readable.") from None


def currency_code(value: Any) -> str:
    """The ISO 4217 code ``value`` is (capitals, as stored); ListingProblem if it is not one."""
    if type(value) is not str or len(value) != 3 or not value.isascii() or not value.isupper():
        raise ListingProblem("The currency must be a three-letter ISO 4217 code, like EUR.")
    if value in _NOT_PRICES or value not in CURRENCIES:
        raise ListingProblem(f"{value} is not a currency code we know; use one like EUR or USD.")
    return value


def _choice(cols: Mapping[str, Any], name: str, what: str, choices: tuple[str, ...]) -> str:
    value = cols.get(name)
    if type(value) is not str or value not in choices:
        raise ListingProblem(f"The {what} must be one of: {', '.join(choices)}.")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    found = _json([] if value is None else value, "tags")
    if type(found) is not list:
        raise ListingProblem("The tags must be a list of words.")
    if len(found) > MAX_TAGS:
        raise ListingProblem(f"A listing can have at most {MAX_TAGS} tags; it has {len(found)}.")
    for tag in found:
        if type(tag) is not str or not tag.strip():
            raise ListingProblem("Each tag must be a word or a few.")
        if len(tag) > MAX_TAG:
            raise ListingProblem(
                f"A tag can be at most {MAX_TAG} characters; {tag[:40]!r} is longer."
            )
        if any(unicodedata.category(c) == "Cc" for c in tag):
            raise ListingProblem("A tag contains characters that are not allowed.")
    if len({t.casefold() for t in found}) != len(found):
        raise ListingProblem("Each tag can appear only once.")
    return tuple(found)


def _coordinate(value: Any, what: str, limit: int) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float):
        raise ListingProblem(f"The {what} must be a number.")
    if not math.isfinite(value) or not -limit <= value <= limit:
        raise ListingProblem(f"The {what} must be from -{limit} to {limit}.")
    return float(value)


def _shipping(value: Any) -> tuple[ShippingOption, ...]:
    found = _json([] if value is None else value, "shipping options")
    if type(found) is not list:
        raise ListingProblem("The shipping options must be a list.")
    if len(found) > MAX_SHIPPING:
        raise ListingProblem(f"A listing can have at most {MAX_SHIPPING} shipping options.")
    options = []
    for item in found:
        if type(item) is not dict or set(item) != {"region", "price", "days"}:
            raise ListingProblem("Each shipping option has a region, a price and days.")
        region = _text(item, "region", "shipping region", MAX_REGION, required=True, lines=False)
        price = _int(item, "price", "shipping price", 0, MAX_PRICE, money=True)
        days = _int(item, "days", "shipping time in days", MIN_DAYS, MAX_DAYS)
        options.append(ShippingOption(region, price, days))
    if len({o.region.casefold() for o in options}) != len(options):
        raise ListingProblem("Each shipping region can appear only once.")
    return tuple(options)


def _auction(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    found = _json(value, "auction terms")
    if type(found) is not dict:
        raise ListingProblem("The auction terms are not readable.")
    # Whatever the auction rules make of them, the terms must be plain JSON to compare.
    if not _plain_json(found, 0):
        raise ListingProblem("The auction terms are not readable.")
    try:
        text = _canonical(found)
    except ValueError:  # an int of thousands of digits
        raise ListingProblem("The auction terms are not readable.") from None
    if len(text) > MAX_JSON_CHARS:
        raise ListingProblem("The auction terms are far too long.")
    return found


def _plain_json(value: Any, depth: int) -> bool:
    """Whether the value is what JSON text reads to (a peer's CBOR could carry int keys)."""
    if depth > 16:
        return False
    if value is None or type(value) in (str, bool, int):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(_plain_json(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(k) is str and _plain_json(v, depth + 1) for k, v in value.items())
    return False


def _canonical(value: Any) -> str:
    # JSON tells 1 from true and 1 from 1.0, where Python's == does not.
    return json.dumps(value, sort_keys=True, allow_nan=False, separators=(",", ":"))


def listing_shape(cols: Mapping[str, Any]) -> ListingShape:
    """The listing a row's columns describe; ListingProblem (a sentence) if it is malformed.

    Required: title, price, currency, category, quantity, condition, status. The rest may be
    missing (empty text, no tags, no coordinates, no shipping, no auction). A partial update
    is judged after merging it into the standing row.
    """
    if not isinstance(cols, Mapping):
        raise ListingProblem("A listing is a set of named columns.")
    lat = _coordinate(cols.get("lat"), "latitude", 90)
    lon = _coordinate(cols.get("lon"), "longitude", 180)
    if (lat is None) != (lon is None):
        raise ListingProblem("A location needs both latitude and longitude, or neither.")
    return ListingShape(
        title=_text(cols, "title", "title", MAX_TITLE, required=True, lines=False),
        summary=_text(cols, "summary", "summary", MAX_SUMMARY, required=False, lines=False),
        description=_text(
            cols, "description", "description", MAX_DESCRIPTION, required=False, lines=True
        ),
        price=_int(cols, "price", "price", 1, MAX_PRICE, money=True),
        currency=currency_code(cols.get("currency")),
        category=_choice(cols, "category", "category", CATEGORIES),
        tags=_tags(cols.get("tags")),
        place=_text(cols, "place", "place", MAX_PLACE, required=False, lines=False),
        lat=lat,
        lon=lon,
        quantity=_int(cols, "quantity", "quantity", 0, MAX_QUANTITY),
        condition=_choice(cols, "condition", "condition", CONDITIONS),
        status=_choice(cols, "status", "status", STATUSES),
        shipping=_shipping(cols.get("shipping")),
        auction=_auction(cols.get("auction")),
    )


def listing_problem(cols: Mapping[str, Any]) -> str | None:
    """Why the row is not a listing, or None if it is one."""
    try:
        listing_shape(cols)
    except ListingProblem as problem:
        return str(problem)
    return None


def terms_changed(old: ListingShape, new: ListingShape) -> bool:
    """Whether an edit changes what an offer or a bid cites: price, currency, shipping or
    auction terms. Title, text, photos, tags, place, status and quantity (stock, which accepted
    offers take from) are not terms."""
    return (old.price, old.currency, old.shipping, _canonical(old.auction)) != (
        new.price,
        new.currency,
        new.shipping,
        _canonical(new.auction),
    )
