"""The feed index: the ``HOT`` newest posts over every timeline this node follows (and its own),
each as last read, so that pages of this hot set open no thread database (``feed.py`` makes the
pages). A worker fed by ``ops_written`` keeps it filled and fresh (``feed_signals.py`` calls
``index_batch``); a timeline left is dropped from it. Each process also holds the hot set as
objects (the mirror), and notes the timelines with ops the index has not taken yet (``_dirty``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F

from apps.core.models import Thread
from apps.core.threads.changes import Mark, changes_since
from apps.core.threads.registry import thread_database
from apps.timeline import selectors
from apps.timeline.feed_models import FeedConfig, FeedEntry
from apps.timeline.policy import APP, POST
from apps.timeline.post import PostView

logger = logging.getLogger(__name__)

HOT = 500
FEED_GROUP = "timeline-feed"
READABLE = (Thread.State.ACTIVE, Thread.State.REMOVED)  # a banned follower keeps what it had
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def _millis(when: datetime) -> int:
    return (when - _EPOCH) // _MS


def _time(millis: int) -> datetime:
    return _EPOCH + millis * _MS


def _data(view: PostView) -> dict[str, Any]:
    data = dataclasses.asdict(view)
    for name in ("created_at", "edited_at"):
        data[name] = data[name].isoformat() if data[name] is not None else None
    return data


def _view(data: Any) -> PostView | None:
    try:  # None: the entry holds no post this code can read
        edited = data["edited_at"]
        return PostView(
            **{
                **data,
                "created_at": datetime.fromisoformat(data["created_at"]),
                "edited_at": datetime.fromisoformat(edited) if edited else None,
                "tags": tuple(data["tags"]),
            }
        )
    except (KeyError, TypeError, ValueError):
        return None


def index_thread(thread: Thread, *, full: bool = True) -> int:
    """Read the timeline's newest posts into the index again (edits, replies and reactions
    change them) with any new ones (``full``: its ``HOT`` newest), then keep the ``HOT``
    newest over all. A timeline left is forgotten instead. Returns how many were read."""
    if thread.app != APP or thread.state not in READABLE:
        _marks.pop(thread.id, None)
        index_forget(thread.id)
        return 0
    # Where its log stands before the reading: whatever comes later is read by the next update.
    mark = changes_since(thread_database(thread.thread), None).mark
    # Its entries are its newest posts (the index holds everything above the horizon).
    known = set(FeedEntry.objects.filter(thread=thread.id).values_list("post", flat=True))
    size = HOT if full else len(known) + 16
    while True:
        views = selectors.posts(thread, limit=min(size, HOT))
        # Not full: read deeper while the new posts hide some known ones (a burst of posts).
        if full or size >= HOT or len(views) < size or known <= {v.id for v in views}:
            break
        size *= 4
    _store(views)
    _marks[thread.id] = (mark, time.monotonic())
    return len(views)


def index_update(thread: Thread) -> int:
    """After new ops: read again only the posts they changed (a post, or one whose replies,
    reactions or files they changed). Everything known is read again instead when that cannot
    be told (``changes_since``), or when this timeline was last read whole ``REREAD_S`` ago.
    Returns how many posts were read."""
    known = _marks.get(thread.id)
    if (
        known is None
        or thread.app != APP
        or thread.state not in READABLE
        or time.monotonic() - known[1] > REREAD_S
    ):
        return index_thread(thread, full=False)
    changes = changes_since(thread_database(thread.thread), known[0])
    if changes.rows is None:
        return index_thread(thread, full=False)
    touched: dict[str, list[str]] = {}
    for table, pk in changes.rows:
        touched.setdefault(table, []).append(str(pk))
    posts = set(touched.pop(POST, []))
    for table, ids in touched.items():
        if not table.startswith("timeline_"):
            continue
        found, complete = selectors.targets_posts(thread, table, ids)
        if not complete:  # a removed reaction or file: what it was on is not known any more
            return index_thread(thread, full=False)
        posts |= found
    views = selectors.posts_by_ids(thread, sorted(posts))
    if views:
        _store(views)
    _marks[thread.id] = (changes.mark, known[1])
    return len(views)


def _store(views: list[PostView]) -> None:
    rows = [
        FeedEntry(
            thread=v.thread, post=v.id, created_at=v.created_at, author=v.author, view=_data(v)
        )
        for v in views
    ]
    with transaction.atomic():
        FeedEntry.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["thread", "post"], update_fields=["view"]
        )
        cutoff = _trim()
        generation = _changed()
    _mirror_update(generation, views, cutoff=cutoff)


def _changed() -> int:
    """The index changed: pages ranked from it before are stale (in any process). Returns the
    new generation."""
    table = FeedConfig._meta.db_table
    with connection.cursor() as cursor:
        # One statement (SQLite and PostgreSQL both return the row updated).
        cursor.execute(
            f"UPDATE {table} SET generation = generation + 1 WHERE id = 1 RETURNING generation"  # noqa: S608 - the model's own table
        )
        found = cursor.fetchone()
    if found is not None:
        return int(found[0])
    FeedConfig.objects.get_or_create(pk=1)
    FeedConfig.objects.filter(pk=1).update(generation=F("generation") + 1)
    return _generation()


def _generation() -> int:
    found = FeedConfig.objects.filter(pk=1).values_list("generation", flat=True).first()
    return found or 0


def _trim() -> datetime | None:
    """Keep the ``HOT`` newest; returns the time under which entries went, if any did."""
    # Entries as old as the cutoff stay: the horizon never falls inside one millisecond.
    newest = FeedEntry.objects.order_by("-created_at").values_list("created_at", flat=True)
    cutoff = list(newest[HOT - 1 : HOT])
    if cutoff:
        FeedEntry.objects.filter(created_at__lt=cutoff[0]).delete()
        return cutoff[0]
    return None


# -- the index in memory -------------------------------------------------------------------------
# The hot set's posts as objects, at one generation of the index: ranking a changed hot set then
# costs no reading and decoding of it. This process's own index writes keep it current; a write
# by another process (its generation is not the one this followed) makes it read again.

_mirror: dict[tuple[str, str], PostView] = {}
_mirror_at: list[int | None] = [None]  # the generation it holds (None: nothing yet)
_mirror_lock = threading.Lock()


def _mirror_update(
    generation: int,
    views: Iterable[PostView] = (),
    *,
    cutoff: datetime | None = None,
    forget: str | None = None,
) -> None:
    with _mirror_lock:
        if _mirror_at[0] != generation - 1:
            _mirror_at[0] = None  # it missed a change: read again when next needed
            return
        for view in views:
            _mirror[(view.thread, view.id)] = view
        for key, view in list(_mirror.items()):
            if (cutoff is not None and view.created_at < cutoff) or key[0] == forget:
                del _mirror[key]
        _mirror_at[0] = generation


def _mirror_views(generation: int, ids: Iterable[str]) -> tuple[list[PostView], int | None]:
    """The hot set's posts of these timelines, and its horizon."""
    with _mirror_lock:
        if _mirror_at[0] != generation:
            entries = list(FeedEntry.objects.values_list("thread", "post", "view"))
            _mirror.clear()
            _mirror.update({(e[0], e[1]): v for e in entries if (v := _view(e[2])) is not None})
            _mirror_at[0] = generation
        wanted = set(ids)
        views = [v for key, v in _mirror.items() if key[0] in wanted]
    horizon = min((_millis(v.created_at) for v in views), default=None)
    return views, horizon


