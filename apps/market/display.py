"""What the market's pages and API share: amounts as people type them, money as they read it,
a listing's Markdown made safe, and delivery ("which of the other side's devices hold it") in
words. No writes here; the services decide and refuse."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.urls import reverse
from django.utils.safestring import SafeString

from apps.core import blobs
from apps.core.models import Thread
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.delivery import Holder, delivery_words, rows_delivery
from apps.market import deal_selectors, listing_selectors, selectors
from apps.market.auction import decimals_of, money
from apps.market.listing_shape import ACTIVE
from apps.market.policy import BID, OFFER, STEP
from apps.messaging.attachments import fetch_missing_of
from apps.messaging.selectors import AttachmentView
from apps.timeline.display import said
from apps.timeline.text import render_long

__all__ = ["AmountProblem", "amount_parse", "amount_value", "deliveries", "delivery_words", "said"]

_AMOUNT = re.compile(r"([0-9]{1,13})(?:[.,]([0-9]{1,3}))?")


class AmountProblem(ValueError):
    """An amount a person typed that is not one, as a sentence."""


def amount_parse(text: str, currency: str, what: str = "price") -> int:
    """Minor units of ``currency`` from what a person typed: ``"12.50", "EUR"`` -> 1250;
    ``"1250", "JPY"`` -> 1250. A comma may stand for the point; no thousands separators."""
    typed = (text or "").strip().replace(" ", "")
    if not typed:
        raise AmountProblem(f"Please give the {what}.")
    if typed.startswith("-"):
        raise AmountProblem(f"The {what} cannot be negative.")
    found = _AMOUNT.fullmatch(typed)
    if found is None:
        raise AmountProblem(f"The {what} must be a number, like 12.50.")
    places = decimals_of(currency)
    part = found.group(2) or ""
    if len(part) > places:
        if places == 0:
            raise AmountProblem(f"{currency.upper()} has no cents: give the {what} as a whole.")
        raise AmountProblem(f"The {what} can have at most {places} decimals.")
    return int(found.group(1)) * 10**places + int(part.ljust(places, "0") or 0)


def amount_value(minor: int, currency: str) -> str:
    """The amount as a form shows it to edit: ``1250, "EUR"`` -> ``"12.50"`` (no separators)."""
    return money(minor, currency).split(" ")[0].replace(",", "")


def description_html(text: str) -> SafeString:
    """A listing's Markdown, rendered and sanitised as a long post's (no raw HTML, no images)."""
    return render_long(text or "")


def deliveries(thread: Thread, table: str, pks: Iterable[str]) -> dict[str, list[Holder]]:
    """Which of the other members' devices hold each row (pk as 32 hex digits)."""
    return rows_delivery(thread, table, list(pks))


def delivery_body(holders: list[Holder]) -> list[dict]:
    """The API's ``delivery``: ``[{name, holds}]``, one a device of the other side."""
    return [{"name": h.name, "holds": h.holds} for h in holders]


def shown_money(minor: int | None, currency: str) -> str:
    return "" if minor is None else money(minor, currency)


def step_ids(thread: Thread, count: int) -> list[str]:
    """The ids of a deal's steps in the order ``deal_selectors.deal`` lists them (by the stamp
    of the op that wrote each, then id): its ``StepView`` carries none, and delivery is per row."""
    rows = deal_selectors.step_rows(thread)
    ordered = [pk for pk, _step, _fields, millis in sorted(rows, key=lambda s: (s[3], s[0]))]
    return ordered[:count]


def steps_delivery(thread: Thread, view: deal_selectors.DealView) -> list[list[Holder]]:
    """Each step's delivery to the other sides' devices, in the order of ``view.steps``."""
    ids = step_ids(thread, len(view.steps))
    found = deliveries(thread, STEP, ids)
    return [found.get(pk, []) for pk in ids]


# -- shops and listings ----------------------------------------------------------------------


def served(thread: Thread, photo: listing_selectors.PhotoView) -> AttachmentView:
    """A listing photo in the form messaging's serving functions take (how much of it is here)."""
    size = blobs.HASH
    text = photo.chunks or ""
    try:
        chunks = [bytes.fromhex(text[i : i + 2 * size]) for i in range(0, len(text), 2 * size)]
        key: bytes | None = bytes.fromhex(photo.key)
        damaged = None if chunks and len(text) % (2 * size) == 0 else "its description is damaged"
    except ValueError:
        chunks, key, damaged = [], None, "its description is damaged"
    have = 0 if damaged else len(chunks) - len(blobs.missing(thread.thread, chunks))
    return AttachmentView(
        photo.id, photo.listing, photo.name, photo.mime, photo.size, key, chunks, have, damaged
    )


