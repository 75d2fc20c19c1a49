"""The shop's services on this node, with other nodes in this process (``support``): this node
sells (its shop, a customer on another node) or buys (a seller's shop on another node, which it
joined with the open link). Hostile input gets an error in words and writes nothing."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from apps.core.models import Thread, ThreadInvite
from apps.core.threads.app_kit import app_enabled
from apps.core.threads.context import thread_context
from apps.core.threads.database import WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.market import listing_selectors, proxy, selectors, services, trade_services
from apps.market.models import Accept, Bid, Close, Listing, Offer, ProxyBid, Rating
from apps.market.policy import CUSTOMER, DEAL_APP, INDEXER, RULES_APP
from tests.core.threads.conftest import (  # noqa: F401
    exchange,
    log_size,
    node,
    thread_databases_allowed,
)
from tests.market.support import (
    auction_fields,
    customer_join,
    listing_fields,
    now_ms,
    sellers_shop,
    templates_copied,  # noqa: F401
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("templates_copied", "node")]


def refused(code: str, words: str, fn, *args, **kwargs) -> None:
    """``fn`` refuses with ``code`` and words containing ``words``, and writes nothing."""
    thread = kwargs.get("thread") or args[0]
    before = log_size(thread_database(thread.thread))
    with pytest.raises(ThreadServiceError) as caught:
        fn(*args, **kwargs)
    assert caught.value.code == code, caught.value
    assert words in str(caught.value), caught.value
    assert log_size(thread_database(thread.thread)) == before


def rows(thread: Thread, model) -> list:
    with thread_context(thread.thread):
        return list(model.objects.all())


@pytest.fixture
def shop() -> Thread:
    return services.shop_create(name="Ada's attic", about="Old things, loved.")


# -- this node sells -----------------------------------------------------------------------------


def test_a_shop_has_its_rules_its_row_and_an_open_customer_link(shop: Thread):
    assert app_enabled(shop, RULES_APP)
    assert selectors.my_shops() == [shop]
    assert selectors.followed_shops() == []
    view = selectors.shop(shop)
    assert view is not None
    assert (view.name, view.about, view.role, view.listings) == (
        "Ada's attic",
        "Old things, loved.",
        "owner",
        0,
    )
    invite = ThreadInvite.objects.get(thread=shop, link=view.link)
    assert (invite.role, invite.uses) == (CUSTOMER, None)
    assert services.shop_link(shop) == view.link  # still fresh: the same link
    services.shop_update(shop, name="Ada's attic and garden")
    assert selectors.shop(shop).name == "Ada's attic and garden"
    refused("invalid", "Please give the shop's name", services.shop_update, shop, name="  ")
    # A link ending within a day is replaced, and the shop states the new one.
    ThreadInvite.objects.filter(pk=invite.pk).update(
        expires_at=datetime.now(UTC) + timedelta(hours=3)
    )
    renewed = services.shop_link(shop)
    assert renewed != view.link
    assert selectors.shop(shop).link == renewed
    index = services.shop_link(shop, role=INDEXER)
    assert ThreadInvite.objects.get(thread=shop, link=index).role == INDEXER
    assert services.shop_link(shop, role=INDEXER) == index


def test_hostile_listings_are_refused_in_words_and_nothing_is_stored(shop: Thread):
    cases = [
        ({"price": -100}, "The price must be more than zero."),
        ({"price": 0}, "The price must be more than zero."),
        ({"price": 10**18}, "The price is too large."),
        ({"price": True}, "The price must be a whole number."),
        ({"price": "12.50"}, "The price must be a whole number."),
        ({"currency": "ZZZ"}, "ZZZ is not a currency code we know"),
        ({"currency": "euro"}, "three-letter ISO 4217 code"),
        ({"title": ""}, "Please give the title."),
        ({"quantity": -1}, "The quantity cannot be negative."),
        ({"shipping": [{"region": "EU", "price": -1, "days": 3}]}, "shipping price"),
        ({"status": "gone"}, "The status must be one of"),
        ({"lat": float("nan"), "lon": 3.0}, "latitude must be from"),
    ]
    for change, words in cases:
        refused("invalid", words, services.listing_save, shop, **listing_fields(**change))
    refused("invalid", "A listing has no colour", services.listing_save, shop, colour="red")
    past = auction_fields(ends_in_ms=-1_000)
    refused("invalid", "The auction must end in the future.", services.listing_save, shop, **past)
    refused(
        "invalid",
        "An auction sells one item",
        services.listing_save,
        shop,
        **{**auction_fields(), "quantity": 2},
    )
    assert rows(shop, Listing) == []


def test_listings_are_saved_and_edited_field_by_field(shop: Thread):
    lid = services.listing_save(shop, **listing_fields())
    services.listing_save(shop, listing=lid, title="Oak chair, sturdy", quantity=5)
    view = listing_selectors.listing(shop, lid)
    assert view is not None
    assert (view.title, view.quantity, view.price_text, view.tags) == (
        "Oak chair, sturdy",
        5,
        "45.00 EUR",
        ("chair", "oak"),
    )
    assert view.mine
    assert view.auction is None
    refused("not_found", "There is no such listing", services.listing_save, shop, listing="zz")
    refused(
        "invalid",
        "The price must be more than zero.",
        services.listing_save,
        shop,
        listing=lid,
        price=-1,
    )
    assert [v.id for v in listing_selectors.listings(shop)] == [lid]


def test_photos_are_sealed_blobs_of_a_listing(shop: Thread):
    lid = services.listing_save(shop, **listing_fields())
    png = io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    png.name = "chair.png"
    photo = services.photo_add(shop, lid, png)
    (shown,) = listing_selectors.photos(shop, lid)
    assert (shown.id, shown.name, shown.mime, shown.size) == (photo, "chair.png", "image/png", 72)
    script = io.BytesIO(b"#!/bin/sh")
    script.name = "run.sh"
    refused(
        "invalid",
        "A photo is a JPEG, PNG, WebP or GIF image.",
        services.photo_add,
        shop,
        lid,
        script,
    )
    services.photo_remove(shop, photo)
    assert listing_selectors.photos(shop, lid) == []
    refused("not_found", "There is no such photo.", services.photo_remove, shop, photo)


def test_an_offer_is_accepted_and_its_deal_opened(shop: Thread, tmp_path):
    lid = services.listing_save(shop, **listing_fields(quantity=2))
    bea = customer_join(shop, tmp_path)
    bea.receive()
    offer = bea.offer(lid, 8000, 2, message="80 for both?")
    bea.send()
    (seen,) = listing_selectors.offers(shop, lid)
    assert (seen.buyer_name, seen.price_text, seen.quantity, seen.current) == (
        "Bea",
        "80.00 EUR",
        2,
        True,
    )
    refused(
        "forbidden",
        "You cannot make an offer in your own shop",
        trade_services.offer_make,
        shop,
        lid,
        price=100,
    )
    refused(
        "not_found", "There is no such offer", trade_services.offer_accept, shop, lid, "00" * 16
    )
    accept = trade_services.offer_accept(shop, lid, offer)
    (made,) = selectors.accepts(shop)
    assert (made.id, made.buyer, made.buyer_name, made.price, made.quantity) == (
        accept,
        bea.member,
        "Bea",
        8000,
        2,
    )
    assert Thread.objects.get(pk=made.deal).app == DEAL_APP
    assert listing_selectors.listing(shop, lid).status == "sold"  # both taken
    assert [(v.quantity, v.available) for v in listing_selectors.listings(shop)] == [(2, 0)]
    assert listing_selectors.offers(shop, lid)[0].accepted == accept
    refused("conflict", "accepted already", trade_services.offer_accept, shop, lid, offer)
    # How the deal ended is recorded once (again: the same row).
    sale = trade_services.sale_record(
        shop, accept=accept, outcome="completed", completion="ab" * 32
    )
    assert (
        trade_services.sale_record(shop, accept=accept, outcome="completed", completion="ab" * 32)
        == sale
    )
    refused(
        "invalid", "completed, cancelled or resolved", trade_services.sale_record, shop,
        accept=accept, outcome="lost", completion="ab" * 32,
    )  # fmt: skip
    assert [s.id for s in selectors.sales(shop)] == [sale]
    bea.receive()
    assert Accept.objects.using(bea.alias).get(pk=accept).deal == made.deal


def test_the_sellers_node_closes_a_due_auction_and_opens_the_winners_deal(shop: Thread, tmp_path):
    bea = customer_join(shop, tmp_path)
    lid = services.listing_save(shop, **auction_fields(ends_in_ms=1_500))
    bea.receive()
    bea.bid(lid, 1000)
    bea.send()
    refused("conflict", "it cannot close before", proxy.auction_close, shop, lid)
    assert proxy.closes_due(shop) == []  # not yet: a timer wakes the duty at the end
    ends = listing_selectors.listing(shop, lid).auction.ends_at_ms
    time.sleep(max(0, ends - now_ms()) / 1000 + proxy.CLOSE_AFTER_S + 0.1)
    (closed,) = proxy.closes_due(shop)
    with thread_context(shop.thread):
        close = Close.objects.get(pk=closed)
    assert (bytes(close.winner).hex(), close.price) == (bea.member, 1000)
    view = listing_selectors.listing(shop, lid)
    assert view is not None
    assert view.status == "sold"
    assert view.auction is not None
    assert (view.auction.closed, view.auction.winner_name) == (True, "Bea")
    (won,) = selectors.accepts(shop)
    assert (won.offer, won.buyer, won.price) == (None, bea.member, 1000)
    assert proxy.closes_due(shop) == []


@pytest.mark.django_db(transaction=True)  # two threads write the node's database
def test_a_close_from_the_api_racing_the_duty_writes_one_close_and_opens_one_deal(
    shop: Thread, tmp_path
):
    """The seller presses "close" just as the node's own duty closes the auction: one close,
    one accept, one deal thread; the loser of the race hears "closed already", not a crash."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    bea = customer_join(shop, tmp_path)
    deals_before = Thread.objects.filter(app=DEAL_APP).count()
    lid = services.listing_save(shop, **auction_fields(ends_in_ms=800))
    bea.receive()
    bea.bid(lid, 1000)
    bea.send()
    ends = listing_selectors.listing(shop, lid).auction.ends_at_ms
    time.sleep(max(0, ends - now_ms()) / 1000 + proxy.CLOSE_AFTER_S + 0.1)
    start = Barrier(2)

    codes = []

    def close_and_accept() -> str:
        start.wait()
        try:
            proxy.auction_close(shop, lid)
        except ThreadServiceError as exc:
            codes.append(exc.code)
        try:
            return trade_services.winner_accept(shop, lid)
        except ThreadServiceError as exc:
            codes.append(exc.code)
            return ""

    with ThreadPoolExecutor(2) as pool:
        accepted = [a for a in pool.map(lambda _: close_and_accept(), range(2)) if a]
    assert len(accepted) <= 1  # the node's duty may have opened the deal before either
    assert set(codes) <= {"conflict", "refused"}  # "closed already", "accepted already"
    assert len(rows(shop, Close)) == 1
    assert len(rows(shop, Accept)) == 1
    assert Thread.objects.filter(app=DEAL_APP).count() == deals_before + 1


