"""The market (issue 15), each figure beside a floor measured in the same run:

- listing -> search: three real nodes (``runnode`` processes on 127.0.0.1): a seller's shop, an
  index node the shop admits, a buyer that knows the index and does not follow the shop. A
  sample runs from the seller's ``POST /api/v1/threads/{shop}/listings/`` (a title with a word
  of its own) to the first answer of the buyer's ``GET /api/v1/market/search/?q=<word>`` (polled
  back to back on a kept-alive connection) that lists it: the shop's sync to the index, the
  index taking it in, the buyer's query over ``/sereus/market-search/1.0.0``. Floor, alternating
  with it: a message the seller sends in a conversation with the buyer, to the first answer of
  the buyer's messages list that holds it (one sync hop). p50/p99 over 200 of each (30 with
  ``--quick``), after 5 of each to warm up.
- search over 100 000 listings (10 000 with ``--quick``): the market index
  (``search_index.SearchIndex``, the index node's own code) asked for text and a price range,
  first page, relevance order; floor: a plain FTS5 table over the same rows (text, price as an
  unindexed column) asked the same in the same process, ``MATCH`` and ``price BETWEEN``,
  ``ORDER BY rank LIMIT 20``. 300 queries of each, interleaved.
- concurrent bidding: 2 000 bids from 4 bidders on one auction (``_bidding`` says how).
"""

from __future__ import annotations

import http.client
import random
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.ledger import _until
from bench.report import figure
from bench.request_path import KeptAlive
from bench.stats import percentiles
from tests.support.api import wait_for
from tests.support.p2p import Peer

SEED = 15
PAGE = 20
WARM = 5  # samples of each kind thrown away first
BIDDERS = ("b1", "b2", "b3", "b4")
# Words listings are made of: a few common (many hits, ranking matters), most rare.
_NOUNS = [
    "bicycle",
    "lamp",
    "chair",
    "table",
    "guitar",
    "camera",
    "lens",
    "kettle",
    "jacket",
    "boots",
    "sofa",
    "desk",
    "drill",
    "ladder",
    "tent",
    "kayak",
    "piano",
    "violin",
    "clock",
    "mirror",
    "rug",
    "shelf",
    "bench",
    "vase",
    "teapot",
    "radio",
    "printer",
    "monitor",
    "keyboard",
    "stroller",
    "cot",
    "helmet",
    "scooter",
    "saddle",
    "tyre",
    "wheel",
    "pump",
]
_ADJECTIVES = [
    "vintage",
    "red",
    "blue",
    "green",
    "old",
    "new",
    "wooden",
    "steel",
    "leather",
    "small",
    "large",
    "folding",
    "electric",
    "antique",
    "modern",
    "rustic",
    "compact",
    "portable",
    "classic",
    "handmade",
    "used",
    "mint",
]
_PLACES = [
    "Berlin",
    "Hamburg",
    "Munich",
    "Cologne",
    "Leipzig",
    "Dresden",
    "Bremen",
    "Hanover",
    "Essen",
    "Bonn",
]
_CATEGORIES = ["home", "sport", "music", "photo", "garden", "tools", "fashion", "kids"]


