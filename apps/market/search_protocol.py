"""``/sereus/market-search/1.0.0``: ask another node's market index (issue 15 §2, ADR 22).

An app protocol (``apps.p2p.app_protocols``): one request, one answer, on a stream of its own.

- The request: ``search_query.query_to_wire`` as JSON (at most ``MAX_REQUEST`` bytes), checked on
  arrival like any query (``query_from_wire``: text length, page size at most 50, page at most
  20); a malformed one is answered in words.
- The answer: ``{"hits": [hit_to_wire...], "total": n}`` as JSON, at most ``MAX_RESPONSE``
  bytes, checked on arrival too (``answer_decode``).
- Only a node that runs an index (``IndexSettings.enabled``) answers, and only with the shops
  ``index_duty`` serves (those that admitted it as their index, and its own).
- At most ``RATE`` searches a second per asking node (a burst of ``BURST``); over it, "Too many
  searches; wait a moment."

JSON rather than CBOR: a generic CBOR decoder builds a whole nested document before any check
(``apps.p2p.frames`` says what that costs), while ``json`` refuses deep nesting and NaN is
refused here by hand.
"""

from __future__ import annotations

import json
from typing import Any

from apps.market.search_query import (
    HITS_MOST,
    Hit,
    Query,
    WireError,
    hits_from_wire,
    hits_to_wire,
    query_from_wire,
    query_to_wire,
)
from apps.p2p.app_protocols import AppRefused

PROTOCOL = "/sereus/market-search/1.0.0"
MAX_REQUEST = 4 * 1024
MAX_RESPONSE = 512 * 1024
RATE, BURST = 5.0, 20  # a person typing searches a few times a second
HANDLER_TIMEOUT = 3.0
BUSY = "Too many searches; wait a moment."
NOT_AN_INDEX = "This node runs no market index."
TOTAL_MOST = 10**9


def register() -> None:
    """Serve the protocol from the node's next start (from ``MarketConfig.ready``)."""
    from apps.p2p import app_protocols

    app_protocols.register(
        PROTOCOL,
        handle,
        max_request=MAX_REQUEST,
        max_response=MAX_RESPONSE,
        rate=(RATE, BURST),
        timeout=HANDLER_TIMEOUT,
        busy=BUSY,
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise WireError(f"The {what} is not readable: it is not JSON.") from None


def _dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def request_encode(q: Query) -> bytes:
    return _dumps(query_to_wire(q))


def request_decode(data: bytes) -> Query:
    """The query a peer sent; ``WireError`` in words when malformed."""
    return query_from_wire(_json(data, "search query"))


def answer_encode(hits: list[Hit], total: int) -> bytes:
    return _dumps({"hits": hits_to_wire(hits), "total": total})


def answer_decode(data: bytes) -> tuple[list[Hit], int]:
    """The hits and total an index answered; ``WireError`` when malformed."""
    doc = _json(data, "search answer")
    if not isinstance(doc, dict) or set(doc) != {"hits", "total"}:
        raise WireError("The search answer is not readable: it must hold hits and a total.")
    total = doc["total"]
    if type(total) is not int or not 0 <= total <= TOTAL_MOST:
        raise WireError("The search answer is not readable: its total is not a count.")
    return hits_from_wire(doc["hits"], most=HITS_MOST), total


def handle(peer: bytes, request: bytes) -> bytes:
    """The index's side (in a worker thread of the p2p node)."""
    from apps.market import index_duty
    from apps.market.index_links import index_settings

    if not index_settings().enabled:
        raise AppRefused(NOT_AN_INDEX)
    try:
        q = request_decode(request)
    except WireError as exc:
        raise AppRefused(str(exc)) from None
    index_duty.refresh_stale()
    hits, total = index_duty.index().search_page(q, served_only=True)
    return answer_encode(hits, total)


def ask(peer: str, addrs: list[str], q: Query, *, timeout: float) -> tuple[list[Hit], int]:
    """Ask the index at ``peer`` (dialed at ``addrs`` only). ``AppRequestError`` when it cannot
    answer (its words when it refused), ``WireError`` when its answer is malformed."""
    from apps.p2p.client import app_request

    return answer_decode(app_request(peer, addrs, PROTOCOL, request_encode(q), timeout=timeout))
