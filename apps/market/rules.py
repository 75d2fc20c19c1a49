"""The shop's rules, which every replica applies to every row of the shop's ordered tables in the
thread's order (``apps.core.thread.ordered``, ADR 22). Each is a pure function of the view (the
tables just before the row), the row change and its author's standing: no clock, no network,
nothing of this node. A refusal is a reason in plain words.

- **A listing** is written by staff (or the owner); its id names its author when it is added.
  The row as it stands after the change must be a listing (``listing_shape``), with auction
  terms ``auction.py`` accepts. Once it has a bid its terms (``terms_version``) never change and
  its status changes only once its auction closed (to sold, or withdrawn). Never deleted.
- **An offer** is a customer's, on an active fixed-price listing, citing the terms it read
  (``version``), for no more than is left (``auction.offer_problem``).
- **A bid** is a customer's, on an active auction, citing its terms, before its close, judged
  by ``auction.bid_problem`` against the bids accepted before it (``auction_state``). A bid the
  close's author had not seen is refused by the core (the spec's ``Closing``).
- **A close** ends one auction (``scope`` = the listing), once, by staff, at or after the end in
  force; it names the winner and price the bids before it give (``auction.outcome``).
- **An accept** is staff's: an offer as it was made (buyer, price, quantity), while enough is
  left, once; or the winner of a closed auction at the close's price, once.
- **A sale** is written by the accept's author, once per accept: how the deal ended.
- **A rating** is the accept's buyer's, once per sale, for a completed (or resolved) sale.

Bidders are named by their row tag (``rowid.member_tag``), which is all a rule knows of a bid's
author and is unique among a thread's members; a close names the winner's member key, which the
rule checks against that tag.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from apps.core.thread.ordered import Author, Validator, View
from apps.core.thread.payloads import UPSERT, RowChange
from apps.core.thread.rowid import member_tag, row_tag
from apps.market import auction, listing_shape, ratings
from apps.market.auction import AuctionState, AuctionTerms
from apps.market.listing_shape import ACTIVE, SOLD, WITHDRAWN
from apps.market.models import MAX_MESSAGE
from apps.market.policy import ACCEPT, BID, CLOSE, LISTING, OFFER, RATING, SALE, STAFF, shop_policy

SHOP_ID = "00000000000000000000000000000001"  # the shop's one row
STAFF_RANK = shop_policy().rank(STAFF)
MEMBER = 32  # bytes of a member key
MAX_INVITE = 4096  # bytes of a sealed deal invite
OUTCOMES = ("completed", "cancelled", "resolved")
RATED_OUTCOMES = ("completed", "resolved")
# The auction's own settings in a listing's ``auction`` column; its start price is the
# listing's price and its currency the listing's.
AUCTION_KEYS = frozenset({"increment", "reserve", "ends_at_ms", "soft_close_ms", "extend_ms"})

HAS_BIDS = "this listing has bids: its terms can no longer change"
STALE = "the listing changed since you read it: read it again"
OWN_SHOP = "you cannot make an offer in your own shop"
OWN_AUCTION = "you cannot bid in your own shop"
CLOSED = "the auction is closed"
ONLY_BUYER = "only the buyer of a completed deal can rate it"


# -- terms -------------------------------------------------------------------------------------


def _parsed(value: Any) -> Any:
    """A JSON column as its value ("" and None are nothing)."""
    if value is None or value == "":
        return None
    if type(value) is str:
        try:
            return json.loads(value)
        except ValueError:
            return value  # not JSON: hashed as the text it is (listing_shape refuses it anyway)
    return value


def terms_version(cols: Mapping[str, Any]) -> str:
    """What an offer or a bid cites: a hash of the listing's price, currency, shipping and
    auction terms (64 hex). Title, text, photos, quantity and status are not terms."""
    terms = [
        cols.get("price"),
        cols.get("currency"),
        _parsed(cols.get("shipping")) or [],
        _parsed(cols.get("auction")),
    ]
    try:
        text = json.dumps(terms, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        text = repr(terms)  # a hostile row's odd values: still one hash for one row
    return hashlib.blake2b(text.encode(), digest_size=32).hexdigest()


def _whole(value: Any) -> bool:
    return type(value) is int


def auction_terms(listing: Mapping[str, Any]) -> AuctionTerms | None:
    """The auction a listing row describes, or None if it is not an auction (or its terms are
    not readable: ``auction_problem`` says why)."""
    found = _parsed(listing.get("auction"))
    if type(found) is not dict or not set(found) <= AUCTION_KEYS:
        return None
    values = [found.get(k) for k in ("increment", "ends_at_ms")]
    optional = [found.get(k) for k in ("reserve", "soft_close_ms")]
    extend = found.get("extend_ms", 0)
    if not all(_whole(v) for v in values) or not all(v is None or _whole(v) for v in optional):
        return None
    if not _whole(extend) or not _whole(listing.get("price")):
        return None
    currency = listing.get("currency")
    return AuctionTerms(
        start_price=listing["price"],
        increment=found["increment"],
        reserve=found.get("reserve"),
        ends_at_ms=found["ends_at_ms"],
        soft_close_ms=found.get("soft_close_ms"),
        extend_ms=extend,
        currency=currency if type(currency) is str else None,
    )


def auction_problem(listing: Mapping[str, Any], stamp_ms: int | None) -> str | None:
    """Why a listing's auction terms cannot be used (None if it has none, or they are fine).
    ``stamp_ms``: the op setting the terms, whose end must come after it."""
    found = _parsed(listing.get("auction"))
    if found is None:
        return None
    if type(found) is not dict or not set(found) <= AUCTION_KEYS:
        return "The auction terms are not readable."
    terms = auction_terms(listing)
    if terms is None:
        return "The auction's increment, reserve, end and extension must be whole numbers."
    if listing.get("quantity") != 1:
        return "An auction sells one item: set the quantity to 1."
    return auction.terms_problem(terms, stamp_ms)


def bid_fold(
    terms: AuctionTerms, bids: list[tuple[int, str]], stamp: Callable[[str], int | None]
) -> AuctionState:
    """The auction after its accepted bids (amount, id): what the rules and the pages both
    compute (``bid_fold_best_first`` over them, best first)."""
    return bid_fold_best_first(terms, len(bids), iter(sorted(bids, reverse=True)), stamp)


def bid_fold_best_first(
    terms: AuctionTerms,
    count: int,
    best_first: Iterator[tuple[int, str]],
    stamp: Callable[[str], int | None],
) -> AuctionState:
    """The auction after its ``count`` accepted bids, given best first ((amount, id), the id
    breaking a tie): amounts of accepted bids strictly increase in the thread's order, so the
    best bid is the first; its id names the bidder (``bidder_of``). ``best_first`` is read only
    while needed and ``stamp(id)`` (a bid's stamp, ms) asked only then: a bid moves the end
    (soft close) only if stamped within the window before the end in force, never earlier than
    the window before the original end, and stamps grow with amounts; so only the latest bids
    are read, and without a soft close only the best (a bid in a busy auction reads a few rows,
    not thousands)."""
    best = next(best_first, None) if count else None
    if best is None:
        return auction.auction_start(terms)
    ends = terms.ends_at_ms
    if terms.soft_close_ms is not None:
        late: list[int] = []
        for _amount, pk in itertools.chain([best], best_first):
            at = stamp(pk)
            if at is None or at < terms.ends_at_ms - terms.soft_close_ms:
                break
            late.append(at)
        for at in reversed(late):  # oldest first: each moves the end as it stood
            if at >= ends - terms.soft_close_ms:
                ends = max(ends, at + terms.extend_ms)
    tag = row_tag(best[1])
    return AuctionState(best[0], tag.hex() if tag else None, count, ends)


def auction_state(view: View, listing_pk: str) -> AuctionState:
    """The listing's auction after the bids accepted before this place (its start if it has no
    readable terms: nothing to fold)."""
    listing = view.get(LISTING, listing_pk)
    terms = auction_terms(listing) if listing is not None else None
    if terms is None:
        return AuctionState(None, None, 0, 0)
    found = [
        (bid["amount"], bid["pk"])
        for bid in view.rows(BID, listing=listing_pk)
        if _whole(bid.get("amount"))
    ]
    return bid_fold(terms, found, lambda pk: view.stamp_of(BID, pk))


def bidder_of(member: bytes) -> str:
    """How the rules name a bidder (``AuctionState.best_bidder``)."""
    return member_tag(member).hex()


# -- helpers -----------------------------------------------------------------------------------


def _once(view: View, table: str, change: RowChange, what: str) -> str | None:
    if change.action != UPSERT or view.get(table, change.pk) is not None:
        return f"{what} is written once and never changed or deleted"
    if row_tag(change.pk) is None:
        return f"{what}'s id must name its author"
    return None


def _own_id(change: RowChange, author: Author, what: str) -> str | None:
    if row_tag(change.pk) != member_tag(author.member):
        return f"{what}'s id names its author"
    return None


def _new(view: View, table: str, change: RowChange, author: Author, what: str) -> str | None:
    """Why this is not a new row of its author's, written once, or None."""
    return _once(view, table, change, what) or _own_id(change, author, what)


