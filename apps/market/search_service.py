"""A buyer's search (issue 15 §2): every market index this node knows, asked in parallel over
``/sereus/market-search/1.0.0``, and this node's own index of the shops it is in, merged
(``search_query.merge``: one hit per shop and listing). No index is the default, and none can
hide another's answers: an index that fails is listed with the reason, the rest still answer.

Pages: each source is asked for its first ``page * page_size`` hits (at most 50, what one answer
may hold), and the merge cuts the page out of them; pages past the 50th hit are short. The total
is at least the most any one source counted.

``index_enable``, ``index_link``, ``index_add`` and ``index_remove`` (``index_links``) are
re-exported here: the service is the one module the pages and the API call.
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.utils import timezone

from apps.core.thread.invite import InviteError, invite_parse
from apps.market import index_duty, search_protocol
from apps.market.index_links import (
    index_add,
    index_addrs,
    index_enable,
    index_link,
    index_remove,
    index_settings,
    known_indexes,
)
from apps.market.models import KnownIndex
from apps.market.search_query import PAGE_SIZE_MAX, Hit, Query, WireError, merge
from apps.p2p.app_protocols import AppRequestError

__all__ = [
    "SearchResult",
    "Source",
    "index_add",
    "index_addrs",
    "index_enable",
    "index_link",
    "index_remove",
    "index_settings",
    "known_indexes",
    "search",
]

logger = logging.getLogger(__name__)

ASK_TIMEOUT = 3.0
ASKED_AT_ONCE = 8
THIS_NODE = "this node"
ERROR_MOST = 300


@dataclass(frozen=True)
class Source:
    name: str  # the index's name (or its peer id's start), or "this node"
    ok: bool
    words: str  # why it did not answer; "" when it did
    peer: str = ""  # "" for this node


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    total: int
    sources: list[Source]


def _name(row: KnownIndex) -> str:
    return row.name or f"index {row.peer[-8:]}"


def _ask(peer: str, addrs: list[str], q: Query) -> tuple[list[Hit], int] | str:
    """An index's answer, or why there is none (in words). Runs in a pool thread: no database."""
    try:
        return search_protocol.ask(peer, addrs, q, timeout=ASK_TIMEOUT)
    except AppRequestError as exc:
        return exc.words
    except WireError as exc:
        return str(exc)
    except Exception:  # whatever broke, it is this index's answer that is missing
        logger.exception("market search: asking %s failed", peer)
        return "Asking this index failed."


def _link_of(hit: Hit) -> Hit:
    """The hit, its link kept only if it is an invite into the hit's own shop: an index cannot
    send people to another thread than the one it named."""
    if not hit.link:
        return hit
    try:
        same = invite_parse(hit.link).thread.hex() == hit.shop
    except (InviteError, ValueError):
        same = False
    return hit if same else dataclasses.replace(hit, link="")


def search(query: Query) -> SearchResult:
    """Page ``query.page`` of what every known index and this node's own index find."""
    wide = dataclasses.replace(
        query, page=1, page_size=min(PAGE_SIZE_MAX, query.page * query.page_size)
    )
    indexes = known_indexes()
    answers: list[tuple[list[Hit], int] | str] = []
    if indexes:
        with ThreadPoolExecutor(max_workers=min(ASKED_AT_ONCE, len(indexes))) as pool:
            asked = [pool.submit(_ask, row.peer, index_addrs(row), wide) for row in indexes]
            # This node's own index meanwhile.
            own = _own(wide)
            answers = [future.result() for future in asked]
    else:
        own = _own(wide)
    sources = [Source(THIS_NODE, isinstance(own, tuple), "" if isinstance(own, tuple) else own)]
    found: list[list[Hit]] = [own[0]] if isinstance(own, tuple) else []
    totals = [own[1]] if isinstance(own, tuple) else []
    now = timezone.now()
    for row, answer in zip(indexes, answers, strict=True):
        if isinstance(answer, str):
            sources.append(Source(_name(row), False, answer[:ERROR_MOST], row.peer))
            KnownIndex.objects.filter(pk=row.pk).update(last_error=answer[:ERROR_MOST])
            continue
        hits, total = answer
        found.append(hits)
        totals.append(total)
        sources.append(Source(_name(row), True, "", row.peer))
        KnownIndex.objects.filter(pk=row.pk).update(last_ok_at=now, last_error="")
    merged = merge(found, query)
    distinct = len({(h.shop, h.listing) for answer in found for h in answer})
    return SearchResult(
        hits=[_link_of(hit) for hit in merged], total=max([distinct, *totals]), sources=sources
    )


def _own(q: Query) -> tuple[list[Hit], int] | str:
    """This node's own index's answer, or why there is none."""
    try:
        index_duty.refresh_stale()
        return index_duty.index().search_page(q)
    except Exception:  # the other indexes still answer
        logger.exception("market search: this node's index could not be read")
        return "This node's own index could not be read; its log says why."
