"""The feed: the timelines this node follows (and its own) merged and ranked by the follower's
rules, computed here and nowhere else.

The index (``FeedEntry``) holds the ``HOT`` newest posts over all those timelines, and so every
post newer than its oldest entry (the horizon), each as last read: pages of this hot set open
no thread database. Older posts are read from the thread databases when someone pages that
far. A worker fed by ``ops_written`` keeps it filled and fresh (``feed_signals.py``); a
timeline left is dropped from it.

Pages (``before``, the cursor a page returns for the next one):

- "newest" feeds go by time: the cursor names the last post shown (``t<millis>:<key>``), so a
  post arriving meanwhile never repeats or hides one;
- "ranked" feeds rank the whole hot set and page through it by position (``r<offset>``; a post
  arriving between two pages can push one post onto the next page again). After the hot set,
  older posts come a page at a time, newest first, each page ranked in itself (``t<millis>``).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Q

from apps.core.models import Thread, ThreadMember
from apps.core.threads.changes import Mark, changes_since
from apps.core.threads.registry import thread_database
from apps.timeline import ranking, recipes, selectors
from apps.timeline.feed_models import FeedConfig, FeedEntry
from apps.timeline.policy import APP, POST
from apps.timeline.post import PostView

logger = logging.getLogger(__name__)

HOT = 500
FEED_GROUP = "timeline-feed"
PAGE, MAX_LIMIT = 30, 100
PUBLISHING_ROLES = ("owner", "admin", "writer")  # writer: a co-author
READABLE = (Thread.State.ACTIVE, Thread.State.REMOVED)  # a banned follower keeps what it had
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_AFTER_ALL = "~"  # sorts after every "<thread hex>/<post hex>" key
_SLACK = 8  # extra rows per timeline read, for posts sharing a millisecond
_ROUNDS = 20  # windows read for one page before it is returned short


class FeedError(ValueError):
    """A feed request refused; ``code`` is "not_found" or "invalid", the message plain words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FeedPage:
    posts: list[PostView]
    before: str | None  # pass back for the next page; None: there is nothing older
    names: dict[str, str] = field(default_factory=dict)  # thread id -> the timeline's name


# -- the index -----------------------------------------------------------------------------------


def _millis(when: datetime) -> int:
    return (when - _EPOCH) // _MS


def _time(millis: int) -> datetime:
    return _EPOCH + millis * _MS


def _bound(millis: int) -> str:
    """A ``selectors.posts`` cursor: posts written before ``millis`` (stamps start with it)."""
    return max(0, millis).to_bytes(8, "big").hex()


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


def _mirror_views(generation: int, threads: _Threads) -> tuple[list[PostView], int | None]:
    """The hot set's posts of these timelines, and its horizon."""
    with _mirror_lock:
        if _mirror_at[0] != generation:
            entries = list(FeedEntry.objects.values_list("thread", "post", "view"))
            _mirror.clear()
            _mirror.update({(e[0], e[1]): v for e in entries if (v := _view(e[2])) is not None})
            _mirror_at[0] = generation
        wanted = set(threads.ids)
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


# -- named feeds ---------------------------------------------------------------------------------


def feeds() -> tuple[ranking.FeedRules, ...]:
    """This node's named feeds: the saved ones, or the defaults."""
    row = FeedConfig.objects.order_by("pk").first()
    if row is None or not row.feeds:
        return ranking.DEFAULT_FEEDS
    try:
        return recipes.feeds_from_data(row.feeds)
    except ranking.RulesError:
        logger.warning("timeline feed: the saved feeds are unreadable; the defaults apply")
        return ranking.DEFAULT_FEEDS


def feeds_save(saved: Iterable[ranking.FeedRules]) -> tuple[ranking.FeedRules, ...]:
    """Replace the named feeds (checked as a whole: 1 to 20, names apart)."""
    data = recipes.feeds_to_data(saved)
    checked = recipes.feeds_from_data(data)
    FeedConfig.objects.update_or_create(pk=1, defaults={"feeds": data})
    return checked


def feed_rules(name: str) -> ranking.FeedRules:
    wanted = (name or "").strip().casefold()
    for rules in feeds():
        if rules.name.casefold() == wanted:
            return rules
    shown = (name or "").strip()[:60]
    raise FeedError("not_found", f'There is no feed called "{shown}".')


# -- pages ---------------------------------------------------------------------------------------

Position = tuple[int, str, str]  # (millis, thread, post): newest first, then by key
_MAX_MILLIS = 253402300799999  # the last millisecond of 9999, the last a datetime holds
_START: Position = (_MAX_MILLIS, "", "")


def _position(post: PostView) -> Position:
    return (_millis(post.created_at), post.thread, post.id)


def _later(post: PostView, pos: Position) -> bool:
    millis, thread, post_id = _position(post)  # after pos: older, or as old with a larger key
    return millis < pos[0] or (millis == pos[0] and (thread, post_id) > (pos[1], pos[2]))


