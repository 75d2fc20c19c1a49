"""The market's duties between nodes in this process: a seller's node records in the shop how
its deal ended, citing the hash of the op that wrote the final step; a buyer's node opens the
deal invite sealed to it in the shop and joins the deal (once, even when it fails), and copies
its rating of the deal into the shop once the shop has the sale."""

from __future__ import annotations

import json
import time
import uuid

import nacl.signing
import nacl.utils
import pytest
from django.db import transaction

from apps.core.models import Thread
from apps.core.thread import keys
from apps.core.thread import payloads as p
from apps.core.thread.policy import WRITER, policy_template
from apps.core.thread.rowid import row_id_new
from apps.core.thread.writer import ThreadWriter
from apps.core.threads import services as threads
from apps.core.threads.context import thread_context
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.core.threads.registry import thread_database
from apps.market import deal_rules, deal_selectors, deal_services, duties, services, trade_services
from apps.market.models import Accept, Deal, Rating, Sale, Step
from apps.market.policy import DEAL_APP, deal_spec
from tests.core.threads.conftest import exchange, node, thread_databases_allowed  # noqa: F401
from tests.market.deal_support import buyer_joins
from tests.market.support import Seller, customer_join, listing_fields, sellers_shop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def by_hand(monkeypatch):
    """These tests run the duties themselves, one at a time, from a clean memory: the worker
    is not woken, however ``ops_written`` is connected."""
    monkeypatch.setattr(duties.worker, "wake", lambda thread: None)
    duties.forget()
    yield
    duties.forget()


def last_op(database: ThreadDatabase) -> str:
    (raw,) = (
        database.raw()
        .execute("SELECT hash FROM sereus_ops WHERE place = 'log' ORDER BY n DESC LIMIT 1")
        .fetchone()
    )
    return bytes(raw).hex()


def test_the_seller_records_how_the_deal_ended_once(node, tmp_path):  # noqa: F811
    shop = services.shop_create(name="Ada's attic")
    listing = services.listing_save(shop, **listing_fields())
    bea = customer_join(shop, tmp_path, "Bea")
    bea.receive()
    offer = bea.offer(listing, 4000)
    bea.send()
    accept = trade_services.offer_accept(shop, listing, offer)
    bea.receive()
    # Bea's node opens the invite with her member key in the shop; another customer cannot.
    sealed = bytes(Accept.objects.using(bea.alias).get(pk=accept).invite)
    bea_key = keys.member_key(bea.node.keys.master_secret, shop.thread)
    link = nacl.public.SealedBox(bea_key.to_curve25519_private_key()).decrypt(sealed).decode()
    cid = customer_join(shop, tmp_path, "Cid")
    cid_key = keys.member_key(cid.node.keys.master_secret, shop.thread)
    with pytest.raises(nacl.exceptions.CryptoError):
        nacl.public.SealedBox(cid_key.to_curve25519_private_key()).decrypt(sealed)
    deal = Thread.objects.get(pk=Accept.objects.using(bea.alias).get(pk=accept).deal)
    buyer = buyer_joins(deal, link, tmp_path, "Bea", keys=bea.node.keys)
    buyer.step("paid", reference="Transfer 17")
    assert duties.sale_record(deal) is None  # not ended yet
    deal_services.step_write(deal, "shipped", carrier="bpost", tracking="CD1234")
    buyer.receive()
    buyer.step("received")
    buyer.step("completed")
    sale = duties.sale_record(deal)
    assert sale is not None
    with thread_context(shop.thread):
        (row,) = Sale.objects.all()
    assert (row.id.hex, row.accept.hex, row.outcome) == (sale, accept, "completed")
    assert row.completion == last_op(buyer.node.database)  # Bea's completing op
    duties.forget()
    assert duties.sale_record(deal) is None  # the shop has it: never twice
    with thread_context(shop.thread):
        assert Sale.objects.count() == 1


class DealNetwork:
    """The p2p layer as the services see it: a redeem reaches the seller's node, which admits
    this node and sends the deal's log back."""

    def __init__(self, seller_deal: ThreadDatabase) -> None:
        self.seller_deal = seller_deal
        self.redeemed = 0

    def addresses(self) -> tuple[str, ...]:
        return ()

    def redeem(self, invite, request) -> None:
        self.redeemed += 1
        self.seller_deal.write(lambda writer: writer.admit(request))
        threads.join_receive(invite=invite, raws=log(self.seller_deal))


def log(database: ThreadDatabase) -> list[bytes]:
    rows = database.raw().execute("SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n")
    return [raw for (raw,) in rows]


def sellers_deal(tmp_path, ada_keys: NodeKeys, shop: Thread, listing: str, accept: str):
    """Ada's node opens the deal as ``deal_open`` would: its thread, terms and opening step,
    and the buyer's single-use invite link."""
    writer = ThreadWriter.create(
        master_secret=ada_keys.master_secret, device_key=ada_keys.device, name="Oak chair",
        app=DEAL_APP, policy=policy_template(DEAL_APP),
    )  # fmt: skip
    writer.control(p.EnableApp(deal_spec()))
    database = ThreadDatabase(
        writer.thread,
        path=tmp_path / "ada-deal.sqlite3",
        alias=f"thread_{writer.thread.hex()}_adadeal",
        node=ada_keys,
    )
    database.ingest(op.raw for op in writer.replica.admitted)
    agreed = {"price": 4000, "currency": "EUR", "quantity": 1, "silent_days": 14}
    with transaction.atomic(using=database.alias):
        Deal.objects.using(database.alias).create(
            id=uuid.UUID(hex=deal_rules.deal_row_id(writer.member)), shop=shop.id,
            listing=uuid.UUID(hex=listing), accept=uuid.UUID(hex=accept), title="Oak chair",
            **agreed,
        )  # fmt: skip
        Step.objects.using(database.alias).create(
            step="accepted", fields=json.dumps(agreed | {"by": "seller", "n": 0})
        )
    expiry = time.time_ns() // 1_000_000 + 3_600_000
    invite = database.write(
        lambda w: w.invite_create(role=WRITER, expiry=expiry, inviter="ada", uses=1)
    )
    return database, invite.link()


