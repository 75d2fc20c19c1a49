"""The rules of auctions and offers in a shop, as pure functions: no Django, no DB, no clock.

They become the shop's ordered-table validators, which every replica runs in the thread's order,
so each answer depends only on its arguments. The one notion of time is the judged op's own
hybrid-clock stamp in ms (``View.stamp_millis``), passed in as ``stamp_ms``.

Amounts are integers in minor units of the listing's currency. A refusal is a sentence for a
person (a returned string, or ``BidProblem`` from ``bid_apply``).

Choices a reader would otherwise have to rediscover:

- **Bids are visible and must climb.** The first bid is at least the start price; each later one
  beats the best so far by at least the increment. A bid stamped at or after the end in force
  when it is judged is refused, so a bid arriving late from a partitioned node is refused on
  every replica alike.
- **No outbidding oneself.** The best bidder may not bid again until someone outbids them:
  their own visible bid would only raise the price they pay. (eBay lets people raise a hidden
  maximum; here the maximum stays on the bidder's node, see ``proxy_next_bid``.)
- **Soft close.** A bid stamped within ``soft_close_ms`` of the end moves the end to its stamp
  plus ``extend_ms``, never earlier than it was.
- **Reserve.** If the best bid is below the reserve, nobody wins: ``outcome`` names no winner.
- **Proxy bidding** answers with the next visible bid only. With visible bids and a fixed
  increment, a war between two proxies ends once one of them cannot reach best + increment: the
  last bid is at most one increment above the lower maximum and never above the higher one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# 10**13 whole units of a two-decimal currency: beyond any listing, well inside SQLite's int64
# (and the ledger's own bound), so sums of a few amounts never overflow a column.
MAX_AMOUNT = 10**15
SECOND_MS = 1_000
DAY_MS = 86_400_000
# A soft-close window or extension longer than a day would keep an auction open by surprise.
MAX_SOFT_CLOSE_MS = DAY_MS
MAX_EXTEND_MS = DAY_MS
# An auction that runs longer than a year is almost surely a typo in its end.
MAX_DURATION_MS = 366 * DAY_MS
# 9999-12-31 23:59:59.999 UTC: the last moment a date can show.
MAX_TIME_MS = 253_402_300_799_999
MAX_OFFER_QUANTITY = 1_000_000
MAX_OFFER_MESSAGE = 2_000

# ISO 4217 minor units; the exceptions to "2" (the common ones, kept small on purpose).
_ZERO_DECIMALS = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)
_THREE_DECIMALS = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BidProblem(ValueError):
    """A bid the rules refuse; the message is a sentence for a person."""


@dataclass(frozen=True)
class AuctionTerms:
    """What the seller set on the listing; fixed once the listing has a bid."""

    start_price: int
    increment: int
    reserve: int | None
    ends_at_ms: int
    soft_close_ms: int | None  # None: no soft close
    extend_ms: int
    currency: str | None = None  # ISO 4217 code, for the amounts in refusals


@dataclass(frozen=True)
class AuctionState:
    """The auction after the bids accepted so far, in the thread's order."""

    best_amount: int | None
    best_bidder: str | None
    bid_count: int
    ends_at_ms: int  # the end in force (moved by soft close)


@dataclass(frozen=True)
class Outcome:
    winner: str | None  # None: no bids, or the reserve was not met
    price: int | None
    reserve_met: bool


def _is_int(value: Any) -> bool:
    # bool is an int to Python, never to a person typing a price.
    return type(value) is int


def decimals_of(currency: str | None) -> int:
    """How many digits of the currency's amounts are minor units (2 unless listed)."""
    code = (currency or "").upper()
    if code in _ZERO_DECIMALS:
        return 0
    if code in _THREE_DECIMALS:
        return 3
    return 2


def money(minor: int, currency: str | None = None) -> str:
    """``1250, "EUR"`` -> ``"12.50 EUR"``; ``1250, "JPY"`` -> ``"1,250 JPY"``."""
    places = decimals_of(currency)
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**places)
    text = f"{sign}{whole:,}" + (f".{part:0{places}d}" if places else "")
    return f"{text} {currency.upper()}" if currency else text


def moment(ms: int) -> str:
    """A stamp as people read it, in UTC (every replica must word a refusal alike)."""
    when = _EPOCH + timedelta(milliseconds=min(max(ms, 0), MAX_TIME_MS))
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def _amount_problem(value: Any, what: str) -> str | None:
    if not _is_int(value):
        return f"The {what} must be a whole number of minor units (cents), like 1250."
    if value <= 0:
        return f"The {what} must be more than zero."
    if value > MAX_AMOUNT:
        return f"The {what} is too large."
    return None


