"""``/sereus/market-search/1.0.0``: the request and the answer checked on both ends (pure), and a
buyer's node asking an index node over real libp2p hosts on 127.0.0.1: the index answers only
when it runs, only with the shops it serves, refuses a malformed query in words and a flood with
"wait a moment"; the buyer's search merges it with its own index and lists an index that is
gone with the reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from apps.core.thread.invite import invite_parse
from apps.market import index_duty, search_protocol, search_service, services
from apps.market.index_links import index_enable
from apps.market.models import KnownIndex
from apps.market.search_protocol import (
    answer_decode,
    answer_encode,
    handle,
    request_decode,
    request_encode,
)
from apps.market.search_query import Hit, Query, WireError, hit_to_wire
from apps.p2p import app_protocols, client
from apps.p2p.app_protocols import AppRefused, AppRequestError
from apps.p2p.bridge import TrioThread
from apps.p2p.host import quiet_libp2p_logs
from apps.p2p.node import NodeSettings, SereusNode
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.market.support import listing_fields, sellers_shop

SERVED = "5e" * 32
MS = 1_700_000_000_000


def hit(n: int, **fields: Any) -> Hit:
    values: dict[str, Any] = {
        "listing": f"{n:032x}",
        "shop": SERVED,
        "title": f"Oak chair {n}",
        "price": 1000 * n,
        "currency": "EUR",
        "category": "home",
        "place": "Ghent",
        "lat": None,
        "lon": None,
        "updated_ms": MS + n,
        "score": 0.0,
        "shop_name": "Ada's attic",
        "link": "",
        "summary": "Solid oak.",
    }
    return Hit(**{**values, **fields})


# -- the wire, pure ----------------------------------------------------------------------------


def test_a_query_and_an_answer_cross_unchanged() -> None:
    q = Query("oak chair", "home", 100, 5000, "EUR", (51.05, 3.72), 25.0, "distance", 3, 10)
    assert request_decode(request_encode(q)) == q
    hits = [hit(1), hit(2, lat=51.0, lon=3.7)]
    assert answer_decode(answer_encode(hits, 42)) == (hits, 42)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2", "not JSON"),
        (b'{"text": NaN}', "not JSON"),
        (b"[" * 100_000, "not JSON"),
        (b'{"page": 21}', "from 1 to 20"),
        (b'{"page_size": 51}', "from 1 to 50"),
        (json.dumps({"text": "x" * 201}).encode(), "at most 200 characters"),
        (b'{"limit": 5}', "unknown keys"),
    ],
)
def test_a_malformed_query_is_refused_in_words(data: bytes, words: str) -> None:
    with pytest.raises(WireError, match=words):
        request_decode(data)


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"hits": []},
        {"hits": [], "total": -1},
        {"hits": [], "total": 1.5},
        {"hits": [], "total": True},
        {"hits": [], "total": 0, "more": 1},
        {"hits": [hit_to_wire(hit(1))] * 51, "total": 51},
        {"hits": [{**hit_to_wire(hit(1)), "link": 5}], "total": 1},
    ],
)
def test_a_malformed_answer_is_refused(doc: Any) -> None:
    with pytest.raises(WireError, match="not readable"):
        answer_decode(json.dumps(doc).encode())


# -- an index node and a buyer's node -----------------------------------------------------------


class Running:
    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(exist_ok=True)
        self.node = SereusNode(
            nacl.signing.SigningKey.generate(),
            NodeSettings(data_dir=data_dir, listen="/ip4/127.0.0.1/tcp/0", dht=False),
        )
        self.bridge = TrioThread("node")
        self.bridge.start(self.node.run)

    def stop(self) -> None:
        self.bridge.stop()


@pytest.fixture
def index_file(node: Any, tmp_path: Path) -> Iterator[dict[str, str]]:  # noqa: F811
    """This node's own shop with three chairs (served to others) and a shop it follows as a
    customer with one (searched here only), in this data dir's index. Both nodes of a test
    share the data dir: the index node answers from it, the buyer searches it as its own too."""
    index_duty.forget()
    shop = services.shop_create(name="Ada's attic")
    for n in range(1, 4):
        services.listing_save(shop, **listing_fields(title=f"Oak chair {n}", price=1000 * n))
    services.listing_save(shop, **listing_fields(title="Oak chair draft", status="draft"))
    followed = sellers_shop(tmp_path, "Bea's")
    followed.listing(title="Oak chair followed")
    followed.send()
    index_duty.refresh_now()
    yield {"served": shop.id, "followed": followed.thread.id}
    index_duty.forget()


@pytest.fixture
def two_nodes(node: Any, tmp_path: Path) -> Iterator[tuple[Running, Running]]:  # noqa: F811
    quiet_libp2p_logs()
    search_protocol.register()  # as MarketConfig.ready does (again is the same)
    server = asker = None
    try:
        server, asker = Running(tmp_path / "index"), Running(tmp_path / "buyer")
        client.local_set(asker.bridge, asker.node)
        yield server, asker
    finally:
        client.local_clear()
        for running in (asker, server):
            if running is not None:
                running.stop()


def ask(server: Running, q: Query) -> tuple[list[Hit], int]:
    return search_protocol.ask(server.node.peer_id, list(server.node.addrs), q, timeout=5.0)


@pytest.mark.django_db(transaction=True)
def test_a_buyer_searches_an_index_node(index_file, two_nodes) -> None:
    server, _asker = two_nodes
    with pytest.raises(AppRequestError) as off:
        ask(server, Query(text="oak"))
    assert (off.value.code, off.value.words) == ("refused", search_protocol.NOT_AN_INDEX)

    index_enable(True, "Ghent index")
    hits, total = ask(server, Query(text="oak", sort="price_desc", page_size=2))
    assert [(h.title, h.price) for h in hits] == [("Oak chair 3", 3000), ("Oak chair 2", 2000)]
    assert total == 3, "neither the draft nor the followed shop is served to others"
    assert hits[0].shop_name == "Ada's attic"
    assert invite_parse(hits[0].link).thread.hex() == hits[0].shop

    # The buyer's search: the index and its own (which has the followed shop as well).
    KnownIndex.objects.create(
        peer=server.node.peer_id, addrs=json.dumps(list(server.node.addrs)), name="Ghent index"
    )
    gone = nacl.signing.SigningKey.generate()
    from apps.core.identity import peer_id_from_public_key

    KnownIndex.objects.create(
        peer=peer_id_from_public_key(bytes(gone.verify_key)),
        addrs=json.dumps(["/ip4/127.0.0.1/tcp/9"]),
        name="Gone index",
    )
    result = search_service.search(Query(text="oak"))
    assert len(result.hits) == 4
    assert result.total == 4
    by_name = {s.name: s for s in result.sources}
    assert by_name["this node"].ok
    assert by_name["Ghent index"].ok
    assert not by_name["Gone index"].ok
    assert "cannot reach" in by_name["Gone index"].words
    assert KnownIndex.objects.get(name="Gone index").last_error
    assert KnownIndex.objects.get(name="Ghent index").last_ok_at is not None

    # The handler itself: the followed shop is never answered, garbage is refused in words.
    answer = handle(b"\x01" * 32, request_encode(Query(text="followed")))
    assert answer_decode(answer) == ([], 0)
    with pytest.raises(AppRefused, match="not JSON"):
        handle(b"\x01" * 32, b"\x00garbage")
    index_enable(False)
    with pytest.raises(AppRefused, match="runs no market index"):
        handle(b"\x01" * 32, request_encode(Query()))


@pytest.mark.django_db(transaction=True)
def test_a_malformed_query_and_a_flood_are_answered_in_words(two_nodes) -> None:
    server, _asker = two_nodes
    index_enable(True)
    malformed = app_protocols.AppRequestError
    with pytest.raises(malformed) as bad:
        client.app_request(
            server.node.peer_id,
            list(server.node.addrs),
            search_protocol.PROTOCOL,
            b'{"page": 99}',
            timeout=5,
        )
    assert bad.value.code == "refused"
    assert "The page must be a whole number from 1 to 20." in bad.value.words
    refusals = []
    for _ in range(search_protocol.BURST + 5):
        try:
            ask(server, Query(text="oak"))
        except AppRequestError as exc:
            refusals.append((exc.code, exc.words))
    assert ("busy", search_protocol.BUSY) in refusals