# -- this node buys ------------------------------------------------------------------------------


def test_a_customer_offers_and_hostile_offers_store_nothing(tmp_path):
    ada = sellers_shop(tmp_path)
    lid = ada.listing()
    ada.send()
    assert selectors.shop(ada.thread).role == CUSTOMER
    assert selectors.followed_shops() == [ada.thread]
    assert selectors.my_shops() == []
    # A customer passes on the link the shop states; only its owner invites an index.
    assert services.shop_link(ada.thread) == selectors.shop(ada.thread).link
    refused(
        "forbidden",
        "Only the shop's owner invites an index.",
        services.shop_link,
        ada.thread,
        role=INDEXER,
    )
    cases = [
        ({"price": -100}, "invalid", "The price must be more than zero."),
        ({"price": 10**16}, "invalid", "The price is too large."),
        ({"price": True}, "invalid", "whole number of minor units"),
        ({"price": 4000, "quantity": 0}, "invalid", "quantity must be a whole number"),
        ({"price": 4000, "quantity": 9}, "invalid", "There are only 3 to offer for."),
        ({"price": 9000}, "invalid", "above the asking price of 45.00 EUR"),
        ({"price": 4000, "message": "x" * 3000}, "invalid", "message is too long"),
    ]
    for kwargs, code, words in cases:
        refused(code, words, trade_services.offer_make, ada.thread, lid, **kwargs)
    refused(
        "not_found", "There is no such listing", trade_services.offer_make, ada.thread, "x", price=1
    )
    refused(
        "forbidden", "Only the shop's staff", services.listing_save, ada.thread, **listing_fields()
    )
    refused(
        "forbidden",
        "Only the shop's staff",
        trade_services.offer_accept,
        ada.thread,
        lid,
        "00" * 16,
    )
    assert rows(ada.thread, Offer) == []
    offer = trade_services.offer_make(
        ada.thread, lid, price=8000, quantity=2, message="80 for two?"
    )
    (mine,) = listing_selectors.offers(ada.thread, lid)
    assert (mine.id, mine.mine, mine.buyer_name) == (offer, True, "you")
    # The seller changes the price: an offer citing the old terms would be refused, so the
    # service reads the listing again and cites the new ones.
    ada.receive()
    ada.edit(lid, price=5000)
    ada.send()
    trade_services.offer_make(ada.thread, lid, price=4000)


