"""Deals through the services, between this node (the seller) and the buyer on a node of its own
in this process: the deal opened with its terms and the buyer's single-use invite (sealed so
only the buyer's member in the shop opens it), the buyer joining with it, the whole path
accepted -> paid -> shipped -> received -> completed, the chat, the release and the ratings."""

from __future__ import annotations

import pytest

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread.invite import invite_parse
from apps.core.thread.writer import redemption_request
from apps.core.threads import services as threads
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.market import deal_selectors, deal_services, duties
from apps.market.deal import DealState
from apps.market.models import Deal, DealMessage, Step
from tests.core.threads.conftest import node, other_node, thread_databases_allowed  # noqa: F401
from tests.market.deal_support import ACCEPT, LISTING, buyer_joins

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_duties(monkeypatch):
    """These tests write every step themselves: the node's deal duties stay asleep."""
    monkeypatch.setattr(duties.worker, "wake", lambda thread: None)


def test_the_deal_opens_with_its_terms_and_a_link_for_the_buyer_only(shop, tmp_path):
    deal, link = deal_services.deal_open(
        shop=shop, listing=LISTING, accept=ACCEPT, title="A red bicycle", price=12_000,
        currency="EUR", quantity=1, silent_days=10,
    )  # fmt: skip
    view = deal_selectors.deal(deal)
    assert (view.state.state, view.price, view.currency, view.silent_days) == (
        "accepted", 12_000, "EUR", 10
    )  # fmt: skip
    assert (view.shop, view.listing, view.accept, view.my_side) == (
        shop.id,
        LISTING,
        ACCEPT,
        "seller",
    )
    assert [s.step for s in view.steps] == ["accepted"]
    assert view.steps[0].by == "you"
    assert view.actions == ["cancelled"]
    assert invite_parse(link).role == "writer"
    buyer = buyer_joins(deal, link, tmp_path)
    # Single use: nobody else gets in with it.
    carol = other_node(tmp_path, deal.thread, "carol")
    request = redemption_request(
        invite_parse(link), master_secret=carol.keys.master_secret, device_key=carol.keys.device
    )
    with pytest.raises(ThreadServiceError):
        threads.invite_admit(thread=deal, request=request)
    assert Deal.objects.using(buyer.alias).get().title == "A red bicycle"


def test_bad_terms_open_nothing_and_an_invite_opens_only_for_its_member(shop):
    before = Thread.objects.count()
    with pytest.raises(ThreadServiceError, match="price"):
        deal_services.deal_open(
            shop=shop, listing=LISTING, accept=ACCEPT, title="Free", price=0, currency="EUR",
            quantity=1,
        )  # fmt: skip
    with pytest.raises(ThreadServiceError, match="currency"):
        deal_services.deal_open(
            shop=shop, listing=LISTING, accept=ACCEPT, title="Odd", price=5, currency="XYZ1",
            quantity=1,
        )  # fmt: skip
    assert Thread.objects.count() == before
    me = bytes.fromhex(shop.member_id)
    box = deal_services.invite_seal("sereus:invite/abc", me)
    assert deal_services.invite_open(shop, box) == "sereus:invite/abc"
    someone = keys.member_key(b"\x07" * 32, shop.thread).verify_key
    assert deal_services.invite_open(shop, deal_services.invite_seal("x", bytes(someone))) is None
    assert deal_services.invite_open(shop, b"not a box") is None