def _is_hex(value: Any, size: int) -> bool:
    return type(value) is str and len(value) == size and all(c in "0123456789abcdef" for c in value)


def _available(view: View, listing_pk: str, listing: Mapping[str, Any]) -> int:
    """What is left of a listing: its quantity less what accepted offers took."""
    taken = 0
    for accept in view.rows(ACCEPT, listing=listing_pk):
        if _whole(accept.get("quantity")):
            taken += accept["quantity"]
    quantity = listing.get("quantity")
    return (quantity if _whole(quantity) else 0) - taken


# -- listings ----------------------------------------------------------------------------------


def listing_rule(view: View, change: RowChange, author: Author) -> str | None:
    if change.action != UPSERT:
        return "a listing is never deleted: withdraw it instead"
    if author.rank < STAFF_RANK:
        return "only the shop's staff write listings"
    standing = view.get(LISTING, change.pk)
    if standing is None:
        problem = _own_id(change, author, "a listing")
        if problem:
            return problem
    merged = {**(standing or {}), **change.cols}
    problem = listing_shape.listing_problem(merged)
    if problem:
        return problem
    terms_moved = standing is None or terms_version(standing) != terms_version(merged)
    # The end must be in the future only when the terms are set; bids never move the terms.
    problem = auction_problem(merged, view.stamp_millis if terms_moved else None)
    if problem:
        return problem
    if standing is None or not view.rows(BID, listing=change.pk):
        return None
    if terms_moved:
        return HAS_BIDS
    status = merged.get("status")
    if status == standing.get("status"):
        return None
    if status not in (SOLD, WITHDRAWN) or not view.rows(CLOSE, scope=change.pk):
        return "this listing has bids: it can only be marked sold once its auction closed"
    return None


