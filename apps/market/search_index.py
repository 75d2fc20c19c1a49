"""A node's market index: the active listings of the shops that admit it, searchable by text,
category, price, place and time (issue 15 §2). Plain sqlite3 in a file of its own.

The index is a cache: everything in it can be rebuilt from the shops' threads, so it is written
without fsync on every commit (WAL, synchronous=NORMAL) and a file of an older schema is simply
emptied (``fresh`` then tells the caller to index every shop again).

Full text: an FTS5 table with *external content* over ``listing`` (title, summary, tags, place),
kept in step by triggers. Its rowid is ``listing.n``, an INTEGER PRIMARY KEY: an implicit rowid
could change on VACUUM and silently detach the text index from its rows. The listing id (hex) is
``UNIQUE`` instead of the primary key, which makes no difference to lookups.
"""

from __future__ import annotations

import math
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .search_query import (
    CATEGORY_MAX_CHARS,
    EARTH_RADIUS_KM,
    HIT_ID_HEX,
    HIT_LINK_MAX_CHARS,
    HIT_NAME_MAX_CHARS,
    HIT_PLACE_MAX_CHARS,
    HIT_SUMMARY_MAX_CHARS,
    HIT_TITLE_MAX_CHARS,
    PRICE_MAX,
    Hit,
    Query,
    QueryError,
    point_check,
    query_words,
)

SCHEMA_VERSION = 2
SUMMARY_MAX_CHARS = 2_000
TAGS_MOST = 20
TAG_MAX_CHARS = 60
QUANTITY_MAX = 10**9
# bm25 weights of title, summary, tags, place: a word in the title says most about a listing.
_WEIGHTS = "4.0, 1.0, 2.0, 1.0"
_KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180

_SCHEMA = """
CREATE TABLE shop (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    link TEXT NOT NULL,
    served INTEGER NOT NULL
);
CREATE TABLE listing (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    shop TEXT NOT NULL,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    category TEXT NOT NULL,
    tags TEXT NOT NULL,
    price INTEGER NOT NULL,
    currency TEXT NOT NULL,
    place TEXT NOT NULL,
    lat REAL,
    lon REAL,
    quantity INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX listing_category_price ON listing (category, price);
CREATE INDEX listing_currency_price ON listing (currency, price);
CREATE INDEX listing_shop ON listing (shop);
CREATE INDEX listing_updated ON listing (updated_ms);
CREATE INDEX listing_lat ON listing (lat) WHERE lat IS NOT NULL;
CREATE VIRTUAL TABLE listing_fts USING fts5 (
    title, summary, tags, place,
    content='listing', content_rowid='n',
    tokenize='unicode61 remove_diacritics 2', prefix='2 3'
);
CREATE TRIGGER listing_fts_insert AFTER INSERT ON listing BEGIN
    INSERT INTO listing_fts (rowid, title, summary, tags, place)
    VALUES (new.n, new.title, new.summary, new.tags, new.place);
END;
CREATE TRIGGER listing_fts_delete AFTER DELETE ON listing BEGIN
    INSERT INTO listing_fts (listing_fts, rowid, title, summary, tags, place)
    VALUES ('delete', old.n, old.title, old.summary, old.tags, old.place);
END;
CREATE TRIGGER listing_fts_update AFTER UPDATE OF title, summary, tags, place ON listing BEGIN
    INSERT INTO listing_fts (listing_fts, rowid, title, summary, tags, place)
    VALUES ('delete', old.n, old.title, old.summary, old.tags, old.place);
    INSERT INTO listing_fts (rowid, title, summary, tags, place)
    VALUES (new.n, new.title, new.summary, new.tags, new.place);
END;
"""

_DROP = """
DROP TABLE IF EXISTS listing_fts;
DROP TABLE IF EXISTS listing;
DROP TABLE IF EXISTS shop;
"""

