"""The deal state machine: which step may follow which, and which role writes each (issue 15 §4).

accepted → paid → shipped → received → completed; cancelled by the buyer or the seller before
shipping; disputed by either after payment and before completion, then resolved by the escrow
agent (refund, release, or a split). completed, cancelled and resolved are final.

Every replica runs these rules on the deal's steps in the thread's order, so they are pure: the
only time they know is the judged op's own stamp (``stamp_ms``). That is how the seller's
completion after a silent buyer is decided: the completing op's stamp against the shipped
step's stamp plus the agreed silent days, never a clock. Refusals are sentences naming the step
and the role. No Django, no DB.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from apps.market.listing_shape import MAX_PRICE, MAX_QUANTITY, ListingProblem, currency_code

BUYER, SELLER, ESCROW, SHIPPER = "buyer", "seller", "escrow", "shipper"
ROLES = (BUYER, SELLER, ESCROW, SHIPPER)
ROLE_NAMES = {BUYER: "the buyer", SELLER: "the seller", ESCROW: "the escrow agent"} | {
    SHIPPER: "the shipper"
}

NEW = "new"  # before the seller's "accepted" step opens the deal
ACCEPTED, PAID, SHIPPED, RECEIVED = "accepted", "paid", "shipped", "received"
COMPLETED, CANCELLED, DISPUTED, RESOLVED = "completed", "cancelled", "disputed", "resolved"
STEPS = (ACCEPTED, PAID, SHIPPED, RECEIVED, COMPLETED, CANCELLED, DISPUTED, RESOLVED)
FINAL = frozenset({COMPLETED, CANCELLED, RESOLVED})

REFUND, RELEASE, SPLIT = "refund", "release", "split"
OUTCOMES = (REFUND, RELEASE, SPLIT)

DAY_MS = 86_400_000
MIN_SILENT_DAYS, MAX_SILENT_DAYS, DEFAULT_SILENT_DAYS = 1, 90, 14
MAX_CARRIER = MAX_TRACKING = 100
MAX_REFERENCE = 200  # a bank transfer's reference, or a ledger chit's id
MAX_REASON = 500


class DealProblem(ValueError):
    """A step that cannot be written, as a sentence for a person."""


@dataclass(frozen=True)
class Step:
    """One accepted step, for the deal's timeline."""

    step: str
    role: str
    stamp_ms: int


@dataclass(frozen=True)
class DealState:
    """The deal after the steps accepted so far; ``DealState()`` is a deal not yet opened."""

    state: str = NEW
    price: int = 0  # minor units of ``currency``, as accepted
    currency: str = ""
    quantity: int = 0
    silent_days: int = DEFAULT_SILENT_DAYS
    reference: str = ""  # how the buyer paid
    carrier: str = ""
    tracking: str = ""
    shipped_ms: int | None = None  # the shipped step's own stamp
    disputed_by: str = ""
    disputed_from: str = ""  # the state the dispute interrupted
    reason: str = ""  # the dispute's (or a cancellation's) reason
    outcome: str = ""  # refund | release | split, once resolved
    split_amount: int = 0  # of a split: the part of the price that goes back to the buyer
    steps: tuple[Step, ...] = ()

    @property
    def final(self) -> bool:
        return self.state in FINAL


@dataclass(frozen=True)
class _Rule:
    writers: tuple[str, ...]
    after: tuple[str, ...]  # the states this step may follow
    does: str  # "marks the deal paid"
    do: str  # "mark the deal paid"


_RULES = {
    ACCEPTED: _Rule((SELLER,), (NEW,), "opens the deal", "open the deal"),
    PAID: _Rule((BUYER,), (ACCEPTED,), "marks the deal paid", "mark the deal paid"),
    SHIPPED: _Rule((SELLER, SHIPPER), (PAID,), "marks the deal shipped", "mark the deal shipped"),
    RECEIVED: _Rule((BUYER,), (SHIPPED,), "marks the deal received", "mark the deal received"),
    COMPLETED: _Rule(
        (BUYER, SELLER), (SHIPPED, RECEIVED), "completes the deal", "complete the deal"
    ),
    CANCELLED: _Rule((BUYER, SELLER), (ACCEPTED, PAID), "cancels the deal", "cancel the deal"),
    DISPUTED: _Rule(
        (BUYER, SELLER), (PAID, SHIPPED, RECEIVED), "disputes the deal", "dispute the deal"
    ),
    RESOLVED: _Rule((ESCROW,), (DISPUTED,), "resolves the deal", "resolve the deal"),
}

_STATE_WORDS = {
    NEW: "it is not open yet",
    ACCEPTED: "it is accepted but not yet paid",
    PAID: "it is paid but not yet shipped",
    SHIPPED: "it is shipped and not yet received",
    RECEIVED: "it is already received",
    COMPLETED: "it is completed",
    CANCELLED: "it is cancelled",
    DISPUTED: "it is disputed, and the escrow agent resolves it",
    RESOLVED: "the escrow agent has resolved it",
}
# What a person refused at that point can do instead.
_HINTS = {CANCELLED: " Once shipped, open a dispute instead."}


def _who(roles: tuple[str, ...]) -> str:
    return " or ".join(ROLE_NAMES[role] for role in roles)


