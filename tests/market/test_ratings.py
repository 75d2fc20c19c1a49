"""Ratings: what a rating row may hold, and a seller's score recomputed exactly, in any order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.market.ratings import Rating, counted, rating_of, rating_problem, seller_score

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=100)


def cols(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "deal": "a1" * 32,
        "rater": "buyer",
        "overall": 5,
        "as_described": 4,
        "communication": 5,
        "shipping": 3,
        "comment": "Quick and friendly.\nWould buy again.",
    }
    row.update(changes)
    return row


def stars(
    deal: str, overall: int, rater: str = "buyer", given_ms: int = 0, **aspects: int
) -> Rating:
    return Rating(deal=deal, rater=rater, overall=overall, given_ms=given_ms, **aspects)


def test_a_rating_reads_as_written() -> None:
    rating = rating_of(cols(), given_ms=7)
    assert rating == Rating(
        "a1" * 32, "buyer", 5, 4, 5, 3, "Quick and friendly.\nWould buy again.", 7
    )


def test_the_aspects_and_comment_may_be_left_out() -> None:
    rating = rating_of({"deal": "d1", "rater": "seller", "overall": 2})
    assert (rating.as_described, rating.communication, rating.shipping, rating.comment) == (
        None,
        None,
        None,
        "",
    )


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"overall": 0}, "overall rating must be a whole number of stars from 1 to 5"),
        ({"overall": 6}, "from 1 to 5"),
        ({"overall": True}, "from 1 to 5"),
        ({"overall": 4.5}, "from 1 to 5"),
        ({"overall": None}, "overall"),
        ({"shipping": 0}, "shipping rating"),
        ({"as_described": "5"}, "item-as-described rating"),
        ({"comment": "c" * 501}, "at most 500"),
        ({"comment": 5}, "must be text"),
        ({"comment": "nul\x00"}, "not allowed"),
        ({"deal": ""}, "name the deal"),
        ({"deal": None}, "name the deal"),
        ({"deal": "../etc"}, "name the deal"),
        ({"deal": "d" * 129}, "name the deal"),
        ({"rater": "escrow"}, "buyer or the seller"),
    ],
)
def test_a_malformed_rating_is_refused_in_plain_words(changes: dict[str, Any], words: str) -> None:
    problem = rating_problem(cols(**changes))
    assert problem is not None
    assert words in problem
    assert problem.endswith(".")


def test_a_good_rating_has_no_problem() -> None:
    assert rating_problem(cols()) is None


def test_the_score_averages_exactly_to_two_places_rounding_half_up() -> None:
    # 37 / 8 = 4.625: exactly half a hundredth, rounded up.
    overall = [5, 5, 5, 5, 5, 4, 4, 4]
    score = seller_score(stars(f"d{n}", s) for n, s in enumerate(overall))
    assert score.count == 8
    assert score.average == Decimal("4.63")
    assert str(score.average) == "4.63"
    assert score.histogram == (0, 0, 0, 3, 5)
    two_thirds = seller_score([stars("a", 5), stars("b", 5), stars("c", 4)])
    assert two_thirds.average == Decimal("4.67")
    assert str(seller_score([stars("a", 5)]).average) == "5.00"


def test_aspects_average_over_the_ratings_that_gave_them() -> None:
    score = seller_score(
        [
            stars("a", 5, shipping=2, communication=5),
            stars("b", 3, shipping=3),
            stars("c", 4),
        ]
    )
    assert score.aspects == {
        "as_described": None,
        "communication": Decimal("5.00"),
        "shipping": Decimal("2.50"),
    }
    assert score.aspect_counts == {"as_described": 0, "communication": 1, "shipping": 2}


def test_nothing_rated_gives_an_empty_score() -> None:
    score = seller_score([])
    assert (score.count, score.average, score.histogram) == (0, None, (0, 0, 0, 0, 0))


def test_a_sellers_rating_of_a_buyer_is_not_part_of_the_sellers_score() -> None:
    score = seller_score([stars("a", 5), stars("a", 1, rater="seller")])
    assert (score.count, score.average) == (1, Decimal("5.00"))


def test_one_rating_per_deal_and_rater_counts_the_first_given() -> None:
    first = stars("a", 2, given_ms=100)
    later = stars("a", 5, given_ms=200)
    assert counted([later, first]) == [first]
    assert seller_score([later, first]).average == Decimal("2.00")
    assert seller_score([first, later]).average == Decimal("2.00")


RATINGS = st.lists(
    st.builds(
        Rating,
        deal=st.sampled_from(["d1", "d2", "d3", "d4"]),
        rater=st.sampled_from(["buyer", "seller"]),
        overall=st.integers(1, 5),
        as_described=st.none() | st.integers(1, 5),
        communication=st.none() | st.integers(1, 5),
        shipping=st.none() | st.integers(1, 5),
        comment=st.sampled_from(["", "ok", "great"]),
        given_ms=st.integers(0, 3),
    ),
    max_size=12,
)


@PROPERTY
@given(RATINGS, st.randoms(use_true_random=False))
def test_the_score_does_not_depend_on_the_order_of_the_ratings(
    ratings: list[Rating], shuffler: Any
) -> None:
    shuffled = list(ratings)
    shuffler.shuffle(shuffled)
    assert seller_score(shuffled) == seller_score(ratings)
    score = seller_score(ratings)
    assert score.count == sum(score.histogram)
    assert score.count == len({r.deal for r in ratings if r.rater == "buyer"})