def test_bids_on_a_withdrawn_listing_or_below_the_increment_are_refused(tmp_path):
    ada = sellers_shop(tmp_path)
    lamp = ada.listing(**auction_fields())
    chair = ada.listing()
    ada.send()
    refused("conflict", "is not an auction", trade_services.bid_make, ada.thread, chair, 1000)
    refused(
        "conflict",
        "is an auction: bid instead",
        trade_services.offer_make,
        ada.thread,
        lamp,
        price=900,
    )
    refused(
        "conflict",
        "first bid must be at least 10.00 EUR",
        trade_services.bid_make,
        ada.thread,
        lamp,
        900,
    )
    refused(
        "invalid", "The bid must be more than zero.", trade_services.bid_make, ada.thread, lamp, -5
    )
    trade_services.bid_make(ada.thread, lamp, 1000)
    refused(
        "conflict", "You already have the best bid", trade_services.bid_make, ada.thread, lamp, 5000
    )
    ada.receive()
    with pytest.raises(WriteRefused, match="it can only be marked sold once its auction closed"):
        ada.edit(lamp, status="withdrawn")  # it has a bid: the seller's own replica says no
    gone = ada.listing(**{**auction_fields(), "status": "withdrawn"})
    ada.edit(chair, status="withdrawn")
    ada.send()
    for listing, fn, kwargs in (
        (chair, trade_services.offer_make, {"price": 900}),
        (gone, trade_services.bid_make, {"amount": 1000}),
        (gone, proxy.proxy_set, {"maximum": 2000}),
    ):
        refused("conflict", "This listing is not for sale now.", fn, ada.thread, listing, **kwargs)
    assert ProxyBid.objects.count() == 0