def terms_problem(terms: AuctionTerms, stamp_ms: int | None = None) -> str | None:
    """Why the terms cannot be used, or None. Given the listing op's stamp, the end must come
    after it and within a year of it."""
    for value, what in ((terms.start_price, "start price"), (terms.increment, "increment")):
        if problem := _amount_problem(value, what):
            return problem
    if terms.reserve is not None:
        if problem := _amount_problem(terms.reserve, "reserve"):
            return problem
        if terms.reserve < terms.start_price:
            return "The reserve cannot be below the start price."
    if not _is_int(terms.ends_at_ms) or not 0 < terms.ends_at_ms <= MAX_TIME_MS:
        return "The end of the auction must be a date and time."
    if stamp_ms is not None:
        if terms.ends_at_ms <= stamp_ms:
            return "The auction must end in the future."
        if terms.ends_at_ms - stamp_ms > MAX_DURATION_MS:
            return "An auction can run for a year at most."
    if not _is_int(terms.extend_ms) or not 0 <= terms.extend_ms <= MAX_EXTEND_MS:
        return "The extension must be between zero and one day."
    if terms.soft_close_ms is not None:
        if not _is_int(terms.soft_close_ms):
            return "The soft-close window must be a whole number of milliseconds."
        if not SECOND_MS <= terms.soft_close_ms <= MAX_SOFT_CLOSE_MS:
            return "The soft-close window must be between one second and one day."
        if terms.extend_ms < SECOND_MS:
            return "A soft close needs an extension of at least one second."
    if terms.currency is not None and not (
        isinstance(terms.currency, str) and len(terms.currency) == 3 and terms.currency.isalpha()
    ):
        return "The currency must be a three-letter code, like EUR."
    return None


def auction_start(terms: AuctionTerms) -> AuctionState:
    return AuctionState(None, None, 0, terms.ends_at_ms)


def minimum_bid(terms: AuctionTerms, state: AuctionState) -> int:
    """The smallest bid the rules accept next (ignoring who bids and when)."""
    if state.best_amount is None:
        return terms.start_price
    return state.best_amount + terms.increment


def bid_problem(
    terms: AuctionTerms, state: AuctionState, amount: Any, bidder: Any, stamp_ms: int
) -> str | None:
    """Why this bid is refused at this place in the thread's order, or None."""
    if problem := _amount_problem(amount, "bid"):
        return problem
    if not isinstance(bidder, str) or not bidder:
        return "A bid must name its bidder."
    if not _is_int(stamp_ms):
        return "A bid must carry its time."
    if stamp_ms >= state.ends_at_ms:
        return f"The auction ended at {moment(state.ends_at_ms)}."
    if bidder == state.best_bidder:
        return "You already have the best bid; you can bid again once someone outbids you."
    least = minimum_bid(terms, state)
    if amount >= least:
        return None
    if state.best_amount is None:
        return f"The first bid must be at least {money(least, terms.currency)}, the start price."
    return (
        f"A bid must be at least {money(least, terms.currency)} — the best so far plus the "
        "increment."
    )


def bid_apply(
    terms: AuctionTerms, state: AuctionState, amount: int, bidder: str, stamp_ms: int
) -> AuctionState:
    """The state after the bid; raises ``BidProblem`` if the bid is refused."""
    if problem := bid_problem(terms, state, amount, bidder, stamp_ms):
        raise BidProblem(problem)
    ends = state.ends_at_ms
    if terms.soft_close_ms is not None and stamp_ms >= ends - terms.soft_close_ms:
        ends = max(ends, stamp_ms + terms.extend_ms)
    return AuctionState(amount, bidder, state.bid_count + 1, ends)


def close_problem(state: AuctionState, stamp_ms: int) -> str | None:
    """Why the auction cannot be closed by an op with this stamp, or None."""
    if not _is_int(stamp_ms) or stamp_ms < state.ends_at_ms:
        return f"The auction runs until {moment(state.ends_at_ms)}; it cannot close before."
    return None


def outcome(terms: AuctionTerms, state: AuctionState) -> Outcome:
    """Who wins and at what price, if the auction closed in this state."""
    if state.best_amount is None or state.best_bidder is None:
        return Outcome(None, None, False)
    if terms.reserve is not None and state.best_amount < terms.reserve:
        return Outcome(None, None, False)
    return Outcome(state.best_bidder, state.best_amount, True)


def proxy_next_bid(terms: AuctionTerms, state: AuctionState, my_max: int, me: str) -> int | None:
    """The bid my node should place for me now, never above my secret maximum, or None (I am
    the best bidder already, or the next bid would be above my maximum). The caller still
    checks the end: this function has no stamp."""
    if state.best_bidder == me or not _is_int(my_max):
        return None
    least = minimum_bid(terms, state)
    return least if least <= min(my_max, MAX_AMOUNT) else None


def offer_problem(
    price: Any,
    quantity: Any,
    available_quantity: int,
    listing_price: int | None,
    message: Any = "",
    currency: str | None = None,
) -> str | None:
    """Why an offer (a price for the whole quantity) cannot be made, or None. An offer above
    the asking price (per item, times the quantity) is refused: it is nearly always a typo (1250
    for 12.50), and buying at the asking price needs no offer."""
    if problem := _amount_problem(price, "price"):
        return problem
    if available_quantity <= 0:
        return "Nothing of this listing is left to sell."
    if not _is_int(quantity) or quantity < 1:
        return "The quantity must be a whole number, at least 1."
    if quantity > min(available_quantity, MAX_OFFER_QUANTITY):
        return f"There are only {min(available_quantity, MAX_OFFER_QUANTITY):,} to offer for."
    if listing_price is not None and price > listing_price * quantity:
        return (
            f"The offer is above the asking price of {money(listing_price * quantity, currency)}; "
            "buy at the asking price instead."
        )
    if not isinstance(message, str):
        return "The message must be text."
    if len(message) > MAX_OFFER_MESSAGE:
        return f"The message is too long ({MAX_OFFER_MESSAGE:,} characters at most)."
    return None
