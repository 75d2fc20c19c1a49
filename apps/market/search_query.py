"""Market search queries and answers: what a person asks, what crosses the network, and how a
buyer's node merges the answers of several indexes (issue 15 §2). Pure: no Django, no DB.

A query arrives from a web form or API call (``query_parse``: text a person typed) or from another
node (``query_from_wire``: data a peer sent, checked again, never trusted). Prices are integers
in minor units (hundredths: "12.50" -> 1250). Every refusal is a sentence for a person.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from apps.market.listing_shape import CURRENCIES

Sort = Literal["relevance", "price_asc", "price_desc", "newest", "distance"]
SORTS: tuple[str, ...] = get_args(Sort)

TEXT_MAX_CHARS = 200
CATEGORY_MAX_CHARS = 64
PAGE_MAX = 20
PAGE_SIZE_MAX = 50
PAGE_SIZE_DEFAULT = 20
RADIUS_MAX_KM = 20_000.0
# 10**13 hundredths: far above any price, well inside SQLite's int64.
PRICE_MAX = 10**13
EARTH_RADIUS_KM = 6371.0088

# What a hit may carry; generous next to a listing's own limits, small enough to bound an answer.
HIT_TITLE_MAX_CHARS = 200
HIT_PLACE_MAX_CHARS = 200
HIT_SUMMARY_MAX_CHARS = 300
HIT_NAME_MAX_CHARS = 100  # a shop's name
HIT_LINK_MAX_CHARS = 4_000  # the shop's customer link (``models.MAX_LINK``)
HIT_ID_HEX = re.compile(r"[0-9a-f]{16,64}")
HITS_MOST = 50

_PRICE_TEXT = re.compile(r"([0-9]{1,13})(?:[.,]([0-9]{1,2}))?")
_CURRENCY = re.compile(r"[A-Z]{3}")

_QUERY_KEYS = frozenset(
    {
        "text",
        "category",
        "min_price",
        "max_price",
        "currency",
        "near",
        "radius_km",
        "sort",
        "page",
        "page_size",
    }
)
_HIT_KEYS = frozenset(
    {
        "listing",
        "shop",
        "title",
        "price",
        "currency",
        "category",
        "place",
        "lat",
        "lon",
        "updated_ms",
        "score",
        "shop_name",
        "link",
        "summary",
    }
)


class QueryError(ValueError):
    """A query that cannot be run; the message is a sentence for a person."""


class WireError(QueryError):
    """A query or answer from another node that is malformed."""


@dataclass(frozen=True)
class Query:
    """A checked search: every Query in the program went through ``_query_check``."""

    text: str = ""
    category: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    currency: str | None = None
    near: tuple[float, float] | None = None
    radius_km: float | None = None
    sort: Sort = "relevance"
    page: int = 1
    page_size: int = PAGE_SIZE_DEFAULT

    def __post_init__(self) -> None:
        _query_check(self)

    @property
    def offset(self) -> int:
        """How many results come before this page."""
        return (self.page - 1) * self.page_size


@dataclass(frozen=True)
class Hit:
    """One listing in an answer. ``score``: higher is better, only comparable within one query.
    ``shop_name`` and ``link`` (the shop's customer link, to follow it) are the shop's."""

    listing: str
    shop: str
    title: str
    price: int
    currency: str
    category: str
    place: str
    lat: float | None
    lon: float | None
    updated_ms: int
    score: float
    shop_name: str = ""
    link: str = ""
    summary: str = ""


# --- checks shared by every way a query is built --------------------------------------------


def _is_int(value: Any) -> bool:
    # bool is an int subclass; True is not a page number.
    return type(value) is int


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char)[0] == "C" for char in text)


def currency_check(code: str) -> str:
    """``code`` if it is an ISO 4217 currency code we know (upper case), else QueryError."""
    if not _CURRENCY.fullmatch(code) or code not in CURRENCIES:
        raise QueryError(f"{code[:8]!r} is not a currency code we know; use one like EUR or USD.")
    return code


def point_check(lat: Any, lon: Any) -> tuple[float, float]:
    """(lat, lon) as floats when both are numbers on the globe, else QueryError."""
    if not _is_number(lat) or not -90 <= lat <= 90:
        raise QueryError("The latitude must be a number from -90 to 90.")
    if not _is_number(lon) or not -180 <= lon <= 180:
        raise QueryError("The longitude must be a number from -180 to 180.")
    return float(lat), float(lon)


def _query_check(q: Query) -> None:
    if not isinstance(q.text, str) or len(q.text) > TEXT_MAX_CHARS:
        raise QueryError(f"The search text can be at most {TEXT_MAX_CHARS} characters.")
    if q.category is not None and (
        not isinstance(q.category, str)
        or not q.category
        or len(q.category) > CATEGORY_MAX_CHARS
        or _has_control(q.category)
    ):
        raise QueryError(f"A category is a name of at most {CATEGORY_MAX_CHARS} characters.")
    for price, which in ((q.min_price, "lowest"), (q.max_price, "highest")):
        if price is not None and (not _is_int(price) or not 0 <= price <= PRICE_MAX):
            raise QueryError(f"The {which} price must be a number from 0 to 100,000,000,000.")
    if q.min_price is not None and q.max_price is not None and q.min_price > q.max_price:
        raise QueryError("The lowest price is above the highest price.")
    if q.currency is not None:
        if not isinstance(q.currency, str):
            raise QueryError("The currency must be a code like EUR or USD.")
        currency_check(q.currency)
    # Prices in different currencies cannot be compared, so a price range names its currency.
    if (q.min_price is not None or q.max_price is not None) and q.currency is None:
        raise QueryError("A price range needs a currency, like EUR.")
    if q.near is not None:
        if not isinstance(q.near, tuple) or len(q.near) != 2:
            raise QueryError("A place to search near is a latitude and a longitude.")
        point_check(*q.near)
    if q.radius_km is not None:
        if not _is_number(q.radius_km) or not 0 < q.radius_km <= RADIUS_MAX_KM:
            raise QueryError(
                f"The distance must be a number of kilometres from 0 to {RADIUS_MAX_KM:,.0f}."
            )
        if q.near is None:
            raise QueryError("A distance needs a place to measure from (latitude and longitude).")
    if q.sort not in SORTS:
        raise QueryError("Sort by relevance, price_asc, price_desc, newest or distance.")
    if q.sort == "distance" and q.near is None:
        raise QueryError("Sorting by distance needs a place (latitude and longitude).")
    if not _is_int(q.page) or not 1 <= q.page <= PAGE_MAX:
        raise QueryError(f"The page must be a whole number from 1 to {PAGE_MAX}.")
    if not _is_int(q.page_size) or not 1 <= q.page_size <= PAGE_SIZE_MAX:
        raise QueryError(f"The page size must be a whole number from 1 to {PAGE_SIZE_MAX}.")


# --- what a person typed ------------------------------------------------------------------


def _param(params: Mapping[str, Any], key: str) -> str | None:
    """The parameter as stripped text, None when absent or blank (an empty form field)."""
    value = params.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise QueryError(f"The {key} parameter must be text.")
    text = str(value).strip()
    return text or None


def price_parse(text: str, which: str = "lowest") -> int:
    """Minor units (hundredths) of a price a person wrote: "12", "12.5", "12,50" -> 1200, 1250."""
    match = _PRICE_TEXT.fullmatch(text.strip())
    if match is None:
        if text.strip().startswith("-"):
            raise QueryError(f"The {which} price cannot be negative.")
        raise QueryError(f"The {which} price must be a number, like 10 or 12.50.")
    minor = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if minor > PRICE_MAX:
        raise QueryError(f"The {which} price is too large.")
    return minor


def _float_param(text: str, message: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise QueryError(message) from None
    if not math.isfinite(value):
        raise QueryError(message)
    return value


def _int_param(text: str, message: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise QueryError(message)
    return int(text)


def query_parse(params: Mapping[str, Any]) -> Query:
    """The Query in a search form or API call (``q``, ``category``, ``min_price``, ``max_price``,
    ``currency``, ``lat`` and ``lon`` or ``near`` ("lat,lon"), ``radius_km``, ``sort``, ``page``,
    ``page_size``).

    Blank fields count as absent; other parameters are ignored (a page adds its own). Raises
    QueryError with a sentence saying what to fix.
    """
    raw = params.get("q") or ""
    if not isinstance(raw, str):
        raise QueryError("The search text must be text.")
    text = unicodedata.normalize("NFC", raw).strip()
    if len(text) > TEXT_MAX_CHARS:
        raise QueryError(f"The search text can be at most {TEXT_MAX_CHARS} characters.")
    category = _param(params, "category")
    min_text, max_text = _param(params, "min_price"), _param(params, "max_price")
    currency = _param(params, "currency")
    lat_text, lon_text = _param(params, "lat"), _param(params, "lon")
    near_text = _param(params, "near")
    if near_text is not None:
        if lat_text is not None or lon_text is not None:
            raise QueryError("Give a place either as near=lat,lon or as lat and lon, not both.")
        parts = near_text.split(",")
        if len(parts) != 2:
            raise QueryError("A place to search near is a latitude and a longitude: 48.85,2.35.")
        lat_text, lon_text = parts[0].strip() or None, parts[1].strip() or None
    radius_text = _param(params, "radius_km")
    near = None
    if (lat_text is None) != (lon_text is None):
        raise QueryError("A place to search near needs both a latitude and a longitude.")
    if lat_text is not None and lon_text is not None:
        near = point_check(
            _float_param(lat_text, "The latitude must be a number from -90 to 90."),
            _float_param(lon_text, "The longitude must be a number from -180 to 180."),
        )
    radius = None
    if radius_text is not None:
        radius = _float_param(radius_text, "The distance must be a number of kilometres, like 25.")
    sort = _param(params, "sort") or "relevance"
    page_text, size_text = _param(params, "page"), _param(params, "page_size")
    return Query(
        text=text,
        category=category,
        min_price=None if min_text is None else price_parse(min_text, "lowest"),
        max_price=None if max_text is None else price_parse(max_text, "highest"),
        currency=None if currency is None else currency_check(currency.upper()),
        near=near,
        radius_km=radius,
        sort=sort,  # type: ignore[arg-type]  # checked by Query itself
        page=1 if page_text is None else _int_param(page_text, "The page must be a whole number."),
        page_size=PAGE_SIZE_DEFAULT
        if size_text is None
        else _int_param(size_text, "The page size must be a whole number."),
    )


def query_words(text: str, most: int = 16) -> list[str]:
    """The words of a search text as the index splits them (letters, digits); no operators."""
    # unicode61 separates on everything but letters and numbers, "_" included.
    return re.findall(r"[^\W_]+", unicodedata.normalize("NFC", text))[:most]


# --- across the network ---------------------------------------------------------------------


def query_to_wire(q: Query) -> dict[str, Any]:
    """The query as plain data for the search protocol."""
    data = asdict(q)
    data["near"] = None if q.near is None else [q.near[0], q.near[1]]
    return data


def query_from_wire(data: Any) -> Query:
    """The Query a peer sent, checked like any other; WireError when malformed.

    Missing keys take their defaults; unknown keys are refused (the protocol is versioned).
    """
    if not isinstance(data, dict):
        raise WireError("The search query is not readable: it must be a map.")
    unknown = set(data) - _QUERY_KEYS
    if unknown:
        names = ", ".join(sorted(str(k)[:20] for k in unknown)[:3])
        raise WireError(f"The search query is not readable: unknown keys ({names}).")
    fields = dict(data)
    if "text" in fields and not isinstance(fields["text"], str):
        raise WireError("The search query is not readable: its text must be text.")
    near = fields.get("near")
    if near is not None:
        if not isinstance(near, list | tuple) or len(near) != 2:
            raise WireError("The search query is not readable: near must be [lat, lon].")
        fields["near"] = (near[0], near[1])
    try:
        return Query(**fields)
    except WireError:
        raise
    except QueryError as error:
        raise WireError(f"The search query is not readable: {error}") from None


def hit_to_wire(hit: Hit) -> dict[str, Any]:
    """One hit as plain data for an answer."""
    return asdict(hit)


def hits_to_wire(hits: Iterable[Hit]) -> list[dict[str, Any]]:
    """An answer as plain data."""
    return [hit_to_wire(hit) for hit in hits]


def _hit_text(value: Any, name: str, most: int) -> str:
    if not isinstance(value, str) or len(value) > most or _has_control(value):
        raise WireError(f"A search answer is not readable: its {name} is malformed.")
    return value


def hit_from_wire(data: Any) -> Hit:
    """One hit a peer sent, checked; WireError when malformed."""
    if not isinstance(data, dict) or set(data) != _HIT_KEYS:
        raise WireError("A search answer is not readable: a hit must have exactly the hit fields.")
    for key in ("listing", "shop"):
        if not isinstance(data[key], str) or not HIT_ID_HEX.fullmatch(data[key]):
            raise WireError(f"A search answer is not readable: its {key} id is malformed.")
    price = data["price"]
    if not _is_int(price) or not 0 <= price <= PRICE_MAX:
        raise WireError("A search answer is not readable: its price is malformed.")
    currency = data["currency"]
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise WireError("A search answer is not readable: its currency is malformed.")
    lat, lon = data["lat"], data["lon"]
    if (lat is None) != (lon is None):
        raise WireError("A search answer is not readable: it has half a position.")
    if lat is not None:
        try:
            lat, lon = point_check(lat, lon)
        except QueryError:
            raise WireError("A search answer is not readable: its position is malformed.") from None
    updated = data["updated_ms"]
    if not _is_int(updated) or not 0 <= updated < 2**53:
        raise WireError("A search answer is not readable: its time is malformed.")
    if not _is_number(data["score"]):
        raise WireError("A search answer is not readable: its score is malformed.")
    return Hit(
        listing=data["listing"],
        shop=data["shop"],
        title=_hit_text(data["title"], "title", HIT_TITLE_MAX_CHARS),
        price=price,
        currency=currency,
        category=_hit_text(data["category"], "category", CATEGORY_MAX_CHARS),
        place=_hit_text(data["place"], "place", HIT_PLACE_MAX_CHARS),
        lat=lat,
        lon=lon,
        updated_ms=updated,
        score=float(data["score"]),
        shop_name=_hit_text(data["shop_name"], "shop name", HIT_NAME_MAX_CHARS),
        link=_hit_text(data["link"], "link", HIT_LINK_MAX_CHARS),
        summary=_hit_text(data["summary"], "summary", HIT_SUMMARY_MAX_CHARS),
    )


def hits_from_wire(data: Any, *, most: int = HITS_MOST) -> list[Hit]:
    """The hits of an answer a peer sent: a list of at most ``most``; WireError when malformed."""
    if not isinstance(data, list):
        raise WireError("A search answer is not readable: it must be a list of hits.")
    if len(data) > most:
        raise WireError(f"A search answer is not readable: more than {most} hits.")
    return [hit_from_wire(item) for item in data]


# --- merging ------------------------------------------------------------------------------


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in km between two (lat, lon) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    # min(): rounding can push h a hair above 1 for antipodal points.
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def _distance(hit: Hit, near: tuple[float, float]) -> float:
    if hit.lat is None or hit.lon is None:
        return math.inf  # listings without a position come last
    return haversine_km(near, (hit.lat, hit.lon))


def merge(answers: Iterable[list[Hit]], q: Query) -> list[Hit]:
    """Page ``q.page`` of the answers of several sources (indexes, followed shops), merged.

    Each answer should hold its source's hits for pages 1 to ``q.page`` (at least the first
    ``q.page * q.page_size``), or later pages come out short. A listing is one (shop, listing id):
    the copy with the newest ``updated_ms`` is kept, scored with the best score any source gave.
    Keying on the shop as well means a hostile source that reuses another shop's listing id adds
    a row of its own instead of hiding the real one. Ties sort by newest, then by id, so every
    node shows the same order.
    """
    newest: dict[tuple[str, str], Hit] = {}
    best: dict[tuple[str, str], float] = {}
    for answer in answers:
        for hit in answer:
            key = (hit.shop, hit.listing)
            kept = newest.get(key)
            if kept is None or hit.updated_ms > kept.updated_ms:
                newest[key] = hit
            best[key] = max(best.get(key, -math.inf), hit.score)
    hits = [
        hit if hit.score == best[key] else _rescored(hit, best[key]) for key, hit in newest.items()
    ]

    def tie(hit: Hit) -> tuple[int, str, str]:
        return (-hit.updated_ms, hit.listing, hit.shop)

    if q.sort == "price_asc":
        hits.sort(key=lambda h: (h.price, *tie(h)))
    elif q.sort == "price_desc":
        hits.sort(key=lambda h: (-h.price, *tie(h)))
    elif q.sort == "newest":
        hits.sort(key=tie)
    elif q.sort == "distance" and q.near is not None:
        near = q.near
        hits.sort(key=lambda h: (_distance(h, near), *tie(h)))
    else:
        hits.sort(key=lambda h: (-h.score, *tie(h)))
    return hits[q.offset : q.offset + q.page_size]


def _rescored(hit: Hit, score: float) -> Hit:
    fields = asdict(hit)
    fields["score"] = score
    return Hit(**fields)