def _cursor_parse(before: str | None) -> tuple[str, Any]:
    if not before:
        return "start", None
    try:
        if before.startswith("r"):
            offset = int(before[1:])
            if 0 <= offset <= 10 * HOT:
                return "rank", offset
        elif before.startswith("t"):
            millis, _, key = before[1:].partition(":")
            thread, _, post = key.partition("/") if key else (_AFTER_ALL, "", "")
            if 0 <= int(millis) <= _MAX_MILLIS:
                return "time", (int(millis), thread, post)
    except ValueError:
        pass
    raise FeedError("invalid", "This page link is not valid; start again from the newest posts.")


def _time_cursor(pos: Position) -> str:
    return f"t{pos[0]}" if pos[1] == _AFTER_ALL else f"t{pos[0]}:{pos[1]}/{pos[2]}"


class _Threads(dict[str, Thread]):
    """A feed's timelines by id. Their registry rows are read only when a page needs one (a
    post the index cannot give, a page past the index): most pages never do."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__()
        self.ids = ids

    def __missing__(self, key: str) -> Thread:
        if key in self.ids:
            self._load()
            if dict.__contains__(self, key):
                return dict.__getitem__(self, key)
        raise KeyError(key)

    def every(self) -> list[Thread]:
        self._load()
        return [self[i] for i in self.ids if i in self]  # one removed meanwhile is left out

    def _load(self) -> None:
        if len(self) < len(self.ids):
            self.update({t.id: t for t in Thread.objects.filter(pk__in=self.ids)})


def _sources(rules: ranking.FeedRules) -> tuple[_Threads, dict[str, str], set[str]]:
    """The feed's timelines, their names, and every timeline this node has (not left)."""
    rows = Thread.objects.filter(app=APP).exclude(state=Thread.State.LEFT)
    found = list(rows.values_list("id", "name", "state"))
    readable = [(i, n) for i, n, state in found if state in READABLE]
    if rules.timelines:
        readable = [(i, n) for i, n in readable if i in rules.timelines]
    readable.sort(key=lambda item: (item[1], item[0]))
    return _Threads([i for i, _ in readable]), dict(readable), {i for i, _, _ in found}


def _ensure_indexed(threads: _Threads) -> None:
    """Timelines this process has not seen indexed (say, followed before an upgrade)."""
    ids = [i for i in threads.ids if i not in _indexed]
    if not ids:
        return
    indexed = set(FeedEntry.objects.filter(thread__in=ids).values_list("thread", flat=True))
    for thread_id in ids:
        if thread_id not in indexed:
            index_thread(threads[thread_id])
        _indexed.add(thread_id)


def _publishers(thread_ids: set[str]) -> set[str]:
    """Everyone who posts in these timelines (owners, admins, co-authors), and me: from this
    node's index of their members (rewritten whenever a thread's members change)."""
    found = set(Thread.objects.filter(pk__in=thread_ids).values_list("member_id", flat=True))
    found.update(
        ThreadMember.objects.filter(
            thread__in=list(thread_ids), role__in=PUBLISHING_ROLES
        ).values_list("member_id", flat=True)
    )
    return found


def _read(thread: Thread, **kwargs: Any) -> list[PostView]:
    try:
        return selectors.posts(thread, **kwargs)
    except Exception:  # one damaged timeline must not take the whole feed down
        logger.exception("timeline feed: a timeline's posts could not be read")
        return []


Hot = tuple[str, str, Any]  # an index entry's (thread, post, view)


def _hot_views(threads: _Threads, entries: list[Hot]) -> list[PostView]:
    """The posts of index entries as last read; one the entry cannot give is read again."""
    views = []
    for thread_id, post_id, data in entries:
        view = _view(data)
        if view is None:
            view = selectors.post(threads[thread_id], post_id)
        if view is not None:
            views.append(view)
    return views


def _with_fresh(threads: _Threads, views: list[PostView], size: int) -> list[PostView]:
    """The newest page, with what the index has not taken yet: a timeline with ops the worker
    has not indexed (``_dirty``) is read straight from its database, its posts replacing their
    entries. So a post shows as soon as it is applied, not after the index update."""
    fresh = [i for i in threads.ids if i in _dirty]
    if not fresh:
        return views
    found = {(v.thread, v.id): v for v in views}
    for thread_id in fresh:
        for view in _read(threads[thread_id], limit=size):
            found[(view.thread, view.id)] = view
    return list(found.values())


