"""Reads of shops, as this node holds them: the rows every replica accepted (the thread's
database holds no others), with who wrote them and when from the signed ops
(``sereus_rowevents``). An auction's state is folded the way the rules fold it
(``rules.bid_fold``), so what a page shows is what the next bid is judged against.

Money comes formatted (``auction.money``) beside the minor units; people are named
(``names.thread_names``), never shown as keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connections

from apps.core.models import Thread
from apps.core.thread.rowid import member_tag, row_tag
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.context import thread_context
from apps.core.threads.names import thread_names
from apps.core.threads.registry import thread_database
from apps.core.threads.store import stamp_parse
from apps.market import auction, listing_shape, rules
from apps.market import ratings as rating_rules
from apps.market.auction import AuctionState, AuctionTerms
from apps.market.models import Accept, Bid, Close, Listing, Offer, Photo, ProxyBid, Rating, Sale
from apps.market.models import Shop as ShopRow
from apps.market.policy import (
    ACCEPT,
    ADMIN,
    BID,
    CUSTOMER,
    LISTING,
    OFFER,
    OWNER,
    RATING,
    SALE,
    SHOP_APP,
    STAFF,
)

STAFF_ROLES = (OWNER, ADMIN, STAFF)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def when(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


# -- the rows as the rules read them -------------------------------------------------------------


def listing_cols(row: Listing) -> dict:
    """A listing as its op's columns hold it (``"pk"`` included): what ``rules`` reads."""
    return {
        "pk": row.id.hex,
        **{
            f.attname: getattr(row, f.attname)
            for f in Listing._meta.concrete_fields
            if f.attname != "id"
        },
    }


@dataclass(frozen=True)
class Written:
    """Who wrote a row (member key, hex) and when (ms of its op's stamp)."""

    member: str
    stamp_ms: int


def written(thread: Thread, table: str, pks: Iterable[str] | None = None) -> dict[str, Written]:
    """The first accepted write of each row of ``table`` (or of the rows named): its author and
    stamp."""
    wanted = None if pks is None else list(pks)
    if wanted == []:
        return {}
    sql = "SELECT pk, hlc, member FROM sereus_rowevents WHERE tbl = %s"
    args: list = [table]
    if wanted is not None:
        sql += f" AND pk IN ({','.join('%s' for _ in wanted)})"
        args += wanted
    found: dict[str, Written] = {}
    with connections[thread_database(thread.thread).alias].cursor() as cursor:
        cursor.execute(sql, args)
        for pk, hlc, member in cursor.fetchall():
            stamp = stamp_parse(bytes(hlc))[0].millis
            key = str(pk)
            held = found.get(key)
            if held is None or stamp < held.stamp_ms:
                found[key] = Written(bytes(member).hex() if member else "", stamp)
    return found


def _me(thread: Thread) -> bytes:
    return bytes.fromhex(thread.member_id)


def i_am_staff(thread: Thread) -> bool:
    return thread.role in STAFF_ROLES


def listing_row(thread: Thread, listing: str) -> Listing | None:
    try:
        pk = uuid.UUID(hex=str(listing))
    except ValueError:
        return None
    with thread_context(thread.thread):
        return Listing.objects.filter(pk=pk).first()


def taken(thread: Thread, listing: str) -> int:
    """What accepted offers took from a listing."""
    with thread_context(thread.thread):
        return sum(a.quantity for a in Accept.objects.filter(listing=uuid.UUID(hex=listing)))


@dataclass(frozen=True)
class Auction:
    """A listing's auction as the rules see it now."""

    terms: AuctionTerms
    state: AuctionState
    close: Close | None
    bids: list[tuple[Bid, Written | None]]


def auction_of(thread: Thread, row: Listing) -> Auction | None:
    terms = rules.auction_terms(listing_cols(row))
    if terms is None:
        return None
    with thread_context(thread.thread):
        bids = list(Bid.objects.filter(listing=row.id))
        close = Close.objects.filter(scope=row.id).first()
    authors = written(thread, BID, [b.id.hex for b in bids])
    folded = [(bid.amount, bid.id.hex) for bid in bids]
    state = rules.bid_fold(
        terms, folded, lambda pk: authors[pk].stamp_ms if pk in authors else None
    )
    return Auction(terms, state, close, [(b, authors.get(b.id.hex)) for b in bids])


def member_of_tag(thread: Thread, tag: str) -> bytes | None:
    """The member key a row tag (hex) names in this thread."""
    with connections[thread_database(thread.thread).alias].cursor() as cursor:
        cursor.execute("SELECT member FROM sereus_members WHERE tag = %s", [tag])
        found = cursor.fetchone()
    return bytes(found[0]) if found else None


# -- views ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShopView:
    thread: Thread
    name: str
    about: str
    link: str  # the customers' open link, as the shop states it
    score: rating_rules.Score
    role: str  # mine: owner, admin, staff, customer, indexer, reader
    listings: int  # active listings


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
    bids: list[BidView] = field(default_factory=list)  # newest first
    offers: list[OfferView] = field(default_factory=list)  # staff: all; a customer: theirs


@dataclass(frozen=True)
class SaleView:
    id: str
    accept: str
    outcome: str
    completion: str
    at: datetime | None


@dataclass(frozen=True)
class AcceptView:
    id: str
    listing: str
    listing_title: str
    offer: str | None  # None: an auction's winner
    buyer: str  # member key, hex
    buyer_name: str
    buyer_is_me: bool
    price: int
    price_text: str
    quantity: int
    deal: str  # the deal thread's id, hex
    invite: bytes  # the deal's link, sealed to the buyer
    mine: bool  # this node's member accepted it
    at: datetime | None
    sale: SaleView | None


