"""Fixtures the market's tests share: this node's shop, and a deal opened in it that the buyer
(on a node of its own in this process) joined."""

from __future__ import annotations

import pytest

from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.market import deal_services
from apps.market.policy import SHOP_APP
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.deal_support import ACCEPT, LISTING, Buyer, buyer_joins


@pytest.fixture
def shop(node) -> Thread:  # noqa: F811 - the fixture
    return threads.thread_create(name="Alice's shop", app=SHOP_APP)


@pytest.fixture
def opened(shop, tmp_path) -> tuple[Thread, Buyer]:
    deal, link = deal_services.deal_open(
        shop=shop, listing=LISTING, accept=ACCEPT, title="A red bicycle", price=12_000,
        currency="EUR", quantity=1,
    )  # fmt: skip
    return deal, buyer_joins(deal, link, tmp_path)
