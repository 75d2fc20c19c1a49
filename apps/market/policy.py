"""The market's thread shapes (ADR 22).

A **shop** (shape ``shop``): the seller owns it; staff write listings, accept offers and close
auctions; customers (the shop's open link) read, offer and bid; an index (its own open link)
joins as ``indexer`` and writes nothing. Every member holds the thread's key, so an indexer
*can* read what customers read; the role only keeps it from writing (ADR 22 says why one thread
and not two).

A **deal** (shape ``deal``): the seller's node creates it when it accepts; the buyer joins with
the one invite sealed into the accept row; an escrow agent and a shipper may be invited. Who may
write which step is ``deal.py``'s, enforced by ``deal_rules.py`` on every replica.
"""

from apps.core.thread.appspec import AppSpec, Closing
from apps.core.thread.policy import ADMIN, OWNER, READER, WRITER, Policy, RoleRules

SHOP_APP = "shop"  # the shop thread's shape
DEAL_APP = "deal"  # the deal thread's shape
RULES_APP = "market"  # the shop's ordered tables and rules, enabled in every shop
DEAL_RULES_APP = "market_deal"  # the deal's, enabled in every deal

STAFF, CUSTOMER, INDEXER = "staff", "customer", "indexer"
SELLER, BUYER, ESCROW, SHIPPER = OWNER, WRITER, "escrow", "shipper"

SHOP, LISTING, PHOTO = "market_shop", "market_listing", "market_photo"
OFFER, BID, CLOSE = "market_offer", "market_bid", "market_close"
ACCEPT, SALE, RATING = "market_accept", "market_sale", "market_rating"
# The deal's tables are named after its rules app (every app's tables are ``<app>_...``).
DEAL, STEP, RELEASE = "market_deal_terms", "market_deal_step", "market_deal_release"
DEAL_MESSAGE, DEAL_RATING = "market_deal_message", "market_deal_rating"

_ADD = {"insert": "any"}
_EDIT = {"insert": "any", "update": "any"}
# Staff run the shop's trade; the owner also keeps the shop's own row.
_STAFF = {
    LISTING: _EDIT,
    PHOTO: _EDIT,
    CLOSE: _ADD,
    ACCEPT: _ADD,
    SALE: _ADD,
}
_OWNER = _STAFF | {SHOP: _EDIT}
_CUSTOMER = {OFFER: _ADD, BID: _ADD, RATING: _ADD}

ROLE_WORDS = {
    OWNER: "runs the shop: lists, accepts offers, closes auctions and invites staff",
    ADMIN: "helps run the shop",
    STAFF: "lists items, accepts offers and closes auctions",
    CUSTOMER: "reads the listings, makes offers, bids and rates after a deal",
    INDEXER: "an index: reads the listings so people can find them, writes nothing",
    READER: "reads the listings",
}


def shop_policy() -> Policy:
    return Policy(
        roles={
            OWNER: RoleRules(
                rank=1000,
                invite=frozenset({ADMIN, STAFF, CUSTOMER, INDEXER, READER}),
                manage=True,
                rotate=True,
            ),
            ADMIN: RoleRules(
                rank=100, invite=frozenset({STAFF, CUSTOMER, INDEXER}), manage=True, rotate=True
            ),
            STAFF: RoleRules(rank=60, invite=frozenset({CUSTOMER}), rotate=True),
            # Written for completeness: nobody is invited as a plain writer of a shop.
            WRITER: RoleRules(rank=50),
            CUSTOMER: RoleRules(rank=30, rotate=True, open=True),
            INDEXER: RoleRules(rank=20, open=True),
            READER: RoleRules(rank=10, open=True),
        }
    )


def market_spec() -> AppSpec:
    return AppSpec(
        app=RULES_APP,
        tables=frozenset(
            {SHOP, LISTING, PHOTO, OFFER, BID, CLOSE, ACCEPT, SALE, RATING},
        ),
        rules={OWNER: _OWNER, ADMIN: _STAFF, STAFF: _STAFF, CUSTOMER: _CUSTOMER},
        ordered=frozenset({LISTING, OFFER, BID, CLOSE, ACCEPT, SALE, RATING}),
        # A bid the seller's close had not seen is refused everywhere, whenever it arrives.
        closes={CLOSE: Closing(target=BID, scope="listing")},
    )


DEAL_ROLE_WORDS = {
    SELLER: "sold the item: ships it, and may complete the deal if the buyer stays silent",
    BUYER: "bought the item: pays, and says when it arrived",
    ESCROW: "the escrow agent both sides invited: resolves a dispute",
    SHIPPER: "the shipper: writes shipping updates only",
}

_DEAL_WRITE = {STEP: _ADD, RELEASE: _ADD, DEAL_MESSAGE: _ADD, DEAL_RATING: _ADD}


def deal_policy() -> Policy:
    return Policy(
        roles={
            # Either side may invite the escrow agent and a shipper; the buyer is invited once.
            SELLER: RoleRules(
                rank=1000, invite=frozenset({BUYER, ESCROW, SHIPPER}), manage=True, rotate=True
            ),
            ADMIN: RoleRules(rank=100),
            BUYER: RoleRules(rank=50, invite=frozenset({ESCROW, SHIPPER}), rotate=True),
            ESCROW: RoleRules(rank=40, rotate=True),
            SHIPPER: RoleRules(rank=30, rotate=True),
            READER: RoleRules(rank=10),
        }
    )


def deal_spec() -> AppSpec:
    return AppSpec(
        app=DEAL_RULES_APP,
        tables=frozenset({DEAL, STEP, RELEASE, DEAL_MESSAGE, DEAL_RATING}),
        rules={
            SELLER: _DEAL_WRITE | {DEAL: _ADD},
            BUYER: _DEAL_WRITE,
            ESCROW: {STEP: _ADD, RELEASE: _ADD, DEAL_MESSAGE: _ADD},
            SHIPPER: {STEP: _ADD, DEAL_MESSAGE: _ADD},
        },
        ordered=frozenset({DEAL, STEP, RELEASE, DEAL_RATING}),
    )
