"""Reads of a shop's listings as pages and the API show them: each with its photos, its
offers (all for staff, a customer's own otherwise), its bids and its auction's state as the rules
fold it, from the rows as ``selectors.py`` reads them. Money comes formatted beside the minor
units; people are named, never shown as keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from apps.core.models import Thread
from apps.core.thread.rowid import member_tag, row_tag
from apps.core.threads.context import thread_context
from apps.core.threads.names import thread_names
from apps.market import auction, listing_shape, rules
from apps.market.auction import AuctionTerms
from apps.market.models import Accept, Listing, Offer, Photo, ProxyBid
from apps.market.policy import LISTING, OFFER
from apps.market.selectors import (
    Auction,
    Written,
    _me,
    _newest,
    auction_of,
    i_am_staff,
    listing_cols,
    listing_row,
    member_of_tag,
    now_ms,
    taken,
    when,
    written,
)

# A listing shows its newest bids, not all: a busy auction's page and the answer to each bid
# stay the same size however many bids it has.
BIDS_SHOWN = 20


@dataclass(frozen=True)
class PhotoView:
    id: str
    listing: str
    position: int
    name: str
    mime: str
    size: int
    key: str  # hex
    chunks: str  # hex chunk hashes, concatenated


@dataclass(frozen=True)
class BidView:
    id: str
    amount: int
    amount_text: str
    bidder: str  # member key, hex
    bidder_name: str
    mine: bool
    at: datetime | None


@dataclass(frozen=True)
class AuctionView:
    terms: AuctionTerms
    best: int | None
    best_text: str
    best_bidder: str | None  # member key, hex
    best_is_mine: bool
    bid_count: int
    minimum: int  # the smallest bid taken next
    minimum_text: str
    ends_at_ms: int  # the end in force (soft close moves it)
    ends_at: datetime | None
    ended: bool  # by this node's clock
    closed: bool
    winner: str | None  # member key, hex (after the close)
    winner_name: str
    winner_is_me: bool
    price: int | None  # the closing price
    reserve_met: bool
    my_maximum: int | None  # this node's proxy maximum (never leaves it)


@dataclass(frozen=True)
class OfferView:
    id: str
    listing: str
    price: int  # for the whole quantity
    price_text: str
    quantity: int
    message: str
    buyer: str  # member key, hex
    buyer_name: str
    mine: bool
    at: datetime | None
    accepted: str | None  # the accept's id
    current: bool  # cites the listing's terms as they stand


@dataclass(frozen=True)
class ListingView:
    id: str
    title: str
    summary: str
    description: str
    price: int
    price_text: str
    currency: str
    category: str
    tags: tuple[str, ...]
    place: str
    lat: float | None
    lon: float | None
    quantity: int
    available: int
    condition: str
    status: str
    shipping: tuple[listing_shape.ShippingOption, ...]
    version: str
    author: str  # member key, hex
    mine: bool
    at: datetime | None
    auction: AuctionView | None
    photos: list[PhotoView] = field(default_factory=list)
    # the newest ``BIDS_SHOWN`` (best first, as amounts grow): ``auction.bid_count`` counts all
    bids: list[BidView] = field(default_factory=list)
    offers: list[OfferView] = field(default_factory=list)  # staff: all; a customer: theirs


def _auction_view(thread: Thread, row: Listing, found: Auction, names) -> AuctionView:
    me = _me(thread)
    terms, state, close = found.terms, found.state, found.close
    best_bidder = member_of_tag(thread, state.best_bidder) if state.best_bidder else None
    winner = bytes(close.winner) if close is not None and close.winner is not None else None
    currency = row.currency
    proxy = ProxyBid.objects.filter(thread=thread.id, listing=row.id.hex).first()
    minimum = auction.minimum_bid(terms, state)
    return AuctionView(
        terms=terms,
        best=state.best_amount,
        best_text=auction.money(state.best_amount, currency) if state.best_amount else "",
        best_bidder=best_bidder.hex() if best_bidder else None,
        best_is_mine=state.best_bidder == member_tag(me).hex(),
        bid_count=state.bid_count,
        minimum=minimum,
        minimum_text=auction.money(minimum, currency),
        ends_at_ms=state.ends_at_ms,
        ends_at=when(min(state.ends_at_ms, auction.MAX_TIME_MS)),
        ended=now_ms() >= state.ends_at_ms,
        closed=close is not None,
        winner=winner.hex() if winner else None,
        winner_name=names.get(winner.hex(), "someone") if winner else "",
        winner_is_me=winner == me,
        price=close.price if close is not None else None,
        reserve_met=close is not None and winner is not None,
        my_maximum=proxy.maximum if proxy else None,
    )


def _listing_view(
    thread: Thread, row: Listing, by: Written | None, names, *, full: bool, took: int | None = None
):
    me = _me(thread)
    cols = listing_cols(row)
    try:
        shape = listing_shape.listing_shape(cols)
        tags, shipping = shape.tags, shape.shipping
    except listing_shape.ListingProblem:  # accepted by older rules: shown without them
        tags, shipping = (), ()
    found = auction_of(thread, row, newest=BIDS_SHOWN if full else 0)
    view = ListingView(
        id=row.id.hex,
        title=row.title,
        summary=row.summary,
        description=row.description,
        price=row.price,
        price_text=auction.money(row.price, row.currency),
        currency=row.currency,
        category=row.category,
        tags=tags,
        place=row.place,
        lat=row.lat,
        lon=row.lon,
        quantity=row.quantity,
        available=max(0, row.quantity - (taken(thread, row.id.hex) if took is None else took)),
        condition=row.condition,
        status=row.status,
        shipping=shipping,
        version=rules.terms_version(cols),
        author=by.member if by else "",
        mine=row_tag(row.id.hex) == member_tag(me),
        at=when(by.stamp_ms) if by else None,
        auction=_auction_view(thread, row, found, names) if found else None,
    )
    if not full:
        return view
    view.photos.extend(photos(thread, row.id.hex))
    view.offers.extend(offers(thread, row.id.hex))
    if found is not None:
        for bid, author in sorted(found.bids, key=lambda pair: -pair[0].amount):
            member = author.member if author else ""
            view.bids.append(
                BidView(
                    id=bid.id.hex,
                    amount=bid.amount,
                    amount_text=auction.money(bid.amount, row.currency),
                    bidder=member,
                    bidder_name=names.get(member, "someone"),
                    mine=member == me.hex(),
                    at=when(author.stamp_ms) if author else None,
                )
            )
    return view


def listings(thread: Thread, *, status: str | None = None) -> list[ListingView]:
    """The shop's listings, newest first (customers and indexers see no drafts)."""
    with thread_context(thread.thread):
        rows = Listing.objects.all()
        if status is not None:
            rows = rows.filter(status=status)
        rows = list(rows)
    if not i_am_staff(thread):
        rows = [r for r in rows if r.status != listing_shape.DRAFT]
    authors = written(thread, LISTING, [r.id.hex for r in rows])
    names = thread_names(thread, me_as="you")
    took: dict[str, int] = {}
    with thread_context(thread.thread):
        for listing_id, quantity in Accept.objects.values_list("listing", "quantity"):
            took[listing_id.hex] = took.get(listing_id.hex, 0) + quantity
    found = [
        _listing_view(
            thread, r, authors.get(r.id.hex), names, full=False, took=took.get(r.id.hex, 0)
        )
        for r in rows
    ]
    return _newest(found)


