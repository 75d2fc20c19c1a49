"""The feed: the timelines this node follows (and its own) merged and ranked by the follower's
rules, computed here and nowhere else.

The index (``FeedEntry``) holds the ``HOT`` newest posts over all those timelines, and so every
post newer than its oldest entry (the horizon), each as last read: pages of this hot set open
no thread database. Older posts are read from the thread databases when someone pages that
far. The index and its upkeep are ``feed_index.py``; this module makes the named feeds' pages.

Pages (``before``, the cursor a page returns for the next one):

- "newest" feeds go by time: the cursor names the last post shown (``t<millis>:<key>``), so a
  post arriving meanwhile never repeats or hides one;
- "ranked" feeds rank the whole hot set and page through it by position (``r<offset>``; a post
  arriving between two pages can push one post onto the next page again). After the hot set,
  older posts come a page at a time, newest first, each page ranked in itself (``t<millis>``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q

from apps.core.models import Thread, ThreadMember
from apps.timeline import feed_index, ranking, recipes, selectors
from apps.timeline.feed_index import (
    READABLE,
    _dirty,
    _generation,
    _indexed,
    _millis,
    _mirror_views,
    _time,
    _view,
    index_thread,
)
from apps.timeline.feed_models import FeedConfig, FeedEntry
from apps.timeline.policy import APP
from apps.timeline.post import PostView

logger = logging.getLogger(__name__)

PAGE, MAX_LIMIT = 30, 100
PUBLISHING_ROLES = ("owner", "admin", "writer")  # writer: a co-author
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


def _bound(millis: int) -> str:
    """A ``selectors.posts`` cursor: posts written before ``millis`` (stamps start with it)."""
    return max(0, millis).to_bytes(8, "big").hex()


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
            if 0 <= offset <= 10 * feed_index.HOT:
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
        cached, _ = _mirror_views(_generation(), threads.ids)
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
        views, horizon = _mirror_views(key[1], threads.ids)
        memo = _weights_memo.setdefault(rules, {})
        if len(memo) > 4 * feed_index.HOT:
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
        if len(memo) > 4 * feed_index.HOT:  # older pages' posts would otherwise pile up
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