# A newer version of a listing replaces the stored one; an older one (a replay) does not, and a
# listing id stays with the shop that first used it, so one shop cannot overwrite another's row.
_UPSERT = """
INSERT INTO listing (id, shop, title, summary, category, tags, price, currency, place, lat, lon,
                     quantity, updated_ms)
VALUES (:id, :shop, :title, :summary, :category, :tags, :price, :currency, :place, :lat, :lon,
        :quantity, :updated_ms)
ON CONFLICT (id) DO UPDATE SET
    title = excluded.title, summary = excluded.summary, category = excluded.category,
    tags = excluded.tags, price = excluded.price, currency = excluded.currency,
    place = excluded.place, lat = excluded.lat, lon = excluded.lon,
    quantity = excluded.quantity, updated_ms = excluded.updated_ms
WHERE excluded.updated_ms >= listing.updated_ms AND excluded.shop = listing.shop
"""

_COLUMNS = (
    "l.id, l.shop, l.title, l.price, l.currency, l.category, l.place, l.lat, l.lon, l.updated_ms"
)
_SHOP_COLUMNS = "coalesce(s.name, ''), coalesce(s.link, ''), l.summary"


class DocError(ValueError):
    """A listing that cannot be indexed; the message is a sentence for a person."""


def _text(
    doc: Mapping[str, Any], key: str, most: int, *, default: str | None = None, line: bool = True
) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or len(value) > most:
        raise DocError(f"A listing's {key} must be text of at most {most} characters.")
    # What a hit carries must pass hit_from_wire on the asking node, which refuses control
    # characters (a title is one line).
    if line and any(unicodedata.category(char)[0] == "C" for char in value):
        raise DocError(f"A listing's {key} must be one line of text, without control characters.")
    return value


def _int(doc: Mapping[str, Any], key: str, most: int, *, default: int | None = None) -> int:
    value = doc.get(key, default)
    if type(value) is not int or not 0 <= value <= most:
        raise DocError(f"A listing's {key} must be a whole number from 0 to {most}.")
    return value