def index_forget(thread_id: str) -> int:
    """Empty a timeline's entries (it was left). Returns how many went."""
    if not FeedEntry.objects.filter(thread=thread_id).exists():
        return 0  # reads only: a write would wait for any open transaction
    with transaction.atomic():
        gone = FeedEntry.objects.filter(thread=thread_id).delete()[0]
        generation = _changed()
    _mirror_update(generation, forget=thread_id)
    return gone


def _forget_left() -> None:
    followed = set(
        Thread.objects.filter(app=APP).exclude(state=Thread.State.LEFT).values_list("id", flat=True)
    )
    indexed = set(FeedEntry.objects.values_list("thread", flat=True).distinct())
    for thread_id in indexed - followed:
        index_forget(thread_id)


# -- keeping it up to date (``feed_signals`` runs this off the writers' threads) ------------------

_indexed: set[str] = set()  # timelines indexed by this process (or found in the index)
# Timeline -> when this process last saw ops written to it that the index has not taken yet
# (``feed_signals`` marks, ``index_batch`` clears): pages read those timelines directly.
_dirty: dict[str, float] = {}


def mark_dirty(thread: bytes) -> None:
    _dirty[thread.hex()] = time.monotonic()


# Timeline -> where its log stood when the index last read it, and when it last read it whole.
_marks: dict[str, tuple[Mark, float]] = {}
REREAD_S = 30.0  # now and then read whole again: a fork or a rebuild shows in no new op
# Timelines left are dropped from the index when one is joined, and every FORGET_S at most
# otherwise (after each op it would cost more than indexing the op does).
FORGET_S = 5.0
_forgot_at = [0.0]


def index_batch(batch: dict[bytes, bool]) -> None:
    """Index these threads (-> a full refill wanted), drop the timelines left, tell pages."""
    started = time.monotonic()
    rows = {t.id: t for t in Thread.objects.filter(pk__in=[t.hex() for t in batch])}
    for thread_id, full in batch.items():
        thread = rows.get(thread_id.hex())
        if thread is None:
            continue
        try:
            if full:
                index_thread(thread)
            else:
                index_update(thread)
            _indexed.add(thread.id)
            if _dirty.get(thread.id, started) < started:  # nothing newer came meanwhile
                _dirty.pop(thread.id, None)
        except Exception:
            logger.exception("timeline feed: one timeline could not be indexed")
    if any(batch.values()) or time.monotonic() - _forgot_at[0] > FORGET_S:
        _forget_left()
        _forgot_at[0] = time.monotonic()
    _tell()


def index_now(thread: Thread) -> None:
    """What the worker does for a timeline (a full refill), done now in this thread."""
    index_batch({thread.thread: True})


def _tell() -> None:
    """Open feed pages: something changed."""
    from channels.layers import get_channel_layer
    from django.conf import settings

    from apps.p2p import client

    if client.home_loop is None and not settings.SEREUS.scale_out:
        return  # no web server in this process and no shared layer: no page to tell
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        # The p2p client's sender: the in-memory layer may only be used from its own loop.
        client._group_send(layer, FEED_GROUP, {"type": "feed.changed"})
    except Exception:
        logger.warning("timeline feed: open pages could not be told", exc_info=True)
