"""What keeps a bid quick however long its auction runs, with unchanged behaviour: the node folds
an auction from its best bid (and, under a soft close, the latest bids' stamps) read in order,
which must give what folding every bid gives (``rules.bid_fold``); a listing and the answer to
a bid carry its newest bids and the count of all; the seller's duties fold an auction again
when its terms change, not on every batch of ops while its end's timer waits."""

from __future__ import annotations

import time

import pytest

from apps.core.threads.context import thread_context
from apps.market import api_bodies, listing_selectors, proxy, rules, selectors, services
from apps.market import trade_services as t
from apps.market.auction import AuctionTerms
from apps.market.models import Bid
from apps.market.policy import BID
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import auction_fields, now_ms, sellers_shop, templates_copied  # noqa: F401
from tests.market.web_support import no_duties  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("templates_copied", "node")]

BIDS = 2 * selectors.PAGE + 6  # the fold reads past two pages of bids; the last is Bob's


def every_bid_folded(thread, listing: str):
    """The auction as folding all its bids gives it (what the rules compute)."""
    row = selectors.listing_row(thread, listing)
    with thread_context(thread.thread):
        bids = [(b.amount, b.id.hex) for b in Bid.objects.filter(listing=row.id)]
    stamps = selectors.written(thread, BID, [pk for _amount, pk in bids])
    terms = rules.auction_terms(selectors.listing_cols(row))
    return rules.bid_fold(terms, bids, lambda pk: stamps[pk].stamp_ms if pk in stamps else None)


def test_a_long_auction_folds_as_every_bid_does_and_shows_its_newest_bids(tmp_path):
    ada = sellers_shop(tmp_path)
    # The first bid comes within the soft-close window (a second) and moves the end a day on;
    # the later ones come long before that end, so none moves it again: only the first bid's
    # stamp gives the end, and the fold reads every page of bids to reach it.
    lamp = ada.listing(
        **auction_fields(ends_in_ms=2_500, soft_close_ms=1_000, extend_ms=86_400_000)
    )
    ada.send()
    time.sleep(max(0, row_end(selectors.listing_row(ada.thread, lamp)) - 700 - now_ms()) / 1000)
    bob = ada.customer(tmp_path, "Bob")
    amount = 1000
    for n in range(BIDS):
        if n % 2 == 0:
            t.bid_make(ada.thread, lamp, amount)
            ada.receive()
            bob.receive()
        else:
            bob.bid(lamp, amount)
            bob.exchange()
            ada.exchange()
            ada.send()
        amount += 100
    ada.send()
    row = selectors.listing_row(ada.thread, lamp)
    found = selectors.auction_of(ada.thread, row, newest=3)
    assert found is not None
    assert found.state == every_bid_folded(ada.thread, lamp)
    assert found.state.bid_count == BIDS
    assert found.state.best_amount == amount - 100
    assert found.state.ends_at_ms > row_end(row)  # the late bids moved it
    assert [b.amount for b, _by in found.bids] == [amount - 100, amount - 200, amount - 300]

    view = listing_selectors.listing(ada.thread, lamp)
    assert view is not None
    assert view.auction is not None
    shown = listing_selectors.BIDS_SHOWN
    assert [b.amount for b in view.bids] == [amount - 100 * k for k in range(1, shown + 1)]
    assert view.auction.bid_count == BIDS
    body = api_bodies.written(ada.thread, lamp, bid="x")["listing"]
    assert len(body["bids"]) == shown
    assert (body["auction"]["bids"], body["auction"]["best"]) == (BIDS, amount - 100)
    assert body["auction"]["best_bidder"] == "Bob"  # the last bid is his
    assert {b["bidder"] for b in body["bids"]} == {"you", "Bob"}
    # The next bid is judged against the fold: too small refused in words, enough taken.
    with pytest.raises(t.ThreadServiceError, match="at least"):
        t.bid_make(ada.thread, lamp, amount - 50)
    t.bid_make(ada.thread, lamp, amount)
    assert selectors.auction_of(ada.thread, row).state == every_bid_folded(ada.thread, lamp)


def row_end(row) -> int:
    terms = rules.auction_terms(selectors.listing_cols(row))
    assert terms is not None
    return terms.ends_at_ms


def test_without_a_soft_close_the_fold_reads_only_the_best_bid():
    terms = AuctionTerms(100, 10, None, 5_000, None, 0)
    read: list[tuple[int, str]] = []

    def best_first():
        for n in range(1000, 0, -1):
            read.append((100 + 10 * n, f"{n:032x}"))
            yield read[-1]

    state = rules.bid_fold_best_first(terms, 1000, best_first(), lambda pk: 1 / 0)
    assert (state.best_amount, state.bid_count, state.ends_at_ms) == (10_100, 1000, 5_000)
    assert len(read) == 1
    none = rules.bid_fold_best_first(terms, 0, iter([]), lambda pk: None)
    assert none == rules.bid_fold(terms, [], lambda pk: None)


def test_the_sellers_duties_fold_again_when_an_auctions_terms_change(tmp_path):
    shop = services.shop_create(name="Ada's attic", about="Old things, loved.")
    lid = services.listing_save(shop, **auction_fields(ends_in_ms=600_000))
    assert proxy.closes_due(shop) == []  # its timer waits for the end, ten minutes away
    version = rules.terms_version(selectors.listing_cols(selectors.listing_row(shop, lid)))
    assert proxy._waiting(shop, lid, version)
    # No bid yet: the seller brings the end close; the duties must not trust the old timer.
    services.listing_save(
        shop, listing=lid, auction={"increment": 100, "ends_at_ms": now_ms() + 500}
    )
    edited = rules.terms_version(selectors.listing_cols(selectors.listing_row(shop, lid)))
    assert not proxy._waiting(shop, lid, edited)
    assert proxy.closes_due(shop) == []
    time.sleep(0.5 + proxy.CLOSE_AFTER_S + 0.1)
    assert len(proxy.closes_due(shop)) == 1
    view = listing_selectors.listing(shop, lid)
    assert view is not None
    assert view.auction is not None
    assert (view.auction.closed, view.auction.winner) == (True, None)