def offered(tmp_path) -> tuple[Seller, str, str, bytes]:
    """Ada's shop, which this node joined; it offered 40.00 EUR for her listing. Returns Ada,
    the listing, the offer and this node's member key in the shop."""
    ada = sellers_shop(tmp_path)
    listing = ada.listing()
    ada.send()
    offer = trade_services.offer_make(ada.thread, listing, price=4000)
    ada.receive()
    return ada, listing, offer, bytes.fromhex(ada.thread.member_id)


@pytest.fixture
def bought(node, tmp_path, monkeypatch):  # noqa: F811
    """This node offered in Ada's shop; Ada's node accepted and opened the deal."""
    ada, listing, offer, me = offered(tmp_path)
    accept_row = Accept(
        id=row_id_new(ada.node.database.member_public()), listing=uuid.UUID(hex=listing),
        offer=uuid.UUID(hex=offer), buyer=me, price=4000, quantity=1, deal="", invite=b"",
    )  # fmt: skip
    accept = accept_row.id.hex
    ada_deal, link = sellers_deal(tmp_path, ada.node.keys, ada.thread, listing, accept)
    accept_row.deal = ada_deal.thread.hex()
    accept_row.invite = deal_services.invite_seal(link, me)
    accept_row.save(using=ada.alias, force_insert=True)
    ada.send()
    network = DealNetwork(ada_deal)
    monkeypatch.setattr(threads, "network", network)
    return ada, ada_deal, network


def test_the_buyer_joins_the_deal_once_and_its_rating_reaches_the_shop(bought):
    ada, ada_deal, network = bought
    shop = ada.thread
    (joined,) = duties.buyer_join(shop)
    assert duties.buyer_join(shop) == []
    assert network.redeemed == 1
    deal = Thread.objects.get(pk=joined)
    assert (deal.state, deal.role) == (Thread.State.ACTIVE, WRITER)
    view = deal_selectors.deal(deal)
    assert (view.my_side, view.state.state, view.price) == ("buyer", "accepted", 4000)

    def to_ada() -> None:
        exchange(thread_database(deal.thread), ada_deal)

    def from_ada() -> None:
        threads.thread_ingest(thread=deal, raws=log(ada_deal))

    deal_services.step_write(deal, "paid", reference="Transfer 17")
    deal_services.message_send(deal, "Paid this morning.")
    to_ada()
    Step.objects.using(ada_deal.alias).create(
        step="shipped",
        fields=json.dumps({"carrier": "bpost", "tracking": "1", "by": "seller", "n": 2}),
    )
    from_ada()
    deal_services.step_write(deal, "received")
    deal_services.step_write(deal, "completed")
    deal_services.deal_rate(deal, overall=5, shipping=4, comment="As described.")
    assert duties.rating_copy(deal) is None  # the shop has no sale for it yet
    assert deal_selectors.deal(deal).sale_recorded is False  # and the buyer's page says so
    to_ada()
    completion = last_op(thread_database(deal.thread))
    Sale.objects.using(ada.alias).create(
        accept=uuid.UUID(hex=view.accept), outcome="completed", completion=completion
    )
    ada.send()
    duties._duty(shop)  # what the worker runs when the sale arrives in the shop
    with thread_context(shop.thread):
        (rating,) = Rating.objects.all()
    assert (rating.overall, rating.shipping, rating.comment) == (5, 4, "As described.")
    assert deal_selectors.deal(deal).sale_recorded is True
    duties.forget()
    assert duties.rating_copy(deal) is None
    with thread_context(shop.thread):
        assert Rating.objects.count() == 1


def test_an_invite_that_does_not_open_is_tried_once(node, tmp_path, monkeypatch):  # noqa: F811
    ada, listing, offer, me = offered(tmp_path)
    someone = bytes(nacl.signing.SigningKey(nacl.utils.random(32)).verify_key)
    ada.accept(
        listing, me, 4000, offer=uuid.UUID(hex=offer), deal="ef" * 32,
        invite=deal_services.invite_seal("sereus:invite/x", someone),
    )  # fmt: skip
    ada.send()
    network = DealNetwork(thread_database(ada.thread.thread))
    monkeypatch.setattr(threads, "network", network)
    assert duties.buyer_join(ada.thread) == []
    assert duties.buyer_join(ada.thread) == []
    assert network.redeemed == 0
    assert not Thread.objects.filter(pk="ef" * 32).exists()


def test_ops_in_shops_and_deals_wake_the_duties_and_no_others(node, monkeypatch):  # noqa: F811
    woken: list[bytes] = []
    monkeypatch.setattr(duties.worker, "wake", woken.append)
    shop = services.shop_create(name="Ada's attic")
    deal, _link = deal_services.deal_open(
        shop=shop, listing=uuid.uuid4().hex, accept=uuid.uuid4().hex, title="Oak chair",
        price=4000, currency="EUR", quantity=1,
    )  # fmt: skip
    chat = threads.thread_create(name="Book club")
    assert shop.thread in woken
    assert deal.thread in woken
    assert chat.thread not in woken