def _text(fields: Mapping[str, Any], name: str, what: str, most: int, required: bool) -> str:
    """A text field; DealProblem naming ``what`` if it is missing, too long or not text."""
    value = fields.get(name)
    if value is None:
        if required:
            raise DealProblem(f"Please give the {what}.")
        return ""
    if type(value) is not str:
        raise DealProblem(f"The {what} must be text.")
    if len(value) > most:
        raise DealProblem(f"The {what} can be at most {most} characters; it has {len(value):,}.")
    if required and not value.strip():
        raise DealProblem(f"Please give the {what}.")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
        raise DealProblem(f"The {what} contains characters that are not allowed.")
    return value


def _whole(value: Any, what: str, low: int, high: int) -> int:
    if type(value) is not int:  # bool is an int to Python; True is not a price
        raise DealProblem(f"The {what} must be a whole number.")
    if not low <= value <= high:
        raise DealProblem(f"The {what} must be from {low:,} to {high:,}.")
    return value


def _fields_checked(state: DealState, step: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The state's columns this step sets, from its fields; DealProblem if a field is wrong."""
    if step == ACCEPTED:
        try:
            currency = currency_code(fields.get("currency"))
        except ListingProblem as problem:
            raise DealProblem(str(problem)) from None
        silent = fields.get("silent_days", DEFAULT_SILENT_DAYS)
        return {
            "price": _whole(fields.get("price"), "deal's price", 1, MAX_PRICE),
            "currency": currency,
            "quantity": _whole(fields.get("quantity", 1), "quantity", 1, MAX_QUANTITY),
            "silent_days": _whole(
                silent, "number of silent days", MIN_SILENT_DAYS, MAX_SILENT_DAYS
            ),
        }
    if step == PAID:
        return {"reference": _text(fields, "reference", "payment reference", MAX_REFERENCE, False)}
    if step == SHIPPED:
        return {
            "carrier": _text(fields, "carrier", "carrier", MAX_CARRIER, True),
            "tracking": _text(fields, "tracking", "tracking number", MAX_TRACKING, True),
        }
    if step == CANCELLED:
        return {"reason": _text(fields, "reason", "reason", MAX_REASON, False)}
    if step == DISPUTED:
        return {"reason": _text(fields, "reason", "reason for the dispute", MAX_REASON, True)}
    if step == RESOLVED:
        outcome = fields.get("outcome")
        if type(outcome) is not str or outcome not in OUTCOMES:
            raise DealProblem("The escrow agent resolves a dispute by refund, release or split.")
        if outcome != SPLIT:
            if fields.get("split_amount") is not None:
                raise DealProblem("A split amount goes only with a split.")
            return {"outcome": outcome, "split_amount": 0}
        if state.price < 2:
            raise DealProblem("A price this small cannot be split; refund or release it.")
        amount = _whole(fields.get("split_amount"), "split amount", 1, state.price - 1)
        return {"outcome": outcome, "split_amount": amount}
    return {}


def step_problem(
    state: DealState, step: str, by_role: str, fields: Mapping[str, Any], stamp_ms: int
) -> str | None:
    """Why ``by_role`` cannot write ``step`` (with ``fields``) on the deal as it stands, or None.

    ``stamp_ms`` is the step's own op stamp: only the seller's completion reads it.
    """
    try:
        _judge(state, step, by_role, fields, stamp_ms)
    except DealProblem as problem:
        return str(problem)
    return None


def _judge(
    state: DealState, step: str, by_role: str, fields: Mapping[str, Any], stamp_ms: int
) -> dict[str, Any]:
    rule = _RULES.get(step) if isinstance(step, str) else None
    if rule is None:
        raise DealProblem(
            f"A deal has no step called {str(step)[:40]!r}; the steps are {', '.join(STEPS)}."
        )
    if by_role not in rule.writers:
        if step == COMPLETED:
            raise DealProblem(
                "Only the buyer completes the deal, or the seller once the buyer has been "
                f"silent for {state.silent_days} days after shipping."
            )
        raise DealProblem(f"Only {_who(rule.writers)} {rule.does}.")
    name = ROLE_NAMES[by_role]
    if state.state not in rule.after:
        raise DealProblem(
            f"{name.capitalize()} cannot {rule.do} now: {_STATE_WORDS[state.state]}."
            + _HINTS.get(step, "")
        )
    if step == COMPLETED and by_role == SELLER:
        # The buyer's silence is measured by stamps alone, so every replica decides alike.
        due = (state.shipped_ms or 0) + state.silent_days * DAY_MS
        if stamp_ms < due:
            raise DealProblem(
                f"The seller can complete the deal only once the buyer has been silent for "
                f"{state.silent_days} days after shipping; until then the buyer completes it."
            )
    if not isinstance(fields, Mapping):
        raise DealProblem(f"The step {step} has no readable fields.")
    return _fields_checked(state, step, fields)


def step_apply(
    state: DealState, step: str, by_role: str, fields: Mapping[str, Any], stamp_ms: int
) -> DealState:
    """The deal after ``step``; DealProblem (the step_problem sentence) if it cannot be written."""
    changes = _judge(state, step, by_role, fields, stamp_ms)
    if step == SHIPPED:
        changes["shipped_ms"] = stamp_ms
    elif step == DISPUTED:
        changes |= {"disputed_by": by_role, "disputed_from": state.state}
    return replace(
        state, state=step, steps=(*state.steps, Step(step, by_role, stamp_ms)), **changes
    )


def release_ok(signers: set[str]) -> bool:
    """Whether the roles that signed an escrow release are enough: two of buyer, seller and
    escrow agent (a shipper's signature, or one side's twice, does not count)."""
    return len(set(signers) & {BUYER, SELLER, ESCROW}) >= 2
