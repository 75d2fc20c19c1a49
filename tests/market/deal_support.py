"""A deal's buyer (or escrow agent) on a node of its own in this process, for the deal tests:
``buyer_joins`` redeems the deal's link and hands back the ``Buyer`` that writes its steps,
messages, rating and release through its own database."""

from __future__ import annotations

import json
import uuid

import nacl.signing
import nacl.utils

from apps.core.models import Thread
from apps.core.thread import countersign, keys
from apps.core.thread.invite import invite_parse
from apps.core.thread.writer import redemption_request
from apps.core.threads import services as threads
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.core.threads.registry import thread_database
from apps.market import deal_rules
from apps.market.deal import DealState
from apps.market.models import Deal, DealMessage, DealRating, Release, Step
from tests.core.threads.conftest import OtherNode, exchange
from tests.support.members import Member

LISTING, ACCEPT = uuid.uuid4().hex, uuid.uuid4().hex  # the deal's listing and accept


class Buyer(Member):
    """The buyer's node (or the escrow agent's: ``side``): writes its steps, messages, rating
    and release through its own database."""

    side = "buyer"

    def step(self, step: str, **fields) -> str:
        fields["by"] = self.side
        fields.setdefault("n", Step.objects.using(self.alias).count())  # its place
        made = Step.objects.using(self.alias).create(step=step, fields=json.dumps(fields))
        self.send()
        return made.id.hex

    def say(self, text: str) -> None:
        DealMessage.objects.using(self.alias).create(text=text)
        self.send()

    def rate(self, overall: int) -> None:
        pk = deal_rules.rating_id(bytes.fromhex(self.member))
        DealRating.objects.using(self.alias).create(id=uuid.UUID(hex=pk), overall=overall)
        self.send()

    def release(self, state: DealState) -> None:
        """Signs the release of the payment as the deal stands (``state``)."""
        terms = Deal.objects.using(self.alias).get()
        row = {c: getattr(terms, c) for c in deal_rules.TERMS}
        digest = deal_rules.release_digest(
            row | {"listing": terms.listing.hex, "accept": terms.accept.hex}, state
        )
        key = keys.member_key(self.node.keys.master_secret, self.thread.thread)
        Release.objects.using(self.alias).create(
            id=uuid.UUID(hex=deal_rules.release_id(bytes(key.verify_key), self.side, digest)),
            target=uuid.UUID(hex=deal_rules.DEAL_ID),
            digest=digest,
            signer=bytes(key.verify_key),
            sig=countersign.signature_make(key, deal_rules.DOMAIN, digest),
        )
        self.send()


def buyer_joins(
    deal: Thread,
    link: str,
    tmp_path,
    name: str = "Bob",
    keys: NodeKeys | None = None,
    side: str = "buyer",
) -> Buyer:
    """The buyer (on a node of its own; ``keys``: that node's) redeems the deal's link: this
    node admits it as the invite says."""
    keys = keys or NodeKeys(nacl.signing.SigningKey.generate(), nacl.utils.random(32))
    slug = name.lower()
    database = ThreadDatabase(
        deal.thread,
        path=tmp_path / f"{slug}-deal.sqlite3",
        alias=f"thread_{deal.thread.hex()}_{slug}",
        node=keys,
    )
    buyer = Buyer(OtherNode(keys, database), deal)
    buyer.side = side
    request = redemption_request(
        invite_parse(link), master_secret=keys.master_secret, device_key=keys.device
    )
    threads.invite_admit(thread=deal, request=request)
    exchange(thread_database(deal.thread), database)
    database.write(lambda writer: writer.set_name(name))
    buyer.send()
    return buyer
