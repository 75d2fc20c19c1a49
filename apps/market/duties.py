"""What a node does in its shops and deals on its own, when ops arrive (``DutyWorker``):

- **the buyer joins**: an accept in a shop names this member as the buyer, and this node has
  no thread for its deal yet: open the invite sealed to this member and redeem it, as the Join
  page does. Once per accept: a failure is remembered (and logged), never tried in a loop.
- **the seller records the sale**: a deal this node owns reached a final step (completed,
  cancelled, resolved): record it in the shop (``trade_services.sale_record``), citing the hash of
  the op that wrote the final step. Once (the shop says whether it has the sale already).
- **the buyer's rating reaches the shop**: the buyer rated the deal and the shop has its sale:
  copy the rating into the shop (``trade_services.rating_copy``), where anyone can check it. Once.

What was tried is remembered per process: a node started again tries once more, no more.
"""

from __future__ import annotations

import logging
from typing import Any

from apps.core.models import Thread
from apps.core.thread.policy import OWNER
from apps.core.thread.state import ThreadState
from apps.core.threads.context import thread_context
from apps.core.threads.duty_worker import DutyWorker
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError

logger = logging.getLogger(__name__)

_joined: set[str] = set()  # accepts whose deal invite this process redeemed (or tried to)
_recorded: set[str] = set()  # deal threads whose end this process recorded in the shop
_copied: set[str] = set()  # sales whose rating this process copied into the shop


def forget() -> None:
    """Try everything again (tests; a node starting afresh does the same)."""
    _joined.clear()
    _recorded.clear()
    _copied.clear()


def _wanted(state: ThreadState) -> bool:
    from apps.market.policy import DEAL_APP, SHOP_APP

    return state.app in (SHOP_APP, DEAL_APP)


def _duty(thread: Thread) -> None:
    from apps.market.policy import DEAL_APP, SHOP_APP

    if thread.app == SHOP_APP:
        buyer_join(thread)
        for deal in _my_deals_in(thread):
            rating_copy(deal)
    elif thread.app == DEAL_APP:
        sale_record(thread)
        rating_copy(thread)


def _active(thread_id: str) -> Thread | None:
    return Thread.objects.filter(pk=thread_id, state=Thread.State.ACTIVE).first()


# -- the buyer joins -----------------------------------------------------------------------------


def _accepts_for_me(shop: Thread) -> list[Any]:
    from apps.market.models import Accept

    me = bytes.fromhex(shop.member_id)
    with thread_context(shop.thread):
        return list(Accept.objects.filter(buyer=me))


def _my_deals_in(shop: Thread) -> list[Thread]:
    found = (_active(accept.deal) for accept in _accepts_for_me(shop))
    return [thread for thread in found if thread is not None]


def buyer_join(shop: Thread) -> list[str]:
    """Redeem the deal invites sealed to this member in ``shop`` that this node has no thread
    for. Returns the deal threads joined now (hex)."""
    from apps.core.threads import services as threads
    from apps.market import deal_services

    joined = []
    for accept in _accepts_for_me(shop):
        key = accept.id.hex
        if key in _joined or Thread.objects.filter(pk=accept.deal).exists():
            continue
        _joined.add(key)
        link = deal_services.invite_open(shop, bytes(accept.invite))
        if link is None:
            logger.warning("market: the deal invite of accept %s does not open here", key)
            continue
        try:
            thread = threads.invite_redeem(link=link)
        except ThreadServiceError as exc:
            logger.warning("market: joining the deal of accept %s failed: %s", key, exc)
            continue
        joined.append(thread.id)
    return joined


# -- the seller records the sale -----------------------------------------------------------------


def final_step_op(deal: Thread) -> str | None:
    """The hash (hex) of the op that wrote the deal's final step, or None if it has none."""
    from apps.market.deal import FINAL
    from apps.market.deal_selectors import step_rows
    from apps.market.policy import STEP

    finals = sorted((stamp, pk) for pk, step, _f, stamp in step_rows(deal) if step in FINAL)
    if not finals:
        return None
    row = (
        thread_database(deal.thread)
        .raw()
        .execute(
            "SELECT o.hash FROM sereus_rowevents e JOIN sereus_ops o"
            " ON o.device = e.device AND o.seq = e.seq AND o.place = 'log'"
            " WHERE e.tbl = ? AND e.pk = ? ORDER BY e.hlc LIMIT 1",
            (STEP, finals[0][1]),
        )
        .fetchone()
    )
    return bytes(row[0]).hex() if row else None


def _shop_has_sale(shop: Thread, accept: str) -> bool:
    from apps.market.models import Sale

    with thread_context(shop.thread):
        return Sale.objects.filter(accept=accept).exists()


def sale_record(deal: Thread) -> str | None:
    """The seller's node records in the shop how its deal ended, once. Returns the sale's id
    when it wrote it now."""
    from apps.market import trade_services
    from apps.market.deal_selectors import deal_folded, deal_terms

    if deal.role != OWNER or deal.id in _recorded:
        return None
    folded, terms = deal_folded(deal), deal_terms(deal)
    if folded is None or terms is None or not folded.state.final:
        return None
    shop = _active(str(terms["shop"]))
    if shop is None or _shop_has_sale(shop, terms["accept"]):
        return None
    completion = final_step_op(deal)
    if completion is None:
        return None
    _recorded.add(deal.id)
    try:
        return trade_services.sale_record(
            shop, accept=terms["accept"], outcome=folded.state.state, completion=completion
        )
    except ThreadServiceError as exc:
        logger.warning("market: recording the end of deal %s failed: %s", deal.id, exc)
        return None


# -- the buyer's rating reaches the shop ---------------------------------------------------------


def rating_copy(deal: Thread) -> str | None:
    """Copy this member's rating of ``deal`` into its shop once the shop has the deal's sale,
    once. Returns the shop rating's id when it wrote it now."""
    from apps.market import deal_rules, trade_services
    from apps.market.deal_selectors import deal_terms
    from apps.market.models import DealRating, Rating, Sale
    from apps.market.ratings import ASPECTS

    if deal_rules.deal_role(deal.role) != "buyer":
        return None
    terms = deal_terms(deal)
    shop = _active(str(terms["shop"])) if terms else None
    if terms is None or shop is None:
        return None
    with thread_context(deal.thread):
        mine = DealRating.objects.filter(
            pk=deal_rules.rating_id(bytes.fromhex(deal.member_id))
        ).first()
    with thread_context(shop.thread):
        sale = Sale.objects.filter(accept=terms["accept"]).first()
        copied = sale is not None and Rating.objects.filter(sale=sale.id).exists()
    if mine is None or sale is None or copied or sale.id.hex in _copied:
        return None
    _copied.add(sale.id.hex)
    try:
        given = {name: getattr(mine, name) for name in ("overall", *ASPECTS, "comment")}
        return trade_services.rating_copy(shop, sale=sale.id.hex, **given)
    except ThreadServiceError as exc:
        logger.warning("market: copying the rating of deal %s failed: %s", deal.id, exc)
        return None


# Nothing here is waited for at once: a moment's settling lets the write that woke it finish.
worker = DutyWorker("market-deal-duties", _wanted, _duty, settle_s=0.05)
on_ops_written = worker.on_ops_written
