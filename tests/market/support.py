"""Shops between nodes in this process, as the market's tests need them.

- This node sells: ``services.shop_create`` and ``listing_save`` write its shop; a customer is
  another node (``customer_join``) that writes offers and bids through its own database, as its
  node's services would, and exchanges logs with this node (``send``, ``receive``).
- This node buys: a seller's node of its own (``sellers_shop``) owns the shop, writes its
  listings, closes and accepts through its own database; this node joined it with the shop's
  open link as a customer and uses the services.

Fields of a listing the tests start from: ``listing_fields``; an auction's: ``auction_fields``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import nacl.signing
import nacl.utils
import pytest

from apps.core.models import Thread
from apps.core.thread import payloads as p
from apps.core.thread.policy import policy_template
from apps.core.thread.writer import ThreadWriter
from apps.core.threads import services as threads
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.core.threads.registry import thread_path
from apps.core.threads.template import schema_fingerprint, template_copy
from apps.market import rules
from apps.market.models import Accept, Bid, Close, Listing, Offer, Sale, Shop
from apps.market.policy import CUSTOMER, SHOP_APP, market_spec
from apps.market.services import columns_stored
from tests.core.threads.conftest import OtherNode, admit, exchange, other_node
from tests.support import members

_template: Path | None = None


@pytest.fixture
def templates_copied(data_dir, tmp_path, tmp_path_factory, thread_databases_allowed) -> None:
    """Every node's thread files start from a schema template built once per folder (seconds
    of migrations, for this node's data dir and for the other nodes' folder alike): build it
    once for the test session and copy it where each test's nodes look for it."""
    global _template
    name = f".template-{schema_fingerprint().hex()}.sqlite3"
    if _template is None or not _template.exists():
        keep = tmp_path_factory.mktemp("market-template")
        template_copy(keep / "first.sqlite3")
        _template = keep / name
    for folder in (thread_path(bytes(32)).parent, tmp_path):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.copyfile(_template, folder / name)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def listing_fields(**given: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": "Oak chair",
        "summary": "Solid oak, seat recovered last year.",
        "price": 4500,
        "currency": "EUR",
        "category": "home",
        "tags": ["chair", "oak"],
        "place": "Ghent",
        "quantity": 3,
        "condition": "used",
        "status": "active",
        "shipping": [{"region": "Belgium", "price": 1200, "days": 3}],
    }
    fields.update(given)
    return fields


def auction_fields(ends_in_ms: int = 60_000, **terms: Any) -> dict[str, Any]:
    """A one-item auction from 10.00 EUR by 1.00, ending ``ends_in_ms`` from now."""
    settings: dict[str, Any] = {"increment": 100, "ends_at_ms": now_ms() + ends_in_ms}
    settings.update(terms)
    return listing_fields(title="Brass lamp", price=1000, quantity=1, auction=settings)


class Peer(members.Member):
    """Another node in this process with this node's shop (``send``: its log reaches this
    node; ``receive``: this node's log reaches it)."""

    @property
    def database(self) -> ThreadDatabase:
        return self.node.database

    def exchange(self) -> None:
        """Both nodes get everything the other has."""
        self.receive()
        self.send()


class Customer(Peer):
    """Another node's member in this node's shop, writing as its node's services would."""

    def listing(self, pk: str) -> Listing:
        return Listing.objects.using(self.alias).get(pk=pk)

    def version(self, pk: str) -> str:
        listing = self.listing(pk)
        return rules.terms_version(
            {f: getattr(listing, f) for f in ("price", "currency", "shipping", "auction")}
        )

    def offer(self, listing: str, price: int, quantity: int = 1, message: str = "") -> str:
        return (
            Offer.objects.using(self.alias)
            .create(
                listing=uuid.UUID(hex=listing),
                version=self.version(listing),
                price=price,
                quantity=quantity,
                message=message,
            )
            .id.hex
        )

    def bid(self, listing: str, amount: int) -> str:
        return (
            Bid.objects.using(self.alias)
            .create(listing=uuid.UUID(hex=listing), version=self.version(listing), amount=amount)
            .id.hex
        )


def customer_join(thread: Thread, tmp_path: Path, name: str = "Bea") -> Customer:
    """Someone joins this node's shop as a customer on a node of their own."""
    return members.member_join(thread, tmp_path, name, CUSTOMER, Customer)


class Seller(Peer):
    """A seller's node (another node in this process) whose shop this node joined as a
    customer."""

    def listing(self, **fields: Any) -> str:
        """A listing the seller writes (the fields as ``listing_save`` takes them)."""
        return (
            Listing.objects.using(self.alias)
            .create(**columns_stored(listing_fields(**fields)))
            .id.hex
        )

    def edit(self, listing: str, **fields: Any) -> None:
        Listing.objects.using(self.alias).filter(pk=listing).update(**columns_stored(fields))

    def close(self, listing: str, winner: bytes | None, price: int | None) -> str:
        made = Close.objects.using(self.alias).create(
            scope=uuid.UUID(hex=listing), winner=winner, price=price
        )
        return made.id.hex

    def accept(self, listing: str, buyer: bytes, price: int, **given: Any) -> str:
        values = {"quantity": 1, "deal": "ab" * 32, "invite": b"sealed", **given}
        made = Accept.objects.using(self.alias).create(
            listing=uuid.UUID(hex=listing), buyer=buyer, price=price, **values
        )
        return made.id.hex

    def sale(self, accept: str, outcome: str = "completed") -> str:
        made = Sale.objects.using(self.alias).create(
            accept=uuid.UUID(hex=accept), outcome=outcome, completion="cd" * 32
        )
        return made.id.hex

    def customer(self, tmp_path: Path, name: str) -> Customer:
        """Another customer of the seller's shop, on a node of its own, holding everything the
        seller holds (``exchange_with`` it later)."""
        joined = Customer(other_node(tmp_path, self.thread.thread, name.lower()), self.thread)
        admit(self.database, joined.node, CUSTOMER)
        joined.node.database.write(lambda writer: writer.set_name(name))
        exchange(joined.node.database, self.database)
        return joined


def sellers_shop(tmp_path: Path, name: str = "Ada's attic") -> Seller:
    """Ada's shop on a node of her own, which this node joined with its open link."""
    keys = NodeKeys(device=nacl.signing.SigningKey.generate(), master_secret=nacl.utils.random(32))
    writer = ThreadWriter.create(
        master_secret=keys.master_secret,
        device_key=keys.device,
        name=name,
        app=SHOP_APP,
        policy=policy_template(SHOP_APP),
    )
    writer.control(p.EnableApp(market_spec()))
    node = OtherNode(
        keys,
        ThreadDatabase(
            writer.thread,
            path=tmp_path / "ada.sqlite3",
            alias=f"thread_{writer.thread.hex()}_ada",
            node=keys,
        ),
    )
    node.database.ingest(op.raw for op in writer.replica.admitted)
    node.database.write(lambda w: w.set_name("Ada"))
    expiry = now_ms() + 3_600_000
    invite = node.database.write(
        lambda w: w.invite_create(role=CUSTOMER, expiry=expiry, inviter="ada", uses=None)
    )
    Shop.objects.using(node.alias).create(
        id=uuid.UUID(hex=rules.SHOP_ID), name=name, about="Old things, loved.", link=invite.link()
    )
    invite, request = threads.invite_redeem_local(link=invite.link())
    node.database.write(lambda w: w.admit(request))
    log = "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
    raws = [raw for (raw,) in node.database.raw().execute(log)]
    return Seller(node, threads.thread_join(invite=invite, raws=raws))
