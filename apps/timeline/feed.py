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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q

from apps.core.models import Thread, ThreadMember
from apps.timeline import ranking, recipes, selectors
from apps.timeline.feed_models import FeedConfig, FeedEntry
from apps.timeline.policy import APP
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
        index_forget(thread.id)
        return 0
    # Its entries are its newest posts (the index holds everything above the horizon).
    known = set(FeedEntry.objects.filter(thread=thread.id).values_list("post", flat=True))
    size = HOT if full else len(known) + 16
    while True:
        views = selectors.posts(thread, limit=min(size, HOT))
        # Not full: read deeper while the new posts hide some known ones (a burst of posts).
        if full or size >= HOT or len(views) < size or known <= {v.id for v in views}:
            break
        size *= 4
    rows = [
        FeedEntry(
            thread=thread.id, post=v.id, created_at=v.created_at, author=v.author, view=_data(v)
        )
        for v in views
    ]
    with transaction.atomic():
        FeedEntry.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["thread", "post"], update_fields=["view"]
        )
        _trim()
    return len(rows)


def _trim() -> None:
    # Entries as old as the cutoff stay: the horizon never falls inside one millisecond.
    newest = FeedEntry.objects.order_by("-created_at").values_list("created_at", flat=True)
    cutoff = list(newest[HOT - 1 : HOT])
    if cutoff:
        FeedEntry.objects.filter(created_at__lt=cutoff[0]).delete()


def index_forget(thread_id: str) -> int:
    """Empty a timeline's entries (it was left). Returns how many went."""
    if not FeedEntry.objects.filter(thread=thread_id).exists():
        return 0  # reads only: a write would wait for any open transaction
    return FeedEntry.objects.filter(thread=thread_id).delete()[0]


def _forget_left() -> None:
    followed = {t.id for t in selectors.timelines()}
    indexed = set(FeedEntry.objects.values_list("thread", flat=True).distinct())
    for thread_id in indexed - followed:
        index_forget(thread_id)


# -- keeping it up to date (``feed_signals`` runs this off the writers' threads) ------------------

_indexed: set[str] = set()  # timelines indexed by this process (or found in the index)


def index_batch(batch: dict[bytes, bool]) -> None:
    """Index these threads (-> a full refill wanted), drop the timelines left, tell pages."""
    rows = {t.id: t for t in Thread.objects.filter(pk__in=[t.hex() for t in batch])}
    for thread_id, full in batch.items():
        thread = rows.get(thread_id.hex())
        if thread is None:
            continue
        try:
            index_thread(thread, full=full)
            _indexed.add(thread.id)
        except Exception:
            logger.exception("timeline feed: one timeline could not be indexed")
    _forget_left()
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


def _sources(rules: ranking.FeedRules) -> list[Thread]:
    found = [t for t in selectors.timelines() if t.state in READABLE]
    if rules.timelines:
        found = [t for t in found if t.id in rules.timelines]
    return found


def _ensure_indexed(sources: list[Thread]) -> None:
    """Timelines this process has not seen indexed (say, followed before an upgrade)."""
    unseen = [t for t in sources if t.id not in _indexed]
    ids = [t.id for t in unseen]
    indexed = set(FeedEntry.objects.filter(thread__in=ids).values_list("thread", flat=True))
    for thread in unseen:
        if thread.id not in indexed:
            index_thread(thread)
        _indexed.add(thread.id)


def _publishers(threads: list[Thread]) -> set[str]:
    """Everyone who posts in these timelines (owners, admins, co-authors), and me: from this
    node's index of their members (rewritten whenever a thread's members change)."""
    found = {t.member_id for t in threads}
    found.update(
        ThreadMember.objects.filter(
            thread__in=[t.id for t in threads], role__in=PUBLISHING_ROLES
        ).values_list("member_id", flat=True)
    )
    return found


def _read(thread: Thread, **kwargs: Any) -> list[PostView]:
    try:
        return selectors.posts(thread, **kwargs)
    except Exception:  # one damaged timeline must not take the whole feed down
        logger.exception("timeline feed: a timeline's posts could not be read")
        return []


def _hot_views(threads: dict[str, Thread], entries: list[FeedEntry]) -> list[PostView]:
    """The posts of index entries as last read; one the entry cannot give is read again."""
    views = []
    for entry in entries:
        view = _view(entry.view)
        if view is None:
            view = selectors.post(threads[entry.thread], entry.post)
        if view is not None:
            views.append(view)
    return views


def _window(threads: dict[str, Thread], pos: Position, size: int) -> list[PostView]:
    """The next ``size`` posts after ``pos`` over the timelines, newest first: from the index
    while it reaches, then from the thread databases below its horizon."""
    at = _time(pos[0])
    older = (
        Q(created_at__lt=at)
        | Q(created_at=at, thread__gt=pos[1])
        | Q(created_at=at, thread=pos[1], post__gt=pos[2])
    )
    hot = list(
        FeedEntry.objects.filter(older, thread__in=list(threads)).order_by(
            "-created_at", "thread", "post"
        )[:size]
    )
    if hot:
        views = _hot_views(threads, hot)
    else:
        oldest = FeedEntry.objects.order_by("created_at").values_list("created_at", flat=True)
        below = min([pos[0], *(_millis(t) - 1 for t in oldest[:1])]) + 1  # under the horizon
        views = []
        for thread in threads.values():
            read = _read(thread, before=_bound(below), limit=size + _SLACK)
            views.extend(v for v in read if _later(v, pos))
    views.sort(key=lambda p: (-_millis(p.created_at), p.thread, p.id))
    return views[:size]


def feed_page(
    name: str, *, before: str | None = None, limit: int = PAGE, now: datetime | None = None
) -> FeedPage:
    """A page of the named feed, best (or newest) first; see the module's note on ``before``."""
    rules = feed_rules(name)
    kind, at = _cursor_parse(before)
    limit = max(1, min(int(limit), MAX_LIMIT))
    now = now or datetime.now(UTC)
    sources = _sources(rules)
    threads = {t.id: t for t in sources}
    names = {t.id: t.name for t in sources}
    if not sources:
        return FeedPage([], None, names)
    _ensure_indexed(sources)
    followed = selectors.timelines()
    authors = _publishers(followed)
    followed_ids = {t.id for t in followed}

    def ranked(views: list[PostView]) -> list[PostView]:
        return ranking.rank(rules, views, now, authors, followed_ids)

    if rules.order == ranking.RANKED and kind in ("start", "rank"):
        offset = at or 0
        entries = list(FeedEntry.objects.filter(thread__in=list(threads)))
        if entries:
            everything = ranked(_hot_views(threads, entries))
            shown = everything[offset : offset + limit]
            if offset + limit < len(everything):
                return FeedPage(shown, f"r{offset + limit}", names)
            horizon = min(_millis(e.created_at) for e in entries)
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
