"""What the market's page and API tests share: the node's market duties kept asleep (each test
writes every row itself, so nothing a duty would write races it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.core.threads.signals import ops_written
from apps.market import duties, proxy

DUTIES = (
    (proxy.on_ops_written, "market-shop-duties"),
    (duties.on_ops_written, "market-deal-duties"),
)


@pytest.fixture(autouse=True)
def no_duties() -> Iterator[None]:
    for _hook, uid in DUTIES:
        ops_written.disconnect(dispatch_uid=uid)
    yield
    for hook, uid in DUTIES:
        ops_written.connect(hook, dispatch_uid=uid)
