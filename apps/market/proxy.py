"""What a node does in its shops on its own (``DutyWorker``), when ops arrive and at auctions'
ends:

- **proxy bidding**: a customer's node bids again, just enough, when someone outbids its
  member, up to the maximum kept on this node (``ProxyBid``, ``proxy_step``);
- **closing auctions**: the node of a listing's author writes the close once the end in force
  has passed (a timer wakes it at that end; reading the shop on every arrival of ops catches a
  node that was off), then opens the winner's deal (``trade_services.winner_accept``).

``on_shop_ops(thread_id)`` is the hook for ``ops_written`` (or call ``on_ops_written`` as a
receiver); ``shops_wake()`` runs every shop's duties (at start). The services these duties use
live here too (``proxy_set``, ``proxy_step``, ``auction_close``: pages and the API call them
here), and write through ``services``, so the rules judge them like any other write.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from apps.core.models import Thread
from apps.core.thread.rowid import member_tag, row_tag
from apps.core.thread.state import ThreadState
from apps.core.threads.duty_worker import DutyWorker, thread_state
from apps.core.threads.services import ThreadServiceError

if TYPE_CHECKING:
    from apps.market.models import Listing

logger = logging.getLogger(__name__)

# A moment after the end in force before closing: the close's stamp must not be before it,
# and a bid stamped just before the end has a moment to arrive first.
CLOSE_AFTER_S = 1.0
# The timer of each auction's end in force, with the terms it was folded under (``_waiting``).
_timers: dict[tuple[bytes, str], tuple[int, str, threading.Timer]] = {}
_lock = threading.Lock()


def _is_shop(state: ThreadState) -> bool:
    from apps.market.policy import RULES_APP

    return RULES_APP in state.apps


def _duty(thread: Thread) -> None:
    shop_duties(thread)


worker = DutyWorker("market-shop", _is_shop, _duty, settle_s=0.05)
on_ops_written = worker.on_ops_written


def on_shop_ops(thread_id: bytes) -> None:
    """Ops were written in a thread: if it is a shop, run its duties soon (never inside the
    writer)."""
    try:
        if not _is_shop(thread_state(thread_id)):
            return
    except Exception:  # a hook must never fail whoever wrote
        return
    worker.wake(thread_id)


# -- proxy bidding and closing (services: the pages and the API call them here) --------------


def proxy_set(thread: Thread, listing: str, maximum: Any) -> str | None:
    """Keep a maximum for an auction on this node (it never leaves it) and bid just enough now
    if someone else has the best bid; this node bids again when outbid (``proxies``), up to
    the maximum. Returns the bid written now, if any."""
    from apps.market import auction, rules
    from apps.market import trade_services as t
    from apps.market.models import ProxyBid

    t._customer(thread, rules.OWN_AUCTION)
    row = t._for_trade(thread, listing)
    found = t._auction(thread, row)
    maximum = t._amount(maximum, "maximum")
    me = rules.bidder_of(bytes.fromhex(thread.member_id))
    least = auction.minimum_bid(found.terms, found.state)
    if found.state.best_bidder != me and maximum < least:
        raise ThreadServiceError(
            "invalid",
            f"Your maximum is below the smallest bid the auction takes now, "
            f"{auction.money(least, row.currency)}.",
        )
    ProxyBid.objects.update_or_create(
        thread=thread.id, listing=row.id.hex, defaults={"maximum": maximum}
    )
    return proxy_step(thread, row)


def proxy_step(thread: Thread, row: Listing) -> str | None:
    """The bid this node's proxy places now, if any (someone else is best and the next bid is
    within the maximum, before the end)."""
    from apps.market import auction, listing_shape, rules, selectors, trade_services
    from apps.market.models import ProxyBid

    proxy = ProxyBid.objects.filter(thread=thread.id, listing=row.id.hex).first()
    found = selectors.auction_of(thread, row)
    if proxy is None or found is None or found.close is not None:
        return None
    if selectors.now_ms() >= found.state.ends_at_ms or row.status != listing_shape.ACTIVE:
        return None
    me = rules.bidder_of(bytes.fromhex(thread.member_id))
    amount = auction.proxy_next_bid(found.terms, found.state, proxy.maximum, me)
    return None if amount is None else trade_services.bid_make(thread, row.id.hex, amount)


def auction_close(thread: Thread, listing: str) -> str:
    """End an auction whose end in force has passed, naming its winner and price."""
    from apps.market import auction, selectors
    from apps.market import services as s
    from apps.market import trade_services as t
    from apps.market.models import Close

    s._staff(thread, "close auctions")
    row = s._listing(thread, listing)
    found = t._auction(thread, row)
    problem = auction.close_problem(found.state, selectors.now_ms())
    if problem:
        raise ThreadServiceError("conflict", problem)
    result = auction.outcome(found.terms, found.state)
    winner = None
    if result.winner is not None:
        winner = selectors.member_of_tag(thread, result.winner)
        if winner is None:  # cannot be: the bid's author is a member this node knows
            raise ThreadServiceError("conflict", "The best bidder is not known here yet.")

    def close() -> str:
        return Close.objects.create(scope=row.id, winner=winner, price=result.price).id.hex

    return s._write(thread, close)


# -- the duties ----------------------------------------------------------------------------------


def _wake_at(thread: Thread, listing: str, version: str, ends_at_ms: int) -> None:
    """Run this shop's duties again just after an auction's end in force (once per end), as
    folded under the terms ``version``."""
    from apps.market.selectors import now_ms

    key = (thread.thread, listing)
    with _lock:
        held = _timers.get(key)
        if held is not None and held[:2] == (ends_at_ms, version) and held[2].is_alive():
            return
        if held is not None:
            held[2].cancel()
        delay = max(0.0, (ends_at_ms - now_ms()) / 1000) + CLOSE_AFTER_S
        timer = threading.Timer(delay, worker.wake, args=(thread.thread,))
        timer.daemon = True
        _timers[key] = (ends_at_ms, version, timer)
        timer.start()


def _waiting(thread: Thread, listing: str, version: str) -> bool:
    """A timer wakes the duties at this auction's end, folded under the terms as they stand, and
    that end is still to come: nothing to fold now. Bids only move the end later (a soft close),
    which the fold at the timer finds; changed terms fold again."""
    from apps.market.selectors import now_ms

    with _lock:
        held = _timers.get((thread.thread, listing))
    if held is None or held[1] != version or not held[2].is_alive():
        return False
    return now_ms() < held[0] + CLOSE_AFTER_S * 1000


def closes_due(thread: Thread) -> list[str]:
    """Close the auctions of listings this node's member wrote whose end in force has passed,
    and open their winners' deals; wake again at the ends still to come. Returns the closes
    written."""
    from apps.core.threads.context import thread_context
    from apps.market import rules, selectors, trade_services
    from apps.market.listing_shape import ACTIVE
    from apps.market.models import Accept, Close, Listing

    if not selectors.i_am_staff(thread):
        return []
    mine = member_tag(bytes.fromhex(thread.member_id))
    with thread_context(thread.thread):
        rows = [
            r
            for r in Listing.objects.exclude(auction="").filter(status=ACTIVE)
            if row_tag(r.id.hex) == mine
        ]
        closed = {c.scope.hex: c for c in Close.objects.filter(scope__in=[r.id for r in rows])}
        accepted = set(
            Accept.objects.filter(offer=None, listing__in=[r.id for r in rows]).values_list(
                "listing", flat=True
            )
        )
    written = []
    for row in rows:
        close = closed.get(row.id.hex)
        if close is None:
            version = rules.terms_version(selectors.listing_cols(row))
            if _waiting(thread, row.id.hex, version):
                continue
            found = selectors.auction_of(thread, row)
            if found is None:
                continue
            if selectors.now_ms() < found.state.ends_at_ms + CLOSE_AFTER_S * 1000:
                _wake_at(thread, row.id.hex, version, found.state.ends_at_ms)
                continue
            try:
                written.append(auction_close(thread, row.id.hex))
            except ThreadServiceError as exc:
                logger.info("market: no close for a listing yet: %s", exc)
                continue
            with thread_context(thread.thread):
                close = Close.objects.filter(scope=row.id).first()
        if close is not None and close.winner is not None and row.id not in accepted:
            if row_tag(close.id.hex) != mine:
                continue  # its author's node opens the deal
            try:
                trade_services.winner_accept(thread, row.id.hex)
            except ThreadServiceError as exc:
                logger.info("market: the winner's deal is not open yet: %s", exc)
    return written


def proxies(thread: Thread) -> list[str]:
    """This node's proxy bids in the shop: bid again where someone outbid its member."""
    from apps.market import selectors
    from apps.market.models import ProxyBid

    placed = []
    for proxy in ProxyBid.objects.filter(thread=thread.id):
        row = selectors.listing_row(thread, proxy.listing)
        if row is None:
            continue  # not here yet
        found = selectors.auction_of(thread, row)
        if found is None or found.close is not None:
            proxy.delete()  # the auction is over: the maximum is kept no longer
            continue
        try:
            bid = proxy_step(thread, row)
        except ThreadServiceError as exc:  # outbid meanwhile: the next ops try again
            logger.info("market: a proxy bid was not placed: %s", exc)
            continue
        if bid is not None:
            placed.append(bid)
    return placed


def shop_duties(thread: Thread) -> None:
    proxies(thread)
    closes_due(thread)


def shops_wake() -> None:
    """Run every shop's duties soon: at start, the timers of auctions' ends are gone, and an
    auction that ended while the node was off is closed now."""
    from apps.market.policy import SHOP_APP

    for thread in Thread.objects.filter(app=SHOP_APP, state=Thread.State.ACTIVE):
        worker.wake(bytes.fromhex(thread.id))
