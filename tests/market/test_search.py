"""The market index and its queries: text (diacritics, prefix, words), filters, radius, sorts,
paging, hostile text, the wire format and merging answers (apps/market/search_*.py).

``python tests/market/test_search.py`` prints how long searches take on 10 000 listings.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.market import search_index
from apps.market.search_index import DocError, SearchIndex, fts_match
from apps.market.search_query import (
    Hit,
    Query,
    QueryError,
    WireError,
    haversine_km,
    hit_to_wire,
    hits_from_wire,
    hits_to_wire,
    merge,
    query_from_wire,
    query_parse,
    query_to_wire,
)

SHOP_A = "a1" * 32
SHOP_B = "b2" * 32
PARIS = (48.8566, 2.3522)
BERLIN = (52.52, 13.405)
NOUNS = ("lamp", "chair", "guitar", "camera", "sofa", "bicycle", "kettle", "radio")
COLOURS = ("red", "green", "blue", "black", "white")
CATEGORIES = ("home", "music", "sports", "electronics")
BASE_MS = 1_700_000_000_000


def listing_id(n: int) -> str:
    return f"{n:032x}"


def generated(count: int) -> list[dict[str, Any]]:
    """Listings with every attribute varying, deterministic; a third without a position."""
    docs = []
    for i in range(count):
        centre = PARIS if i % 3 == 0 else BERLIN
        # Spread along a line of latitude, 0..~65 km from the centre.
        position = {"lat": centre[0], "lon": centre[1] + (i % 11) * 0.08} if i % 3 != 2 else {}
        docs.append(
            {
                "id": listing_id(i),
                "shop": SHOP_A if i % 2 == 0 else SHOP_B,
                "title": f"{COLOURS[i % 5]} {NOUNS[i % 8]} number {i}",
                "summary": "Works well, collect or posted.",
                "category": CATEGORIES[i % 4],
                "tags": ["used", NOUNS[i % 8]],
                "price": 100 + i * 50,
                "currency": "EUR" if i % 5 < 3 else "USD",
                "place": "Paris" if i % 3 == 0 else "Berlin",
                "quantity": 1,
                # 37 is coprime with 200: every listing a different time, not in id order.
                "updated_ms": BASE_MS + (i * 37 % 200) * 1000,
                **position,
            }
        )
    return docs


PLANTED = [
    {"title": "Café crème machine", "summary": "Espresso, barely used", "tags": ["kitchen"]},
    {"title": "Crème brûlée torch", "summary": "For the kitchen", "tags": []},
    {"title": "Plain mug", "summary": "The title says it all: a bike mug", "tags": []},
    {"title": "Old print", "summary": "A cafe scene in a frame", "tags": ["art"]},
]


def planted(n: int, fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": listing_id(1000 + n),
        "shop": SHOP_A,
        "price": 999,
        "currency": "EUR",
        "category": "home",
        "updated_ms": BASE_MS - 1000 * (n + 1),
        **fields,
    }


DOCS = generated(200) + [planted(n, fields) for n, fields in enumerate(PLANTED)]
BY_ID = {doc["id"]: doc for doc in DOCS}


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchIndex]:
    built = SearchIndex(tmp_path_factory.mktemp("market") / "market-index.sqlite3")
    assert built.upsert_many(DOCS) == len(DOCS)
    yield built
    built.close()


@pytest.fixture
def small(tmp_path: Path) -> Iterator[SearchIndex]:
    built = SearchIndex(tmp_path / "small.sqlite3")
    yield built
    built.close()


def ids(hits: list[Hit]) -> list[str]:
    return [hit.listing for hit in hits]


def search(index: SearchIndex, **params: Any) -> list[Hit]:
    return index.search(query_parse({"page_size": "50", **params}))


def every_page(index: SearchIndex, **params: Any) -> list[Hit]:
    hits: list[Hit] = []
    for page in range(1, 21):
        batch = search(index, page=str(page), **params)
        hits += batch
        if len(batch) < 50:
            return hits
    raise AssertionError("more than 20 pages")


# --- text ---------------------------------------------------------------------------------


def test_text_without_diacritics_finds_text_with_them(index: SearchIndex) -> None:
    # Title "Café crème machine" first (title weighs more), then "A cafe scene" in a summary.
    assert ids(search(index, q="cafe")) == [listing_id(1000), listing_id(1003)]
    assert ids(search(index, q="CAFÉ")) == [listing_id(1000), listing_id(1003)]
    assert ids(search(index, q="creme brulee")) == [listing_id(1001)]


def test_the_last_word_is_a_prefix(index: SearchIndex) -> None:
    hits = every_page(index, q="bicyc")
    assert len(hits) == 25
    assert all("bicycle" in hit.title for hit in hits)
    # Only the last word: "bicyc lamp" needs the whole word "bicyc".
    assert search(index, q="bicyc lamp") == []


def test_two_words_must_both_match(index: SearchIndex) -> None:
    hits = every_page(index, q="blue bicycle")
    expected = {d["id"] for d in DOCS[:200] if "blue bicycle" in d["title"]}
    assert {hit.listing for hit in hits} == expected
    assert len(expected) == 5


def test_tags_and_place_are_searched(index: SearchIndex) -> None:
    assert ids(search(index, q="kitchen", sort="newest")) == [listing_id(1000), listing_id(1001)]
    assert len(every_page(index, q="paris")) == 67


# --- filters ------------------------------------------------------------------------------


def test_category_and_price_range(index: SearchIndex) -> None:
    hits = every_page(
        index, category="music", currency="eur", min_price="10", max_price="60.50", sort="price_asc"
    )
    expected = [
        d["id"]
        for d in sorted(DOCS, key=lambda d: d["price"])
        if d["category"] == "music" and d["currency"] == "EUR" and 1000 <= d["price"] <= 6050
    ]
    assert ids(hits) == expected
    assert len(expected) == 15  # of 50 music listings, some in USD, some dearer


def test_radius_keeps_exactly_the_listings_within_it(index: SearchIndex) -> None:
    hits = every_page(index, lat=str(PARIS[0]), lon=str(PARIS[1]), radius_km="30")
    expected = {
        d["id"] for d in DOCS if "lat" in d and haversine_km(PARIS, (d["lat"], d["lon"])) <= 30
    }
    assert {hit.listing for hit in hits} == expected
    # Some listings near Paris are further than 30 km: the box alone would not be enough.
    assert 0 < len(expected) < 67


def test_radius_across_the_antimeridian_and_near_a_pole(small: SearchIndex) -> None:
    small.upsert_many(
        [
            planted(1, {"title": "Fiji east", "lat": -17.0, "lon": 179.95}),
            planted(2, {"title": "Fiji west", "lat": -17.0, "lon": -179.95}),
            planted(3, {"title": "Far away", "lat": -17.0, "lon": 170.0}),
            planted(4, {"title": "Arctic", "lat": 89.9, "lon": -120.0}),
        ]
    )
    hits = small.search(Query(near=(-17.0, -179.99), radius_km=50))
    assert sorted(hit.title for hit in hits) == ["Fiji east", "Fiji west"]
    hits = small.search(Query(near=(89.95, 60.0), radius_km=20))
    assert [hit.title for hit in hits] == ["Arctic"]


def test_distance_without_sqlite_math_functions(
    index: SearchIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some SQLite builds lack sin() and cos(): a Python function computes the same distances.
    monkeypatch.setattr(search_index, "_sql_has_math", lambda db: False)
    plain = SearchIndex(tmp_path / "plain.sqlite3")
    assert plain._hav == search_index._HAV_PYTHON
    plain.upsert_many(DOCS)
    for params in (
        {"lat": str(PARIS[0]), "lon": str(PARIS[1]), "radius_km": "30"},
        {"lat": str(BERLIN[0]), "lon": str(BERLIN[1]), "sort": "distance"},
    ):
        assert every_page(plain, **params) == every_page(index, **params)
    plain.close()


# --- sorts and paging ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("price_asc", lambda h: h.price),
        ("price_desc", lambda h: -h.price),
        ("newest", lambda h: -h.updated_ms),
    ],
)
def test_sorts_order_the_whole_result(index: SearchIndex, sort: str, key: Any) -> None:
    hits = every_page(index, q="guitar", sort=sort)
    assert len(hits) == 25
    assert [key(h) for h in hits] == sorted(key(h) for h in hits)


def test_distance_sort_puts_listings_without_a_position_last(index: SearchIndex) -> None:
    hits = every_page(
        index, category="home", lat=str(BERLIN[0]), lon=str(BERLIN[1]), sort="distance"
    )
    placed = [h for h in hits if h.lat is not None]
    distances = [haversine_km(BERLIN, (h.lat, h.lon)) for h in placed]
    assert distances == sorted(distances)
    unplaced = hits[len(placed) :]
    assert unplaced
    assert all(h.lat is None for h in unplaced)
    assert distances[0] < 1 < 800 < distances[-1]  # Berlin first, Paris later


def test_relevance_ranks_title_matches_first(index: SearchIndex) -> None:
    hits = search(index, q="kitchen")
    # "kitchen" is a tag of the machine and in the torch's summary; tags weigh more.
    assert ids(hits) == [listing_id(1000), listing_id(1001)]
    assert hits[0].score > hits[1].score > 0


def test_pages_cover_the_results_once_each(index: SearchIndex) -> None:
    full = every_page(index, sort="newest")
    assert len(full) == len(DOCS) == len({h.listing for h in full})
    pages = [index.search(Query(sort="newest", page=p, page_size=30)) for p in range(1, 9)]
    assert [len(p) for p in pages] == [30] * 6 + [24, 0]
    assert [h for page in pages for h in page] == full


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '"unbalanced',
        "NEAR(lamp chair",
        "NEAR(lamp chair, 2)",
        "*",
        "lamp*",
        "-lamp",
        "lamp -chair",
        ":",
        "title:lamp",
        "{title summary}: lamp",
        "lamp OR chair",
        "AND",
        "NOT lamp",
        "^lamp",
        "((lamp",
        "lamp + chair",
        "'; DROP TABLE listing; --",
        "\x00lamp",
        "🙂 lamp",
        "a" * 200,
    ],
)
def test_hostile_text_is_only_words(index: SearchIndex, text: str) -> None:
    match = fts_match(text)
    assert match is None or all(part.startswith('"') for part in match.split(" AND "))
    hits = search(index, q=text)
    words = {w.lower() for w in ("lamp", "chair") if w in text.lower()}
    for hit in hits:
        assert words <= set(BY_ID[hit.listing]["title"].split())
    assert index.count() == len(DOCS)


def test_a_column_filter_is_read_as_two_words(index: SearchIndex) -> None:
    # As a filter, title:bike would find no title; as words it finds the mug's summary.
    assert ids(search(index, q="title:bike")) == [listing_id(1002)]


# --- writing the index --------------------------------------------------------------------


def test_upsert_keeps_the_newest_version_and_its_shop(small: SearchIndex) -> None:
    doc = planted(1, {"title": "Walnut desk", "price": 5000})
    assert small.upsert(doc)
    assert small.upsert({**doc, "price": 4500, "updated_ms": doc["updated_ms"] + 1})
    # A replay of the old version, and another shop reusing the id, change nothing.
    assert not small.upsert(doc)
    assert not small.upsert({**doc, "shop": SHOP_B, "title": "Spam", "updated_ms": BASE_MS * 2})
    [hit] = small.search(Query(text="desk"))
    assert (hit.price, hit.shop) == (4500, SHOP_A)
    assert small.search(Query(text="spam")) == []
    # The text index follows an edit of the title.
    assert small.upsert({**doc, "title": "Oak desk", "updated_ms": BASE_MS})
    assert ids(small.search(Query(text="oak"))) == [doc["id"]]
    assert small.search(Query(text="walnut")) == []


def test_a_listing_no_longer_active_leaves_the_index(small: SearchIndex) -> None:
    doc = planted(1, {"title": "Walnut desk"})
    small.upsert(doc)
    assert not small.upsert({**doc, "status": "sold", "updated_ms": doc["updated_ms"] - 1})
    assert small.count() == 1
    assert small.upsert({**doc, "status": "sold", "updated_ms": doc["updated_ms"] + 1})
    assert small.count() == 0
    assert small.search(Query(text="walnut")) == []


def test_remove_and_remove_shop(small: SearchIndex) -> None:
    small.upsert_many(generated(10))
    assert small.remove(listing_id(3))
    assert not small.remove(listing_id(3))
    assert small.remove_shop(SHOP_A) == 5
    assert small.count() == 4
    assert {h.shop for h in small.search(Query(text="number"))} == {SHOP_B}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"id": "XYZ"}, "id must be an id"),
        ({"shop": None}, "shop must be an id"),
        ({"title": 5}, "title must be text"),
        ({"title": "x" * 201}, "at most 200"),
        ({"title": "two\nlines"}, "one line of text"),
        ({"place": "bell\x07"}, "one line of text"),
        ({"price": -1}, "price must be a whole number"),
        ({"price": True}, "price must be a whole number"),
        ({"price": 10.5}, "price must be a whole number"),
        ({"currency": "eur"}, "code like EUR"),
        ({"currency": "ÉÉÉ"}, "code like EUR"),
        ({"lat": 10.0}, "both a latitude and a longitude"),
        ({"lat": 91.0, "lon": 0.0}, "latitude must be a number"),
        ({"lat": math.nan, "lon": 0.0}, "latitude must be a number"),
        ({"tags": "lamp"}, "tags must be a list"),
        ({"tags": ["x"] * 21}, "tags must be a list"),
        ({"updated_ms": None}, "updated_ms must be"),
    ],
)
def test_a_malformed_listing_is_refused_and_nothing_stored(
    small: SearchIndex, change: dict[str, Any], words: str
) -> None:
    good = planted(1, {"title": "Desk"})
    with pytest.raises(DocError, match=words):
        small.upsert_many([good, {**good, **change}])
    assert small.count() == 0


def test_the_file_is_kept_and_an_old_schema_is_started_over(tmp_path: Path) -> None:
    path = tmp_path / "market-index.sqlite3"
    first = SearchIndex(path)
    assert first.fresh
    first.upsert(planted(1, {"title": "Desk"}))
    first.close()
    again = SearchIndex(path)
    assert (again.fresh, again.count()) == (False, 1)
    again.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    rebuilt = SearchIndex(path)
    assert (rebuilt.fresh, rebuilt.count()) == (True, 0)
    rebuilt.close()


# --- parsing what a person typed ------------------------------------------------------------


def test_query_parse_reads_a_form() -> None:
    q = query_parse(
        {
            "q": "  blue lamp ",
            "category": "home",
            "min_price": "12,5",
            "max_price": "40",
            "currency": "eur",
            "lat": "48.85",
            "lon": "2.35",
            "radius_km": "10",
            "sort": "distance",
            "page": "2",
            "page_size": "10",
            "csrfmiddlewaretoken": "ignored",
        }
    )
    assert q == Query(
        "blue lamp", "home", 1250, 4000, "EUR", (48.85, 2.35), 10.0, "distance", 2, 10
    )
    # Blank fields are absent.
    assert query_parse({"q": "", "min_price": "", "sort": ""}) == Query()
    # The API's near=lat,lon is the same place.
    assert query_parse({"near": "48.85, 2.35"}).near == (48.85, 2.35)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"min_price": "ten", "currency": "EUR"},
            "The lowest price must be a number, like 10 or 12.50.",
        ),
        ({"max_price": "1.234", "currency": "EUR"}, "The highest price must be a number"),
        ({"min_price": "-5", "currency": "EUR"}, "The lowest price cannot be negative."),
        ({"min_price": "50", "max_price": "10", "currency": "EUR"}, "lowest price is above"),
        ({"min_price": "10"}, "A price range needs a currency, like EUR."),
        ({"currency": "XYZ"}, "'XYZ' is not a currency code we know"),
        ({"lat": "48"}, "needs both a latitude and a longitude"),
        ({"lat": "north", "lon": "2"}, "The latitude must be a number from -90 to 90."),
        ({"lat": "91", "lon": "2"}, "The latitude must be a number from -90 to 90."),
        ({"lat": "nan", "lon": "2"}, "The latitude must be a number from -90 to 90."),
        ({"lat": "0", "lon": "181"}, "The longitude must be a number from -180 to 180."),
        ({"lat": "0", "lon": "0", "radius_km": "30000"}, "from 0 to 20,000"),
        ({"lat": "0", "lon": "0", "radius_km": "-1"}, "from 0 to 20,000"),
        ({"radius_km": "10"}, "A distance needs a place"),
        ({"sort": "random"}, "Sort by relevance, price_asc"),
        ({"sort": "distance"}, "Sorting by distance needs a place"),
        ({"page": "21"}, "The page must be a whole number from 1 to 20."),
        ({"page": "two"}, "The page must be a whole number."),
        ({"page": "0"}, "from 1 to 20"),
        ({"near": "48.85"}, "A place to search near is a latitude and a longitude"),
        ({"near": "48,2", "lat": "48"}, "not both"),
        ({"near": "48,east"}, "The longitude must be a number"),
        ({"page_size": "51"}, "The page size must be a whole number from 1 to 50."),
        ({"q": "x" * 201}, "at most 200 characters"),
        ({"q": ["a", "b"]}, "The search text must be text."),
        ({"category": "x" * 65}, "at most 64 characters"),
    ],
)
def test_query_parse_refuses_in_words(params: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryError) as caught:
        query_parse(params)
    assert message in str(caught.value)
    assert str(caught.value).endswith(".")


# --- the wire -----------------------------------------------------------------------------


def test_a_query_crosses_the_wire_unchanged() -> None:
    for q in (
        Query(),
        Query("blue lamp", "home", 100, 5000, "EUR", (48.85, 2.35), 12.5, "distance", 3, 7),
    ):
        data = json.loads(json.dumps(query_to_wire(q)))
        assert query_from_wire(data) == q
    # A peer may leave out what it does not use.
    assert query_from_wire({"text": "lamp"}) == Query(text="lamp")


@pytest.mark.parametrize(
    "data",
    [
        None,
        ["text", "lamp"],
        {"text": "lamp", "limit": 10_000},
        {"text": 5},
        {"text": "x" * 201},
        {"page": True},
        {"page": 0},
        {"page": 21},
        {"page_size": 1000},
        {"sort": "random"},
        {"near": [1.0]},
        {"near": ["48", "2"]},
        {"near": [48.0, 2.0], "radius_km": math.inf},
        {"min_price": 1.5, "currency": "EUR"},
        {"min_price": -1, "currency": "EUR"},
        {"min_price": 10},
        {"currency": "eur"},
        {"category": ""},
    ],
)
def test_a_malformed_wire_query_is_refused(data: Any) -> None:
    with pytest.raises(WireError, match="not readable"):
        query_from_wire(data)


def hit(n: int, **fields: Any) -> Hit:
    values: dict[str, Any] = {
        "listing": listing_id(n),
        "shop": SHOP_A,
        "title": f"Item {n}",
        "price": 100 * n,
        "currency": "EUR",
        "category": "home",
        "place": "Paris",
        "lat": None,
        "lon": None,
        "updated_ms": BASE_MS + n,
        "score": 1.0,
    }
    return Hit(**{**values, **fields})


def test_hits_cross_the_wire_unchanged(index: SearchIndex) -> None:
    hits = [*search(index, q="lamp"), hit(1, lat=48.0, lon=2.0)]
    assert hits_from_wire(json.loads(json.dumps(hits_to_wire(hits)))) == hits


@pytest.mark.parametrize(
    "change",
    [
        {"listing": "XYZ"},
        {"shop": "AB" * 16},
        {"title": None},
        {"title": "x" * 201},
        {"title": "bell\x07"},
        {"price": -1},
        {"price": False},
        {"price": "100"},
        {"currency": "euro"},
        {"lat": 48.0},
        {"lat": 95.0, "lon": 2.0},
        {"updated_ms": 1.5},
        {"score": math.nan},
        {"score": "high"},
        {"shop_name": "x" * 101},
        {"link": "sereus:invite/\n"},
        {"summary": None},
        {"summary": "x" * 301},
    ],
)
def test_a_malformed_hit_is_refused(change: dict[str, Any]) -> None:
    data = {**hit_to_wire(hit(1)), **change}
    with pytest.raises(WireError, match="not readable"):
        hits_from_wire([data])


def test_an_answer_must_be_a_bounded_list_of_exact_hits() -> None:
    good = hit_to_wire(hit(1))
    for data in ({"hits": [good]}, [good] * 51, [{**good, "extra": 1}], [{"listing": "00" * 16}]):
        with pytest.raises(WireError, match="not readable"):
            hits_from_wire(data)
    assert len(hits_from_wire([good] * 3, most=3)) == 3


def test_hits_carry_their_shop_and_a_page_its_total(small: SearchIndex) -> None:
    small.upsert_many(generated(30))
    small.shop_set(SHOP_A, name="  Anna's\n attic ", link="sereus:invite/abc", served=True)
    small.shop_set(SHOP_B, name="Bob's", link="sereus:invite/def", served=False)
    q = Query(text="number", sort="newest", page=2, page_size=4)
    hits, total = small.search_page(q)
    assert (len(hits), total) == (4, 30)
    first = next(h for h in hits if h.shop == SHOP_A)
    assert (first.shop_name, first.link) == ("Anna's attic", "sereus:invite/abc")
    assert first.summary == "Works well, collect or posted."
    # Only the shops marked served are answered to other nodes.
    served, served_total = small.search_page(Query(page_size=50), served_only=True)
    assert {h.shop for h in served} == {SHOP_A}
    assert served_total == 15
    assert small.shops() == {SHOP_A, SHOP_B}
    assert small.remove_shop(SHOP_B) == 15
    assert small.shops() == {SHOP_A}
    # A last page counts without a second query, and says the same.
    assert small.search_page(Query(page=4, page_size=4), served_only=True)[1] == 15


# --- merging ------------------------------------------------------------------------------


def test_merge_dedupes_keeping_the_newest_and_the_best_score() -> None:
    old = hit(1, price=900, updated_ms=BASE_MS, score=5.0)
    new = hit(1, price=700, updated_ms=BASE_MS + 10, score=2.0)
    answers = [[old, hit(2, score=3.0)], [new, hit(3, score=4.0)], []]
    merged = merge(answers, Query(text="item"))
    assert [(h.listing, h.price, h.score) for h in merged] == [
        (listing_id(1), 700, 5.0),
        (listing_id(3), 300, 4.0),
        (listing_id(2), 200, 3.0),
    ]
    # The same id in another shop is another listing (or a forgery): it does not hide the first.
    other = hit(1, shop=SHOP_B, updated_ms=BASE_MS + 99)
    assert len(merge([[new], [other]], Query())) == 2


def test_merge_sorts_and_pages() -> None:
    hits = [hit(n, lat=48.0 + n / 10, lon=2.0) for n in range(1, 8)]
    answers = [hits[::2], hits[1::2], hits[2:5]]
    assert ids(merge(answers, Query(sort="price_desc"))) == [listing_id(n) for n in range(7, 0, -1)]
    assert ids(merge(answers, Query(sort="price_asc", page=2, page_size=3))) == [
        listing_id(n) for n in (4, 5, 6)
    ]
    assert ids(merge(answers, Query(sort="newest", page_size=2))) == [listing_id(7), listing_id(6)]
    far = merge([*answers, [hit(9)]], Query(sort="distance", near=(48.55, 2.0)))
    assert ids(far)[:3] == [listing_id(5), listing_id(6), listing_id(4)]
    assert far[-1].listing == listing_id(9)  # no position: last
    # Equal scores: newest first, then by id, whatever order the answers came in.
    assert merge(answers, Query()) == merge(list(reversed(answers)), Query())


def test_haversine() -> None:
    assert haversine_km(PARIS, PARIS) == 0
    assert haversine_km(PARIS, BERLIN) == pytest.approx(878, abs=2)
    assert haversine_km((0, 0), (0, 180)) == pytest.approx(math.pi * 6371.0088)


# --- benchmark (not a test) -----------------------------------------------------------------


def _bench(path: Path, count: int = 10_000) -> None:
    bench_index = SearchIndex(path)
    started = time.perf_counter()
    bench_index.upsert_many(generated(count) if count <= 200 else _many(count))
    print(f"indexed {count} listings in {time.perf_counter() - started:.2f} s")
    cases = {
        "text": {"q": "blue guitar"},
        "prefix": {"q": "gui"},
        "text + price": {"q": "lamp", "currency": "EUR", "min_price": "10", "max_price": "900"},
        "no text, newest": {"sort": "newest"},
        "no text, price_asc page 20": {"sort": "price_asc", "page": "20"},
        "radius 30 km": {"lat": str(PARIS[0]), "lon": str(PARIS[1]), "radius_km": "30"},
        "distance sort": {"lat": str(PARIS[0]), "lon": str(PARIS[1]), "sort": "distance"},
    }
    for name, params in cases.items():
        q = query_parse({"page_size": "50", **params})
        runs = []
        for _ in range(20):
            started = time.perf_counter()
            bench_index.search(q)
            runs.append(time.perf_counter() - started)
        runs.sort()
        print(f"{name:28} p50 {runs[10] * 1000:6.2f} ms  max {runs[-1] * 1000:6.2f} ms")
    bench_index.close()


def _many(count: int) -> list[dict[str, Any]]:
    docs = generated(200)
    return [
        {**docs[i % 200], "id": listing_id(i), "price": 100 + i, "updated_ms": BASE_MS + i}
        for i in range(count)
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        _bench(Path(directory) / "bench.sqlite3")
