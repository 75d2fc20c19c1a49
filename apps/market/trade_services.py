"""The only writers of a shop's trade (ADR 22): offers and bids, accepting an offer or an
auction's winner (which opens the deal), and the sale and rating a deal's end copies back into the
shop. Written as ``services.py`` writes the shop and its listings: checked here first against the
shop as this node holds it, so a refusal is in words and nothing is written; the same
``ThreadServiceError`` codes. Proxy bids and closing an auction are in ``proxy.py``.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from apps.core.models import Thread
from apps.core.thread.rowid import member_tag, row_id_for, row_tag
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.market import auction, listing_shape, rules, selectors
from apps.market.models import Accept, Bid, Close, Listing, Offer, Rating, Sale
from apps.market.policy import CUSTOMER
from apps.market.services import _id, _listing, _said, _staff, _write

# Accepting opens a deal thread before the accept row is written, and the accept's id is fixed
# (one per offer, one per auction): two accepts of the same thing at once (the seller's click and
# the node's own duty) would open two deals and then collide on that id. One accept at a time per
# process; the check inside the write covers nodes whose workers run as separate processes.
_accepting = threading.Lock()


def _me(thread: Thread) -> bytes:
    return bytes.fromhex(thread.member_id)


def _customer(thread: Thread, staff_words: str) -> None:
    if selectors.i_am_staff(thread):
        raise ThreadServiceError("forbidden", _said(staff_words))
    if thread.role != CUSTOMER:
        raise ThreadServiceError("forbidden", "Only the shop's customers make offers and bid.")


def _amount(value: Any, what: str) -> int:
    """Minor units: a whole number (digits as text are fine), never a bool or a fraction."""
    if type(value) is str and value.strip().isdigit():
        value = int(value.strip())
    problem = auction._amount_problem(value, what)
    if problem:
        raise ThreadServiceError("invalid", problem)
    return value


# -- offers and bids -----------------------------------------------------------------------------


def _for_trade(thread: Thread, listing: str) -> Listing:
    row = _listing(thread, listing)
    if row.status != listing_shape.ACTIVE:
        raise ThreadServiceError("conflict", "This listing is not for sale now.")
    return row


def offer_make(
    thread: Thread, listing: str, *, price: Any, quantity: Any = 1, message: str = ""
) -> str:
    """Offer a price for ``quantity`` of a fixed-price listing (the price is for them all)."""
    _customer(thread, rules.OWN_SHOP)
    row = _for_trade(thread, listing)
    cols = selectors.listing_cols(row)
    if rules.auction_terms(cols) is not None or row.auction:
        raise ThreadServiceError("conflict", "This listing is an auction: bid instead.")
    if type(message) is not str:
        raise ThreadServiceError("invalid", "The message must be text.")
    message = message.strip()
    available = row.quantity - selectors.taken(thread, row.id.hex)
    problem = auction.offer_problem(price, quantity, available, row.price, message, row.currency)
    if problem:
        raise ThreadServiceError("invalid", problem)
    version = rules.terms_version(cols)

    def make() -> str:
        return Offer.objects.create(
            listing=row.id, version=version, price=price, quantity=quantity, message=message
        ).id.hex

    return _write(thread, make)


def _auction(thread: Thread, row: Listing) -> selectors.Auction:
    found = selectors.auction_of(thread, row)
    if found is None:
        raise ThreadServiceError(
            "conflict", "This listing is not an auction: make an offer instead."
        )
    if found.close is not None:
        raise ThreadServiceError("conflict", _said(rules.CLOSED))
    return found


def bid_make(thread: Thread, listing: str, amount: Any) -> str:
    """Bid in an auction: at least the best bid plus the increment, before the end in force."""
    _customer(thread, rules.OWN_AUCTION)
    row = _for_trade(thread, listing)
    found = _auction(thread, row)
    amount = _amount(amount, "bid")
    me = rules.bidder_of(_me(thread))
    problem = auction.bid_problem(found.terms, found.state, amount, me, selectors.now_ms())
    if problem:
        raise ThreadServiceError("conflict", problem)
    version = rules.terms_version(selectors.listing_cols(row))

    def bid() -> str:
        return Bid.objects.create(listing=row.id, version=version, amount=amount).id.hex

    return _write(thread, bid)


# -- accepting -----------------------------------------------------------------------------------


def _open_deal(thread: Thread, row: Listing, accept: str, buyer: bytes, price: int, quantity: int):
    from apps.market import deal_services

    deal, link = deal_services.deal_open(
        shop=thread,
        listing=row.id.hex,
        accept=accept,
        title=row.title,
        price=price,
        currency=row.currency,
        quantity=quantity,
    )
    return deal, deal_services.invite_seal(link, buyer)


def _not_accepted_yet(accept: str, words: str) -> None:
    """Inside the accept's write: refuse in words if the same accept was written meanwhile."""
    if Accept.objects.filter(pk=uuid.UUID(hex=accept)).exists():
        raise ThreadServiceError("conflict", words)


def offer_accept(thread: Thread, listing: str, offer: str) -> str:
    """Accept an offer as it was made: opens the deal (its thread, the buyer's invite sealed
    into the accept row). Marks the listing sold when nothing is left."""
    with _accepting:
        return _offer_accept(thread, listing, offer)