@dataclass(frozen=True)
class RatingView:
    id: str
    sale: str
    overall: int
    as_described: int | None
    communication: int | None
    shipping: int | None
    comment: str
    buyer: str
    buyer_name: str
    at: datetime | None


def _newest(found: list) -> list:
    """Views newest first (by their op's stamp; the id breaks a tie)."""
    return sorted(
        found, key=lambda v: (v.at or datetime.min.replace(tzinfo=UTC), v.id), reverse=True
    )


def thread_find(thread_id: str) -> Thread | None:
    thread = app_thread_find(thread_id)
    return thread if thread is not None and thread.app == SHOP_APP else None


def my_shops() -> list[Thread]:
    """Shops this node's member runs (owner, admin, staff)."""
    found = Thread.objects.filter(app=SHOP_APP, role__in=STAFF_ROLES)
    return list(found.exclude(state=Thread.State.LEFT).order_by("name"))


def followed_shops() -> list[Thread]:
    """Shops this node joined as a customer."""
    found = Thread.objects.filter(app=SHOP_APP, role=CUSTOMER)
    return list(found.exclude(state=Thread.State.LEFT).order_by("name"))


def shop(thread: Thread) -> ShopView | None:
    with thread_context(thread.thread):
        row = ShopRow.objects.filter(pk=rules.SHOP_ID).first()
        active = Listing.objects.filter(status=listing_shape.ACTIVE).count()
    if row is None:
        return None
    return ShopView(thread, row.name, row.about, row.link, score(thread), thread.role, active)


def score(thread: Thread) -> rating_rules.Score:
    """The seller's score, from the shop's rating rows alone: every one the rules accepted
    cites a completed sale of its author (``ratings.seller_score`` counts one per deal)."""
    with thread_context(thread.thread):
        rows = list(Rating.objects.all())
        deal_of_sale = {s.id: s.accept for s in Sale.objects.filter(id__in=[r.sale for r in rows])}
        deals = {a.id: a.deal for a in Accept.objects.filter(id__in=deal_of_sale.values())}
    stamps = written(thread, RATING, [r.id.hex for r in rows])
    found = []
    for r in rows:
        deal = deals.get(deal_of_sale.get(r.sale))
        if deal is None:
            continue
        found.append(
            rating_rules.Rating(
                deal=deal,
                rater=rating_rules.BUYER,
                overall=r.overall,
                as_described=r.as_described,
                communication=r.communication,
                shipping=r.shipping,
                comment=r.comment,
                given_ms=stamps[r.id.hex].stamp_ms if r.id.hex in stamps else 0,
            )
        )
    return rating_rules.seller_score(found)


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
    found = auction_of(thread, row)
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
    """One listing with its photos, bids (best first), auction state and the offers I may see."""
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


def sales(thread: Thread) -> list[SaleView]:
    with thread_context(thread.thread):
        rows = list(Sale.objects.all())
    authors = written(thread, SALE, [s.id.hex for s in rows])
    return [
        SaleView(
            s.id.hex,
            s.accept.hex,
            s.outcome,
            s.completion,
            when(authors[s.id.hex].stamp_ms) if s.id.hex in authors else None,
        )
        for s in rows
    ]


def accepts(thread: Thread) -> list[AcceptView]:
    """The shop's accepted offers and auction winners, newest first, with how each deal ended."""
    me = _me(thread)
    with thread_context(thread.thread):
        rows = list(Accept.objects.all())
        titles = {
            l.id.hex: (l.title, l.currency)
            for l in Listing.objects.filter(id__in=[a.listing for a in rows])  # noqa: E741
        }
    ended = {s.accept: s for s in sales(thread)}
    authors = written(thread, ACCEPT, [a.id.hex for a in rows])
    names = thread_names(thread, me_as="you")
    found = []
    for a in rows:
        title, currency = titles.get(a.listing.hex, ("", ""))
        buyer = bytes(a.buyer).hex()
        by = authors.get(a.id.hex)
        found.append(
            AcceptView(
                id=a.id.hex,
                listing=a.listing.hex,
                listing_title=title,
                offer=a.offer.hex if a.offer else None,
                buyer=buyer,
                buyer_name=names.get(buyer, "someone"),
                buyer_is_me=buyer == me.hex(),
                price=a.price,
                price_text=auction.money(a.price, currency or None),
                quantity=a.quantity,
                deal=a.deal,
                invite=bytes(a.invite),
                mine=row_tag(a.id.hex) == member_tag(me),
                at=when(by.stamp_ms) if by else None,
                sale=ended.get(a.id.hex),
            )
        )
    return _newest(found)


def ratings(thread: Thread) -> list[RatingView]:
    """The shop's ratings (every one the rules accepted cites a completed sale of its buyer)."""
    with thread_context(thread.thread):
        rows = list(Rating.objects.all())
    authors = written(thread, RATING, [r.id.hex for r in rows])
    names = thread_names(thread, me_as="you")
    found = []
    for r in rows:
        by = authors.get(r.id.hex)
        member = by.member if by else ""
        found.append(
            RatingView(
                id=r.id.hex,
                sale=r.sale.hex,
                overall=r.overall,
                as_described=r.as_described,
                communication=r.communication,
                shipping=r.shipping,
                comment=r.comment,
                buyer=member,
                buyer_name=names.get(member, "someone"),
                at=when(by.stamp_ms) if by else None,
            )
        )
    return _newest(found)


def shop_link_stated(thread: Thread) -> str:
    with thread_context(thread.thread):
        row = ShopRow.objects.filter(pk=rules.SHOP_ID).first()
    return row.link if row else ""
