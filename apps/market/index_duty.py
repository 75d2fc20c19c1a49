"""This node's market index follows the shops it is in (issue 15 §2): the active listings of every
shop thread here, whatever this node's role in it (indexer, customer, owner or staff), in the
node-local SQLite FTS5 file ``search_index.SearchIndex`` (``<data dir>/market-index.sqlite3``).

- **After ops** (``ops_written``, a ``DutyWorker``: coalesced per thread, never inside whoever
  wrote): only the listings the new ops wrote are read again (``changes_since``), and the shop's
  row when it changed; everything of the shop when that cannot be told.
- **Now and then**: a shop not read whole for ``REREAD_S`` is read whole again at its next
  update, and ``refresh_stale`` (every search calls it) wakes the shops that have not been read
  in this process at all, and drops the shops this node is no longer in.
- **What is answered to other nodes**: the shops that admitted this node as their index, and its
  own shops (``SERVED_ROLES``); a shop it merely follows as a customer is searched on this node
  only, never served to others (its owner did not ask this node to index it).

Connect it with ``connect()`` (from ``MarketConfig.ready``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from apps.core.models import Thread
from apps.core.thread.state import ThreadState
from apps.core.threads.changes import Mark, changes_since
from apps.core.threads.context import thread_context
from apps.core.threads.duty_worker import DutyWorker
from apps.core.threads.registry import thread_database
from apps.core.threads.store import stamp_parse
from apps.market.models import Listing, Shop
from apps.market.policy import ADMIN, INDEXER, LISTING, OWNER, RULES_APP, SHOP, SHOP_APP, STAFF
from apps.market.search_index import DocError, SearchIndex, doc_row

logger = logging.getLogger(__name__)

INDEX_FILE = "market-index.sqlite3"
REREAD_S = 300.0
STALE_CHECK_S = 10.0  # ``refresh_stale`` looks at the registry at most this often
SERVED_ROLES = frozenset({INDEXER, OWNER, ADMIN, STAFF})

_lock = threading.Lock()
_index: tuple[Path, SearchIndex] | None = None
# thread -> (where its log stood when last read, monotonic time of its last whole read)
_marks: dict[bytes, tuple[Mark, float]] = {}
_checked = [-STALE_CHECK_S]  # when ``refresh_stale`` last looked (monotonic)


def index() -> SearchIndex:
    """The index file of this node's data dir (opened once per process and data dir)."""
    global _index
    path = Path(settings.DATA_DIR) / INDEX_FILE
    with _lock:
        if _index is None or _index[0] != path:
            if _index is not None:
                _index[1].close()
            _marks.clear()
            _checked[0] = -STALE_CHECK_S
            _index = (path, SearchIndex(path))
        return _index[1]


def forget() -> None:
    """Close the index file and forget what was read (tests; a new data dir)."""
    global _index
    with _lock:
        if _index is not None:
            _index[1].close()
        _index = None
        _marks.clear()
        _checked[0] = -STALE_CHECK_S


# -- reading a shop --------------------------------------------------------------------------------


def _times(thread: Thread, ids: Iterable[str]) -> dict[str, int]:
    """Each listing's last write, in milliseconds (the stamp of the op that wrote it)."""
    wanted = list(ids)
    found: dict[str, int] = {}
    with connections[thread_database(thread.thread).alias].cursor() as cursor:
        for start in range(0, len(wanted), 500):
            batch = wanted[start : start + 500]
            marks = ",".join("%s" for _ in batch)
            cursor.execute(
                f"SELECT pk, max(hlc) FROM sereus_rowevents WHERE tbl = %s AND pk IN ({marks})"  # noqa: S608 - placeholders only
                " GROUP BY pk",
                [LISTING, *batch],
            )
            for pk, hlc in cursor.fetchall():
                found[str(pk)] = stamp_parse(bytes(hlc))[0].millis
    return found