def _docs(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """``count`` listing documents of 200 shops, as the index node takes them in."""
    shops = [f"{rng.getrandbits(128):032x}" for _ in range(200)]
    docs = []
    for n in range(count):
        noun = rng.choice(_NOUNS)
        words = [rng.choice(_ADJECTIVES), rng.choice(_ADJECTIVES), noun]
        docs.append(
            {
                "id": f"{rng.getrandbits(128):032x}",
                "shop": shops[n % len(shops)],
                "title": " ".join(words).capitalize() + f" no. {n}",
                "summary": f"A {words[0]} {noun}, {rng.choice(_ADJECTIVES)} and "
                f"{rng.choice(_ADJECTIVES)}; collect or post.",
                "category": rng.choice(_CATEGORIES),
                "tags": [noun, rng.choice(_ADJECTIVES)],
                "price": rng.randrange(100, 500_000),
                "currency": "EUR",
                "place": rng.choice(_PLACES),
                "quantity": 1,
                "updated_ms": 1_700_000_000_000 + n,
            }
        )
    return docs


def _plain_fts(path: Path, docs: list[dict[str, Any]]) -> sqlite3.Connection:
    """The floor: the same rows in one plain FTS5 table (price unindexed), same tokenizer."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute(
        "CREATE VIRTUAL TABLE plain USING fts5(id UNINDEXED, title, summary, tags, place,"
        " price UNINDEXED, tokenize='unicode61 remove_diacritics 2')"
    )
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO plain (id, title, summary, tags, place, price) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (d["id"], d["title"], d["summary"], "\n".join(d["tags"]), d["place"], d["price"])
            for d in docs
        ],
    )
    db.execute("COMMIT")
    return db


def _queries(count: int, rng: random.Random) -> list[tuple[str, int, int]]:
    """Text (one or two words, as people type) and a price range (minor units)."""
    found = []
    for _ in range(count):
        words = [rng.choice(_NOUNS)]
        if rng.random() < 0.5:
            words.insert(0, rng.choice(_ADJECTIVES))
        low = rng.randrange(0, 300_000)
        found.append((" ".join(words), low, low + rng.randrange(5_000, 200_000)))
    return found


def _search(count: int, rounds: int) -> dict[str, Any]:
    from apps.market.search_index import SearchIndex, fts_match
    from apps.market.search_query import Query

    rng = random.Random(SEED)
    docs = _docs(count, rng)
    queries = _queries(rounds, rng)
    with tempfile.TemporaryDirectory(prefix="sereus-bench-market-") as folder:
        index = SearchIndex(Path(folder) / "index.sqlite3")
        began = time.perf_counter()
        for i in range(0, len(docs), 5_000):
            index.upsert_many(docs[i : i + 5_000])
        filled = time.perf_counter() - began
        plain = _plain_fts(Path(folder) / "plain.sqlite3", docs)
        sql = (
            "SELECT id, title, price FROM plain WHERE plain MATCH ? AND price BETWEEN ? AND ?"
            " ORDER BY rank LIMIT ?"
        )
        samples: dict[str, list[float]] = {"index": [], "plain": []}
        hits = {"index": 0, "plain": 0}
        for warm, (text, low, high) in enumerate([*queries[:10], *queries]):
            query = Query(text=text, min_price=low, max_price=high, currency="EUR", page_size=PAGE)
            began = time.perf_counter()
            found = index.search(query)
            took = time.perf_counter() - began
            match = fts_match(text)
            began = time.perf_counter()
            rows = plain.execute(sql, (match, low, high, PAGE)).fetchall()
            floor = time.perf_counter() - began
            if warm >= 10:
                samples["index"].append(took)
                samples["plain"].append(floor)
                hits["index"] += len(found)
                hits["plain"] += len(rows)
        plain.close()
    index_p, plain_p = percentiles(samples["index"]), percentiles(samples["plain"])
    ratio = index_p["p50_ms"] / plain_p["p50_ms"]
    return {
        "listings": count,
        "queries": rounds,
        "fill_s": round(filled, 1),
        "index": index_p,
        "plain_fts5": plain_p,
        "hits_per_page": {k: round(v / rounds, 1) for k, v in hits.items()},
        "ratio_p50": round(ratio, 2),
        "figures": [
            figure(
                f"market index search, {count} listings, text + price range, first page, p50",
                index_p["p50_ms"],
                "ms",
                higher=False,
                floor=f"plain FTS5 query on the same rows, same process: p50 "
                f"{plain_p['p50_ms']} ms",
            ),
            figure("market index search / plain FTS5, p50", round(ratio, 2), "x", higher=False),
        ],
    }


# -- real nodes -----------------------------------------------------------------------------------


def _join(peer: Peer, link: str) -> str:
    assert peer.api is not None
    thread = peer.redeem(link)["id"]
    wait_for(
        lambda: peer.api.get(f"/api/v1/threads/{thread}/")["state"] == "active",  # type: ignore[union-attr]
        timeout=90,
        what="the join",
    )
    return thread


def _listing(title: str, price: int, **more: Any) -> dict[str, Any]:
    return {
        "title": title,
        "price": price,
        "currency": "EUR",
        "category": "sports",
        "condition": "used",
        **more,
    }


def _shop(seller: Peer) -> dict[str, Any]:
    assert seller.api is not None
    made = seller.api.post("/api/v1/shops/", {"name": "Bench shop"})
    return seller.api.get(f"/api/v1/threads/{made['thread']}/shop/")


def _found(hits: dict[str, Any], listing: str) -> bool:
    return any(hit["listing"] == listing for hit in hits["hits"])


def _listing_to_search(seller: Peer, index: Peer, buyer: Peer, count: int) -> dict[str, Any]:
    """Seller's listing -> the buyer's search through the index, beside a message seller ->
    buyer (``__doc__``). The buyer is not in the shop: only the index can find it."""
    assert seller.api is not None
    assert index.api is not None
    assert buyer.api is not None
    assert seller.token
    assert buyer.token
    shop = _shop(seller)
    setting = index.api.request("PUT", "/api/v1/market/index/", {"enabled": True, "name": "Idx"})
    _join(index, shop["links"]["indexer"])
    buyer.api.post("/api/v1/market/indexes/", {"link": setting["link"]})
    chat = seller.api.post("/api/v1/threads/", {"name": "Bench chat", "app": "messaging"})["id"]
    _join(buyer, seller.invite(chat))
    listings = f"/api/v1/threads/{shop['thread']}/listings/"
    messages = f"/api/v1/threads/{chat}/messages/"
    on_seller, read = (
        KeptAlive(seller.process.url, seller.token),
        KeptAlive(buyer.process.url, buyer.token),
    )
    rng = random.Random(SEED)
    samples: dict[str, list[float]] = {"search": [], "message": [], "one_search": []}
    try:
        for i in range(WARM + count):
            word = "".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(10))
            began = time.perf_counter()
            made = on_seller.request("POST", listings, _listing(f"Bench {word} item", 1_000 + i))
            path = "/api/v1/market/search/?" + urlencode({"q": word})
            took = _until(read, path, lambda h, m=made["id"]: _found(h, m), began, "a listing")
            began = time.perf_counter()
            sent = on_seller.request("POST", messages, {"text": f"message {i}"})["id"]
            seen = _until(
                read, messages, lambda m, s=sent: any(x["id"] == s for x in m), began, "a message"
            )
            if i >= WARM:
                samples["search"].append(took)
                samples["message"].append(seen)
        # What one search costs the buyer's node (the index asked over p2p): the resolution of
        # the polling above.
        path = "/api/v1/market/search/?" + urlencode({"q": "bench"})
        for _ in range(count):
            began = time.perf_counter()
            read.request("GET", path)
            samples["one_search"].append(time.perf_counter() - began)
    finally:
        on_seller.close()
        read.close()
    found, message = percentiles(samples["search"]), percentiles(samples["message"])
    one = percentiles(samples["one_search"])
    ratio = found["p50_ms"] / message["p50_ms"]
    return {
        "samples": count,
        "listing_to_search": found,
        "message_to_list": message,
        "one_search": one,
        "ratio_p50": round(ratio, 2),
        "figures": [
            figure(
                "listing on the seller's API -> in the buyer's search through an index, p50",
                found["p50_ms"],
                "ms",
                higher=False,
                floor=f"message send -> listed on the buyer, same run: p50 {message['p50_ms']} "
                f"ms; one search on the buyer's API: p50 {one['p50_ms']} ms",
            ),
            figure(
                "listing -> search through an index, p99",
                found["p99_ms"],
                "ms",
                higher=False,
                floor=f"message p99 {message['p99_ms']} ms",
            ),
            figure("listing -> search / message -> list, p50", round(ratio, 2), "x", higher=False),
        ],
    }


INCREMENT = 100
LONE = 10  # lone bids, the floor of the bidding figure
STABLE_S = 1.0  # replicas agree when they show one standing this long
STALL_S = 60.0  # no bid taken this long: the bench stops and says the last refusal


class _Kept(KeptAlive):
    """A kept-alive connection that opens again once when the node closed it while idle."""

    def request(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return super().request(method, path, body)
        except (http.client.RemoteDisconnected, ConnectionError):
            self.connection.close()
            return super().request(method, path, body)


def _standing(read: KeptAlive, listings: str) -> tuple[int, int] | None:
    """The auction's best bid and how many bids a replica counts (bids must beat the best by
    the increment, so two replicas with the same pair hold the same winner)."""
    (found,) = read.request("GET", listings)
    auction = found["auction"]
    return None if auction["best"] is None else (auction["best"], auction["bids"])


def _agreement(reads: list[KeptAlive], listings: str, want: tuple[int, int] | None) -> float:
    """Poll every replica at once (a thread each) until all show one standing (``want``, if
    given) and keep showing it for ``STABLE_S``; the seconds from now until the last of them
    first showed it."""
    began = time.perf_counter()
    seen: list[tuple[tuple[int, int] | None, float]] = [(None, began)] * len(reads)
    done = threading.Event()

    def watch(index: int) -> None:
        while not done.is_set():
            standing = _standing(reads[index], listings)
            if standing != seen[index][0]:
                seen[index] = (standing, time.perf_counter())

    with ThreadPoolExecutor(len(reads)) as pool:
        watchers = [pool.submit(watch, i) for i in range(len(reads))]
        try:
            while True:
                time.sleep(0.01)
                standings = {standing for standing, _ in seen}
                (only,) = standings if len(standings) == 1 else (None,)
                settled = max(since for _, since in seen)
                agreed = only is not None and (want is None or only == want)
                if agreed and time.perf_counter() - settled >= STABLE_S:
                    return settled - began
                if time.perf_counter() - began > 180:
                    raise AssertionError(f"the replicas did not agree in 180 s: {seen}")
                for watcher in watchers:
                    if watcher.done():
                        watcher.result()  # a watcher that failed says why
        finally:
            done.set()


def _bidding(seller: Peer, bidders: list[Peer], count: int) -> dict[str, Any]:
    """``count`` bids from the bidders' nodes at once on one auction of the seller's: seconds
    from the last bid's answer until every replica (the seller's and the bidders') counts the
    same bids and the same best bid. Floor: a lone bid, until every replica shows it."""
    assert seller.api is not None
    shop = _shop(seller)
    thread = shop["thread"]
    with ThreadPoolExecutor(len(bidders)) as pool:
        list(pool.map(lambda peer: _join(peer, shop["links"]["customer"]), bidders))
    ends = datetime.fromtimestamp(time.time() + 7_200, tz=UTC).isoformat()
    terms = {"increment": INCREMENT, "ends_at": ends}
    made = seller.api.post(
        f"/api/v1/threads/{thread}/listings/", _listing("Bench auction", 1_000, auction=terms)
    )["id"]
    listings = f"/api/v1/threads/{thread}/listings/?status=active"
    bids = f"/api/v1/threads/{thread}/listings/{made}/bids/"
    replicas = [seller, *bidders]
    reads = [_Kept(p.process.url, p.token or "") for p in replicas]
    writes = [_Kept(p.process.url, p.token or "") for p in bidders]
    try:
        for read in reads:
            wait_for(lambda r=read: r.request("GET", listings), what="the auction everywhere")
        lone: list[float] = []
        best, counted = 1_000 - INCREMENT, 0
        for i in range(LONE):
            best, counted = best + INCREMENT, counted + 1
            began = time.perf_counter()
            writes[i % len(writes)].request("POST", bids, {"amount": best})
            lone.append(time.perf_counter() - began + _agreement(reads, listings, (best, counted)))
        print(f"   lone bids: p50 {percentiles(lone)['p50_ms']} ms", flush=True)
        storm = _storm(writes, bids, listings, count, best + INCREMENT)
        print(f"   {count} bids in {storm['seconds']:.1f} s", flush=True)
        agreed_s = _agreement(reads, listings, None)
        final = _standing(reads[0], listings)
    finally:
        for connection in reads + writes:
            connection.close()
    floor = percentiles(lone)
    return {
        "bids": count,
        "bidders": len(bidders),
        "replicas": len(replicas),
        "bids_s": round(storm["seconds"], 1),
        "refused_on_their_node": storm["refused"],
        "agreed_after_last_ms": round(agreed_s * 1000, 1),
        "final": {"best": final[0], "bids_counted": final[1]} if final else None,
        "lone_bid": floor,
        "figures": [
            figure(
                f"{count} bids from {len(bidders)} nodes on one auction: last bid's answer -> "
                f"every replica ({len(replicas)} nodes) counts the same bids and best",
                round(agreed_s * 1000, 1),
                "ms",
                higher=False,
                floor=f"a lone bid's POST -> shown on every replica: p50 {floor['p50_ms']} ms; "
                f"the {count} bids took {storm['seconds']:.1f} s to write",
            ),
        ],
    }


def _storm(
    writes: list[KeptAlive], bids: str, listings: str, count: int, start: int
) -> dict[str, Any]:
    """Every bidder bids the least its node takes (or up to two increments more), as fast as
    its node answers, until ``count`` bids were taken. A bid its node refuses (someone bid
    meanwhile, or this bidder leads) is not counted; the bidder reads the least again."""
    lock = threading.Lock()
    taken, refused, answered = [0], [0], [0]
    progress = [time.perf_counter(), ""]  # when a bid was last taken; the last refusal

    def bidder(index: int) -> None:
        rng = random.Random(SEED + index)
        least = start
        while True:
            with lock:
                if taken[0] >= count:
                    return
                if time.perf_counter() - progress[0] > STALL_S:
                    raise AssertionError(f"no bid taken for {STALL_S} s: {progress[1]}")
                taken[0] += 1
            amount = least + INCREMENT * rng.randrange(3)
            try:
                answer = writes[index].request("POST", bids, {"amount": amount})
            except AssertionError as exc:
                if "HTTP 409" not in str(exc) and "HTTP 400" not in str(exc):
                    raise
                with lock:
                    taken[0] -= 1
                    refused[0] += 1
                    progress[1] = str(exc)[:300]
                if "already have the best bid" in str(exc):
                    time.sleep(0.02)  # leading: wait to be outbid
                (found,) = writes[index].request("GET", listings)
                least = found["auction"]["minimum_bid"] or least
                continue
            least = answer["listing"]["auction"]["minimum_bid"] or amount + INCREMENT
            with lock:
                progress[0] = time.perf_counter()
                answered[0] += 1
                if answered[0] % 500 == 0:
                    print(f"   {answered[0]} bids taken, {refused[0]} refused", flush=True)

    began = time.perf_counter()
    with ThreadPoolExecutor(len(writes)) as pool:
        for future in [pool.submit(bidder, i) for i in range(len(writes))]:
            future.result()
    return {"seconds": time.perf_counter() - began, "refused": refused[0]}


def run(*, quick: bool = False) -> dict[str, Any]:
    result: dict[str, Any] = {}
    took: dict[str, float] = {}  # wall seconds of each part, set-up included
    result["wall_s"] = took
    began = time.perf_counter()
    result["search"] = _search(10_000 if quick else 100_000, 300)
    took["search"] = round(time.perf_counter() - began, 1)
    folder = tempfile.mkdtemp(prefix="sereus-bench-market-")
    peers = [Peer(Path(folder) / name) for name in ("seller", "index", *BIDDERS)]
    try:
        with ThreadPoolExecutor(len(peers)) as pool:
            for future in [pool.submit(p.start) for p in peers]:
                future.result()
        began = time.perf_counter()
        result["listing_to_search"] = _listing_to_search(*peers[:3], 30 if quick else 200)
        took["listing_to_search"] = round(time.perf_counter() - began, 1)
        began = time.perf_counter()
        result["bidding"] = _bidding(peers[0], peers[2:], 200 if quick else 2_000)
        took["bidding"] = round(time.perf_counter() - began, 1)
    finally:
        for peer in peers:
            if peer.process.proc is not None and peer.process.proc.poll() is None:
                peer.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit("run it as: python -m bench market")