# -- offers and bids ---------------------------------------------------------------------------


def _customer_row(
    view: View, change: RowChange, author: Author, table: str, what: str, staff_words: str
) -> tuple[Mapping[str, Any] | None, str | None]:
    """The listing a customer's new offer or bid is for, if it is for sale, or why not."""
    if problem := _new(view, table, change, author, what):
        return None, problem
    if author.rank >= STAFF_RANK:
        return None, staff_words
    listing_pk = change.cols.get("listing")
    listing = view.get(LISTING, listing_pk) if type(listing_pk) is str else None
    if listing is None:
        return None, "there is no such listing"
    if listing.get("status") != ACTIVE:
        return None, "this listing is not for sale now"
    return listing, None


def offer_rule(view: View, change: RowChange, author: Author) -> str | None:
    listing, problem = _customer_row(view, change, author, OFFER, "an offer", OWN_SHOP)
    if listing is None:
        return problem
    cols = change.cols
    if _parsed(listing.get("auction")) is not None:
        return "this listing is an auction: bid instead of making an offer"
    if cols.get("version") != terms_version(listing):
        return STALE
    available = _available(view, cols["listing"], listing)
    return auction.offer_problem(
        cols.get("price"),
        cols.get("quantity"),
        available,
        listing.get("price"),
        cols.get("message", ""),
        listing.get("currency"),
    )


def bid_rule(view: View, change: RowChange, author: Author) -> str | None:
    listing, problem = _customer_row(view, change, author, BID, "a bid", OWN_AUCTION)
    if listing is None:
        return problem
    cols = change.cols
    terms = auction_terms(listing)
    if terms is None:
        return "this listing is not an auction: make an offer instead"
    if cols.get("version") != terms_version(listing):
        return STALE
    if view.rows(CLOSE, scope=cols["listing"]):
        return CLOSED
    state = auction_state(view, cols["listing"])
    return auction.bid_problem(
        terms, state, cols.get("amount"), bidder_of(author.member), view.stamp_millis
    )


def close_rule(view: View, change: RowChange, author: Author) -> str | None:
    problem = _once(view, CLOSE, change, "a close")
    if problem:
        return problem
    if author.rank < STAFF_RANK:
        return "only the shop's staff close an auction"
    scope = change.cols.get("scope")
    listing = view.get(LISTING, scope) if type(scope) is str else None
    terms = auction_terms(listing) if listing is not None else None
    if listing is None or terms is None:
        return "there is no such auction"
    if view.rows(CLOSE, scope=scope):
        return "this auction is closed already"
    state = auction_state(view, scope)
    problem = auction.close_problem(state, view.stamp_millis)
    if problem:
        return problem
    result = auction.outcome(terms, state)
    winner, price = change.cols.get("winner"), change.cols.get("price")
    if result.winner is None:
        if winner is not None or price is not None:
            return "nobody won this auction: its close names no winner and no price"
        return None
    if type(winner) is not bytes or len(winner) != MEMBER or bidder_of(winner) != result.winner:
        return "the close must name the best bidder as the winner"
    if price != result.price:
        return "the close's price must be the best bid"
    return None


# -- accepts, sales, ratings -------------------------------------------------------------------