def listing(thread: Thread, listing: str) -> ListingView | None:
    """One listing with its photos, its newest bids (``BIDS_SHOWN``, best first), auction state
    and the offers I may see."""
    row = listing_row(thread, listing)
    if row is None or (row.status == listing_shape.DRAFT and not i_am_staff(thread)):
        return None
    by = written(thread, LISTING, [row.id.hex]).get(row.id.hex)
    return _listing_view(thread, row, by, thread_names(thread, me_as="you"), full=True)


def photos(thread: Thread, listing: str) -> list[PhotoView]:
    with thread_context(thread.thread):
        rows = list(Photo.objects.filter(listing=uuid.UUID(hex=listing), removed=False))
    return [
        PhotoView(p.id.hex, p.listing.hex, p.position, p.name, p.mime, p.size, p.key, p.chunks)
        for p in sorted(rows, key=lambda p: (p.position, p.id.hex))
    ]


def offers(thread: Thread, listing: str) -> list[OfferView]:
    """A listing's offers, newest first: all of them for staff, a customer's own otherwise."""
    row = listing_row(thread, listing)
    if row is None:
        return []
    me = _me(thread)
    with thread_context(thread.thread):
        rows = list(Offer.objects.filter(listing=row.id))
        accepted = {a.offer.hex: a.id.hex for a in Accept.objects.filter(listing=row.id) if a.offer}
    if not i_am_staff(thread):
        rows = [o for o in rows if row_tag(o.id.hex) == member_tag(me)]
    authors = written(thread, OFFER, [o.id.hex for o in rows])
    names = thread_names(thread, me_as="you")
    version = rules.terms_version(listing_cols(row))
    found = []
    for offer in rows:
        by = authors.get(offer.id.hex)
        member = by.member if by else ""
        found.append(
            OfferView(
                id=offer.id.hex,
                listing=row.id.hex,
                price=offer.price,
                price_text=auction.money(offer.price, row.currency),
                quantity=offer.quantity,
                message=offer.message,
                buyer=member,
                buyer_name=names.get(member, "someone"),
                mine=member == me.hex(),
                at=when(by.stamp_ms) if by else None,
                accepted=accepted.get(offer.id.hex),
                current=offer.version == version,
            )
        )
    return _newest(found)
