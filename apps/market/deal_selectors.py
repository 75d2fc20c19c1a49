"""Reads of deals: the terms, the state folded from the accepted steps exactly as the rules fold
them (``deal_rules.fold``: in the places the steps state, with the stamps of the ops that wrote
them), who wrote each step and when, what this member may do now, the chat, the escrow release
and the ratings. Who wrote a row is the member its id names, never a column."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connections

from apps.core.models import Thread
from apps.core.thread.rowid import row_tag
from apps.core.threads.app_kit import app_enabled, row_owners
from apps.core.threads.context import thread_context
from apps.core.threads.names import thread_names
from apps.core.threads.registry import thread_database
from apps.core.threads.store import stamp_parse
from apps.market import deal as machine
from apps.market import deal_rules
from apps.market.deal import STEPS, DealState
from apps.market.deal_rules import Folded
from apps.market.models import Deal, DealMessage, DealRating, Release, Step
from apps.market.policy import DEAL_APP, DEAL_ROLE_WORDS, DEAL_RULES_APP

# Fields that let ``step_problem`` judge only who may take a step now (not what they type).
_SAMPLE = {
    machine.SHIPPED: {"carrier": "-", "tracking": "-"},
    machine.DISPUTED: {"reason": "-"},
    machine.RESOLVED: {"outcome": machine.RELEASE},
}
RELEASE, RATE = "release", "rate"  # actions besides the steps


@dataclass(frozen=True)
class StepView:
    step: str
    side: str  # buyer, seller, escrow, shipper
    by: str  # the author's name ("you" for this member)
    at: datetime
    fields: dict[str, Any]
    id: str = ""  # the step row's id, hex (for its delivery; never shown)


@dataclass(frozen=True)
class MessageView:
    id: str
    text: str
    by: str
    mine: bool
    at: datetime | None


@dataclass(frozen=True)
class RatingView:
    side: str  # who gave it: buyer or seller
    by: str
    mine: bool
    overall: int
    as_described: int | None
    communication: int | None
    shipping: int | None
    comment: str


@dataclass
class DealView:
    thread: Thread
    title: str
    shop: str  # the shop thread's id, hex
    listing: str
    accept: str
    price: int
    currency: str
    quantity: int
    silent_days: int
    state: DealState
    my_side: str | None  # buyer, seller, escrow, shipper (None: no part in it)
    my_side_words: str
    steps: list[StepView] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # steps (and release, rate) I may take now
    messages: list[MessageView] = field(default_factory=list)
    ratings: list[RatingView] = field(default_factory=list)
    released_by: list[str] = field(default_factory=list)  # sides whose releases count now
    released: bool = False
    # For the buyer of a deal that ended: whether the seller's shop recorded the sale (ratings
    # in the shop cite it); None when it did not end, or the shop is not on this node.
    sale_recorded: bool | None = None

    @property
    def id(self) -> str:
        return self.thread.id


def is_deal(thread: Thread) -> bool:
    """Whether the deal's tables are enabled in ``thread`` (a deal thread)."""
    return thread.app == DEAL_APP and app_enabled(thread, DEAL_RULES_APP)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _stamps(thread: Thread, table: str) -> dict[str, int]:
    """Row id -> the millisecond stamp of the op that wrote it (rows written once)."""
    with connections[thread_database(thread.thread).alias].cursor() as cursor:
        cursor.execute(
            "SELECT pk, min(hlc) FROM sereus_rowevents WHERE tbl = %s GROUP BY pk", [table]
        )
        return {str(pk): stamp_parse(bytes(hlc))[0].millis for pk, hlc in cursor.fetchall()}


def _at(millis: int | None) -> datetime | None:
    return None if millis is None else datetime.fromtimestamp(millis / 1000, tz=UTC)


def deal_terms(thread: Thread) -> dict[str, Any] | None:
    """The deal's terms as the rules read them (ids as hex), or None before it is opened."""
    with thread_context(thread.thread):
        row = Deal.objects.first()
    if row is None:
        return None
    values = {column: getattr(row, column) for column in deal_rules.TERMS}
    return values | {"listing": row.listing.hex, "accept": row.accept.hex}


def step_rows(thread: Thread) -> list[tuple[str, str, str, int]]:
    """The deal's accepted steps: (id, step, fields JSON, stamp in ms)."""
    with thread_context(thread.thread):
        rows = list(Step.objects.values_list("id", "step", "fields"))
    stamps = _stamps(thread, Step._meta.db_table)
    return [(pk.hex, step, fields, stamps.get(pk.hex, 0)) for pk, step, fields in rows]


def deal_folded(thread: Thread) -> Folded | None:
    """The deal as this node's replica has it, or None before it is opened."""
    with thread_context(thread.thread):
        if not Deal.objects.exists():
            return None
    return deal_rules.fold(step_rows(thread))


def _actions(state: DealState, side: str | None) -> list[str]:
    if side is None:
        return []
    now = _now_ms()
    return [
        step
        for step in STEPS
        if step != machine.ACCEPTED
        and machine.step_problem(state, step, side, _SAMPLE.get(step, {}), now) is None
    ]


