"""A tally's rules through real replicas (ADR 21). Alice owns the tally, Bob is her partner and
Carol a second "partner" the policy lets Alice invite, whom the contract never names. Honest
parties write through their writers, whose own replica refuses a bad chit at once; a modified
node signs whatever it likes (``forge``), and every replica must refuse it with the same reason,
whatever order the ops reach it in. Every replica judges strictly: a rule that read the clock or
anything else of the node would fail here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.countersign import signature_change
from apps.core.thread.lww import materialize
from apps.core.thread.op import Op
from apps.core.thread.replica import Replica
from apps.core.thread.rowid import row_id_new
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.ledger import rules
from apps.ledger.amounts import unit_data, unit_parse
from apps.ledger.policy import CHIT, CONTRACT, PARTNER, ledger_spec
from apps.ledger.rules import CLOSE, CONTRACT_ID, INVOICE, LIMIT, PAYMENT, State
from tests.core.thread.conftest import Party, join, rid
from tests.support.replica_groups import (
    ReplicaGroup,
    accepted_everywhere,
    forged,
    opened,
    refused_alike,
    refused_everywhere,
    write,
)

LIMIT_100 = 100_000  # 100.000 CHIP in milli-units
NOT_SIGNED = "the tally is not signed by both sides yet: no chit counts before"
NOT_CHAIN = "the chit it follows is not in the chain"
CAME_FIRST = f"{rules.CAME_FIRST}: this one must be written again after it"
WRITTEN_ONCE = "a chit is written once and never changed or deleted"
CLOSING_PAY = "the tally is closing: a payment may only bring its balance to zero"


@dataclass
class Tally(ReplicaGroup):
    """Alice (owner), Bob and Carol (both invited as partners), each with a writer."""

    alice: ThreadWriter
    bob: ThreadWriter
    carol: ThreadWriter
    parties: list[Party]

    table = CHIT  # where a refusal is read unless a test says

    @property
    def writers(self) -> list[ThreadWriter]:
        return [self.alice, self.bob, self.carol]


def contract_cols(parties: bytes, **given: Any) -> dict[str, Any]:
    cols = {
        "unit": json.dumps(unit_data(unit_parse("CHIP"))),
        "owner_limit": LIMIT_100,
        "partner_limit": LIMIT_100,
        "comment": "",
        "parties": parties,
    }
    cols.update(given)
    return cols


def contract_change(cols: dict[str, Any], pk: str = CONTRACT_ID) -> p.RowChange:
    return p.RowChange(CONTRACT, pk, p.UPSERT, cols)


def sign(tally: Tally, writer: ThreadWriter, party: Party) -> Op:
    """``party`` signs the contract as it stands on its own replica."""
    row = rows(writer.replica, CONTRACT)[CONTRACT_ID]
    change = signature_change(rules.SPEC, party.member_key(writer.thread), CONTRACT_ID, row)
    return writer.write_data([change])


def _tally(*, named: bool, signed: bool) -> Tally:
    alice_p, bob_p, carol_p = Party("alice"), Party("bob"), Party("carol")
    alice = opened(alice_p, name="Tally", app="tally", spec=ledger_spec())
    bob = join(alice, bob_p, PARTNER)
    carol = join(alice, carol_p, PARTNER)
    made = Tally(alice, bob, carol, [alice_p, bob_p, carol_p]).settled()
    if named:
        alice.write_data([contract_change(contract_cols(alice.member))])
        made.share()
        bob.write_data([contract_change({"parties": alice.member + bob.member})])
        made.share()
    if signed:
        sign(made, alice, alice_p)
        sign(made, bob, bob_p)
        made.share()
    return made


@pytest.fixture
def bare() -> Tally:
    """The thread and its three members, no contract yet."""
    return _tally(named=False, signed=False)


@pytest.fixture
def tally() -> Tally:
    """Alice and Bob named in the contract and both signed: chits count."""
    return _tally(named=True, signed=True)


def rows(replica: Replica, table: str) -> dict[str, dict[str, Any]]:
    return materialize(replica.accepted_data()).get(table, {})


def tip(replica: Replica) -> State:
    """The chain's last chit as ``replica`` holds it (the contract's state before the first)."""
    chain = [{"pk": pk, **row} for pk, row in rows(replica, CHIT).items() if row["kind"] != INVOICE]
    if not chain:
        return rules.start_state(rows(replica, CONTRACT)[CONTRACT_ID])
    return rules.state_of(max(chain, key=lambda row: row["seq"]))


def _carried(before: State, kind: str, amount: int, by_owner: bool) -> State:
    """What a careless or hostile node writes where the rules give no state: plain arithmetic."""
    balance, owner_limit, partner_limit = before.balance, before.owner_limit, before.partner_limit
    if kind == PAYMENT:
        balance += -amount if by_owner else amount
    elif kind == LIMIT:
        owner_limit, partner_limit = (amount, partner_limit) if by_owner else (owner_limit, amount)
    closing = before.closing or kind == CLOSE
    return State("", before.seq + 1, balance, owner_limit, partner_limit, closing)


def chit(
    tally: Tally,
    writer: ThreadWriter,
    kind: str,
    amount: int,
    *,
    after: State | None = None,
    pk: str | None = None,
    **given: Any,
) -> p.RowChange:
    """A chain chit by ``writer`` on top of ``after`` (default: the tip its replica holds),
    carrying the state the rules give (or plain arithmetic where they give none); ``given``
    overrides columns."""
    before = after or tip(writer.replica)
    by_owner = writer is tally.alice
    state, _ = rules.next_state(before, kind, amount, by_owner)
    state = state or _carried(before, kind, amount, by_owner)
    cols = {
        "kind": kind,
        "payer": writer.member if kind == PAYMENT else None,
        "unit": "CHIP",
        "amount": amount,
        "memo": "",
        "reference": "",
        "invoice": None,
        "prev": before.pk,
        "seq": state.seq,
        "balance": state.balance,
        "owner_limit": state.owner_limit,
        "partner_limit": state.partner_limit,
        "closing": state.closing,
        "intent": None,
    }
    cols.update(given)
    return p.RowChange(CHIT, pk or row_id_new(writer.member).hex, p.UPSERT, cols)


def invoice(writer: ThreadWriter, amount: int) -> p.RowChange:
    cols = {
        "kind": INVOICE,
        "payer": None,
        "unit": "CHIP",
        "amount": amount,
        "memo": "",
        "reference": "",
        "invoice": None,
        "prev": None,
        "seq": 0,
        "balance": 0,
        "owner_limit": 0,
        "partner_limit": 0,
        "closing": False,
        "intent": None,
    }
    return p.RowChange(CHIT, row_id_new(writer.member).hex, p.UPSERT, cols)


def balance_everywhere(tally: Tally) -> int:
    """The chain's final balance, which every replica (the parties' own too) must agree on."""
    found = {tip(replica).balance for replica in [*tally.replicas(), tally.alice.replica]}
    found.add(tip(tally.bob.replica).balance)
    assert len(found) == 1, found
    return found.pop()


# -- the chain ---------------------------------------------------------------------------------


def test_payments_stay_within_the_credit_each_side_gives(tally):
    first = write(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 60_000))
    second = write(tally, tally.bob, chit(tally, tally.bob, PAYMENT, 10_000))
    assert tip(tally.alice.replica).balance == -50_000
    with pytest.raises(WriteError, match=r"50\.000 is available"):
        tally.alice.write_data([chit(tally, tally.alice, PAYMENT, 55_000)])
    reason = (
        "it would take the payer to 105.000 owed, past the credit of 100.000 the other side "
        "gives: 50.000 is available"
    )
    over = forged(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 55_000))
    refused_everywhere(tally, over, reason)
    accepted_everywhere(tally, first, second)
    assert balance_everywhere(tally) == -50_000
    # What is left fits exactly.
    write(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 50_000))
    assert balance_everywhere(tally) == -100_000


def test_no_chit_counts_before_both_signed_the_contract_as_it_stands(bare):
    alice, bob = bare.alice, bare.bob
    alice_p, bob_p = bare.parties[0], bare.parties[1]
    write(bare, alice, contract_change(contract_cols(alice.member)))
    sign(bare, alice, alice_p)  # the proposal, naming her alone
    bare.share()
    with pytest.raises(WriteError, match="not signed by both sides"):
        alice.write_data([chit(bare, alice, PAYMENT, 1_000)])
    proposed_only = forged(bare, alice, chit(bare, alice, PAYMENT, 1_000))
    write(bare, bob, contract_change({"parties": alice.member + bob.member}))
    sign(bare, bob, bob_p)
    bare.share()
    # Alice signed another version (before Bob was named): only Bob's signature counts.
    one_signed = forged(bare, alice, chit(bare, alice, PAYMENT, 2_000))
    refused_everywhere(bare, proposed_only, NOT_SIGNED)
    refused_everywhere(bare, one_signed, NOT_SIGNED)
    sign(bare, alice, alice_p)
    bare.share()
    counted = write(bare, alice, chit(bare, alice, PAYMENT, 3_000))
    accepted_everywhere(bare, counted)
    refused_everywhere(bare, one_signed, NOT_SIGNED)  # signing later revives nothing
    assert balance_everywhere(bare) == -3_000


def test_nobody_takes_value_from_the_other_side(tally):
    write(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 5_000))
    before = tip(tally.bob.replica)
    pulled = forged(
        tally, tally.bob, chit(tally, tally.bob, PAYMENT, 20_000, payer=tally.alice.member)
    )
    refused_everywhere(
        tally, pulled, "a payment is written by its payer: nobody takes value from the other side"
    )
    # His own name as payer, but the balance moved as if Alice had paid.
    as_if = _carried(before, PAYMENT, 20_000, by_owner=True)
    reversed_ = forged(
        tally, tally.bob, chit(tally, tally.bob, PAYMENT, 20_000, balance=as_if.balance)
    )
    refused_everywhere(
        tally, reversed_, "the chit's running balance or limits are not what the chain gives"
    )
    skipped = forged(tally, tally.bob, chit(tally, tally.bob, PAYMENT, 1_000, seq=5))
    refused_everywhere(
        tally, skipped, "the chit's running balance or limits are not what the chain gives"
    )
    # A chit under Alice's id, written by Bob.
    disguised = forged(
        tally, tally.bob, chit(tally, tally.bob, PAYMENT, 1_000, pk=rid(tally.alice, "bob's"))
    )
    refused_everywhere(tally, disguised, "a chit's id names its author")
    assert balance_everywhere(tally) == -5_000


def test_a_chit_in_another_unit_is_refused(tally):
    with pytest.raises(WriteError, match="tally's unit, CHIP"):
        tally.alice.write_data([chit(tally, tally.alice, PAYMENT, 1_000, unit="EUR")])
    euros = forged(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 1_000, unit="EUR"))
    refused_everywhere(tally, euros, "a chit is in the tally's unit, CHIP")
    assert balance_everywhere(tally) == 0


def test_a_chit_is_never_edited_or_deleted(tally):
    paid = chit(tally, tally.alice, PAYMENT, 10_000)
    write(tally, tally.alice, paid)
    edited = forged(tally, tally.alice, p.RowChange(CHIT, paid.pk, p.UPSERT, {"amount": 1_000}))
    refused_everywhere(tally, edited, WRITTEN_ONCE)
    rewritten = forged(
        tally, tally.alice, chit(tally, tally.alice, PAYMENT, 1_000, pk=paid.pk, prev=CONTRACT_ID)
    )
    refused_everywhere(tally, rewritten, WRITTEN_ONCE)
    by_bob = forged(tally, tally.bob, p.RowChange(CHIT, paid.pk, p.UPSERT, {"amount": 1}))
    refused_everywhere(tally, by_bob, WRITTEN_ONCE)
    deleted = forged(tally, tally.alice, p.RowChange(CHIT, paid.pk, p.DELETE, {}))
    # The policy already refuses a delete (before the rules see it): alike everywhere.
    assert "delete" in refused_alike(tally, deleted)
    assert balance_everywhere(tally) == -10_000
    for replica in tally.replicas():
        assert rows(replica, CHIT)[paid.pk]["amount"] == 10_000


def test_a_limit_counts_from_its_place_in_the_chain(tally):
    first = chit(tally, tally.alice, PAYMENT, 5_000)
    write(tally, tally.alice, first)
    old = tip(tally.alice.replica)
    write(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 5_000))
    # Bob lowers his limit, but on the old chit, behind Alice's second payment.
    backdated = forged(tally, tally.bob, chit(tally, tally.bob, LIMIT, 20_000, after=old))
    refused_everywhere(tally, backdated, CAME_FIRST)
    made_up = rid(tally.bob, "nowhere")
    lost = forged(tally, tally.bob, chit(tally, tally.bob, LIMIT, 20_000, after=old, prev=made_up))
    refused_everywhere(tally, lost, NOT_CHAIN)
    asked = invoice(tally.alice, 1_000)
    write(tally, tally.alice, asked)
    on_invoice = forged(tally, tally.bob, chit(tally, tally.bob, LIMIT, 20_000, prev=asked.pk))
    refused_everywhere(tally, on_invoice, NOT_CHAIN)
    # Within his 100 before; after Bob's limit of 20 at the tip, taking her debt to 30 is not.
    assert rules.next_state(tip(tally.alice.replica), PAYMENT, 20_000, True)[1] is None
    lowered = write(tally, tally.bob, chit(tally, tally.bob, LIMIT, 20_000))
    with pytest.raises(WriteError, match=r"10\.000 is available"):
        tally.alice.write_data([chit(tally, tally.alice, PAYMENT, 20_000)])
    over = forged(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 20_000))
    refused_everywhere(
        tally,
        over,
        "it would take the payer to 30.000 owed, past the credit of 20.000 the other side "
        "gives: 10.000 is available",
    )
    accepted_everywhere(tally, lowered)
    for replica in tally.replicas():
        assert tip(replica).partner_limit == 20_000
    assert balance_everywhere(tally) == -10_000


def test_a_third_party_writes_nothing_in_the_tally(tally):
    with pytest.raises(WriteError, match="only the tally's two parties"):
        tally.carol.write_data([chit(tally, tally.carol, PAYMENT, 1_000)])
    stranger = forged(tally, tally.carol, chit(tally, tally.carol, PAYMENT, 1_000))
    refused_everywhere(tally, stranger, "only the tally's two parties write in it")
    asks = forged(tally, tally.carol, invoice(tally.carol, 1_000))
    refused_everywhere(tally, asks, "only the tally's two parties write in it")
    assert balance_everywhere(tally) == 0


def test_concurrent_payments_one_counts_the_other_comes_after(tally):
    # Each written on its own replica before they sync: both name the contract as their prev.
    by_alice = tally.alice.write_data([chit(tally, tally.alice, PAYMENT, 10_000)])
    by_bob = tally.bob.write_data([chit(tally, tally.bob, PAYMENT, 20_000)])
    tally.share()
    first, second = sorted(
        [(by_alice, -10_000), (by_bob, 20_000)],
        key=lambda pair: (*pair[0].hlc, pair[0].device, pair[0].hash),
    )
    accepted_everywhere(tally, first[0])
    refused_everywhere(tally, second[0], CAME_FIRST)
    assert balance_everywhere(tally) == first[1]
    # The overtaken one's node sends it again on top of the chain: now it counts.
    writer = tally.alice if second[0] is by_alice else tally.bob
    amount = 10_000 if writer is tally.alice else 20_000
    again = write(tally, writer, chit(tally, writer, PAYMENT, amount))
    accepted_everywhere(tally, first[0], again)
    assert balance_everywhere(tally) == 10_000


def test_an_invoice_is_paid_once_by_the_side_it_asks(tally):
    asked = invoice(tally.bob, 5_000)
    write(tally, tally.bob, asked)
    paid = write(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 5_000, invoice=asked.pk))
    twice = forged(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 5_000, invoice=asked.pk))
    refused_everywhere(tally, twice, "this invoice is paid already")
    other = invoice(tally.bob, 5_000)
    write(tally, tally.bob, other)
    short = forged(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 4_000, invoice=other.pk))
    refused_everywhere(tally, short, "the invoice asks for 5000, not 4000")
    own = forged(tally, tally.bob, chit(tally, tally.bob, PAYMENT, 5_000, invoice=other.pk))
    refused_everywhere(tally, own, "a payment answers the other side's invoice, not one's own")
    beside = invoice(tally.bob, 1_000)
    chained = p.RowChange(CHIT, beside.pk, p.UPSERT, {**beside.cols, "prev": CONTRACT_ID})
    in_chain = forged(tally, tally.bob, chained)
    refused_everywhere(tally, in_chain, "an invoice stands beside the chain, not in it")
    nothing = forged(tally, tally.bob, invoice(tally.bob, 0))
    refused_everywhere(tally, nothing, "an invoice asks for more than zero")
    accepted_everywhere(tally, paid)
    assert balance_everywhere(tally) == -5_000


def test_a_closing_tally_only_comes_back_to_zero(tally):
    write(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 30_000))
    closed = write(tally, tally.bob, chit(tally, tally.bob, CLOSE, 0))
    more = forged(tally, tally.alice, chit(tally, tally.alice, PAYMENT, 10_000))
    refused_everywhere(tally, more, CLOSING_PAY)
    past_zero = forged(tally, tally.bob, chit(tally, tally.bob, PAYMENT, 40_000))
    refused_everywhere(tally, past_zero, CLOSING_PAY)
    limit = forged(tally, tally.alice, chit(tally, tally.alice, LIMIT, 1_000))
    refused_everywhere(tally, limit, "the tally is closing: its limits no longer change")
    again = forged(tally, tally.alice, chit(tally, tally.alice, CLOSE, 0))
    refused_everywhere(tally, again, "the tally is already closing")
    settled = write(tally, tally.bob, chit(tally, tally.bob, PAYMENT, 30_000))
    accepted_everywhere(tally, closed, settled)
    assert balance_everywhere(tally) == 0


# -- the contract ------------------------------------------------------------------------------


def test_the_contract_is_proposed_by_the_owner_joined_by_the_partner_then_fixed(bare):
    alice, bob, carol = bare.alice, bare.bob, bare.carol
    by_partner = forged(bare, bob, contract_change(contract_cols(bob.member)))
    refused_everywhere(bare, by_partner, "only the tally's owner proposes its contract", CONTRACT)
    both = forged(bare, alice, contract_change(contract_cols(alice.member + bob.member)))
    refused_everywhere(bare, both, "the proposed contract names its owner, and only them", CONTRACT)
    proposed = write(bare, alice, contract_change(contract_cols(alice.member)))
    second = forged(bare, alice, contract_change(contract_cols(alice.member), pk=rid(alice, "2")))
    refused_everywhere(bare, second, "a tally has one contract", CONTRACT)
    joined = alice.member + bob.member
    for terms in ({"owner_limit": 1}, {"unit": json.dumps(unit_data(unit_parse("EUR")))}):
        greedy = forged(bare, bob, contract_change({"parties": joined, **terms}))
        refused_everywhere(bare, greedy, "joining the tally does not change its terms", CONTRACT)
    named = write(bare, bob, contract_change({"parties": joined}))
    late = forged(bare, carol, contract_change({"parties": alice.member + carol.member}))
    refused_everywhere(bare, late, "the contract is fixed once both parties are named", CONTRACT)
    changed = forged(bare, alice, contract_change({"partner_limit": 0}))
    refused_everywhere(bare, changed, "the contract is fixed once both parties are named", CONTRACT)
    accepted_everywhere(bare, proposed, named)
    for replica in bare.replicas():
        contract = rows(replica, CONTRACT)[CONTRACT_ID]
        assert contract["parties"] == joined
        assert (contract["owner_limit"], contract["partner_limit"]) == (LIMIT_100, LIMIT_100)
