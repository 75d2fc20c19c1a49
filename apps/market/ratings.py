"""Ratings after a deal, and a seller's score recomputed from them (issue 15 §5).

A rating gives 1 to 5 stars overall and, optionally, for three aspects (item as described,
communication, shipping), with a short comment; it cites its deal and says which side gave it.
Anyone following a shop recomputes the seller's score from the signed ratings with
``seller_score``: the same ratings, in any order, give the same score, in exact decimals.

One rating per (deal, rater) counts: the first given, that is the one with the smallest
``given_ms`` (its op's stamp), ties broken by the rating's own contents so that the choice does
not depend on the order the ratings arrive in. (The ordered table refuses a second rating
anyway; this rule covers copies gathered from several threads.) Pure: no Django, no DB.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from apps.market.deal import BUYER, SELLER

STARS = (1, 2, 3, 4, 5)
ASPECTS = ("as_described", "communication", "shipping")
RATERS = (BUYER, SELLER)
MAX_COMMENT = 500
MAX_DEAL_ID = 128


class RatingProblem(ValueError):
    """What is wrong with a rating, as a sentence for a person."""


@dataclass(frozen=True)
class Rating:
    deal: str  # the deal (its thread's id) the rating cites
    rater: str  # buyer (rates the seller) or seller (rates the buyer)
    overall: int
    as_described: int | None = None
    communication: int | None = None
    shipping: int | None = None
    comment: str = ""
    given_ms: int = 0  # the stamp of the op that wrote it: decides which of two is first

    def aspect(self, name: str) -> int | None:
        """The stars given for one of ASPECTS, or None if that aspect was not rated."""
        if name not in ASPECTS:
            raise KeyError(name)
        value: int | None = getattr(self, name)
        return value

    def order_key(self) -> tuple[Any, ...]:
        """Earlier given first; the contents break a tie (0 stands for an aspect not rated)."""
        aspects = tuple(self.aspect(name) or 0 for name in ASPECTS)
        return (self.given_ms, self.overall, aspects, self.comment)


@dataclass(frozen=True)
class Score:
    """A seller's score. Averages are exact Decimals with two places, rounded half up; None
    when nothing was rated."""

    count: int
    average: Decimal | None
    aspects: dict[str, Decimal | None]  # aspect -> average over the ratings that gave it
    aspect_counts: dict[str, int]
    histogram: tuple[int, int, int, int, int]  # how many gave 1, 2, 3, 4, 5 stars overall


def _stars(value: Any, what: str, required: bool) -> int | None:
    if value is None and not required:
        return None
    if type(value) is not int or value not in STARS:  # bool is an int; True is not a star
        raise RatingProblem(f"The {what} rating must be a whole number of stars from 1 to 5.")
    return value


def rating_of(cols: Mapping[str, Any], *, given_ms: int = 0) -> Rating:
    """The rating a row's columns hold; RatingProblem (a sentence) if it is malformed."""
    if not isinstance(cols, Mapping):
        raise RatingProblem("A rating is a set of named columns.")
    deal = cols.get("deal")
    # A deal is named by its thread's id: letters and digits only.
    if not (type(deal) is str and 0 < len(deal) <= MAX_DEAL_ID and deal.isascii()):
        raise RatingProblem("A rating must name the deal it is about.")
    if not deal.isalnum():
        raise RatingProblem("A rating must name the deal it is about.")
    rater = cols.get("rater")
    if type(rater) is not str or rater not in RATERS:
        raise RatingProblem("A rating is given by the buyer or the seller of the deal.")
    comment = cols.get("comment")
    comment = "" if comment is None else comment
    if type(comment) is not str:
        raise RatingProblem("The comment must be text.")
    if len(comment) > MAX_COMMENT:
        raise RatingProblem(
            f"The comment can be at most {MAX_COMMENT} characters; it has {len(comment):,}."
        )
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in comment):
        raise RatingProblem("The comment contains characters that are not allowed.")
    overall = _stars(cols.get("overall"), "overall", True)
    assert overall is not None
    return Rating(
        deal=deal,
        rater=rater,
        overall=overall,
        as_described=_stars(cols.get("as_described"), "item-as-described", False),
        communication=_stars(cols.get("communication"), "communication", False),
        shipping=_stars(cols.get("shipping"), "shipping", False),
        comment=comment,
        given_ms=given_ms,
    )


def rating_problem(cols: Mapping[str, Any]) -> str | None:
    """Why the row is not a rating, or None if it is one."""
    try:
        rating_of(cols)
    except RatingProblem as problem:
        return str(problem)
    return None


def _average(total: int, count: int) -> Decimal | None:
    """total / count in hundredths, rounded half up, in integers: no decimal context involved."""
    if count == 0:
        return None
    hundredths = (total * 200 + count) // (2 * count)
    return Decimal(hundredths).scaleb(-2)


def counted(ratings: Iterable[Rating]) -> list[Rating]:
    """The ratings that count: the first per (deal, rater), in a fixed order."""
    first: dict[tuple[str, str], Rating] = {}
    for rating in ratings:
        key = (rating.deal, rating.rater)
        held = first.get(key)
        if held is None or rating.order_key() < held.order_key():
            first[key] = rating
    return [first[key] for key in sorted(first)]


def seller_score(ratings: Iterable[Rating]) -> Score:
    """The seller's score from the ratings buyers gave them (a seller's rating of a buyer does
    not count toward the seller's own score)."""
    mine = [r for r in counted(ratings) if r.rater == BUYER]
    histogram = [0, 0, 0, 0, 0]
    for rating in mine:
        histogram[rating.overall - 1] += 1
    aspects: dict[str, Decimal | None] = {}
    counts: dict[str, int] = {}
    for name in ASPECTS:
        given = [s for s in (r.aspect(name) for r in mine) if s is not None]
        counts[name] = len(given)
        aspects[name] = _average(sum(given), len(given))
    return Score(
        count=len(mine),
        average=_average(sum(r.overall for r in mine), len(mine)),
        aspects=aspects,
        aspect_counts=counts,
        histogram=(histogram[0], histogram[1], histogram[2], histogram[3], histogram[4]),
    )
