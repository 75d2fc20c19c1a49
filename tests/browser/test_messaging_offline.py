"""The installed app offline (Chromium, a real node): the conversations and timelines last
opened stay readable, a message written while the node cannot be reached waits in the service
worker's outbox and is posted once when it can; logging out forgets all of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_messaging_browser import CHROMIUM, browser, claimed  # noqa: F401
from tests.support.api import wait_for
from tests.support.p2p import Peer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    node = Peer(tmp_path / "a").start()
    yield node
    node.kill()


def _texts(peer: Peer, thread: str) -> list[str]:
    return [m["text"] for m in peer.api.get(f"/api/v1/threads/{thread}/messages/")]


def test_conversations_read_and_write_offline(peer, browser) -> None:  # noqa: F811
    alice = claimed(browser, "alice", peer)
    page = alice.page
    thread = peer.api.post("/api/v1/threads/", {"name": "Notes to self", "app": "messaging"})["id"]
    peer.api.post(f"/api/v1/threads/{thread}/messages/", {"text": "written online"})
    conversation = f"{alice.url}/node/messages/{thread}/"
    page.goto(conversation)
    page.wait_for_function("() => navigator.serviceWorker.controller !== null", timeout=15_000)
    page.reload()  # now through the worker, which keeps the page

    alice.context.set_offline(True)
    page.goto(conversation)
    assert "written online" in page.locator("#messages").inner_text()
    page.goto(f"{alice.url}/node/settings/")  # never kept: the offline page
    assert "offline" in page.content().lower()

    page.goto(conversation)
    page.fill("textarea[name=text]", "written offline")
    with page.expect_navigation():
        page.get_by_role("button", name="Send").click()
    assert "Queued" in page.locator("h1").inner_text()
    assert _texts(peer, thread) == ["written online"]  # nothing reached the node

    alice.context.set_offline(False)
    page.goto(conversation)  # a page load sends what waited
    wait_for(lambda: "written offline" in _texts(peer, thread), what="the queued message")
    page.goto(conversation)
    page.reload()
    assert _texts(peer, thread) == ["written offline", "written online"]  # posted once

    # A timeline read online stays readable offline too.
    notes = peer.api.post("/api/v1/threads/", {"name": "Diary", "app": "timeline"})["id"]
    peer.api.post(f"/api/v1/threads/{notes}/posts/", {"text": "a post read online"})
    timeline = f"{alice.url}/node/threads/{notes}/timeline/"
    page.goto(timeline)
    alice.context.set_offline(True)
    page.goto(timeline)
    assert "a post read online" in page.content()
    alice.context.set_offline(False)

    # Logging out: the kept pages and the outbox go with the session.
    kept = "async () => (await (await caches.open('sereus-pages')).keys()).map((r) => r.url)"
    assert conversation in page.evaluate(kept)
    page.goto(f"{alice.url}/node/settings/")  # Log out is under Settings
    page.locator("form[action='/logout/'] button").click()
    page.wait_for_url("**/")
    assert page.evaluate("async () => await caches.has('sereus-pages')") is False
    names = page.evaluate("async () => (await indexedDB.databases()).map((d) => d.name)")
    assert "sereus-outbox" not in names