def _release_rows(thread: Thread) -> list[Mapping[str, Any]]:
    with thread_context(thread.thread):
        return [
            {"pk": r.id.hex, "digest": bytes(r.digest), "signer": bytes(r.signer)}
            for r in Release.objects.all()
        ]


def _messages(
    thread: Thread, name_of: Callable[[str], str], owners: Mapping[str, str]
) -> list[MessageView]:
    """The chat, oldest first."""
    with thread_context(thread.thread):
        rows = list(DealMessage.objects.all())
    stamps = _stamps(thread, DealMessage._meta.db_table)
    found = [
        MessageView(
            m.id.hex,
            m.text,
            name_of(m.id.hex),
            owners.get((row_tag(m.id.hex) or b"").hex()) == thread.member_id,
            _at(stamps.get(m.id.hex)),
        )
        for m in rows
    ]
    found.sort(key=lambda m: (m.at or _at(0), m.id))
    return found


def _ratings(thread: Thread, folded: Folded, name_of: Callable[[str], str]) -> list[RatingView]:
    with thread_context(thread.thread):
        rows = list(DealRating.objects.order_by("id"))
    mine = deal_rules.rating_id(bytes.fromhex(thread.member_id)) if thread.member_id else ""
    found = []
    for r in rows:
        tag = row_tag(r.id.hex)
        side = next((s for s in machine.ROLES if folded.members.get(s) == tag), "")
        found.append(
            RatingView(
                side,
                name_of(r.id.hex),
                r.id.hex == mine,
                r.overall,
                r.as_described,
                r.communication,
                r.shipping,
                r.comment,
            )
        )
    return found


def deal(thread: Thread) -> DealView | None:
    """The deal in ``thread``, as this member sees it (None if it is not a deal, or not open)."""
    if not is_deal(thread):
        return None
    terms = deal_terms(thread)
    if terms is None:
        return None
    steps = step_rows(thread)
    folded = deal_rules.fold(steps)
    state = folded.state
    side = deal_rules.deal_role(thread.role)
    names, owners = thread_names(thread, me_as="you"), row_owners(thread)

    def name_of(pk: str) -> str:
        tag = row_tag(pk)
        member = owners.get(tag.hex()) if tag else None
        return names.get(member, "a former member")

    step_views = []
    for pk, step, fields, millis in deal_rules.in_order(steps):
        shown = {k: v for k, v in fields.items() if k not in ("by", "n")}
        by = str(fields.get("by", ""))
        step_views.append(StepView(step, by, name_of(pk), _at(millis), shown, pk))
    released_by = sorted(deal_rules.release_roles(terms, state, _release_rows(thread)))
    messages = _messages(thread, name_of, owners)
    rating_views = _ratings(thread, folded, name_of)
    actions = _actions(state, side)
    releasable = side in deal_rules.RELEASERS and state.state in deal_rules.RELEASABLE
    if releasable and side not in released_by and not machine.release_ok(set(released_by)):
        actions.append(RELEASE)
    rated = any(r.mine for r in rating_views)
    if (
        side in (machine.BUYER, machine.SELLER)
        and state.state in deal_rules.RATED_AFTER
        and not rated
    ):
        actions.append(RATE)
    return DealView(
        thread=thread,
        title=str(terms["title"]),
        shop=str(terms["shop"]),
        listing=str(terms["listing"]),
        accept=str(terms["accept"]),
        price=int(terms["price"]),
        currency=str(terms["currency"]),
        quantity=int(terms["quantity"]),
        silent_days=int(terms["silent_days"]),
        state=state,
        my_side=side,
        my_side_words=DEAL_ROLE_WORDS.get(thread.role, ""),
        steps=step_views,
        actions=actions,
        messages=messages,
        ratings=rating_views,
        released_by=released_by,
        released=machine.release_ok(set(released_by)),
        sale_recorded=_sale_recorded(str(terms["shop"]), str(terms["accept"]))
        if side == machine.BUYER and state.state in machine.FINAL
        else None,
    )


def _sale_recorded(shop: str, accept: str) -> bool | None:
    """Whether the shop on this node holds the sale of ``accept`` (None: no such shop here)."""
    from apps.market.models import Sale

    found = Thread.objects.filter(pk=shop, state=Thread.State.ACTIVE).first()
    if found is None or len(accept) != 32:
        return None
    with thread_context(found.thread):
        return Sale.objects.filter(accept=accept).exists()


def deal_threads() -> list[Thread]:
    """This node's deal threads it still takes part in."""
    return list(Thread.objects.filter(app=DEAL_APP, state=Thread.State.ACTIVE))


def my_deals() -> list[DealView]:
    """This node's deals, newest first."""
    found = [view for view in (deal(t) for t in deal_threads()) if view is not None]
    found.sort(key=lambda v: v.steps[-1].at if v.steps else _at(0), reverse=True)
    return found