def _window(threads: _Threads, pos: Position, size: int) -> list[PostView]:
    """The next ``size`` posts after ``pos`` over the timelines, newest first: from the index
    while it reaches, then from the thread databases below its horizon."""
    if pos == _START:
        # The newest page: the hot set in memory (``_mirror``), sorted, no rows read.
        cached, _ = _mirror_views(_generation(), threads)
        if cached:
            views = _with_fresh(threads, sorted(cached, key=_newest)[:size], size)
            return sorted(views, key=_newest)[:size]
    at = _time(pos[0])
    older = (
        Q(created_at__lt=at)
        | Q(created_at=at, thread__gt=pos[1])
        | Q(created_at=at, thread=pos[1], post__gt=pos[2])
    )
    hot = list(
        FeedEntry.objects.filter(older, thread__in=threads.ids)
        .order_by("-created_at", "thread", "post")
        .values_list("thread", "post", "view")[:size]
    )
    if hot:
        views = _hot_views(threads, hot)
    else:
        oldest = FeedEntry.objects.order_by("created_at").values_list("created_at", flat=True)
        below = min([pos[0], *(_millis(t) - 1 for t in oldest[:1])]) + 1  # under the horizon
        views = []
        for thread in threads.every():
            read = _read(thread, before=_bound(below), limit=size + _SLACK)
            views.extend(v for v in read if _later(v, pos))
    views.sort(key=_newest)
    return views[:size]


def _newest(post: PostView) -> tuple[int, str, str]:
    return (-_millis(post.created_at), post.thread, post.id)


# Ranked hot sets by what they depend on: ranking the whole hot set is most of a ranked page's
# cost, and the order stays right until the index changes (the generation says so). Recency
# moves every post's score alike, so time changes the order only for posts dated in the future
# (their age counts as zero): a ranked set is kept for a minute at most.
_ranked: dict[tuple[Any, ...], tuple[list[PostView], int | None]] = {}
_RANKED_KEPT = 8
_ranked_lock = threading.Lock()
_weights_memo: dict[ranking.FeedRules, dict[Any, float | None]] = {}


def _ranked_hot(
    rules: ranking.FeedRules,
    threads: _Threads,
    followed: set[str],
    authors: set[str],
    now: datetime,
) -> tuple[list[PostView], int | None]:
    """The hot set ranked, and the horizon (None: the index holds none of these timelines)."""
    key = (
        rules,
        _generation(),
        tuple(threads.ids),
        frozenset(followed),
        frozenset(authors),
        int(now.timestamp()) // 60,
    )
    found = _ranked.get(key)
    if found is None:
        views, horizon = _mirror_views(key[1], threads)
        memo = _weights_memo.setdefault(rules, {})
        if len(memo) > 4 * HOT:
            memo.clear()
        found = (ranking.rank(rules, views, now, authors, followed, memo), horizon)
        with _ranked_lock:
            _ranked[key] = found
            while len(_ranked) > _RANKED_KEPT:
                _ranked.pop(next(iter(_ranked)))
            while len(_weights_memo) > _RANKED_KEPT:
                _weights_memo.pop(next(iter(_weights_memo)))
    return found


def feed_page(
    name: str, *, before: str | None = None, limit: int = PAGE, now: datetime | None = None
) -> FeedPage:
    """A page of the named feed, best (or newest) first; see the module's note on ``before``."""
    rules = feed_rules(name)
    kind, at = _cursor_parse(before)
    limit = max(1, min(int(limit), MAX_LIMIT))
    now = now or datetime.now(UTC)
    threads, names, followed = _sources(rules)
    if not threads.ids:
        return FeedPage([], None, names)
    _ensure_indexed(threads)
    # Who posts where matters only to the rule hiding replies to strangers: read it only then.
    authors = _publishers(followed) if rules.hide_replies_to_unfollowed else set()

    def ranked(views: list[PostView]) -> list[PostView]:
        memo = _weights_memo.setdefault(rules, {})
        if len(memo) > 4 * HOT:  # older pages' posts would otherwise pile up
            memo.clear()
        return ranking.rank(rules, views, now, authors, followed, memo)

    if rules.order == ranking.RANKED and kind in ("start", "rank"):
        offset = at or 0
        everything, horizon = _ranked_hot(rules, threads, followed, authors, now)
        if horizon is not None:
            shown = everything[offset : offset + limit]
            if offset + limit < len(everything):
                return FeedPage(shown, f"r{offset + limit}", names)
            return FeedPage(shown, _time_cursor((horizon, _AFTER_ALL, "")), names)
        kind, at = "time", _START
    pos: Position = at if kind == "time" else _START
    shown: list[PostView] = []
    for _ in range(_ROUNDS):
        window = _window(threads, pos, limit)
        if not window:
            return FeedPage(shown, None, names)
        visible = ranked(window)
        if rules.order == ranking.RANKED:
            pos = _position(window[-1])
            if visible:  # one window a page, ranked in itself
                return FeedPage(visible, _time_cursor(pos), names)
            continue
        for post in visible:
            shown.append(post)
            if len(shown) == limit:
                return FeedPage(shown, _time_cursor(_position(post)), names)
        pos = _position(window[-1])
    return FeedPage(shown, _time_cursor(pos), names)