def test_the_whole_path_with_chat_release_and_ratings(opened):
    deal, bob = opened
    with pytest.raises(ThreadServiceError, match="Only the buyer marks the deal paid"):
        deal_services.step_write(deal, "paid", reference="x")
    bob.step("paid", reference="SEPA 4711")
    with pytest.raises(ThreadServiceError, match="carrier"):
        deal_services.step_write(deal, "shipped", carrier="", tracking="1")
    deal_services.step_write(deal, "shipped", carrier="DHL", tracking="00340434")
    with pytest.raises(ThreadServiceError, match="Only the buyer marks the deal received"):
        deal_services.step_write(deal, "received")
    bob.receive()
    bob.say("Thanks, it is on its way!")
    deal_services.message_send(deal, "Enjoy the ride.")
    with pytest.raises(ThreadServiceError, match="write a message"):
        deal_services.message_send(deal, "   ")
    with pytest.raises(ThreadServiceError, match="completed or resolved"):
        deal_services.deal_rate(deal, overall=5)
    with pytest.raises(ThreadServiceError, match="The seller can complete the deal only"):
        deal_services.step_write(deal, "completed")
    bob.step("received")
    bob.step("completed")
    view = deal_selectors.deal(deal)
    assert view.state.state == "completed"
    assert [(s.step, s.side) for s in view.steps] == [
        ("accepted", "seller"), ("paid", "buyer"), ("shipped", "seller"),
        ("received", "buyer"), ("completed", "buyer"),
    ]  # fmt: skip
    assert view.steps[1].by == "Bob"
    assert view.steps[2].fields == {
        "carrier": "DHL", "tracking": "00340434"
    }  # fmt: skip
    assert [(m.text, m.mine) for m in view.messages] == [
        ("Thanks, it is on its way!", False), ("Enjoy the ride.", True),
    ]  # fmt: skip
    assert view.actions == ["release", "rate"]
    deal_services.release_sign(deal)
    with pytest.raises(ThreadServiceError, match="released it"):
        deal_services.release_sign(deal)
    assert deal_selectors.deal(deal).released_by == ["seller"]
    with pytest.raises(ThreadServiceError, match="stars"):
        deal_services.deal_rate(deal, overall=6)
    deal_services.deal_rate(deal, overall=5, communication=4, comment="Quick payment")
    with pytest.raises(ThreadServiceError, match="rated this deal already"):
        deal_services.deal_rate(deal, overall=1)
    bob.receive()
    bob.rate(4)
    view = deal_selectors.deal(deal)
    assert sorted((r.side, r.overall, r.mine) for r in view.ratings) == [
        ("buyer", 4, False), ("seller", 5, True),
    ]  # fmt: skip
    assert "rate" not in view.actions
    assert [v.id for v in deal_selectors.my_deals()] == [deal.id]


def test_hostile_steps_are_refused_in_words_then_a_cancellation_and_the_invites(opened):
    deal, bob = opened
    with thread_context(deal.thread):
        before = Step.objects.count()
    with pytest.raises(ThreadServiceError, match="A deal has no step called 'teleported'"):
        deal_services.step_write(deal, "teleported")
    with pytest.raises(ThreadServiceError, match="The reason can be at most 500 characters"):
        deal_services.step_write(deal, "cancelled", reason="x" * 501)
    with pytest.raises(ThreadServiceError, match="characters that are not allowed"):
        deal_services.step_write(deal, "cancelled", reason="bad\x00byte")
    with pytest.raises(ThreadServiceError, match="must be text"):
        deal_services.step_write(deal, "cancelled", reason=["a", "list"])
    with pytest.raises(ThreadServiceError, match="at most 2,000 characters"):
        deal_services.message_send(deal, "y" * 2_001)
    with thread_context(deal.thread):
        assert Step.objects.count() == before
        assert not DealMessage.objects.exists()
    assert invite_parse(deal_services.escrow_invite(deal)).role == "escrow"
    assert invite_parse(deal_services.shipper_invite(deal)).role == "shipper"
    bob.step("paid")
    deal_services.step_write(deal, "cancelled", reason="Sold out, refunded.")
    view = deal_selectors.deal(deal)
    assert (view.state.state, view.actions) == ("cancelled", [])
    with pytest.raises(ThreadServiceError, match="cancelled"):
        deal_services.step_write(deal, "shipped", carrier="DHL", tracking="1")


def test_a_dispute_resolved_by_the_escrow_agent_and_released_by_two_of_three(opened, tmp_path):
    deal, bob = opened
    bob.step("paid")
    deal_services.step_write(deal, "shipped", carrier="DHL", tracking="00340434")
    bob.receive()
    bob.step("disputed", reason="The frame is bent.")
    with pytest.raises(ThreadServiceError, match="Only the escrow agent resolves the deal"):
        deal_services.step_write(deal, "resolved", outcome="refund")
    erin = buyer_joins(
        deal, deal_services.escrow_invite(deal), tmp_path, "Erin", side="escrow"
    )  # fmt: skip
    erin.step("resolved", outcome="split", split_amount=5_000)
    view = deal_selectors.deal(deal)
    assert (view.state.state, view.state.outcome, view.state.split_amount) == (
        "resolved", "split", 5_000
    )  # fmt: skip
    assert [s.side for s in view.steps][-2:] == ["buyer", "escrow"]
    assert "release" in view.actions
    deal_services.release_sign(deal)
    assert (deal_selectors.deal(deal).released_by, deal_selectors.deal(deal).released) == (
        ["seller"], False
    )  # fmt: skip
    erin.receive()
    erin.release(DealState(state="resolved", outcome="split", split_amount=5_000))
    view = deal_selectors.deal(deal)
    assert (view.released_by, view.released) == (["escrow", "seller"], True)
    assert "release" not in view.actions
