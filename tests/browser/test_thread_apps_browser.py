"""Adding an app to a thread and turning it off from the thread page, in a real browser
(Debian's Chromium through Playwright) at a phone's width and a desktop's: the page says what
the thread holds in words, the owner adds an app with one button and turns it off again.
Screenshots are saved under /tmp/sereus-thread-apps/ to be looked at."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from apps.core.thread import appspec
from apps.core.thread.appspec import AppSpec
from apps.core.threads.registry import thread_database
from tests.browser.test_open_invite_browser import thread_page
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.browser.test_undelivered_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
    _looks_right,
    chromium,
    django_beside_playwright,
    session_cookie,
)
from tests.core.threads.conftest import node, thread, thread_databases_allowed  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    NEEDS_CHROMIUM,
]

SHOTS = Path(tempfile.gettempdir()) / "sereus-thread-apps"
NOTES = AppSpec(
    app="notes",
    tables=frozenset({"notes_page"}),
    rules={"owner": {"notes_page": {"insert": "any", "update": "any"}}},
)


@pytest.fixture
def notes_app(monkeypatch):
    monkeypatch.setattr(appspec._SPECS, "_factories", dict(appspec._SPECS._factories))
    appspec.thread_app_register("notes", lambda: NOTES)


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_the_owner_adds_an_app_and_turns_it_off(
    chromium,  # noqa: F811
    live_server,
    thread,  # noqa: F811
    session_cookie,  # noqa: F811
    notes_app,
    size: str,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    viewport = PHONE if size == "phone" else DESKTOP
    context, page, errors = thread_page(chromium, live_server, session_cookie, thread.id, viewport)
    apps = page.get_by_role("region", name="Apps")
    if not apps.count():  # a section is a region only with a name: find it by its heading
        apps = page.locator("section", has=page.get_by_role("heading", name="Apps"))
    assert "Plain thread" in apps.inner_text()
    _looks_right(page, errors, viewport["width"])
    with page.expect_navigation():
        apps.get_by_role("button", name="Add Notes").click()
    page.get_by_text("Notes added to this thread.").wait_for()
    assert list(thread_database(thread.thread).replica().control.state.apps) == [
        "default",
        "notes",
    ]
    page.screenshot(path=str(SHOTS / f"added-{size}.png"), full_page=True)
    _looks_right(page, errors, viewport["width"])
    with page.expect_navigation():
        page.get_by_role("button", name="Turn off Notes").click()
    page.get_by_text("Notes turned off in this thread.").wait_for()
    assert page.get_by_role("button", name="Add Notes").is_visible()
    assert "notes" not in thread_database(thread.thread).replica().control.state.apps
    context.close()
