"""Tallies through the services, between this node (the owner) and a partner on a node of its
own in this process: proposing, joining and signing, paying within the limits, invoices,
closing, and a chit overtaken by one written at once on the other side being sent again."""

from __future__ import annotations

import json
import uuid

import pytest

from apps.core.thread import countersign, keys
from apps.core.threads.services import ThreadServiceError
from apps.ledger import rules, selectors, services
from apps.ledger.models import Chit, Contract, Signature
from apps.ledger.policy import PARTNER
from tests.support.members import Member, member_join

pytestmark = pytest.mark.django_db(transaction=True)


class Partner(Member):
    def key(self):
        return keys.member_key(self.node.keys.master_secret, self.thread.thread)

    def sign(self) -> None:
        """Names themself in the contract and signs it, as the partner's node does."""
        contract = Contract.objects.using(self.alias).get(pk=rules.CONTRACT_ID)
        contract.parties = bytes(contract.parties) + bytes.fromhex(self.member)
        row = {c: getattr(contract, c) for c in rules.TERMS} | {"parties": contract.parties}
        change = countersign.signature_change(rules.SPEC, self.key(), rules.CONTRACT_ID, row)
        from django.db import transaction

        with transaction.atomic(using=self.alias):
            contract.save(using=self.alias, update_fields=["parties"])
            Signature(id=uuid.UUID(hex=change.pk), **change.cols).save(using=self.alias)

    def pay(self, amount: int, *, prev: str, state: rules.State) -> str:
        after, problem = rules.next_state(state, rules.PAYMENT, amount, by_owner=False)
        assert problem is None, problem
        made = Chit.objects.using(self.alias).create(
            kind=rules.PAYMENT, payer=bytes.fromhex(self.member), unit="CHIP", amount=amount,
            prev=uuid.UUID(hex=prev), seq=after.seq, balance=after.balance,
            owner_limit=after.owner_limit, partner_limit=after.partner_limit, closing=False,
        )  # fmt: skip
        return made.id.hex


@pytest.fixture(autouse=True)
def no_worker():
    """These tests run the node's duties themselves, one step at a time."""
    from apps.core.threads.signals import ops_written
    from apps.ledger import duties

    ops_written.disconnect(dispatch_uid="ledger-duties")
    yield
    ops_written.connect(duties.on_ops_written, dispatch_uid="ledger-duties")


@pytest.fixture
def tally(node, tmp_path):
    proposed = services.tally_create(
        name="Bob and me", unit="CHIP", my_limit="100", partner_limit="100"
    )
    assert proposed.invite
    bob = member_join(proposed.thread, tmp_path, "Bob", PARTNER, Partner)
    return proposed.thread, bob


def test_a_tally_opens_when_both_signed_and_keeps_payments_within_the_limits(tally):
    thread, bob = tally
    state = selectors.tally(thread)
    assert (state.state, state.unit.code, state.balance) == ("proposed", "CHIP", 0)
    with pytest.raises(ThreadServiceError, match="not signed"):
        services.chit_create(thread=thread, kind="payment", amount="1")
    bob.receive()
    bob.sign()
    bob.send()
    services.duties(thread=thread)  # the owner's node signs the terms it proposed
    state = selectors.tally(thread)
    assert (state.state, state.i_signed, state.partner_signed) == ("open", True, True)
    services.chit_create(thread=thread, kind="payment", amount="60", memo="groceries")
    bob.receive()
    tip = selectors.tally(thread).tip
    bob.pay(10_000, prev=tip.pk, state=tip)
    bob.send()
    state = selectors.tally(thread)
    assert (state.balance, state.available, state.receivable) == (-50_000, 50_000, 150_000)
    with pytest.raises(ThreadServiceError, match=r"50\.000 is available"):
        services.chit_create(thread=thread, kind="payment", amount="55")
    assert [c.amount for c in selectors.chits(thread, state)] == [10_000, 60_000]


def test_a_payment_overtaken_by_the_partners_is_sent_again_on_top(tally):
    thread, bob = tally
    bob.receive()
    bob.sign()
    bob.send()
    services.duties(thread=thread)
    bob.receive()
    start = selectors.tally(thread).tip
    # Both pay at once on the same tip: Bob a moment earlier, so his orders first and mine is
    # refused everywhere ("came first"); my node sends mine again on top of his.
    bob.pay(7_000, prev=start.pk, state=start)
    mine = services.chit_create(thread=thread, kind="payment", amount="5", memo="rent")
    bob.send()
    state = selectors.tally(thread)
    assert state.balance == 7_000  # mine was overtaken
    (again,) = selectors.overtaken(thread)
    assert (again.id, again.amount, again.memo) == (mine.id.hex, 5_000, "rent")
    services.duties(thread=thread)
    services.duties(thread=thread)  # once only
    assert selectors.overtaken(thread) == []
    state = selectors.tally(thread)
    assert state.balance == 7_000 - 5_000
    shown = [(c.amount, c.mine, c.memo) for c in selectors.chits(thread, state)]
    assert shown == [(5_000, True, "rent"), (7_000, False, "")]
    bob.receive()
    assert Chit.objects.using(bob.alias).count() == 2


def test_invoices_close_and_words(tally):
    thread, bob = tally
    bob.receive()
    bob.sign()
    bob.send()
    services.duties(thread=thread)
    asked = services.chit_create(thread=thread, kind="invoice", amount="12.5", memo="lunch")
    state = selectors.tally(thread)
    (view,) = [c for c in selectors.chits(thread, state) if c.kind == "invoice"]
    assert (view.amount, view.paid_by) == (12_500, None)
    with pytest.raises(ThreadServiceError, match="your own payment request"):
        services.chit_create(thread=thread, kind="payment", amount="12.5", invoice=asked.id.hex)
    with pytest.raises(ThreadServiceError, match="amount"):
        services.chit_create(thread=thread, kind="payment", amount="12.5.0")
    services.chit_create(thread=thread, kind="payment", amount="3")
    services.tally_close(thread=thread)
    state = selectors.tally(thread)
    assert (state.state, state.available, state.receivable) == ("closing", 3_000, 0)
    with pytest.raises(ThreadServiceError, match="closing"):
        services.chit_create(thread=thread, kind="payment", amount="1")
    assert json.loads(Contract.objects.using(bob.alias).get().unit)["code"] == "CHIP"
