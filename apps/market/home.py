"""What Home shows of a shop and of a deal: what waits for this member, in words, and the newest
thing in a deal."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.threads.pages import Latest
from apps.market import deal, deal_selectors, listing_selectors, selectors
from apps.market.listing_shape import ACTIVE

# What each step this member may take now asks of them, on Home.
ASKS = {
    deal.PAID: "waiting for your payment",
    deal.SHIPPED: "waiting for you to ship",
    deal.RECEIVED: "say when it arrives",
    deal.RESOLVED: "a dispute for you to resolve",
    deal_selectors.RATE: "rate the deal",
}


def shop_waiting(thread: Thread) -> list[str]:
    """For the shop: offers nobody accepted yet, and auctions that ended but are not closed."""
    if not selectors.i_am_staff(thread):
        return []
    open_offers, to_close = 0, 0
    for item in listing_selectors.listings(thread, status=ACTIVE):
        found = item.auction
        if found is not None and found.ended and not found.closed:
            to_close += 1
        elif found is None:
            open_offers += sum(
                1 for o in listing_selectors.offers(thread, item.id) if not o.accepted
            )
    said = []
    if open_offers:
        said.append(f"{open_offers} offer{'s' if open_offers != 1 else ''} to answer")
    if to_close:
        said.append(f"{to_close} auction{'s' if to_close != 1 else ''} to close")
    return said


def deal_waiting(thread: Thread) -> list[str]:
    view = deal_selectors.deal(thread)
    if view is None:
        return []
    return [ASKS[action] for action in view.actions if action in ASKS]


def deal_latest(thread: Thread) -> Latest | None:
    view = deal_selectors.deal(thread)
    if view is None:
        return None
    said = [(m.at, f"{m.by.capitalize()}: {m.text}") for m in view.messages if m.at]
    said += [(s.at, f"{s.by.capitalize()}: {s.step}") for s in view.steps if s.at]
    if not said:
        return None
    at, text = max(said, key=lambda pair: pair[0])
    return Latest(text[:80], at)
