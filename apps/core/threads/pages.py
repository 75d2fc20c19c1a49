"""Where each app's threads open, and how many unread items they hold: the dashboard lists every
thread without knowing the apps. Apps register in ``AppConfig.ready``; a thread of an app with
no page opens on the thread page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.urls import reverse

from apps.core.models import Thread

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ThreadPage:
    url_name: str  # takes the thread id
    unread: Callable[[Thread], int] | None = None
    label: str = ""  # the app's tab in a thread ("Conversation", "Checklist")


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


def app_label(app: str) -> str | None:
    """An app in words ("Conversation", "Checklist"); None for a plain thread's own app."""
    page = _pages.get(app)
    if page is not None and page.label:
        return page.label
    return None if app == "default" else app.replace("_", " ").capitalize()


def app_labels(thread: Thread) -> tuple[str, ...]:
    """What a thread holds, in words: its apps' labels, its own first."""
    return tuple(label for app in thread.apps or [thread.app] if (label := app_label(app)))


_pages: dict[str, ThreadPage] = {}


def register(app: str, page: ThreadPage) -> None:
    _pages[app] = page


def links(threads: Iterable[Thread]) -> list[ThreadLink]:
    found = []
    for thread in threads:
        page = _pages.get(thread.app)
        url_name = page.url_name if page else "core:thread"
        unread = 0
        if page and page.unread and thread.state == Thread.State.ACTIVE:
            try:
                unread = page.unread(thread)
            except Exception:  # one damaged thread must not take the dashboard down
                logger.exception("counting unread items of thread %s failed", thread.id[:12])
        url = reverse(url_name, args=[thread.id])
        found.append(ThreadLink(thread, url, unread, app_labels(thread)))
    return found


SETTINGS_TAB = "thread"  # the core's own page of a thread: people, invites, devices


def tabs(thread: Thread, current: str) -> list[Tab]:
    """The tabs of a thread's pages: each enabled app that has a page here, in the order the
    thread enabled them, then the thread's people and settings."""
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
    url = reverse("core:thread", args=[thread.id])
    found.append(Tab(SETTINGS_TAB, "People and settings", url, current == SETTINGS_TAB))
    return found
