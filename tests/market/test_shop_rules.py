"""A shop's rules through real replicas (ADR 22). Alice owns the shop, Sam is her staff, Bea and
Carl are customers. Honest members write through their writers, whose own replica refuses a bad
row at once; a modified node signs whatever it likes (``forge``), and every fresh replica, fed
every op in shuffled orders and judging strictly, must refuse it with the same reason.

Time in these rules is the ops' own stamps: a forged op may carry any stamp up to the replicas'
tolerance (15 minutes ahead), which is how a bid "after the end" is written here."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

import pytest

from apps.core.thread import payloads as p
from apps.core.thread.lww import materialize
from apps.core.thread.ordered_data import ordered_validators
from apps.core.thread.writer import ThreadWriter, WriteError
from apps.market import rules
from apps.market.policy import (
    ACCEPT,
    BID,
    CLOSE,
    CUSTOMER,
    LISTING,
    OFFER,
    RATING,
    SALE,
    SHOP_APP,
    STAFF,
    market_spec,
)
from tests.core.thread.conftest import Party, join, now_ms, rid
from tests.support.replica_groups import (
    ReplicaGroup,
    accepted_everywhere,
    forge_at,
    forged,
    opened,
    refused_alike,
    refused_everywhere,
    rows_everywhere,
    write,
)

MINUTE = 60_000


@dataclass
class Shop(ReplicaGroup):
    alice: ThreadWriter  # the owner
    sam: ThreadWriter  # staff
    bea: ThreadWriter  # customer
    carl: ThreadWriter  # customer
    parties: tuple[Party, ...]

    @property
    def writers(self) -> tuple[ThreadWriter, ...]:
        return (self.alice, self.sam, self.bea, self.carl)


@pytest.fixture
def shop() -> Shop:
    alice, sam, bea, carl = (Party(name) for name in ("alice", "sam", "bea", "carl"))
    owner = opened(alice, name="Alice's attic", app=SHOP_APP, spec=market_spec())
    return Shop(
        owner,
        join(owner, sam, STAFF),
        join(owner, bea, CUSTOMER),
        join(owner, carl, CUSTOMER),
        (alice, sam, bea, carl),
    ).settled()


# -- rows ----------------------------------------------------------------------------------------


def listing_cols(**given: Any) -> dict[str, Any]:
    cols: dict[str, Any] = {
        "title": "Oak chair",
        "summary": "",
        "description": "",
        "price": 4500,
        "currency": "EUR",
        "category": "home",
        "tags": json.dumps(["oak"]),
        "place": "Ghent",
        "lat": None,
        "lon": None,
        "quantity": 3,
        "condition": "used",
        "status": "active",
        "shipping": json.dumps([{"region": "Belgium", "price": 1200, "days": 3}]),
        "auction": "",
    }
    for column, value in given.items():
        cols[column] = json.dumps(value) if column == "auction" and type(value) is dict else value
    return cols


def auction_cols(end: int, **terms: Any) -> dict[str, Any]:
    """A one-item auction from 10.00 EUR by 1.00, ending at ``end``."""
    return listing_cols(
        title="Brass lamp",
        price=1000,
        quantity=1,
        auction={"increment": 100, "ends_at_ms": end, **terms},
    )


def upsert(table: str, pk: str, **cols: Any) -> p.RowChange:
    return p.RowChange(table, pk, p.UPSERT, cols)


def listing(writer: ThreadWriter, name: str, **cols: Any) -> p.RowChange:
    return upsert(LISTING, rid(writer, name), **(cols or listing_cols()))


def row(writer: ThreadWriter, table: str, pk: str) -> dict[str, Any]:
    return {"pk": pk, **materialize(writer.replica.accepted_data())[table][pk]}


def version(writer: ThreadWriter, pk: str) -> str:
    return rules.terms_version(row(writer, LISTING, pk))


def offer(
    writer: ThreadWriter, lid: str, price: int, quantity: int = 1, **given: Any
) -> p.RowChange:
    cited = given.pop("version", None) or version(writer, lid)
    cols = {"listing": lid, "version": cited, "price": price, "quantity": quantity}
    cols.update({"message": "", **given})
    return upsert(OFFER, rid(writer, f"offer {lid} {price} {quantity} {given}"), **cols)


def bid(writer: ThreadWriter, lid: str, amount: int, **given: Any) -> p.RowChange:
    cited = given.pop("version", None) or version(writer, lid)
    cols = {"listing": lid, "version": cited, "amount": amount, **given}
    return upsert(BID, rid(writer, f"bid {lid} {amount}"), **cols)


def close(writer: ThreadWriter, lid: str, winner: bytes | None, price: int | None) -> p.RowChange:
    return upsert(CLOSE, rid(writer, f"close {lid}"), scope=lid, winner=winner, price=price)


def accept(
    writer: ThreadWriter, lid: str, buyer: bytes, price: int, offer_pk: str | None = None, **given
) -> p.RowChange:
    cols = {
        "listing": lid,
        "offer": offer_pk,
        "buyer": buyer,
        "price": price,
        "quantity": 1,
        "deal": "ab" * 32,
        "invite": b"sealed link",
        **given,
    }
    return upsert(ACCEPT, rid(writer, f"accept {lid} {offer_pk} {given}"), **cols)


def sale(writer: ThreadWriter, accept_pk: str, outcome: str = "completed") -> p.RowChange:
    cols = {"accept": accept_pk, "outcome": outcome, "completion": "cd" * 32}
    return upsert(SALE, rid(writer, f"sale {accept_pk} {outcome}"), **cols)


def rating(writer: ThreadWriter, sale_pk: str, overall: int = 5, **given: Any) -> p.RowChange:
    cols = {"sale": sale_pk, "overall": overall, "comment": "Lovely lamp.", **given}
    return upsert(RATING, rid(writer, f"rating {sale_pk} {overall}"), **cols)


def test_the_app_registers_its_rules():
    validators = ordered_validators()
    for table, rule in rules.validators().items():
        assert validators[table] is rule
    spec = market_spec()
    assert spec.closes[CLOSE].target == BID
    assert spec.closes[CLOSE].scope == "listing"
    assert rules.STAFF_RANK == 60


# -- listings ------------------------------------------------------------------------------------


def test_staff_list_and_customers_cannot_edit_a_listing(shop: Shop):
    chair = listing(shop.sam, "chair")
    added = write(shop, shop.sam, chair)
    with pytest.raises(WriteError):
        shop.bea.write_data([upsert(LISTING, chair.pk, price=1)])
    by_bea = forged(shop, shop.bea, upsert(LISTING, chair.pk, price=1))
    assert refused_alike(shop, by_bea) == f"role customer may not update others' rows of {LISTING}"
    own = forged(shop, shop.bea, listing(shop.bea, "bea's own"))
    assert refused_alike(shop, own) == f"role customer may not insert own rows of {LISTING}"
    # Staff may not add a listing in another's name; the owner edits anyone's.
    disguised = forged(shop, shop.sam, upsert(LISTING, rid(shop.alice, "x"), **listing_cols()))
    refused_everywhere(shop, disguised, "a listing's id names its author", LISTING)
    edited = write(shop, shop.alice, upsert(LISTING, chair.pk, title="Oak chair, sturdy"))
    for replica in accepted_everywhere(shop, added, edited):
        assert materialize(replica.accepted_data())[LISTING][chair.pk]["price"] == 4500


def test_a_listing_must_be_a_listing_and_is_never_deleted(shop: Shop):
    with pytest.raises(WriteError, match="The price must be more than zero"):
        shop.sam.write_data([listing(shop.sam, "free", **listing_cols(price=-5))])
    cases = {
        "negative": (listing_cols(price=-5), "The price must be more than zero."),
        "absurd": (listing_cols(price=10**13), "The price is too large."),
        "unknown currency": (
            listing_cols(currency="ZZZ"),
            "ZZZ is not a currency code we know; use one like EUR or USD.",
        ),
        "bool": (listing_cols(price=True), "The price must be a whole number."),
        "past auction": (
            auction_cols(now_ms() - MINUTE),
            "The auction must end in the future.",
        ),
        "auction of two": (
            {**auction_cols(now_ms() + MINUTE), "quantity": 2},
            "An auction sells one item: set the quantity to 1.",
        ),
        "odd auction": (
            auction_cols(now_ms() + MINUTE, sniper=1),
            "The auction terms are not readable.",
        ),
    }
    for name, (cols, reason) in cases.items():
        op = forged(shop, shop.sam, upsert(LISTING, rid(shop.sam, name), **cols))
        refused_everywhere(shop, op, reason, LISTING)
    chair = listing(shop.sam, "chair")
    write(shop, shop.sam, chair)
    gone = forged(shop, shop.alice, p.RowChange(LISTING, chair.pk, p.DELETE, {}))
    assert refused_alike(shop, gone) == f"role owner may not delete others' rows of {LISTING}"
    assert set(rows_everywhere(shop, LISTING)) == {chair.pk}


# -- offers --------------------------------------------------------------------------------------


def test_offers_cite_the_terms_and_fit_what_is_left(shop: Shop):
    chair = listing(shop.sam, "chair")
    write(shop, shop.sam, chair)
    lid = chair.pk
    two = offer(shop.bea, lid, 8000, 2, message="80 for two?")
    first = write(shop, shop.bea, two)
    with pytest.raises(WriteError, match="only 3 to offer for"):
        shop.carl.write_data([offer(shop.carl, lid, 9000, 4)])
    cases = [
        (offer(shop.carl, lid, 9000, 4), "There are only 3 to offer for."),
        (offer(shop.carl, lid, 0), "The price must be more than zero."),
        (offer(shop.carl, lid, -100), "The price must be more than zero."),
        (
            offer(shop.carl, lid, 4600),
            "The offer is above the asking price of 45.00 EUR; buy at the asking price instead.",
        ),
        (offer(shop.carl, lid, 4000, version="0" * 64), rules.STALE),
        (
            offer(shop.carl, rid(shop.sam, "nothing"), 100, version="0" * 64),
            "there is no such listing",
        ),
    ]
    for change, reason in cases:
        refused_everywhere(shop, forged(shop, shop.carl, change), reason, OFFER)
    # Staff make no offers in their own shop (the policy says so before the rules).
    by_staff = forged(shop, shop.sam, offer(shop.sam, lid, 4000))
    assert refused_alike(shop, by_staff) == f"role staff may not insert own rows of {OFFER}"
    # An edit of the terms makes offers citing the old ones stale; quantity is not a term.
    old = offer(shop.carl, lid, 4000)
    write(shop, shop.sam, upsert(LISTING, lid, price=5000))
    refused_everywhere(shop, forged(shop, shop.carl, old), rules.STALE, OFFER)
    restocked = write(shop, shop.sam, upsert(LISTING, lid, quantity=5))
    fresh = write(shop, shop.carl, offer(shop.carl, lid, 4000))
    accepted_everywhere(shop, first, restocked, fresh)
    # Accepting Bea's two leaves three; withdrawn, nothing takes offers.
    write(
        shop,
        shop.sam,
        accept(shop.sam, lid, shop.bea.member, 8000, two.pk, quantity=2),
    )
    refused_everywhere(
        shop,
        forged(shop, shop.carl, offer(shop.carl, lid, 4000, 4)),
        "There are only 3 to offer for.",
        OFFER,
    )
    write(shop, shop.sam, upsert(LISTING, lid, status="withdrawn"))
    refused_everywhere(
        shop,
        forged(shop, shop.carl, offer(shop.carl, lid, 3000)),
        "this listing is not for sale now",
        OFFER,
    )


# -- bids and auctions ---------------------------------------------------------------------------


def lamp(shop: Shop, end: int | None = None, **terms: Any) -> str:
    """Sam lists a lamp at auction (ending a minute from now unless said)."""
    change = listing(
        shop.sam, f"lamp {end} {terms}", **auction_cols(end or now_ms() + MINUTE, **terms)
    )
    write(shop, shop.sam, change)
    return change.pk


def auction_state_everywhere(shop: Shop, lid: str) -> tuple[Any, ...]:
    """(best amount, best bidder's tag) as every replica folds the accepted bids."""
    found = set()
    for replica in shop.replicas():
        bids = materialize(replica.accepted_data()).get(BID, {})
        ours = sorted((b["amount"], pk) for pk, b in bids.items() if b["listing"] == lid)
        found.add(tuple(ours))
    assert len(found) == 1, found
    return found.pop()


def test_bids_climb_by_the_increment_with_clear_words(shop: Shop):
    lid = lamp(shop)
    with pytest.raises(WriteError, match=r"first bid must be at least 10\.00 EUR"):
        shop.bea.write_data([bid(shop.bea, lid, 900)])
    first = write(shop, shop.bea, bid(shop.bea, lid, 1000))
    low = "A bid must be at least 11.00 EUR — the best so far plus the increment."
    with pytest.raises(WriteError, match=r"at least 11\.00 EUR"):
        shop.carl.write_data([bid(shop.carl, lid, 1050)])
    refused_everywhere(shop, forged(shop, shop.carl, bid(shop.carl, lid, 1050)), low, BID)
    again = "You already have the best bid; you can bid again once someone outbids you."
    refused_everywhere(shop, forged(shop, shop.bea, bid(shop.bea, lid, 1500)), again, BID)
    stale = bid(shop.carl, lid, 1200, version="0" * 64)
    refused_everywhere(shop, forged(shop, shop.carl, stale), rules.STALE, BID)
    refused_everywhere(
        shop,
        forged(shop, shop.carl, bid(shop.carl, lid, 0)),
        "The bid must be more than zero.",
        BID,
    )
    # Staff do not bid in their own shop; a bid is never edited.
    by_staff = forged(shop, shop.sam, bid(shop.sam, lid, 5000))
    assert refused_alike(shop, by_staff) == f"role staff may not insert own rows of {BID}"
    edit = forged(shop, shop.bea, upsert(BID, bid(shop.bea, lid, 1000).pk, amount=9000))
    assert refused_alike(shop, edit) == f"role customer may not update own rows of {BID}"
    second = write(shop, shop.carl, bid(shop.carl, lid, 1100))
    accepted_everywhere(shop, first, second)
    assert [amount for amount, _ in auction_state_everywhere(shop, lid)] == [1000, 1100]
    # Offers are for fixed prices; bids for auctions.
    chair = listing(shop.sam, "chair")
    write(shop, shop.sam, chair)
    refused_everywhere(
        shop,
        forged(shop, shop.bea, bid(shop.bea, chair.pk, 5000)),
        "this listing is not an auction: make an offer instead",
        BID,
    )
    refused_everywhere(
        shop,
        forged(shop, shop.bea, offer(shop.bea, lid, 900)),
        "this listing is an auction: bid instead of making an offer",
        OFFER,
    )


def test_a_bid_on_a_withdrawn_listing_is_refused(shop: Shop):
    lid = lamp(shop)
    write(shop, shop.sam, upsert(LISTING, lid, status="withdrawn"))
    refused_everywhere(
        shop,
        forged(shop, shop.bea, bid(shop.bea, lid, 1000)),
        "this listing is not for sale now",
        BID,
    )


def test_a_bid_stamped_after_the_end_is_refused_and_soft_close_extends(shop: Shop):
    end = now_ms() + 2 * MINUTE
    plain = lamp(shop, end)
    soft = lamp(shop, end, soft_close_ms=MINUTE, extend_ms=2 * MINUTE)
    # Half a minute before the end, within the soft-close window: the end moves to +2 min.
    near = forged(shop, shop.bea, bid(shop.bea, soft, 1000), at=end - 30_000)
    after = forged(shop, shop.carl, bid(shop.carl, soft, 1100), at=end + MINUTE)
    # Without a soft close, a bid stamped after the end is refused.
    late = forged(shop, shop.bea, bid(shop.bea, plain, 1000), at=end + MINUTE + 1)
    refused_everywhere(shop, late, "The auction ended at " + moment(end) + ".", BID)
    accepted_everywhere(shop, near, after)
    # Carl's bid moved it again, to 3 minutes past the first end; beyond that, refused.
    moved = end + 3 * MINUTE
    too_late = forged(shop, shop.bea, bid(shop.bea, soft, 1200), at=moved)
    refused_everywhere(shop, too_late, "The auction ended at " + moment(moved) + ".", BID)


def moment(ms: int) -> str:
    from apps.market.auction import moment as said

    return said(ms)


def test_concurrent_bids_near_the_end_have_one_winner_everywhere(shop: Shop):
    end = now_ms() + 2 * MINUTE
    lid = lamp(shop, end)
    # Two seconds before the end, Bea and Carl bid on nodes that have not heard of each other:
    # each node accepts its own bid.
    by_carl = forge_at(shop.carl, bid(shop.carl, lid, 1000), at=end - 2_000)
    by_bea = forge_at(shop.bea, bid(shop.bea, lid, 1050), at=end - 1_500)
    assert shop.bea.replica.decision(by_bea.hash).status == "accepted"
    shop.share()
    # Carl's is stamped first: it counts everywhere, and Bea's no longer beats it by 1.00.
    for replica in shop.replicas(runs=5):
        assert replica.decision(by_carl.hash).status == "accepted"
        decision = replica.decision(by_bea.hash)
        assert (decision.status, decision.reason) == (
            "refused",
            f"{BID}: A bid must be at least 11.00 EUR — the best so far plus the increment.",
        )
    # Bea's own node turned hers over too.
    assert shop.bea.replica.decision(by_bea.hash).status == "refused"
    assert auction_state_everywhere(shop, lid) == ((1000, bid(shop.carl, lid, 1000).pk),)
    # Sam's node closes after the end naming Carl at 10.00; every replica agrees.
    closed = forged(shop, shop.sam, close(shop.sam, lid, shop.carl.member, 1000), at=end + 1)
    accepted_everywhere(shop, closed)
    (only,) = rows_everywhere(shop, CLOSE).values()
    assert (only["winner"], only["price"]) == (shop.carl.member, 1000)


def test_a_late_bid_the_close_had_not_seen_is_refused_everywhere(shop: Shop):
    end = now_ms() + 2 * MINUTE
    lid = lamp(shop, end)
    write(shop, shop.bea, bid(shop.bea, lid, 1000))
    # Carl's node is cut off: his bid, stamped before the end, reaches nobody before the close.
    late = forge_at(shop.carl, bid(shop.carl, lid, 1100), at=end - 5_000)
    shop.share(shop.alice, shop.sam, shop.bea)
    closed = forge_at(shop.sam, close(shop.sam, lid, shop.bea.member, 1000), at=end + 1)
    shop.share()
    accepted_everywhere(shop, closed)
    assert refused_alike(shop, late) == f"{BID}: the listing was closed before this row was seen"
    # A bid after the close in the order is refused by the rule, whatever its stamp says.
    after = forged(shop, shop.carl, bid(shop.carl, lid, 1200))
    assert refused_alike(shop, after) == f"{BID}: the listing was closed before this row was seen"


def test_closes_name_what_the_bids_give(shop: Shop):
    end = now_ms() + 2 * MINUTE
    lid = lamp(shop, end, reserve=1500)
    write(shop, shop.bea, bid(shop.bea, lid, 1000))
    write(shop, shop.carl, bid(shop.carl, lid, 1200))
    early = forged(shop, shop.sam, close(shop.sam, lid, None, None), at=end - 1_000)
    refused_everywhere(
        shop, early, f"The auction runs until {moment(end)}; it cannot close before.", CLOSE
    )
    # The reserve was not met: nobody wins.
    named = forged(shop, shop.sam, close(shop.sam, lid, shop.carl.member, 1200), at=end + 1)
    refused_everywhere(
        shop, named, "nobody won this auction: its close names no winner and no price", CLOSE
    )
    by_customer = forged(shop, shop.bea, close(shop.bea, lid, None, None), at=end + 2)
    assert refused_alike(shop, by_customer) == f"role customer may not insert own rows of {CLOSE}"
    fair = forged(shop, shop.sam, close(shop.sam, lid, None, None), at=end + 3)
    twice = forged(shop, shop.alice, close(shop.alice, lid, None, None), at=end + 4)
    accepted_everywhere(shop, fair)
    refused_everywhere(shop, twice, "this auction is closed already", CLOSE)


def test_a_close_must_name_the_best_bidder_and_price(shop: Shop):
    end = now_ms() + 2 * MINUTE
    lid = lamp(shop, end)
    write(shop, shop.bea, bid(shop.bea, lid, 1000))
    write(shop, shop.carl, bid(shop.carl, lid, 1300))
    wrong = forged(shop, shop.sam, close(shop.sam, lid, shop.bea.member, 1000), at=end + 1)
    refused_everywhere(shop, wrong, "the close must name the best bidder as the winner", CLOSE)
    cheap = forged(shop, shop.sam, close(shop.sam, lid, shop.carl.member, 1100), at=end + 2)
    refused_everywhere(shop, cheap, "the close's price must be the best bid", CLOSE)
    fair = forged(shop, shop.sam, close(shop.sam, lid, shop.carl.member, 1300), at=end + 3)
    accepted_everywhere(shop, fair)


def test_a_listing_with_bids_keeps_its_terms_and_is_sold_only_after_its_close(shop: Shop):
    end = now_ms() + 2 * MINUTE
    lid = lamp(shop, end)
    retitled = write(shop, shop.sam, upsert(LISTING, lid, title="Brass lamp, polished"))
    write(shop, shop.bea, bid(shop.bea, lid, 1000))
    for cols in (
        {"price": 500},
        {"auction": json.dumps({"increment": 1, "ends_at_ms": end})},
        {"auction": ""},
        {"shipping": "[]"},
    ):
        refused_everywhere(
            shop, forged(shop, shop.sam, upsert(LISTING, lid, **cols)), rules.HAS_BIDS, LISTING
        )
    with pytest.raises(WriteError, match="its terms can no longer change"):
        shop.sam.write_data([upsert(LISTING, lid, price=500)])
    early = "this listing has bids: it can only be marked sold once its auction closed"
    for status in ("sold", "draft", "withdrawn"):
        op = forged(shop, shop.sam, upsert(LISTING, lid, status=status))
        refused_everywhere(shop, op, early, LISTING)
    still = write(shop, shop.sam, upsert(LISTING, lid, description="Works fine."))
    closed = forged(shop, shop.sam, close(shop.sam, lid, shop.bea.member, 1000), at=end + 1)
    draft = forged(shop, shop.sam, upsert(LISTING, lid, status="draft"))
    refused_everywhere(shop, draft, early, LISTING)
    sold = write(shop, shop.sam, upsert(LISTING, lid, status="sold"))
    accepted_everywhere(shop, retitled, still, closed, sold)


# -- accepts, sales, ratings ---------------------------------------------------------------------


def test_an_offer_is_accepted_as_made_once(shop: Shop):
    chair = listing(shop.sam, "chair")
    write(shop, shop.sam, chair)
    lid = chair.pk
    made = offer(shop.bea, lid, 8000, 2)
    write(shop, shop.bea, made)
    bea = shop.bea.member
    cases = [
        (
            accept(shop.sam, lid, shop.carl.member, 8000, made.pk, quantity=2),
            "the buyer is who made the offer",
        ),
        (
            accept(shop.sam, lid, bea, 7000, made.pk, quantity=2),
            "an offer is accepted as it was made: its price and quantity",
        ),
        (
            accept(shop.sam, lid, bea, 8000, made.pk, quantity=1),
            "an offer is accepted as it was made: its price and quantity",
        ),
        (
            accept(shop.sam, lid, bea, 8000, rid(shop.bea, "none"), quantity=2),
            "there is no such offer on this listing",
        ),
        (
            accept(shop.sam, lid, bea, 8000, made.pk, quantity=2, deal="xyz"),
            "an accept names its deal thread",
        ),
        (
            accept(shop.sam, lid, bea, 8000, made.pk, quantity=2, invite=b"x" * 5000),
            "an accept carries the deal's invite, sealed to the buyer",
        ),
        (accept(shop.sam, lid, bea, 8000, None), "this auction is not closed yet"),
    ]
    for change, reason in cases:
        refused_everywhere(shop, forged(shop, shop.sam, change), reason, ACCEPT)
    by_bea = forged(shop, shop.bea, accept(shop.bea, lid, bea, 8000, made.pk, quantity=2))
    assert refused_alike(shop, by_bea) == f"role customer may not insert own rows of {ACCEPT}"
    good = write(shop, shop.sam, accept(shop.sam, lid, bea, 8000, made.pk, quantity=2))
    again = forged(shop, shop.alice, accept(shop.alice, lid, bea, 8000, made.pk, quantity=2))
    refused_everywhere(shop, again, "this offer is accepted already", ACCEPT)
    # Two left less the two taken: an offer for two more no longer fits.
    more = offer(shop.carl, lid, 8000, 2)
    refused_everywhere(shop, forged(shop, shop.carl, more), "There are only 1 to offer for.", OFFER)
    accepted_everywhere(shop, good)


def test_the_winner_is_accepted_at_the_closing_price_once(shop: Shop):
    end = now_ms() + 2 * MINUTE
    lid = lamp(shop, end)
    write(shop, shop.bea, bid(shop.bea, lid, 1000))
    forged(shop, shop.sam, close(shop.sam, lid, shop.bea.member, 1000), at=end + 1)
    wrong = forged(shop, shop.sam, accept(shop.sam, lid, shop.carl.member, 1000))
    refused_everywhere(
        shop, wrong, "an auction's accept names its winner at the closing price", ACCEPT
    )
    cheap = forged(shop, shop.sam, accept(shop.sam, lid, shop.bea.member, 900))
    refused_everywhere(
        shop, cheap, "an auction's accept names its winner at the closing price", ACCEPT
    )
    good = write(shop, shop.sam, accept(shop.sam, lid, shop.bea.member, 1000))
    twice = forged(shop, shop.alice, accept(shop.alice, lid, shop.bea.member, 1000, deal="ef" * 32))
    refused_everywhere(shop, twice, "this auction's winner is accepted already", ACCEPT)
    accepted_everywhere(shop, good)


def test_sales_are_recorded_by_who_accepted_and_ratings_only_by_the_buyer(shop: Shop):
    chair = listing(shop.sam, "chair")
    write(shop, shop.sam, chair)
    made = offer(shop.bea, chair.pk, 4000)
    write(shop, shop.bea, made)
    took = accept(shop.sam, chair.pk, shop.bea.member, 4000, made.pk)
    write(shop, shop.sam, took)
    # A rating without a completed sale: refused, in these words, for the buyer too.
    with pytest.raises(WriteError, match="only the buyer of a completed deal can rate it"):
        shop.bea.write_data([rating(shop.bea, rid(shop.sam, "no sale"))])
    no_sale = forged(shop, shop.bea, rating(shop.bea, rid(shop.sam, "no sale")))
    refused_everywhere(shop, no_sale, rules.ONLY_BUYER, RATING)
    by_alice = forged(shop, shop.alice, sale(shop.alice, took.pk))
    refused_everywhere(
        shop, by_alice, "only who accepted the offer records how its deal ended", SALE
    )
    odd = forged(shop, shop.sam, sale(shop.sam, took.pk, outcome="lost"))
    refused_everywhere(shop, odd, "a deal ends completed, cancelled or resolved", SALE)
    cancelled = sale(shop.sam, took.pk, outcome="cancelled")
    write(shop, shop.sam, cancelled)
    refused_everywhere(
        shop,
        forged(shop, shop.sam, sale(shop.sam, took.pk)),
        "this deal's end is recorded already",
        SALE,
    )
    refused_everywhere(
        shop, forged(shop, shop.bea, rating(shop.bea, cancelled.pk)), rules.ONLY_BUYER, RATING
    )
    # A second deal that completes: only its buyer rates it, once, with stars from 1 to 5.
    made = offer(shop.bea, chair.pk, 4500)
    write(shop, shop.bea, made)
    took = accept(shop.sam, chair.pk, shop.bea.member, 4500, made.pk)
    write(shop, shop.sam, took)
    done = sale(shop.sam, took.pk)
    write(shop, shop.sam, done)
    refused_everywhere(
        shop, forged(shop, shop.carl, rating(shop.carl, done.pk)), rules.ONLY_BUYER, RATING
    )
    six = forged(shop, shop.bea, rating(shop.bea, done.pk, overall=6))
    refused_everywhere(
        shop, six, "The overall rating must be a whole number of stars from 1 to 5.", RATING
    )
    rated = write(shop, shop.bea, rating(shop.bea, done.pk, 4, shipping=5))
    twice = forged(shop, shop.bea, rating(shop.bea, done.pk, 1))
    refused_everywhere(shop, twice, "this deal is rated already", RATING)
    accepted_everywhere(shop, rated)
    assert [r["overall"] for r in rows_everywhere(shop, RATING).values()] == [4]


def test_the_fold_reads_only_the_latest_stamps_and_agrees_with_bid_by_bid():
    """``rules.bid_fold`` reads the stamps of the latest bids only; it must give the state that
    applying the accepted bids one by one gives (``auction.bid_apply``)."""
    from apps.core.thread.rowid import row_id_new
    from apps.market.auction import AuctionTerms, BidProblem, auction_start, bid_apply

    for seed in range(200):
        dice = random.Random(seed)
        end = 1_000_000
        terms = AuctionTerms(
            start_price=100,
            increment=dice.choice((1, 10, 50)),
            reserve=None,
            ends_at_ms=end,
            soft_close_ms=dice.choice((None, 1_000, 30_000)),
            extend_ms=dice.choice((1_000, 5_000, 60_000)),
        )
        bidders = [bytes([n]) * 32 for n in range(3)]
        state, accepted, stamps, at = auction_start(terms), [], {}, end - dice.randint(1, 90_000)
        for _ in range(dice.randint(0, 30)):
            at += dice.randint(0, 4_000)
            member = dice.choice(bidders)
            pk = row_id_new(member).hex
            amount = (state.best_amount or 90) + dice.randint(0, 3) * terms.increment
            try:
                state = bid_apply(terms, state, amount, rules.bidder_of(member), at)
            except BidProblem:
                continue
            accepted.append((amount, pk))
            stamps[pk] = at
        read: list[str] = []
        folded = rules.bid_fold(
            terms, accepted, lambda pk, read=read, stamps=stamps: read.append(pk) or stamps[pk]
        )
        assert folded == state, seed
        if terms.soft_close_ms is None:
            assert read == []


def test_only_the_owner_writes_the_shop_row_and_only_staff_add_photos(shop: Shop):
    from apps.market.policy import PHOTO, SHOP

    named = write(shop, shop.alice, upsert(SHOP, rules.SHOP_ID, name="Alice's attic", about=""))
    for writer, role in ((shop.sam, "staff"), (shop.bea, "customer")):
        renamed = forged(shop, writer, upsert(SHOP, rules.SHOP_ID, name="Mine now"))
        assert refused_alike(shop, renamed) == f"role {role} may not insert others' rows of {SHOP}"
    chair = listing(shop.sam, "chair")
    write(shop, shop.sam, chair)
    photo = {"listing": chair.pk, "position": 0, "name": "a.png", "mime": "image/png"}
    photo |= {"size": 1, "key": "00" * 32, "chunks": "11" * 32, "removed": 0}
    added = write(shop, shop.sam, upsert(PHOTO, rid(shop.sam, "photo"), **photo))
    by_bea = forged(shop, shop.bea, upsert(PHOTO, rid(shop.bea, "photo"), **photo))
    assert refused_alike(shop, by_bea) == f"role customer may not insert own rows of {PHOTO}"
    accepted_everywhere(shop, named, added)
    assert [row["name"] for row in rows_everywhere(shop, SHOP).values()] == ["Alice's attic"]