def doc_row(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The row of a listing document, checked: a shop may have written anything.

    Keys: id, shop (hex), title, price (minor units), currency, updated_ms; optional summary,
    category, tags (list of text), place, lat and lon (both or neither), quantity. Other keys
    (description, photos, ...) are ignored, so a listing's whole columns can be passed.
    """
    row: dict[str, Any] = {}
    for key in ("id", "shop"):
        value = doc.get(key)
        if not isinstance(value, str) or not HIT_ID_HEX.fullmatch(value):
            raise DocError(f"A listing's {key} must be an id in lower-case hexadecimal.")
        row[key] = value
    row["title"] = _text(doc, "title", HIT_TITLE_MAX_CHARS)
    row["summary"] = _text(doc, "summary", SUMMARY_MAX_CHARS, default="", line=False)
    row["category"] = _text(doc, "category", CATEGORY_MAX_CHARS, default="")
    row["place"] = _text(doc, "place", HIT_PLACE_MAX_CHARS, default="")
    tags = doc.get("tags", [])
    if (
        not isinstance(tags, list | tuple)
        or len(tags) > TAGS_MOST
        or not all(isinstance(t, str) and len(t) <= TAG_MAX_CHARS for t in tags)
    ):
        raise DocError(
            f"A listing's tags must be a list of at most {TAGS_MOST} words "
            f"of at most {TAG_MAX_CHARS} characters."
        )
    # One tag a line: the tokenizer splits lines like spaces, and tags stay readable in the file.
    row["tags"] = "\n".join(tags)
    row["price"] = _int(doc, "price", PRICE_MAX)
    currency = doc.get("currency")
    if not isinstance(currency, str) or not re.fullmatch("[A-Z]{3}", currency):
        raise DocError("A listing's currency must be a code like EUR.")
    row["currency"] = currency
    lat, lon = doc.get("lat"), doc.get("lon")
    if (lat is None) != (lon is None):
        raise DocError("A listing's position needs both a latitude and a longitude.")
    if lat is not None:
        try:
            lat, lon = point_check(lat, lon)
        except QueryError as error:
            raise DocError(str(error)) from None
    row["lat"], row["lon"] = lat, lon
    row["quantity"] = _int(doc, "quantity", QUANTITY_MAX, default=1)
    row["updated_ms"] = _int(doc, "updated_ms", 2**53 - 1)
    return row


def fts_match(text: str) -> str | None:
    """The FTS5 query of a search text: every word required, each a quoted string (so nothing a
    person types is read as an operator or column filter), the last one a prefix (results while
    typing). None when the text has no words."""
    words = query_words(text)
    if not words:
        return None
    # The words hold letters and digits only, so no '"' can end a quoted string early.
    quoted = [f'"{word}"' for word in words]
    quoted[-1] += " *"
    return " AND ".join(quoted)


# The haversine of the central angle between a listing and the point searched from: it grows
# with the distance, so it sorts like it, and a radius is a bound on it (``_hav_bound``). Written
# in SQL when SQLite has its math functions (5x faster than a Python function per row).
_HAV_SQL = (
    "(pow(sin(radians(l.lat - :lat0) / 2), 2)"
    " + :cos_lat0 * cos(radians(l.lat)) * pow(sin(radians(l.lon - :lon0) / 2), 2))"
)
_HAV_PYTHON = "hav(l.lat, l.lon, :lat0, :lon0)"


def _hav(lat: float | None, lon: float | None, lat0: float, lon0: float) -> float | None:
    if lat is None or lon is None:
        return None
    dlat, dlon = math.radians(lat - lat0), math.radians(lon - lon0)
    return (
        math.sin(dlat / 2) ** 2
        + math.cos(math.radians(lat0)) * math.cos(math.radians(lat)) * math.sin(dlon / 2) ** 2
    )


def _hav_bound(radius_km: float) -> float:
    return math.sin(radius_km / EARTH_RADIUS_KM / 2) ** 2


def _sql_has_math(db: sqlite3.Connection) -> bool:
    # Math functions are a compile-time option of SQLite (on in Debian's and Python's builds).
    try:
        db.execute("SELECT sin(radians(1)), cos(1), pow(2, 2)").fetchone()
    except sqlite3.OperationalError:
        return False
    return True


def _bounding_box(near: tuple[float, float], radius_km: float) -> tuple[str, dict[str, Any]]:
    """SQL that keeps the rows inside a lat/lon box around the circle (the lat index serves it);
    the exact distance is checked after it."""
    lat0, lon0 = near
    dlat = radius_km / _KM_PER_DEGREE
    clauses = ["l.lat BETWEEN :south AND :north"]
    params: dict[str, Any] = {"south": lat0 - dlat, "north": lat0 + dlat}
    angle = radius_km / EARTH_RADIUS_KM
    polar = lat0 + dlat >= 90 or lat0 - dlat <= -90 or angle >= math.pi / 2
    if not polar:
        # The widest longitude span of a circle on a sphere (at its tangent points).
        ratio = math.sin(angle) / math.cos(math.radians(lat0))
        if ratio < 1:
            dlon = math.degrees(math.asin(ratio))
            west, east = lon0 - dlon, lon0 + dlon
            if west < -180 or east > 180:  # the box crosses the antimeridian: two ranges
                clauses.append("(l.lon >= :west OR l.lon <= :east)")
                params |= {"west": west + 360 if west < -180 else west}
                params |= {"east": east - 360 if east > 180 else east}
            else:
                clauses.append("l.lon BETWEEN :west AND :east")
                params |= {"west": west, "east": east}
    return " AND ".join(clauses), params


class SearchIndex:
    """The market index in the SQLite file at ``path`` (created when missing). Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        # One connection behind a lock: a search takes milliseconds, so none need run in parallel.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.create_function("hav", 4, _hav, deterministic=True)
        self._hav = _HAV_SQL if _sql_has_math(self._db) else _HAV_PYTHON
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        self.fresh = version != SCHEMA_VERSION
        if self.fresh:
            # One transaction: a crash half-way leaves the old version number, so it starts over.
            self._db.executescript(
                f"BEGIN; {_DROP} {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    def upsert(self, doc: Mapping[str, Any]) -> bool:
        """Index a listing (see ``doc_row``); a doc whose ``status`` is not "active" removes it.

        False when nothing changed: an older version than the one stored, or an id another shop
        already uses. DocError when the doc is malformed.
        """
        return self.upsert_many([doc]) == 1

    def upsert_many(self, docs: Iterable[Mapping[str, Any]]) -> int:
        """``upsert`` of many docs in one transaction (all or none); how many changed the index."""
        rows = [(doc.get("status", "active"), doc_row(doc)) for doc in docs]
        changed = 0
        with self._transaction():
            for status, row in rows:
                if status == "active":
                    cursor = self._db.execute(_UPSERT, row)
                else:
                    # Sold, withdrawn or a draft again: gone from search, unless this is a replay
                    # older than what is stored.
                    cursor = self._db.execute(
                        "DELETE FROM listing WHERE id = ? AND shop = ? AND updated_ms <= ?",
                        (row["id"], row["shop"], row["updated_ms"]),
                    )
                changed += cursor.rowcount
        return changed

    def replace_shop(self, shop: str, docs: Iterable[Mapping[str, Any]]) -> int:
        """The shop's listings become exactly the active ones of ``docs`` (all of the shop's,
        read again), in one transaction: a search meanwhile sees the old or the new, never none.
        Returns how many are indexed."""
        rows = [(doc.get("status", "active"), doc_row(doc)) for doc in docs]
        if any(row["shop"] != shop for _status, row in rows):
            raise DocError("Every listing read again must be of the shop read again.")
        changed = 0
        with self._transaction():
            self._db.execute("DELETE FROM listing WHERE shop = ?", (shop,))
            for status, row in rows:
                if status == "active":
                    changed += self._db.execute(_UPSERT, row).rowcount
        return changed

    def remove(self, listing_id: str) -> bool:
        """Drop one listing; False when it was not indexed."""
        with self._transaction():
            cursor = self._db.execute("DELETE FROM listing WHERE id = ?", (listing_id,))
        return cursor.rowcount > 0

    def remove_shop(self, shop: str) -> int:
        """Drop a shop and every listing of it (it no longer admits this index); how many
        listings went."""
        with self._transaction():
            cursor = self._db.execute("DELETE FROM listing WHERE shop = ?", (shop,))
            self._db.execute("DELETE FROM shop WHERE id = ?", (shop,))
        return cursor.rowcount

    def shop_set(self, shop: str, *, name: str, link: str, served: bool) -> None:
        """What hits of ``shop`` carry: its name and customer link; ``served``: its listings are
        answered to other nodes (``search(served_only=True)``), not only to this one."""
        if not HIT_ID_HEX.fullmatch(shop):
            raise DocError("A shop's id must be an id in lower-case hexadecimal.")
        # Hits must pass hit_from_wire on the asking node: one line, bounded.
        name = " ".join(name.split())[:HIT_NAME_MAX_CHARS]
        link = link.strip() if len(link) <= HIT_LINK_MAX_CHARS and link.isprintable() else ""
        with self._transaction():
            self._db.execute(
                "INSERT INTO shop (id, name, link, served) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " name = excluded.name, link = excluded.link, served = excluded.served",
                (shop, name, link, int(served)),
            )

    def shops(self) -> set[str]:
        """The shops that have a row or a listing here."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM shop UNION SELECT DISTINCT shop FROM listing"
            ).fetchall()
        return {row[0] for row in rows}

    def count(self) -> int:
        """How many listings are indexed."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM listing").fetchone()[0])

    def search(self, q: Query, *, served_only: bool = False) -> list[Hit]:
        """One page of the listings matching ``q``, in its order (at most ``q.page_size``)."""
        return self.search_page(q, served_only=served_only, total=False)[0]

    def search_page(
        self, q: Query, *, served_only: bool = False, total: bool = True
    ) -> tuple[list[Hit], int]:
        """``search`` and how many listings match in all (``total``; else the page's length).
        ``served_only``: only shops marked served (``shop_set``)."""
        source, score, where, params = self._match(q)
        if served_only:
            where.append("s.served = 1")
        distance = "NULL"
        if q.near is not None:
            distance = self._hav
            params |= {"lat0": q.near[0], "lon0": q.near[1]}
            params["cos_lat0"] = math.cos(math.radians(q.near[0]))
            if q.radius_km is not None:
                box, box_params = _bounding_box(q.near, q.radius_km)
                where += [box, f"{distance} <= :hav_max"]
                params |= box_params | {"hav_max": _hav_bound(q.radius_km)}
        order = {
            "relevance": "score DESC, l.updated_ms DESC, l.id",
            "price_asc": "l.price, l.updated_ms DESC, l.id",
            "price_desc": "l.price DESC, l.updated_ms DESC, l.id",
            "newest": "l.updated_ms DESC, l.id",
            # Listings without a position come last.
            "distance": "distance IS NULL, distance, l.updated_ms DESC, l.id",
        }[q.sort]
        # Only this module's constants are spliced in; every value a query carries is a parameter.
        select = f"SELECT {_COLUMNS}, {score} AS score, {_SHOP_COLUMNS}, {distance} AS distance"
        source += " LEFT JOIN shop s ON s.id = l.shop"
        filters = " WHERE " + " AND ".join(where) if where else ""
        sql = f"{select} FROM {source}{filters} ORDER BY {order} LIMIT :limit OFFSET :offset"
        with self._lock:
            rows = self._db.execute(
                sql, params | {"limit": q.page_size, "offset": q.offset}
            ).fetchall()
            found = len(rows)
            if total and (q.page > 1 or found == q.page_size):
                counted = f"SELECT count(*) FROM {source}{filters}"  # noqa: S608 - as above
                found = int(self._db.execute(counted, params).fetchone()[0])
            elif total:
                found = q.offset + len(rows)
        hits = [
            Hit(*row[:11], row[11], row[12], " ".join(row[13].split())[:HIT_SUMMARY_MAX_CHARS])
            for row in rows
        ]
        return hits, found

    def _match(self, q: Query) -> tuple[str, str, list[str], dict[str, Any]]:
        """The source, score and filters of ``q`` but its place."""
        match = fts_match(q.text)
        where: list[str] = []
        params: dict[str, Any] = {}
        if match is not None:
            source = "listing_fts JOIN listing l ON l.n = listing_fts.rowid"
            score = f"-bm25(listing_fts, {_WEIGHTS})"
            where.append("listing_fts MATCH :match")
            params["match"] = match
        else:
            source, score = "listing l", "0.0"
        for column, value, test in (
            ("category", q.category, "="),
            ("currency", q.currency, "="),
            ("price", q.min_price, ">="),
            ("price", q.max_price, "<="),
        ):
            if value is not None:
                name = f"p{len(params)}"
                where.append(f"l.{column} {test} :{name}")
                params[name] = value
        return source, score, where, params

    def close(self) -> None:
        """Close the file; the index cannot be used afterwards."""
        with self._lock:
            self._db.close()


class _Transaction:
    """BEGIN ... COMMIT under the index's lock (ROLLBACK when the block raises)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db, self._lock = db, lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            self._db.execute("ROLLBACK" if kind is not None else "COMMIT")
        finally:
            self._lock.release()
