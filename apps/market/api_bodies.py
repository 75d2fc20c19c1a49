"""The shop API's answers, built from the selectors' views (with each offer's and bid's delivery
to the other side's devices), and the listing input turned into the services' columns."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from apps.core.models import Thread
from apps.core.threads.app_kit import AppFailed
from apps.core.threads.services import ThreadServiceError
from apps.market import display, listing_selectors, selectors, services, trade_services
from apps.market.display import has_winner
from apps.market.policy import ADMIN, BID, OFFER, OWNER, STAFF

__all__ = ["has_winner", "listing_body", "listing_fields", "runs_shop", "shop_body", "written"]


def runs_shop(thread: Thread) -> bool:
    return thread.role in (OWNER, ADMIN, STAFF)


def shop_links(thread: Thread, roles: tuple[str, ...]) -> dict[str, str]:
    """The open links of ``roles`` this member may hand out (staff invite customers only)."""
    found = {}
    for role in roles:
        try:
            found[role] = services.shop_link(thread, role=role)
        except ThreadServiceError:
            continue
    return found


def winner_deal(thread: Thread, listing: str) -> None:
    """After the shop closed an auction: the winner's deal, unless the node's own duty opened
    it a moment before (the same accept, written once)."""
    found = listing_selectors.listing(thread, listing)
    if found is None or not has_winner(found):
        return
    try:
        trade_services.winner_accept(thread, listing)
    except ThreadServiceError as exc:
        if exc.code != "conflict":
            raise AppFailed(exc) from exc


def shop_body(thread: Thread, shop: selectors.ShopView | None) -> dict[str, Any]:
    score = shop.score if shop else None
    average = score.average if score else None
    return {
        "thread": thread.id,
        "name": shop.name if shop else thread.name,
        "about": shop.about if shop else "",
        "link": shop.link if shop else "",
        "role": thread.role,
        "score": {
            "count": score.count if score else 0,
            "overall": None if average is None else str(average),
        },
        "listings": shop.listings if shop else 0,
    }


def _auction_body(item: listing_selectors.ListingView) -> dict[str, Any] | None:
    found = item.auction
    if found is None:
        return None
    return {
        "best": found.best,
        "best_text": found.best_text,
        "best_bidder": None,
        "minimum_bid": None if found.closed else found.minimum,
        "bids": found.bid_count,
        "ends_at": found.ends_at,
        "closed": found.closed,
        "winner": found.winner_name or None,
        "price": found.price,
    }


def listing_body(
    thread: Thread, item: listing_selectors.ListingView, *, brief: bool = False
) -> dict:
    body: dict[str, Any] = {
        "id": item.id,
        "thread": thread.id,
        "title": item.title,
        "summary": item.summary,
        "description": item.description,
        "price": item.price,
        "price_text": item.price_text,
        "currency": item.currency,
        "category": item.category,
        "tags": list(item.tags),
        "place": item.place,
        "lat": item.lat,
        "lon": item.lon,
        "quantity": item.quantity,
        "available": item.available,
        "condition": item.condition,
        "status": item.status,
        "shipping": [{"region": s.region, "price": s.price, "days": s.days} for s in item.shipping],
        "auction": _auction_body(item),
        "photos": [],
    }
    if brief:
        return body
    body["photos"] = [
        {
            "id": p.id,
            "name": p.name,
            "mime": p.mime,
            "size": p.size,
            "url": reverse("market:photo", args=[thread.id, item.id, p.id]),
        }
        for p in item.photos
    ]
    bids = display.deliveries(thread, BID, [b.id for b in item.bids])
    body["bids"] = [
        {
            "id": b.id,
            "amount": b.amount,
            "amount_text": b.amount_text,
            "bidder": b.bidder_name,
            "mine": b.mine,
            "at": b.at,
            "delivery": display.delivery_body(bids.get(b.id, [])),
        }
        for b in item.bids
    ]
    offers = display.deliveries(thread, OFFER, [o.id for o in item.offers])
    body["offers"] = [
        {
            "id": o.id,
            "price": o.price,
            "price_text": o.price_text,
            "quantity": o.quantity,
            "message": o.message,
            "buyer": o.buyer_name,
            "mine": o.mine,
            "accepted": o.accepted is not None,
            "at": o.at,
            "delivery": display.delivery_body(offers.get(o.id, [])),
        }
        for o in item.offers
    ]
    if item.auction is not None and item.auction.best_text:
        body["auction"]["best_bidder"] = next(
            (b.bidder_name for b in item.bids if b.amount == item.auction.best), None
        )
    return body


def listing_fields(data) -> dict[str, Any]:
    """The services' columns from a valid ``ListingInput`` (only what was given)."""
    fields = dict(data.validated_data)
    auction = fields.pop("auction", "absent")
    if auction is None:
        fields["auction"] = None
    elif auction != "absent":
        minutes = auction.get("soft_close_minutes") or 0
        fields["auction"] = {
            "increment": auction["increment"],
            "reserve": auction.get("reserve"),
            "ends_at_ms": int(auction["ends_at"].timestamp() * 1000),
            "soft_close_ms": minutes * 60_000 if minutes else None,
            "extend_ms": minutes * 60_000,
        }
    if "shipping" in fields:
        fields["shipping"] = [dict(s) for s in fields["shipping"]]
    return fields


def written(thread: Thread, listing: str, **made: str | None) -> dict[str, Any]:
    """The answer to a write in a listing: the row's id and the listing as it stands."""
    found = listing_selectors.listing(thread, listing)
    (row,) = made.values() if made else (None,)
    return {"id": row, "listing": listing_body(thread, found) if found else None}