def _tags(text: str) -> list[str]:
    try:
        tags = json.loads(text)
    except ValueError:
        return []
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def listing_docs(thread: Thread, ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The index documents of the shop's listings (``ids``: only those), each checked; a listing
    the index cannot take (it passed the shop's rules, so only an older rule's) is left out."""
    with thread_context(thread.thread):
        rows = Listing.objects.all() if ids is None else Listing.objects.filter(pk__in=list(ids))
        listings = list(rows)
    times = _times(thread, [row.id.hex for row in listings])
    docs = []
    for row in listings:
        doc = {
            "id": row.id.hex,
            "shop": thread.id,
            "title": row.title,
            "summary": row.summary,
            "category": row.category,
            "tags": _tags(row.tags),
            "price": row.price,
            "currency": row.currency,
            "place": row.place,
            "lat": row.lat,
            "lon": row.lon,
            "quantity": max(0, row.quantity),
            "status": row.status,
            "updated_ms": times.get(row.id.hex, 0),
        }
        try:
            doc_row(doc)
        except DocError as exc:
            logger.info(
                "market index: listing %s of %s left out: %s", row.id.hex[:8], thread.id[:8], exc
            )
            continue
        docs.append(doc)
    return docs


def _shop_store(thread: Thread) -> None:
    with thread_context(thread.thread):
        shop = Shop.objects.order_by("id").first()
    name, link = (shop.name, shop.link) if shop is not None else (thread.name, "")
    index().shop_set(thread.id, name=name, link=link, served=thread.role in SERVED_ROLES)


def _whole(thread: Thread) -> int:
    mark = changes_since(thread_database(thread.thread), None).mark
    _shop_store(thread)
    changed = index().replace_shop(thread.id, listing_docs(thread))
    _marks[thread.thread] = (mark, time.monotonic())
    return changed


def index_shop(thread: Thread) -> int:
    """Bring the index up to date with one shop (the duty); how many listings changed."""
    if thread.app != SHOP_APP or thread.state != Thread.State.ACTIVE:
        _marks.pop(thread.thread, None)
        return index().remove_shop(thread.id)
    known = _marks.get(thread.thread)
    if known is None or time.monotonic() - known[1] > REREAD_S:
        return _whole(thread)
    changes = changes_since(thread_database(thread.thread), known[0])
    if changes.rows is None:
        return _whole(thread)
    listings = {str(pk) for table, pk in changes.rows if table == LISTING}
    if any(table == SHOP for table, _pk in changes.rows):
        _shop_store(thread)
    changed = index().upsert_many(listing_docs(thread, listings)) if listings else 0
    _marks[thread.thread] = (changes.mark, known[1])
    return changed


def refresh_stale(*, force: bool = False) -> None:
    """Wake the shops not read in this process yet or not for ``REREAD_S``; drop the shops this
    node is no longer in. Cheap (a query of the registry, at most every ``STALE_CHECK_S`` unless
    ``force``d): the reading happens on the worker."""
    index()  # a new data dir starts over
    now = time.monotonic()
    if not force and now - _checked[0] < STALE_CHECK_S:
        return
    _checked[0] = now
    shops = {
        thread.thread: thread
        for thread in Thread.objects.filter(app=SHOP_APP, state=Thread.State.ACTIVE)
    }
    for thread_id in shops:
        known = _marks.get(thread_id)
        if known is None or now - known[1] > REREAD_S:
            worker.wake(thread_id)
    gone = index().shops() - {thread.id for thread in shops.values()}
    for shop in gone:
        index().remove_shop(shop)
        _marks.pop(bytes.fromhex(shop), None)


def refresh_now() -> None:
    """Read every shop here whole, at once (tests, and a new index file)."""
    for thread in Thread.objects.filter(app=SHOP_APP):
        try:
            if thread.state == Thread.State.ACTIVE:
                _whole(thread)
            else:
                index_shop(thread)
        except Exception:
            logger.exception("market index: shop %s could not be read", thread.id[:8])
    refresh_stale(force=True)


# -- following the ops -----------------------------------------------------------------------------


def _is_shop(state: ThreadState) -> bool:
    return RULES_APP in state.apps


def _duty(thread: Thread) -> None:
    index_shop(thread)


worker = DutyWorker("market-index", _is_shop, _duty, settle_s=0.05)


def on_thread_added(sender: Any, thread: bytes, **kwargs: Any) -> None:
    worker.on_ops_written(sender, thread, alias="")


def connect() -> None:
    """Follow the shops' ops (from ``MarketConfig.ready``; connecting twice is once)."""
    from apps.core.threads.signals import ops_written, thread_added

    ops_written.connect(worker.on_ops_written, dispatch_uid="market-index-ops")
    thread_added.connect(on_thread_added, dispatch_uid="market-index-added")