@dataclass(frozen=True)
class Shown:
    """A listing photo on a page: whether all of it is here yet (else it is being fetched)."""

    id: str
    here: bool


def photos_shown(thread: Thread, photos: list[listing_selectors.PhotoView]) -> list[Shown]:
    """The photos as a page shows them; asks the members for the chunks still missing, so a
    photo not here yet shows as on its way rather than as a broken image."""
    found = []
    for photo in photos:
        file = served(thread, photo)
        if file.damaged is None and not file.complete:
            fetch_missing_of(thread, file)
        found.append(Shown(photo.id, file.complete))
    return found


@dataclass(frozen=True)
class Card:
    """A listing as a shop's grid shows it."""

    id: str
    title: str
    summary: str
    price: str
    place: str
    status: str
    photo: str  # the first photo's id, "" for none
    auction: str  # "best bid 12.00 EUR · ends 3 Mar", "" for a fixed price
    url: str


def card(thread: Thread, item: listing_selectors.ListingView) -> Card:
    photos = [
        p for p in photos_shown(thread, listing_selectors.photos(thread, item.id)[:1]) if p.here
    ]
    found = item.auction
    said = ""
    if found is not None:
        if found.closed:
            said = "auction ended"
        elif found.best_text:
            said = f"best bid {found.best_text}"
        else:
            said = f"bids from {item.price_text}"
    return Card(
        item.id,
        item.title,
        item.summary,
        item.price_text,
        item.place,
        item.status,
        photos[0].id if photos else "",
        said,
        reverse("market:listing", args=[thread.id, item.id]),
    )


def has_winner(item: listing_selectors.ListingView) -> bool:
    return item.auction is not None and item.auction.closed and item.auction.winner is not None


@dataclass(frozen=True)
class Line:
    """An offer or a bid with its delivery in words."""

    row: object
    delivery: str
    delivered: bool


def _lines(thread: Thread, table: str, rows: list) -> list[Line]:
    found = deliveries(thread, table, [r.id for r in rows])
    lines = []
    for row in rows:
        # Whether the other side has it matters to its author; of another's row it would only
        # say that its author's own device holds it.
        holders = found.get(row.id, []) if row.mine else []
        words = delivery_words(holders) if holders else ""
        lines.append(Line(row, words, bool(holders) and all(h.holds for h in holders)))
    return lines


def trade(thread: Thread, item: listing_selectors.ListingView, *, runs_shop: bool) -> dict:
    """A listing's offers and bids, each with its delivery, and what this member may do."""
    found = item.auction
    for_sale = item.status == ACTIVE and thread.state == Thread.State.ACTIVE
    open_auction = found is not None and not found.closed and not found.ended
    return {
        "offers": _lines(thread, OFFER, item.offers),
        "bids": _lines(thread, BID, item.bids),
        "can_offer": for_sale and found is None and not runs_shop and item.available > 0,
        "can_bid": for_sale and open_auction and not runs_shop and not found.best_is_mine,
        "can_accept": runs_shop and for_sale and item.available > 0,
        "can_close": runs_shop and found is not None and not found.closed and found.ended,
        "close_price": shown_money(found.price, item.currency) if found else "",
        "my_maximum": shown_money(found.my_maximum, item.currency) if found else "",
        "deals": _deals(thread, item, runs_shop=runs_shop),
    }


def _deals(thread: Thread, item: listing_selectors.ListingView, *, runs_shop: bool) -> list[dict]:
    """The deals a listing opened that this member may open: all for the shop, the buyer's own."""
    found = []
    for accept in selectors.accepts(thread):
        if accept.listing != item.id or not (runs_shop or accept.buyer_is_me):
            continue
        if accept.buyer_is_me:
            words = f"Your deal: {accept.price_text}"
        else:
            words = f"Sold to {accept.buyer_name} for {accept.price_text}"
        here = app_thread_find(accept.deal) is not None
        url = reverse("market:deal", args=[accept.deal]) if here else ""
        found.append({"words": words, "url": url})
    return found


def shipping_lines(item: listing_selectors.ListingView) -> list[dict]:
    return [
        {"region": s.region, "price": money(s.price, item.currency) if s.price else "free",
         "days": s.days}
        for s in item.shipping
    ]  # fmt: skip
