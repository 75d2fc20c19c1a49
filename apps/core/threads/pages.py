"""Where each app's threads open, what is new in them and what waits for this member: Home lists
every thread without knowing the apps. Apps register in ``AppConfig.ready``; a thread of an app
with no page opens on its People page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from django.urls import reverse

from apps.core.models import Thread
from apps.core.thread.appspec import shaped

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Latest:
    """The newest thing in a thread, for its line on Home ("Sam: see you at 8")."""

    text: str
    at: datetime | None = None


@dataclass(frozen=True)
class ThreadPage:
    url_name: str  # takes the thread id
    unread: Callable[[Thread], int] | None = None
    label: str = ""  # the app's tab in a thread ("Conversation", "Checklist")
    # What waits for this member in the thread, each a few words ("2 items for you to do").
    waiting: Callable[[Thread], list[str]] | None = None
    latest: Callable[[Thread], Latest | None] | None = None
    # What each of the app's roles can do in it, in a person's words ("can post and react"):
    # the policy alone cannot say it, since an app's validators refine what a role's table
    # rights allow (a checklist writer "deletes any item" only where the validator lets it).
    roles: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Waiting:
    text: str
    url: str  # the app's page in the thread


@dataclass(frozen=True)
class Tab:
    app: str
    label: str
    url: str
    current: bool


@dataclass(frozen=True)
class ThreadLink:
    thread: Thread
    url: str
    unread: int
    apps: tuple[str, ...] = ()  # the labels of the thread's apps, its own first
    latest: Latest | None = None
    waiting: tuple[Waiting, ...] = ()


def app_label(app: str) -> str | None:
    """An app in words ("Conversation", "Checklist"); None for a plain thread's own app."""
    page = _pages.get(app)
    if page is not None and page.label:
        return page.label
    return None if app == "default" else app.replace("_", " ").capitalize()


def app_labels(thread: Thread) -> tuple[str, ...]:
    """What a thread holds, in words: its apps' labels, its own first (an app that is part of
    the thread's shape, such as a tally's ledger rules, is said by the shape's label)."""
    return tuple(
        label
        for app in thread.apps or [thread.app]
        if not shaped(app) and (label := app_label(app))
    )


_pages: dict[str, ThreadPage] = {}


def role_phrases(thread: Thread, role: str) -> list[str] | None:
    """What ``role`` can do in each of the thread's apps, in the apps' words; None when no app
    of the thread describes its roles (a plain thread: the policy is all there is to say)."""
    pages = [page for app in thread.apps or [thread.app] if (page := _pages.get(app))]
    if not any(page.roles for page in pages):
        return None
    return [phrase for page in pages if (phrase := page.roles.get(role))]


def register(app: str, page: ThreadPage) -> None:
    _pages[app] = page


T = TypeVar("T")


def _ask(hook: Callable[[Thread], T] | None, thread: Thread, default: T) -> T:
    """An app's answer about one of its threads; a damaged thread must not take Home down."""
    if hook is None or thread.state != Thread.State.ACTIVE:
        return default
    try:
        return hook(thread)
    except Exception:
        logger.exception("asking an app about thread %s failed", thread.id[:12])
        return default


def _link(thread: Thread, *, details: bool) -> ThreadLink:
    page = _pages.get(thread.app)
    url = reverse(page.url_name if page else "core:thread_people", args=[thread.id])
    unread = _ask(page and page.unread, thread, 0)
    if not details:
        return ThreadLink(thread, url, unread, app_labels(thread))
    waiting = []
    for app in thread.apps or [thread.app]:
        other = _pages.get(app)
        if other is not None and other.waiting is not None:
            app_url = reverse(other.url_name, args=[thread.id])
            waiting += [Waiting(text, app_url) for text in _ask(other.waiting, thread, [])]
    latest = _ask(page and page.latest, thread, None)
    return ThreadLink(thread, url, unread, app_labels(thread), latest, tuple(waiting))


def open_url(thread: Thread) -> str:
    """Where opening a thread goes: its app, or its People page while it has no app to show
    (no page, still joining, damaged, left)."""
    page = _pages.get(thread.app)
    if page is None or thread.state not in (Thread.State.ACTIVE, Thread.State.REMOVED):
        return reverse("core:thread_people", args=[thread.id])
    return reverse(page.url_name, args=[thread.id])


def links(threads: Iterable[Thread]) -> list[ThreadLink]:
    return [_link(thread, details=False) for thread in threads]


def activity(threads: Iterable[Thread]) -> list[ThreadLink]:
    """The threads as Home lists them: those with unread items first, then those where
    something else waits for this member, then the rest; the newest activity first in each."""
    found = [_link(thread, details=True) for thread in threads]

    def newest(link: ThreadLink) -> float:
        at = link.latest.at if link.latest else None
        return -(at or link.thread.created_at).timestamp()

    return sorted(found, key=lambda link: (not link.unread, not link.waiting, newest(link)))


SETTINGS_TAB = "thread"  # the core's own page of a thread: people, invites, roles, apps


def tabs(thread: Thread, current: str) -> list[Tab]:
    """The tabs of a thread's pages: each enabled app that has a page here, in the order the
    thread enabled them, then the thread's People (members, invites, roles, apps)."""
    from apps.core.threads.registry import thread_database

    try:
        enabled = list(thread_database(thread.thread).replica().control.state.apps)
    except Exception:  # a damaged thread still shows its settings page
        logger.exception("reading the apps of thread %s failed", thread.id[:12])
        enabled = [thread.app]
    found = []
    for app in enabled:
        page = _pages.get(app)
        if page is not None:
            url = reverse(page.url_name, args=[thread.id])
            found.append(Tab(app, page.label or app.capitalize(), url, app == current))
    url = reverse("core:thread_people", args=[thread.id])
    found.append(Tab(SETTINGS_TAB, "People", url, current == SETTINGS_TAB))
    return found
