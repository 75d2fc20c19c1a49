"""The auction and offer rules (apps/market/auction.py): hand examples and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.market.auction import (
    DAY_MS,
    AuctionState,
    AuctionTerms,
    BidProblem,
    Outcome,
    auction_start,
    bid_apply,
    bid_problem,
    close_problem,
    money,
    offer_problem,
    outcome,
    proxy_next_bid,
    terms_problem,
)

END = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
MINUTE = 60_000


def terms(**changes: object) -> AuctionTerms:
    values: dict[str, object] = {
        "start_price": 1000,
        "increment": 250,
        "reserve": None,
        "ends_at_ms": END,
        "soft_close_ms": 2 * MINUTE,
        "extend_ms": 2 * MINUTE,
        "currency": "EUR",
    }
    values.update(changes)
    return AuctionTerms(**values)  # type: ignore[arg-type]


def run(t: AuctionTerms, bids: list[tuple[int, str, int]]) -> AuctionState:
    state = auction_start(t)
    for amount, bidder, stamp in bids:
        state = bid_apply(t, state, amount, bidder, stamp)
    return state


# -- money -------------------------------------------------------------------------------------


def test_money_uses_the_currency_minor_units() -> None:
    assert money(1250, "EUR") == "12.50 EUR"
    assert money(5, "usd") == "0.05 USD"
    assert money(123456789, "EUR") == "1,234,567.89 EUR"
    assert money(1250, "JPY") == "1,250 JPY"
    assert money(1250, "KWD") == "1.250 KWD"
    assert money(-1250, None) == "-12.50"


# -- terms -------------------------------------------------------------------------------------


def test_sensible_terms_pass() -> None:
    assert terms_problem(terms()) is None
    assert terms_problem(terms(reserve=1000, soft_close_ms=None, extend_ms=0)) is None
    assert terms_problem(terms(), stamp_ms=END - DAY_MS) is None


@pytest.mark.parametrize(
    ("changes", "stamp", "words"),
    [
        ({"start_price": 0}, None, "start price must be more than zero"),
        ({"start_price": 12.5}, None, "start price must be a whole number"),
        ({"increment": True}, None, "increment must be a whole number"),
        ({"increment": -5}, None, "increment must be more than zero"),
        ({"start_price": 10**16}, None, "too large"),
        ({"reserve": 999}, None, "reserve cannot be below the start price"),
        ({"ends_at_ms": "tomorrow"}, None, "end of the auction"),
        ({}, END, "must end in the future"),
        ({}, END - 400 * DAY_MS, "a year at most"),
        ({"soft_close_ms": 2 * DAY_MS}, None, "between one second and one day"),
        ({"soft_close_ms": 10}, None, "between one second and one day"),
        ({"extend_ms": 0}, None, "needs an extension"),
        ({"extend_ms": 2 * DAY_MS}, None, "extension must be between"),
        ({"currency": "EURO"}, None, "three-letter code"),
    ],
)
def test_bad_terms_are_refused_in_words(
    changes: dict[str, object], stamp: int | None, words: str
) -> None:
    problem = terms_problem(terms(**changes), stamp_ms=stamp)
    assert problem is not None
    assert words in problem


# -- bids --------------------------------------------------------------------------------------


def test_first_bid_must_reach_the_start_price() -> None:
    t = terms()
    start = auction_start(t)
    assert bid_problem(t, start, 999, "ann", END - DAY_MS) == (
        "The first bid must be at least 10.00 EUR, the start price."
    )
    assert bid_problem(t, start, 1000, "ann", END - DAY_MS) is None


def test_a_bid_below_the_increment_is_refused_with_the_amounts() -> None:
    t = terms()
    state = run(t, [(1000, "ann", END - DAY_MS)])
    with pytest.raises(BidProblem) as refused:
        bid_apply(t, state, 1249, "bob", END - DAY_MS + 1)
    assert str(refused.value) == (
        "A bid must be at least 12.50 EUR — the best so far plus the increment."
    )
    assert bid_apply(t, state, 1250, "bob", END - DAY_MS + 1).best_bidder == "bob"


def test_zero_decimal_currency_in_the_refusal() -> None:
    t = terms(start_price=5000, increment=500, currency="JPY")
    state = run(t, [(5000, "ann", END - DAY_MS)])
    problem = bid_problem(t, state, 5100, "bob", END - DAY_MS + 1)
    assert problem is not None
    assert "5,500 JPY" in problem


def test_a_bid_at_or_after_the_close_is_refused() -> None:
    t = terms(soft_close_ms=None, extend_ms=0)
    state = run(t, [(1000, "ann", END - DAY_MS)])
    for stamp in (END, END + 1, END + DAY_MS):
        assert bid_problem(t, state, 5000, "bob", stamp) == (
            "The auction ended at 2023-11-14 22:13:20 UTC."
        )
    assert bid_problem(t, state, 5000, "bob", END - 1) is None


def test_the_best_bidder_cannot_outbid_themself() -> None:
    t = terms()
    state = run(t, [(1000, "ann", END - DAY_MS)])
    problem = bid_problem(t, state, 2000, "ann", END - DAY_MS + 1)
    assert problem is not None
    assert "already have the best bid" in problem


def test_odd_bids_are_refused_in_words() -> None:
    t = terms()
    start = auction_start(t)
    assert "whole number" in (bid_problem(t, start, "12.50", "ann", 1) or "")
    assert "more than zero" in (bid_problem(t, start, -1, "ann", 1) or "")
    assert "name its bidder" in (bid_problem(t, start, 1000, "", 1) or "")
    assert "its time" in (bid_problem(t, start, 1000, "ann", None) or "")  # type: ignore[arg-type]


def test_two_bidders_near_the_end_with_soft_close() -> None:
    t = terms()
    state = run(t, [(1000, "ann", END - 10 * MINUTE), (1250, "bob", END - 5 * MINUTE)])
    assert state.ends_at_ms == END  # outside the window: no extension
    # ann bids 30 s before the end: the end moves to her stamp + 2 min
    state = bid_apply(t, state, 1500, "ann", END - 30_000)
    assert state.ends_at_ms == END + 90_000
    # bob answers after the original end but before the extended one: accepted, extended again
    state = bid_apply(t, state, 1750, "bob", END + 60_000)
    assert state.ends_at_ms == END + 3 * MINUTE
    # ann's answer stamped after the extended end is refused, the state unchanged
    problem = bid_problem(t, state, 2000, "ann", END + 3 * MINUTE)
    assert problem == "The auction ended at 2023-11-14 22:16:20 UTC."
    assert close_problem(state, END + 3 * MINUTE - 1) is not None
    assert close_problem(state, END + 3 * MINUTE) is None
    assert outcome(t, state) == Outcome("bob", 1750, True)
    assert state.bid_count == 4


def test_a_short_extension_never_moves_the_end_earlier() -> None:
    t = terms(soft_close_ms=10 * MINUTE, extend_ms=MINUTE)
    state = run(t, [(1000, "ann", END - 9 * MINUTE)])
    assert state.ends_at_ms == END  # stamp + 1 min is before the end: it stays


def test_reserve_not_met_names_no_winner() -> None:
    t = terms(reserve=2000)
    assert outcome(t, auction_start(t)) == Outcome(None, None, False)
    state = run(t, [(1000, "ann", END - DAY_MS), (1750, "bob", END - DAY_MS + 1)])
    assert outcome(t, state) == Outcome(None, None, False)
    state = bid_apply(t, state, 2000, "ann", END - DAY_MS + 2)
    assert outcome(t, state) == Outcome("ann", 2000, True)


# -- proxy bidding -----------------------------------------------------------------------------


def proxy_war(t: AuctionTerms, maxes: dict[str, int], first: str) -> AuctionState:
    """Two proxies take turns, each placing its next bid, until neither can."""
    state = auction_start(t)
    order = [first, *(name for name in maxes if name != first)]
    stamp, passes, turn = END - DAY_MS, 0, 0
    while passes < 2:
        me = order[turn % 2]
        amount = proxy_next_bid(t, state, maxes[me], me)
        if amount is None:
            passes += 1
        else:
            passes = 0
            stamp += 1
            state = bid_apply(t, state, amount, me, stamp)
        turn += 1
    return state


def test_proxy_war_ends_at_the_lower_max_plus_increment() -> None:
    t = terms(start_price=1000, increment=500)
    state = proxy_war(t, {"ann": 5000, "bob": 9000}, first="ann")
    assert (state.best_bidder, state.best_amount) == ("bob", 5500)
    # capped at the higher max: bob's max is exactly one increment above ann's
    state = proxy_war(t, {"ann": 5000, "bob": 5500}, first="ann")
    assert (state.best_bidder, state.best_amount) == ("bob", 5500)


def test_proxy_bids_nothing_when_best_or_out_of_reach() -> None:
    t = terms()
    state = run(t, [(1000, "ann", END - DAY_MS)])
    assert proxy_next_bid(t, state, 10_000, "ann") is None
    assert proxy_next_bid(t, state, 1249, "bob") is None
    assert proxy_next_bid(t, state, 1250, "bob") == 1250
    assert proxy_next_bid(t, auction_start(t), 1000, "bob") == 1000


@settings(max_examples=150, deadline=None)
@given(
    low=st.integers(1000, 20_000),
    high=st.integers(1000, 20_000),
    increment=st.integers(1, 3000),
    ann_first=st.booleans(),
)
def test_proxy_war_never_passes_a_max(low: int, high: int, increment: int, ann_first: bool) -> None:
    t = terms(start_price=1000, increment=increment)
    maxes = {"ann": low, "bob": high}
    state = proxy_war(t, maxes, first="ann" if ann_first else "bob")
    assert state.best_bidder is not None
    assert state.best_amount is not None
    loser = "bob" if state.best_bidder == "ann" else "ann"
    assert state.best_amount <= maxes[state.best_bidder]
    assert state.best_amount + increment > maxes[loser]  # the loser could not go on
    if max(low, high) >= min(low, high) + increment:
        assert maxes[state.best_bidder] == max(low, high)


# -- determinism -------------------------------------------------------------------------------

bid_lists = st.lists(
    st.tuples(
        st.integers(-10, 5000),  # amount
        st.sampled_from(["ann", "bob", "cy"]),
        st.integers(END - 20 * MINUTE, END + 20 * MINUTE),  # stamp
    ),
    max_size=40,
).map(lambda bids: sorted(bids, key=lambda bid: bid[2]))  # the thread orders by stamp


@settings(max_examples=200, deadline=None)
@given(
    bids=bid_lists,
    soft=st.one_of(st.none(), st.integers(1000, 10 * MINUTE)),
    extend=st.integers(1000, 10 * MINUTE),
    increment=st.integers(1, 700),
)
def test_bids_in_the_thread_order_keep_the_invariants(
    bids: list[tuple[int, str, int]], soft: int | None, extend: int, increment: int
) -> None:
    t = terms(start_price=100, increment=increment, soft_close_ms=soft, extend_ms=extend)
    assert terms_problem(t) is None
    state = auction_start(t)
    accepted: list[int] = []
    for amount, bidder, stamp in bids:
        before = state
        problem = bid_problem(t, state, amount, bidder, stamp)
        if problem is not None:
            with pytest.raises(BidProblem):
                bid_apply(t, state, amount, bidder, stamp)
            continue
        state = bid_apply(t, state, amount, bidder, stamp)
        assert stamp < before.ends_at_ms
        assert state.ends_at_ms >= before.ends_at_ms
        if before.best_amount is None:
            assert amount >= t.start_price
        else:
            assert amount >= before.best_amount + increment
            assert bidder != before.best_bidder
        accepted.append(amount)
    assert state.bid_count == len(accepted)
    assert state.best_amount == (max(accepted) if accepted else None)
    assert outcome(t, state).price == state.best_amount


# -- offers ------------------------------------------------------------------------------------


def test_a_sensible_offer_passes() -> None:
    assert offer_problem(1800, 2, 3, 1000, "Would you take 9 each?", "EUR") is None
    assert offer_problem(1900, 2, 3, 1000, "19 for both?", "EUR") is None
    assert offer_problem(900, 1, 1, None) is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((0, 1, 3, 1000), "price must be more than zero"),
        ((-5, 1, 3, 1000), "price must be more than zero"),
        (("9.00", 1, 3, 1000), "whole number of minor units"),
        ((900, 0, 3, 1000), "quantity must be a whole number"),
        ((900, 4, 3, 1000), "only 3"),
        ((900, 1, 0, 1000), "Nothing of this listing is left"),
        ((1200, 1, 3, 1000), "above the asking price of 10.00 EUR"),
        ((900, 1, 3, 1000, "x" * 2001), "message is too long"),
        ((2100, 2, 3, 1000), "above the asking price of 20.00 EUR"),
        ((10**15 + 1, 2, 3, None), "price is too large"),
    ],
)
def test_bad_offers_are_refused_in_words(args: tuple[object, ...], words: str) -> None:
    problem = offer_problem(*args, currency="EUR")  # type: ignore[arg-type]
    assert problem is not None
    assert words in problem