def _offer_accept(thread: Thread, listing: str, offer: str) -> str:
    _staff(thread, "accept offers")
    row = _listing(thread, listing)
    pk = _id(offer, "offer")
    with thread_context(thread.thread):
        made = Offer.objects.filter(pk=pk, listing=row.id).first()
        done = Accept.objects.filter(offer=pk).exists()
    if made is None:
        raise ThreadServiceError("not_found", "There is no such offer on this listing.")
    if done:
        raise ThreadServiceError("conflict", "This offer is accepted already.")
    left = row.quantity - selectors.taken(thread, row.id.hex)
    if made.quantity > left:
        raise ThreadServiceError("conflict", "Not enough of this listing is left for this offer.")
    tag = row_tag(pk)
    buyer = selectors.member_of_tag(thread, tag.hex()) if tag else None
    if buyer is None:
        raise ThreadServiceError("conflict", "The offer's author is not known here.")
    accept = row_id_for(_me(thread), b"accept/" + pk.encode()).hex
    deal, sealed = _open_deal(thread, row, accept, buyer, made.price, made.quantity)
    sold = made.quantity == left

    def write() -> str:
        _not_accepted_yet(accept, "This offer is accepted already.")
        Accept.objects.create(
            id=uuid.UUID(hex=accept),
            listing=row.id,
            offer=made.id,
            buyer=buyer,
            price=made.price,
            quantity=made.quantity,
            deal=deal.id,
            invite=sealed,
        )
        if sold:
            row.status = listing_shape.SOLD
            row.save(update_fields=["status"])
        return accept

    with thread_context(thread.thread):
        return _write(thread, write)


def winner_accept(thread: Thread, listing: str) -> str:
    """After a close with a winner: open the winner's deal at the closing price and mark the
    listing sold."""
    with _accepting:
        return _winner_accept(thread, listing)


def _winner_accept(thread: Thread, listing: str) -> str:
    _staff(thread, "accept an auction's winner")
    row = _listing(thread, listing)
    with thread_context(thread.thread):
        close = Close.objects.filter(scope=row.id).first()
        done = Accept.objects.filter(listing=row.id, offer=None).first()
    if close is None:
        raise ThreadServiceError("conflict", "This auction is not closed yet.")
    if close.winner is None or close.price is None:
        raise ThreadServiceError("conflict", "Nobody won this auction.")
    if done is not None:
        raise ThreadServiceError("conflict", "This auction's winner is accepted already.")
    accept = row_id_for(_me(thread), b"accept/auction/" + row.id.hex.encode()).hex
    buyer = bytes(close.winner)
    deal, sealed = _open_deal(thread, row, accept, buyer, close.price, 1)

    def write() -> str:
        _not_accepted_yet(accept, "This auction's winner is accepted already.")
        Accept.objects.create(
            id=uuid.UUID(hex=accept),
            listing=row.id,
            offer=None,
            buyer=buyer,
            price=close.price,
            quantity=1,
            deal=deal.id,
            invite=sealed,
        )
        row.status = listing_shape.SOLD
        row.save(update_fields=["status"])
        return accept

    with thread_context(thread.thread):
        return _write(thread, write)


# -- how deals ended, and ratings (written by the deal duties) -----------------------------------


def sale_record(thread: Thread, *, accept: str, outcome: str, completion: str) -> str:
    """Record in the shop how a deal this node's member accepted ended (once; again: the same
    sale's id)."""
    pk = _id(accept, "accepted offer")
    me = _me(thread)
    if row_tag(pk) != member_tag(me):
        raise ThreadServiceError(
            "forbidden", "Only who accepted the offer records how its deal ended."
        )
    if outcome not in rules.OUTCOMES:
        raise ThreadServiceError("invalid", "A deal ends completed, cancelled or resolved.")
    if not rules._is_hex(completion, 64):
        raise ThreadServiceError("invalid", "A sale cites the deal's final step (64 hex digits).")
    with thread_context(thread.thread):
        if not Accept.objects.filter(pk=pk).exists():
            raise ThreadServiceError("not_found", "There is no such accepted offer.")
        held = Sale.objects.filter(accept=pk).first()
    if held is not None:
        return held.id.hex
    sale = row_id_for(me, b"sale/" + pk.encode())

    def write() -> str:
        return Sale.objects.create(
            id=sale, accept=uuid.UUID(hex=pk), outcome=outcome, completion=completion
        ).id.hex

    return _write(thread, write)


def rating_copy(
    thread: Thread,
    *,
    sale: str,
    overall: int,
    as_described: int | None = None,
    communication: int | None = None,
    shipping: int | None = None,
    comment: str = "",
) -> str:
    """Copy this node's member's rating of a deal into the shop, citing its completed sale
    (once; again: the same rating's id)."""
    pk = _id(sale, "sale")
    me = _me(thread)
    with thread_context(thread.thread):
        found = Sale.objects.filter(pk=pk).first()
        accept = Accept.objects.filter(pk=found.accept).first() if found else None
        held = Rating.objects.filter(sale=pk).first()
    if found is None or accept is None or found.outcome not in rules.RATED_OUTCOMES:
        raise ThreadServiceError("conflict", _said(rules.ONLY_BUYER))
    if bytes(accept.buyer) != me:
        raise ThreadServiceError("forbidden", _said(rules.ONLY_BUYER))
    if held is not None:
        return held.id.hex
    cols = {
        "overall": overall,
        "as_described": as_described,
        "communication": communication,
        "shipping": shipping,
        "comment": comment,
    }
    problem = rules.ratings.rating_problem(
        {**cols, "deal": accept.deal, "rater": rules.ratings.BUYER}
    )
    if problem:
        raise ThreadServiceError("invalid", problem)
    rating = row_id_for(me, b"rating/" + pk.encode())

    def write() -> str:
        return Rating.objects.create(id=rating, sale=uuid.UUID(hex=pk), **cols).id.hex

    return _write(thread, write)
