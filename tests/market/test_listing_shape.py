"""A listing row read as a listing: the shape, hostile columns a peer may write, and terms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.market.listing_shape import (
    CATEGORIES,
    MAX_PRICE,
    ListingProblem,
    ShippingOption,
    listing_problem,
    listing_shape,
    terms_changed,
)

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=100)


def row(**changes: Any) -> dict[str, Any]:
    cols: dict[str, Any] = {
        "title": "Oak chair",
        "summary": "Solid oak, seat recovered last year.",
        "description": "# Oak chair\n\nSturdy.\tNo wobble.",
        "price": 4500,
        "currency": "EUR",
        "category": "home",
        "tags": ["chair", "oak"],
        "place": "Ghent",
        "lat": 51.05,
        "lon": 3.72,
        "quantity": 2,
        "condition": "used",
        "status": "active",
        "shipping": [{"region": "Belgium", "price": 1200, "days": 3}],
        "auction": None,
        "photos": "ignored here",
    }
    cols.update(changes)
    return cols


def test_a_full_listing_reads_as_written() -> None:
    shape = listing_shape(row())
    assert (shape.title, shape.price, shape.currency, shape.quantity) == (
        "Oak chair",
        4500,
        "EUR",
        2,
    )
    assert shape.tags == ("chair", "oak")
    assert (shape.lat, shape.lon) == (51.05, 3.72)
    assert shape.shipping == (ShippingOption("Belgium", 1200, 3),)
    assert shape.auction is None


def test_json_text_columns_read_like_their_values() -> None:
    as_text = row(
        tags=json.dumps(["chair", "oak"]),
        shipping=json.dumps([{"region": "Belgium", "price": 1200, "days": 3}]),
        auction=json.dumps({"reserve": 9000}),
    )
    assert listing_shape(as_text) == listing_shape(row(auction={"reserve": 9000}))


def test_only_the_required_columns_are_needed() -> None:
    cols = {
        "title": "Lamp",
        "price": 1,
        "currency": "JPY",
        "category": "other",
        "quantity": 0,
        "condition": "for_parts",
        "status": "draft",
    }
    shape = listing_shape(cols)
    assert (shape.summary, shape.description, shape.place) == ("", "", "")
    assert (shape.tags, shape.shipping, shape.lat, shape.auction) == ((), (), None, None)


def test_the_categories_are_plain_and_end_with_other() -> None:
    assert 15 <= len(CATEGORIES) <= 20
    assert CATEGORIES[-1] == "other"
    assert all(c.isalpha() and c.islower() for c in CATEGORIES)


HOSTILE = [
    ({"price": -100}, "more than zero"),
    ({"price": 0}, "more than zero"),
    ({"price": True}, "whole number"),
    ({"price": 12.5}, "whole number"),
    ({"price": "4500"}, "whole number"),
    ({"price": MAX_PRICE + 1}, "too large"),
    ({"price": 10**40}, "too large"),
    ({"currency": "XYZ"}, "not a currency code"),
    ({"currency": "XXX"}, "not a currency code"),
    ({"currency": "eur"}, "ISO 4217"),
    ({"currency": None}, "ISO 4217"),
    ({"category": "weapons"}, "category must be one of"),
    ({"title": ""}, "give the title"),
    ({"title": "   "}, "give the title"),
    ({"title": "x" * 141}, "at most 140"),
    ({"title": "two\nlines"}, "not allowed"),
    ({"title": 7}, "must be text"),
    ({"summary": "s" * 301}, "at most 300"),
    ({"description": "d" * 20_001}, "at most 20,000"),
    ({"description": "bell\x07"}, "not allowed"),
    ({"tags": [f"t{n}" for n in range(11)]}, "at most 10 tags"),
    ({"tags": ["x" * 31]}, "at most 30"),
    ({"tags": ["oak", "OAK"]}, "only once"),
    ({"tags": [""]}, "a word"),
    ({"tags": "not json"}, "not readable"),
    ({"tags": {"a": 1}}, "list of words"),
    ({"place": "p" * 121}, "at most 120"),
    ({"lat": float("nan")}, "latitude"),
    ({"lat": float("inf")}, "latitude"),
    ({"lat": 90.5}, "latitude"),
    ({"lon": -180.01}, "longitude"),
    ({"lat": True}, "latitude must be a number"),
    ({"lon": None}, "both latitude and longitude"),
    ({"quantity": 100_001}, "at most 100,000"),
    ({"quantity": -1}, "cannot be negative"),
    ({"condition": "broken"}, "condition must be one of"),
    ({"status": "deleted"}, "status must be one of"),
    ({"shipping": [{"region": f"r{n}", "price": 0, "days": 1} for n in range(11)]}, "at most 10"),
    ({"shipping": [{"region": "EU", "price": 0, "days": 0}]}, "days"),
    ({"shipping": [{"region": "EU", "price": 0, "days": 121}]}, "at most 120"),
    ({"shipping": [{"region": "EU", "price": -1, "days": 2}]}, "cannot be negative"),
    ({"shipping": [{"region": "EU", "price": 0}]}, "region, a price and days"),
    ({"shipping": [{"region": "EU", "price": 0, "days": 2, "x": 1}]}, "region, a price and days"),
    ({"shipping": [{"region": "r" * 61, "price": 0, "days": 2}]}, "at most 60"),
    ({"shipping": '[{"region": "EU", "price": NaN, "days": 2}]'}, "not readable"),
    ({"shipping": "[" * 5000 + "]" * 5000}, "not readable"),
    ({"shipping": "[" * 30_000}, "far too long"),
    ({"auction": [1, 2]}, "auction terms are not readable"),
    ({"auction": {1: "int key"}}, "auction terms are not readable"),
    ({"auction": {"end": float("nan")}}, "auction terms are not readable"),
    ({"auction": '{"n": 1' + "0" * 5000 + "}"}, "auction terms are not readable"),
]


@pytest.mark.parametrize(("changes", "words"), HOSTILE)
def test_hostile_columns_are_refused_in_plain_words(changes: dict[str, Any], words: str) -> None:
    problem = listing_problem(row(**changes))
    assert problem is not None
    assert words in problem
    assert problem[0].isupper()
    assert problem.endswith(".")


def test_a_missing_required_column_is_refused() -> None:
    for column in ("title", "price", "currency", "category", "quantity", "condition", "status"):
        cols = row()
        del cols[column]
        assert listing_problem(cols) is not None, column


def test_columns_that_are_not_a_mapping_are_refused() -> None:
    with pytest.raises(ListingProblem, match="named columns"):
        listing_shape(["title"])  # type: ignore[arg-type]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@PROPERTY
@given(st.dictionaries(st.sampled_from(sorted(row())), JSONISH | st.text(max_size=50)))
def test_anything_a_peer_writes_is_a_listing_or_a_listing_problem(junk: dict[str, Any]) -> None:
    cols = row(**junk)
    problem = listing_problem(cols)
    if problem is not None:
        assert problem.endswith(".")
        return
    shape = listing_shape(cols)
    assert type(shape.price) is int
    assert 0 < shape.price <= MAX_PRICE
    assert type(shape.quantity) is int
    assert shape.currency.isupper()


def test_terms_are_what_bids_and_offers_cite() -> None:
    base = listing_shape(row(auction={"reserve": 1}))
    not_terms = {
        "title": "Oak chair, again",
        "description": "New words.",
        "tags": ["wood"],
        "status": "sold",
        "place": "Bruges",
        "quantity": 3,  # stock: accepted offers take from it
    }
    for column, value in not_terms.items():
        assert not terms_changed(
            base, listing_shape(row(auction={"reserve": 1}, **{column: value}))
        )
    terms = {
        "price": 4600,
        "currency": "USD",
        "shipping": [{"region": "Belgium", "price": 1200, "days": 4}],
        # 1 == True to Python, but they are different terms.
        "auction": {"reserve": True},
    }
    for column, value in terms.items():
        changes = {"auction": {"reserve": 1}, column: value}
        assert terms_changed(base, listing_shape(row(**changes))), column