def test_proxy_bidding_answers_each_outbid_up_to_the_maximum(tmp_path):
    ada = sellers_shop(tmp_path)
    lamp = ada.listing(**auction_fields())
    ada.send()
    carl = ada.customer(tmp_path, "Carl")
    refused(
        "invalid",
        "below the smallest bid the auction takes now, 10.00 EUR",
        proxy.proxy_set,
        ada.thread,
        lamp,
        500,
    )
    first = proxy.proxy_set(ada.thread, lamp, 1500)
    assert first is not None
    assert ProxyBid.objects.get(thread=ada.thread.id).maximum == 1500
    view = listing_selectors.listing(ada.thread, lamp)
    assert (view.auction.best, view.auction.best_is_mine) == (1000, True)
    assert view.auction.my_maximum == 1500
    # Carl outbids; this node answers with the least that beats him, until its maximum.
    for carls, answer in ((1100, [1200]), (1300, [1400]), (1500, [])):
        exchange(thread_database(ada.thread.thread), carl.node.database)
        carl.bid(lamp, carls)
        carl.send()
        placed = proxy.proxies(ada.thread)
        with thread_context(ada.thread.thread):
            amounts = [Bid.objects.get(pk=b).amount for b in placed]
        assert amounts == answer
    view = listing_selectors.listing(ada.thread, lamp)
    assert [b.amount for b in view.bids] == [1500, 1400, 1300, 1200, 1100, 1000]
    assert (view.bids[0].bidder_name, view.auction.best_is_mine) == ("Carl", False)


def test_the_buyer_copies_a_rating_of_a_completed_sale_once(tmp_path):
    ada = sellers_shop(tmp_path)
    lid = ada.listing()
    ada.send()
    offer = trade_services.offer_make(ada.thread, lid, price=4000)
    ada.receive()
    me = bytes.fromhex(ada.thread.member_id)
    accept = ada.accept(lid, me, 4000, offer=uuid.UUID(hex=offer))
    sale = ada.sale(accept)
    ada.send()
    refused(
        "invalid",
        "whole number of stars from 1 to 5",
        trade_services.rating_copy,
        ada.thread,
        sale=sale,
        overall=6,
    )
    rating = trade_services.rating_copy(
        ada.thread, sale=sale, overall=4, shipping=5, comment="Quick."
    )
    assert trade_services.rating_copy(ada.thread, sale=sale, overall=1) == rating
    refused(
        "conflict",
        "Only the buyer of a completed deal can rate it.",
        trade_services.rating_copy,
        ada.thread,
        sale="00" * 16,
        overall=5,
    )
    (shown,) = selectors.ratings(ada.thread)
    assert (shown.overall, shown.shipping, shown.buyer_name) == (4, 5, "you")
    score = selectors.shop(ada.thread).score
    assert (score.count, str(score.average)) == (1, "4.00")
    # The seller's node (and anyone following the shop) recomputes the same score.
    ada.receive()
    assert [r.overall for r in Rating.objects.using(ada.alias).all()] == [4]
