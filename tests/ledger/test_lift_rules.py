"""A lift's steps in one tally, through real replicas, honest and forged (ADR 21): only the
creditor reserves, and never more than the debtor owes beyond what other lifts hold; payments
cannot eat a reservation; only the referee's signature commits or voids before the deadline,
either side releases after it; a lift is decided once."""

from __future__ import annotations

import time
import uuid

import nacl.signing
import pytest

from apps.core.thread import payloads as p
from apps.core.thread.rowid import row_id_new
from apps.core.thread.writer import WriteError
from apps.ledger import rules
from apps.ledger.policy import CHIT
from apps.ledger.rules import LIFT, PAYMENT, RELEASE, RESERVE, State
from tests.ledger.test_rules import (  # noqa: F401 - the fixtures
    Tally,
    accepted_everywhere,
    chit,
    forged,
    refused_everywhere,
    tally,
    tip,
    write,
)

REFEREE = nacl.signing.SigningKey(b"\x07" * 32)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def step(
    group: Tally,
    writer,
    kind: str,
    amount: int,
    lift: str,
    *,
    creditor_owner: bool = True,
    deadline: int | None = None,
    sig: bytes | None = None,
    after: State | None = None,
) -> p.RowChange:
    """A lift chit by ``writer`` carrying the state the rules give (or the one before)."""
    before = after or tip(writer.replica)
    by_owner = writer is group.alice
    state, _ = rules.next_state(before, kind, amount, by_owner, creditor_owner=creditor_owner)
    state = state or State("", before.seq + 1, before.balance, before.owner_limit,
                           before.partner_limit, before.closing)  # fmt: skip
    cols = {
        "kind": kind, "payer": None, "unit": "CHIP", "amount": amount, "memo": "",
        "reference": "", "invoice": None, "prev": before.pk, "seq": state.seq,
        "balance": state.balance, "owner_limit": state.owner_limit,
        "partner_limit": state.partner_limit, "closing": state.closing,
        "owner_reserved": state.owner_reserved, "partner_reserved": state.partner_reserved,
        "intent": None, "lift": lift, "referee": None, "deadline": 0, "sig": sig,
    }  # fmt: skip
    if kind == RESERVE:
        cols["referee"] = bytes(REFEREE.verify_key)
        cols["deadline"] = deadline if deadline is not None else now_ms() + 600_000
    return p.RowChange(CHIT, row_id_new(writer.member).hex, p.UPSERT, cols)


def signed(lift: str, decision: str, key: nacl.signing.SigningKey = REFEREE) -> bytes:
    return key.sign(rules.lift_message(lift, decision)).signature


@pytest.fixture
def owed(tally: Tally) -> Tally:  # noqa: F811
    """Bob owes Alice 30."""
    write(tally, tally.bob, chit(tally, tally.bob, PAYMENT, 30_000))
    return tally


def test_only_the_creditor_reserves_and_never_more_than_is_owed_beyond_other_lifts(owed):
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    by_debtor = forged(owed, owed.bob, step(owed, owed.bob, RESERVE, 10_000, first))
    refused_everywhere(owed, by_debtor, "a lift can clear at most what the other side owes: 0.000")
    write(owed, owed.alice, step(owed, owed.alice, RESERVE, 20_000, first))
    too_much = forged(owed, owed.alice, step(owed, owed.alice, RESERVE, 15_000, second))
    refused_everywhere(owed, too_much, "a lift can clear at most what the other side owes: 10.000")
    again = forged(owed, owed.alice, step(owed, owed.alice, RESERVE, 5_000, first))
    refused_everywhere(owed, again, "this lift is reserved in this tally already")
    assert tip(owed.bob.replica).owner_reserved == 20_000


def test_a_payment_cannot_eat_what_a_lift_holds(owed):
    lift = uuid.uuid4().hex
    write(owed, owed.alice, step(owed, owed.alice, RESERVE, 20_000, lift))
    with pytest.raises(WriteError, match=r"holds 20\.000"):
        owed.alice.write_data([chit(owed, owed.alice, PAYMENT, 15_000)])
    eats = chit(owed, owed.alice, PAYMENT, 15_000, owner_reserved=20_000)
    held = "a lift in progress holds 20.000 of this balance until it finishes"
    refused_everywhere(owed, forged(owed, owed.alice, eats), held)
    fits = chit(owed, owed.alice, PAYMENT, 10_000, owner_reserved=20_000)  # 20 still owed
    accepted_everywhere(owed, write(owed, owed.alice, fits))


def test_only_the_referees_signature_commits_once(owed):
    lift = uuid.uuid4().hex
    write(owed, owed.alice, step(owed, owed.alice, RESERVE, 20_000, lift))
    stranger = nacl.signing.SigningKey(b"\x09" * 32)
    for sig in (None, signed(lift, "commit", stranger), signed(lift, "void")):
        bad = forged(owed, owed.bob, step(owed, owed.bob, LIFT, 20_000, lift, sig=sig))
        refused_everywhere(owed, bad, "the lift's referee did not sign its commit")
    other_amount = forged(
        owed, owed.bob, step(owed, owed.bob, LIFT, 5_000, lift, sig=signed(lift, "commit"))
    )
    refused_everywhere(owed, other_amount, "a lift's decision is for the amount it reserved")
    # Either side writes the decision it was given: here the debtor.
    done = write(
        owed, owed.bob, step(owed, owed.bob, LIFT, 20_000, lift, sig=signed(lift, "commit"))
    )
    accepted_everywhere(owed, done)
    after = tip(owed.alice.replica)
    assert (after.balance, after.owner_reserved) == (10_000, 0)
    twice = forged(
        owed, owed.alice, step(owed, owed.alice, RELEASE, 20_000, lift, sig=signed(lift, "void"))
    )
    refused_everywhere(owed, twice, "this lift is decided in this tally already")


def test_before_its_deadline_only_the_referee_voids_after_it_either_side_releases(owed):
    held, lapsed, voided = (uuid.uuid4().hex for _ in range(3))
    write(owed, owed.alice, step(owed, owed.alice, RESERVE, 5_000, held))
    write(
        owed, owed.alice, step(owed, owed.alice, RESERVE, 5_000, lapsed, deadline=now_ms() - 60_000)
    )
    write(owed, owed.alice, step(owed, owed.alice, RESERVE, 5_000, voided))
    early = forged(owed, owed.bob, step(owed, owed.bob, RELEASE, 5_000, held))
    refused_everywhere(owed, early, "before its deadline only the lift's referee releases it")
    late = write(owed, owed.bob, step(owed, owed.bob, RELEASE, 5_000, lapsed))
    by_referee = write(
        owed, owed.bob, step(owed, owed.bob, RELEASE, 5_000, voided, sig=signed(voided, "void"))
    )
    accepted_everywhere(owed, late, by_referee)
    after = tip(owed.alice.replica)
    assert (after.balance, after.owner_reserved) == (30_000, 5_000)  # only ``held`` holds
