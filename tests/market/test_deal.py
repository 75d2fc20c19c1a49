"""The deal state machine: who writes which step, when, with what; the silent buyer decided by
stamps; escrow release; and random step sequences that must stay on the machine's paths."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.market.deal import (
    DAY_MS,
    DealProblem,
    DealState,
    release_ok,
    step_apply,
    step_problem,
)

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=100)
T0 = 1_700_000_000_000
GOOD_FIELDS: dict[str, dict[str, Any]] = {
    "accepted": {"price": 12_000, "currency": "EUR", "quantity": 1, "silent_days": 10},
    "paid": {"reference": "SEPA 2024-118"},
    "shipped": {"carrier": "bpost", "tracking": "CD123456789BE"},
    "received": {},
    "completed": {},
    "cancelled": {"reason": "Changed my mind."},
    "disputed": {"reason": "The chair has a cracked leg."},
    "resolved": {"outcome": "split", "split_amount": 3_000},
}


def walk(*steps: tuple[str, str], start: DealState | None = None) -> DealState:
    """The deal after (step, role) pairs, one hour apart, each with good fields."""
    state = start or DealState()
    for n, (step, role) in enumerate(steps):
        state = step_apply(state, step, role, GOOD_FIELDS[step], T0 + n * 3_600_000)
    return state


OPENED = (("accepted", "seller"),)
PAID = (*OPENED, ("paid", "buyer"))
SHIPPED = (*PAID, ("shipped", "seller"))


def test_a_deal_goes_from_accepted_to_completed_and_keeps_what_each_step_said() -> None:
    state = walk(*SHIPPED, ("received", "buyer"), ("completed", "buyer"))
    assert state.state == "completed"
    assert state.final
    assert (state.price, state.currency, state.silent_days) == (12_000, "EUR", 10)
    assert (state.reference, state.carrier, state.tracking) == (
        "SEPA 2024-118",
        "bpost",
        "CD123456789BE",
    )
    assert state.shipped_ms == T0 + 2 * 3_600_000
    assert [(s.step, s.role) for s in state.steps] == [
        *SHIPPED,
        ("received", "buyer"),
        ("completed", "buyer"),
    ]


@pytest.mark.parametrize(
    ("before", "step", "role", "sentence"),
    [
        (OPENED, "paid", "seller", "Only the buyer marks the deal paid."),
        (PAID, "shipped", "buyer", "Only the seller or the shipper marks the deal shipped."),
        (SHIPPED, "received", "seller", "Only the buyer marks the deal received."),
        (SHIPPED, "received", "shipper", "Only the buyer marks the deal received."),
        ((), "accepted", "buyer", "Only the seller opens the deal."),
        (OPENED, "cancelled", "escrow", "Only the buyer or the seller cancels the deal."),
        (PAID, "disputed", "shipper", "Only the buyer or the seller disputes the deal."),
        (
            (*PAID, ("disputed", "buyer")),
            "resolved",
            "seller",
            "Only the escrow agent resolves the deal.",
        ),
        (SHIPPED, "completed", "shipper", "Only the buyer completes the deal, or the seller"),
        (OPENED, "paid", "owner", "Only the buyer marks the deal paid."),
    ],
)
def test_each_step_is_written_only_by_its_role(
    before: tuple[tuple[str, str], ...], step: str, role: str, sentence: str
) -> None:
    state = walk(*before)
    problem = step_problem(state, step, role, GOOD_FIELDS[step], T0 + DAY_MS * 365)
    assert problem is not None
    assert problem.startswith(sentence)
    with pytest.raises(DealProblem) as refused:
        step_apply(state, step, role, GOOD_FIELDS[step], T0 + DAY_MS * 365)
    assert str(refused.value) == problem


def test_the_shipper_may_mark_the_deal_shipped() -> None:
    assert walk(*PAID, ("shipped", "shipper")).state == "shipped"


@pytest.mark.parametrize(
    ("before", "step", "role", "sentence"),
    [
        ((), "paid", "buyer", "The buyer cannot mark the deal paid now: it is not open yet."),
        (PAID, "paid", "buyer", "The buyer cannot mark the deal paid now: it is paid but"),
        (OPENED, "shipped", "seller", "The seller cannot mark the deal shipped now"),
        (PAID, "received", "buyer", "The buyer cannot mark the deal received now"),
        (OPENED, "accepted", "seller", "The seller cannot open the deal now"),
        (SHIPPED, "cancelled", "buyer", "The buyer cannot cancel the deal now: it is shipped"),
        (OPENED, "disputed", "seller", "The seller cannot dispute the deal now"),
        (PAID, "resolved", "escrow", "The escrow agent cannot resolve the deal now"),
        (PAID, "completed", "buyer", "The buyer cannot complete the deal now"),
    ],
)
def test_a_step_out_of_order_is_refused_naming_step_and_role(
    before: tuple[tuple[str, str], ...], step: str, role: str, sentence: str
) -> None:
    problem = step_problem(walk(*before), step, role, GOOD_FIELDS[step], T0 + DAY_MS * 365)
    assert problem is not None
    assert problem.startswith(sentence)


def test_cancelling_after_shipping_points_to_a_dispute() -> None:
    problem = step_problem(walk(*SHIPPED), "cancelled", "seller", {}, T0)
    assert problem is not None
    assert "open a dispute instead" in problem


def test_either_side_cancels_before_shipping() -> None:
    assert walk(*OPENED, ("cancelled", "buyer")).state == "cancelled"
    assert walk(*PAID, ("cancelled", "seller")).state == "cancelled"


def test_the_seller_completes_only_after_the_buyer_was_silent_for_the_agreed_days() -> None:
    shipped = walk(*SHIPPED)
    assert shipped.shipped_ms is not None
    due = shipped.shipped_ms + 10 * DAY_MS
    early = step_problem(shipped, "completed", "seller", {}, due - 1)
    assert early is not None
    assert "silent for 10 days after shipping" in early
    assert step_apply(shipped, "completed", "seller", {}, due).state == "completed"
    # Marking it received does not stop the seller's claim; a dispute does.
    received = step_apply(shipped, "received", "buyer", {}, due - DAY_MS)
    assert step_problem(received, "completed", "seller", {}, due) is None
    disputed = step_apply(shipped, "disputed", "buyer", GOOD_FIELDS["disputed"], due - DAY_MS)
    assert step_problem(disputed, "completed", "seller", {}, due + DAY_MS) is not None


def test_a_dispute_is_resolved_by_the_escrow_agent_only_while_disputed() -> None:
    disputed = walk(*SHIPPED, ("disputed", "seller"))
    assert (disputed.disputed_by, disputed.disputed_from) == ("seller", "shipped")
    resolved = step_apply(disputed, "resolved", "escrow", GOOD_FIELDS["resolved"], T0 + DAY_MS)
    assert (resolved.state, resolved.outcome, resolved.split_amount) == ("resolved", "split", 3000)
    refund = step_apply(disputed, "resolved", "escrow", {"outcome": "refund"}, T0)
    assert (refund.outcome, refund.split_amount) == ("refund", 0)


@pytest.mark.parametrize(
    ("step", "fields", "words"),
    [
        ("resolved", {"outcome": "keep it"}, "refund, release or split"),
        ("resolved", {"outcome": "split"}, "split amount must be a whole number"),
        ("resolved", {"outcome": "split", "split_amount": 0}, "from 1 to 11,999"),
        ("resolved", {"outcome": "split", "split_amount": 12_000}, "from 1 to 11,999"),
        ("resolved", {"outcome": "release", "split_amount": 5}, "only with a split"),
        ("disputed", {}, "give the reason for the dispute"),
        ("disputed", {"reason": "r" * 501}, "at most 500"),
    ],
)
def test_dispute_fields_are_checked(step: str, fields: dict[str, Any], words: str) -> None:
    state = walk(*PAID) if step == "disputed" else walk(*PAID, ("disputed", "buyer"))
    role = "buyer" if step == "disputed" else "escrow"
    problem = step_problem(state, step, role, fields, T0)
    assert problem is not None
    assert words in problem


@pytest.mark.parametrize(
    ("step", "fields", "words"),
    [
        ("accepted", {"price": True, "currency": "EUR"}, "price must be a whole number"),
        ("accepted", {"price": -5, "currency": "EUR"}, "price must be from 1"),
        ("accepted", {"price": 100, "currency": "XYZ"}, "not a currency code"),
        ("accepted", {"price": 100, "currency": "EUR", "silent_days": 0}, "silent days"),
        ("accepted", {"price": 100, "currency": "EUR", "silent_days": 91}, "silent days"),
        ("accepted", {"price": 100, "currency": "EUR", "quantity": 0}, "quantity"),
        ("shipped", {"carrier": "bpost"}, "give the tracking number"),
        ("shipped", {"carrier": "", "tracking": "X1"}, "give the carrier"),
        ("shipped", {"carrier": "bpost", "tracking": "9" * 101}, "at most 100"),
        ("shipped", {"carrier": "b\x00post", "tracking": "X1"}, "not allowed"),
        ("paid", {"reference": 42}, "payment reference must be text"),
    ],
)
def test_step_fields_are_checked(step: str, fields: dict[str, Any], words: str) -> None:
    before = {"accepted": (), "shipped": PAID, "paid": OPENED}[step]
    role = {"accepted": "seller", "shipped": "seller", "paid": "buyer"}[step]
    problem = step_problem(walk(*before), step, role, fields, T0)
    assert problem is not None
    assert words in problem


def test_an_unknown_step_is_refused_in_words() -> None:
    problem = step_problem(DealState(), "refunded", "buyer", {}, T0)
    assert problem is not None
    assert problem.startswith("A deal has no step called 'refunded'")


def test_escrow_release_needs_two_of_buyer_seller_and_escrow() -> None:
    assert release_ok({"buyer", "seller"})
    assert release_ok({"seller", "escrow"})
    assert release_ok({"buyer", "seller", "escrow"})
    assert not release_ok({"escrow"})
    assert not release_ok({"buyer", "shipper"})
    assert not release_ok(set())


# --- Random sequences: every accepted one is a path of the machine ----------------------------

# Written out again here, from the brief, rather than read from the module under test.
EDGES = {
    ("new", "accepted"),
    ("accepted", "paid"),
    ("paid", "shipped"),
    ("shipped", "received"),
    ("shipped", "completed"),
    ("received", "completed"),
    ("accepted", "cancelled"),
    ("paid", "cancelled"),
    ("paid", "disputed"),
    ("shipped", "disputed"),
    ("received", "disputed"),
    ("disputed", "resolved"),
}
WRITERS = {
    "accepted": {"seller"},
    "paid": {"buyer"},
    "shipped": {"seller", "shipper"},
    "received": {"buyer"},
    "completed": {"buyer", "seller"},
    "cancelled": {"buyer", "seller"},
    "disputed": {"buyer", "seller"},
    "resolved": {"escrow"},
}
FINAL = {"completed", "cancelled", "resolved"}
ROLES = ["buyer", "seller", "escrow", "shipper", "owner"]
MAIN = {
    "new": "accepted",
    "accepted": "paid",
    "paid": "shipped",
    "shipped": "received",
    "received": "completed",
}


@PROPERTY
@given(st.data())
def test_random_steps_by_random_roles_stay_on_the_machine(data: st.DataObject) -> None:
    state = DealState()
    stamp = T0
    for _ in range(data.draw(st.integers(0, 40))):
        # A third of the attempts go down the main path by a writer the brief names, so that
        # deep states are reached; a third are any step by anyone; a third an edge from here
        # by anyone.
        way = data.draw(st.integers(0, 2))
        onward = sorted(step for before, step in EDGES if before == state.state)
        if way == 0 and state.state in MAIN:
            step = MAIN[state.state]
            role = data.draw(st.sampled_from(sorted(WRITERS[step])))
        else:
            pool = onward if way == 2 and onward else sorted(WRITERS)
            step = data.draw(st.sampled_from(pool))
            role = data.draw(st.sampled_from(ROLES))
        stamp += data.draw(st.integers(min_value=0, max_value=12 * DAY_MS))
        problem = step_problem(state, step, role, GOOD_FIELDS[step], stamp)
        if problem is not None:
            assert problem[0].isupper()
            assert problem.endswith(".")
            with pytest.raises(DealProblem):
                step_apply(state, step, role, GOOD_FIELDS[step], stamp)
            continue
        assert state.state not in FINAL, "nothing follows a final state"
        assert (state.state, step) in EDGES
        assert role in WRITERS[step]
        if step == "completed" and role == "seller":
            assert state.shipped_ms is not None
            assert stamp >= state.shipped_ms + state.silent_days * DAY_MS
        state = step_apply(state, step, role, GOOD_FIELDS[step], stamp)
        assert state.state == step
    path = ["new", *(s.step for s in state.steps)]
    assert all(edge in EDGES for edge in itertools.pairwise(path))