def _deal_problem(cols: Mapping[str, Any]) -> str | None:
    if not _is_hex(cols.get("deal"), 64):
        return "an accept names its deal thread"
    invite = cols.get("invite")
    if type(invite) is not bytes or not 0 < len(invite) <= MAX_INVITE:
        return "an accept carries the deal's invite, sealed to the buyer"
    buyer = cols.get("buyer")
    if type(buyer) is not bytes or len(buyer) != MEMBER:
        return "an accept names its buyer"
    return None


def _offer_accept_problem(
    view: View, cols: Mapping[str, Any], listing: Mapping[str, Any]
) -> str | None:
    offer_pk = cols.get("offer")
    offer = view.get(OFFER, offer_pk) if type(offer_pk) is str else None
    if offer is None or offer.get("listing") != cols.get("listing"):
        return "there is no such offer on this listing"
    if view.rows(ACCEPT, offer=offer_pk):
        return "this offer is accepted already"
    if row_tag(offer_pk) != member_tag(cols["buyer"]):
        return "the buyer is who made the offer"
    if cols.get("price") != offer.get("price") or cols.get("quantity") != offer.get("quantity"):
        return "an offer is accepted as it was made: its price and quantity"
    if not _whole(cols.get("quantity")) or cols["quantity"] > _available(
        view, cols["listing"], listing
    ):
        return "not enough of this listing is left for this offer"
    return None


def _winner_accept_problem(view: View, cols: Mapping[str, Any]) -> str | None:
    closes = view.rows(CLOSE, scope=cols.get("listing"))
    if not closes:
        return "this auction is not closed yet"
    close = closes[0]
    if close.get("winner") is None:
        return "nobody won this auction"
    if cols["buyer"] != close.get("winner") or cols.get("price") != close.get("price"):
        return "an auction's accept names its winner at the closing price"
    if cols.get("quantity") != 1:
        return "an auction sells one item"
    if any(a.get("offer") is None for a in view.rows(ACCEPT, listing=cols.get("listing"))):
        return "this auction's winner is accepted already"
    return None


def accept_rule(view: View, change: RowChange, author: Author) -> str | None:
    if problem := _new(view, ACCEPT, change, author, "an accept"):
        return problem
    if author.rank < STAFF_RANK:
        return "only the shop's staff accept offers"
    cols = change.cols
    listing_pk = cols.get("listing")
    listing = view.get(LISTING, listing_pk) if type(listing_pk) is str else None
    if listing is None:
        return "there is no such listing"
    problem = _deal_problem(cols)
    if problem:
        return problem
    if cols.get("offer") is None:
        return _winner_accept_problem(view, cols)
    return _offer_accept_problem(view, cols, listing)


def sale_rule(view: View, change: RowChange, author: Author) -> str | None:
    if problem := _new(view, SALE, change, author, "a sale"):
        return problem
    cols = change.cols
    accept_pk = cols.get("accept")
    accept = view.get(ACCEPT, accept_pk) if type(accept_pk) is str else None
    if accept is None:
        return "there is no such accepted offer"
    if row_tag(accept_pk) != member_tag(author.member):
        return "only who accepted the offer records how its deal ended"
    if cols.get("outcome") not in OUTCOMES:
        return "a deal ends completed, cancelled or resolved"
    if not _is_hex(cols.get("completion"), 64):
        return "a sale cites the deal's final step"
    if view.rows(SALE, accept=accept_pk):
        return "this deal's end is recorded already"
    return None


def rating_rule(view: View, change: RowChange, author: Author) -> str | None:
    if problem := _new(view, RATING, change, author, "a rating"):
        return problem
    cols = change.cols
    sale_pk = cols.get("sale")
    sale = view.get(SALE, sale_pk) if type(sale_pk) is str else None
    accept_pk = sale.get("accept") if sale is not None else None
    accept = view.get(ACCEPT, accept_pk) if type(accept_pk) is str else None
    if (
        sale is None
        or accept is None
        or sale.get("outcome") not in RATED_OUTCOMES
        or accept.get("buyer") != author.member
    ):
        return ONLY_BUYER
    if view.rows(RATING, sale=sale_pk):
        return "this deal is rated already"
    comment = cols.get("comment", "")
    if type(comment) is str and len(comment) > MAX_MESSAGE:
        return "the comment is too long"
    return ratings.rating_problem({**cols, "deal": accept.get("deal"), "rater": ratings.BUYER})


def validators() -> dict[str, Validator]:
    """The shop's ordered tables and their rules (``validators_register``)."""
    return {
        LISTING: listing_rule,
        OFFER: offer_rule,
        BID: bid_rule,
        CLOSE: close_rule,
        ACCEPT: accept_rule,
        SALE: sale_rule,
        RATING: rating_rule,
    }
