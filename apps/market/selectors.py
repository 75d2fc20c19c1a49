"""Reads of shops, as this node holds them: the rows every replica accepted (the thread's
database holds no others), with who wrote them and when from the signed ops
(``sereus_rowevents``). An auction's state is folded the way the rules fold it
(``rules.bid_fold``), so what a page shows is what the next bid is judged against.

Here: the rows as the rules read them, the shop, and its deals' records (accepts, sales,
ratings); listings as pages show them (photos, offers, bids, auctions) are in
``listing_selectors.py``.

Money comes formatted (``auction.money``) beside the minor units; people are named
(``names.thread_names``), never shown as keys."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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
from apps.market.models import Accept, Bid, Close, Listing, Rating, Sale
from apps.market.models import Shop as ShopRow
from apps.market.policy import (
    ACCEPT,
    ADMIN,
    BID,
    CUSTOMER,
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
    """A listing's auction as the rules see it now, with its newest bids (best first: amounts
    of accepted bids increase in the thread's order), as many as asked."""

    terms: AuctionTerms
    state: AuctionState
    close: Close | None
    bids: list[tuple[Bid, Written | None]]


PAGE = 20  # bids read at a time while folding, best first


def _best_first(thread: Thread, listing: uuid.UUID) -> Iterator[tuple[int, str]]:
    """A listing's bids (amount, id hex), best first, a page at a time as the fold reads on."""
    start = 0
    while True:
        with thread_context(thread.thread):
            page = list(
                Bid.objects.filter(listing=listing)
                .order_by("-amount", "-id")
                .values_list("amount", "id")[start : start + PAGE]
            )
        yield from ((amount, pk.hex) for amount, pk in page)
        if len(page) < PAGE:
            return
        start += PAGE


def auction_of(thread: Thread, row: Listing, *, newest: int = 0) -> Auction | None:
    """The listing's auction (None: it is not one), folded as the rules fold it
    (``rules.bid_fold_best_first``) from the best bid, and under a soft close the stamps of
    the latest; with its ``newest`` bids and who wrote them."""
    terms = rules.auction_terms(listing_cols(row))
    if terms is None:
        return None
    with thread_context(thread.thread):
        count = Bid.objects.filter(listing=row.id).count()
        close = Close.objects.filter(scope=row.id).first()
        newest_first = Bid.objects.filter(listing=row.id).order_by("-amount", "-id")
        bids = list(newest_first[:newest]) if newest > 0 else []
    stamps: dict[str, int | None] = {}

    def stamp(pk: str) -> int | None:
        if pk not in stamps:
            by = written(thread, BID, [pk]).get(pk)
            stamps[pk] = by.stamp_ms if by else None
        return stamps[pk]

    state = rules.bid_fold_best_first(terms, count, _best_first(thread, row.id), stamp)
    authors = written(thread, BID, [b.id.hex for b in bids])
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
