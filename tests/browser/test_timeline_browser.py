"""Timelines in a real browser (Debian's Chromium through Playwright).

At a phone's width and a desktop's, against this test's node served by Django's live server:
Alice starts a timeline from the feed page, posts with a photo, opens the post, replies and
reacts, edits it and reads its history, and looks at the feed and its rules editor. Every page
is checked as a person sees it (no template syntax, no hex ids, no empty labels or nameless
buttons, every field labelled, nothing wider than the screen, nothing blocked by the CSP).

With two real nodes (the issue's acceptance): Alice posts with a photo from her timeline's
page; it shows at the top of Bob's open feed page without a reload; Bob reacts and replies from
his pages; Alice's open post page shows both without a reload. Screenshots are saved under
/tmp/sereus-timeline/ to be looked at."""

from __future__ import annotations

import io
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.test_messaging_browser import browser as real_browser  # noqa: F401
from tests.browser.test_messaging_browser import claimed, live_ready
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.browser.test_undelivered_browser import (  # noqa: F401 - fixtures
    DESKTOP,
    PHONE,
    _context,
    chromium,
    django_beside_playwright,
    session_cookie,
)
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.support import messaging as api
from tests.support.api import wait_for
from tests.support.p2p import Peer

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-timeline"
HEX_ID = re.compile(r"\b[0-9a-f]{8,}\b")


def photo(folder: Path) -> Path:
    path = folder / "tomatoes.png"
    image = Image.new("RGB", (640, 420), (200, 40, 30))
    for x in range(0, 640, 80):  # stripes: a thumbnail that visibly is the picture
        image.paste((40, 150, 60), (x, 0, x + 40, 420))
    out = io.BytesIO()
    image.save(out, format="PNG")
    path.write_bytes(out.getvalue())
    return path


def click(page, locator) -> None:
    """Press a form's button and wait for the page it redirects to."""
    with page.expect_navigation():
        locator.click()


def looks_right(page, errors: list[str], width: int) -> None:
    text = page.locator("main").inner_text()
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text, text
    assert not HEX_ID.search(text), HEX_ID.search(text)
    for label in page.locator("main label").all():
        assert label.text_content().strip(), "an empty label"
    for button in page.locator("main button:visible").all():
        assert button.inner_text().strip() or button.get_attribute("aria-label"), "nameless"
    for field in page.locator("main input:not([type=hidden]), main select, main textarea").all():
        field_id = field.get_attribute("id")
        assert field_id
        assert page.locator(f"label[for='{field_id}']").count() == 1, field_id
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert not [e for e in errors if "Content Security Policy" in e or "CSP" in e], errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_a_timeline_from_the_feed_page(
    chromium,  # noqa: F811
    live_server,
    session_cookie,  # noqa: F811
    tmp_path,
    size: str,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    viewport = PHONE if size == "phone" else DESKTOP
    width = viewport["width"]
    context = _context(chromium, live_server, session_cookie, viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/node/feed/")
    page.get_by_text("Nothing in this feed yet").wait_for()
    looks_right(page, errors, width)
    assert page.locator("nav.nav a[aria-current='page']").inner_text() == "Feed"
    page.screenshot(path=str(SHOTS / f"feed-empty-{size}.png"), full_page=True)
    page.get_by_label("Timeline name").fill("Garden notes")
    page.get_by_label("Your name in it").fill("Alice")
    click(page, page.get_by_role("button", name="Start the timeline"))
    page.get_by_text("Garden notes is ready").wait_for()

    page.get_by_label("Post", exact=True).fill("First **tomatoes** of the year #garden")
    page.get_by_label("Photos and files").set_input_files(str(photo(tmp_path)))
    click(page, page.get_by_role("button", name="Post", exact=True))
    card = page.locator("#timeline-posts article").first
    assert card.locator("strong", has_text="tomatoes").is_visible()
    image = card.locator("img[alt='tomatoes.png']")
    image.wait_for()
    image.scroll_into_view_if_needed()  # it loads lazily
    page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) == 480
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"timeline-{size}.png"), full_page=True)

    # The post's page: a reply, a reaction from the picker, an edit and its history.
    click(page, card.get_by_role("link", name="Reply"))
    page.get_by_label("Your reply").fill("They look great")
    click(page, page.get_by_role("button", name="Send reply"))
    page.locator("#post-live details.react-menu summary").first.click()
    click(page, page.get_by_role("button", name="React 👍").first)
    assert page.locator("#post-live .post-foot button.chip.mine").inner_text() == "👍 1"
    assert page.locator("#replies-h").inner_text() == "1 reply"
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"post-{size}.png"), full_page=True)
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Post", exact=True).fill("First tomatoes of the year, and basil")
    click(page, page.get_by_role("button", name="Save"))
    click(page, page.get_by_role("link", name="edited"))
    assert page.locator("ol.versions li").count() == 2
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"history-{size}.png"), full_page=True)

    page.goto(f"{live_server.url}/node/feed/")
    page.locator("#feed-posts").get_by_text("and basil").wait_for()
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"feed-{size}.png"), full_page=True)
    click(page, page.get_by_role("link", name="Feed rules"))
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"rules-{size}.png"), full_page=True)
    context.close()


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[tuple[Peer, Peer]]:
    a, b = Peer(tmp_path / "a"), Peer(tmp_path / "b")
    try:
        with ThreadPoolExecutor(2) as pool:  # at once: each start waits for its p2p host
            for future in [pool.submit(a.start), pool.submit(b.start)]:
                future.result()
        yield a, b
    finally:
        a.kill()
        b.kill()


@pytest.mark.slow
def test_two_nodes_a_post_shows_live_in_the_feed_and_the_answers_live_on_the_post(
    peers,
    real_browser,  # noqa: F811
    tmp_path,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    node_a, node_b = peers
    alice = claimed(real_browser, "alice", node_a)
    bob = claimed(real_browser, "bob", node_b)
    bob.page.set_viewport_size(PHONE)
    thread = api._api(node_a).post(
        "/api/v1/threads/", {"name": "Alice's garden", "app": "timeline"}
    )["id"]
    node_b.redeem(node_a.invite(thread, role="follower"))
    wait_for(lambda: api.thread_detail(node_b, thread).get("state") == "active", timeout=30)

    # Bob's feed is open; Alice posts with a photo; it shows at the top of Bob's feed, live.
    bob.page.goto(bob.url + "/node/feed/")
    live_ready(bob.page)
    bob_loads = bob.navigations
    alice.page.goto(alice.url + f"/node/threads/{thread}/timeline/")
    alice.page.get_by_label("Post", exact=True).fill("Tomatoes are in!")
    alice.page.get_by_label("Photos and files").set_input_files(str(photo(tmp_path)))
    click(alice.page, alice.page.get_by_role("button", name="Post", exact=True))
    top = bob.page.locator("#feed-posts article").first
    top.get_by_text("Tomatoes are in!").wait_for(timeout=20_000)
    assert bob.navigations == bob_loads  # no reload: the feed's socket rendered it
    assert top.get_by_text("Alice's garden").is_visible()

    # Alice opens her post; Bob reacts from his feed and replies from the post's page.
    click(alice.page, alice.page.locator("#timeline-posts article").first.locator("a.post-time"))
    live_ready(alice.page)
    alice_loads = alice.navigations
    top.locator("details.react-menu summary").click()
    click(bob.page, top.get_by_role("button", name="React ❤️"))
    assert bob.page.url.startswith(bob.url + "/node/feed/")
    top = bob.page.locator("#feed-posts article").first
    assert top.locator("button.chip.mine").inner_text() == "❤️ 1"
    wait_for(
        lambda: (
            bob.page.locator("#feed-posts article").first.locator("img").count()
            or bob.page.reload()
        ),
        timeout=20,
        what="the photo's chunks to reach Bob's node",
    )
    bob.page.screenshot(path=str(SHOTS / "two-nodes-bob-feed.png"), full_page=True)
    click(bob.page, bob.page.locator("#feed-posts article").first.get_by_role("link", name="Reply"))
    bob.page.get_by_label("Your reply").fill("Save me some, please")
    click(bob.page, bob.page.get_by_role("button", name="Send reply"))
    live = alice.page.locator("#post-live")
    live.get_by_text("Save me some, please").wait_for(timeout=20_000)
    live.locator(".post-foot .chip", has_text="❤️ 1").wait_for(timeout=20_000)
    assert alice.navigations == alice_loads  # no reload: the post's socket rendered both
    alice.page.screenshot(path=str(SHOTS / "two-nodes-alice-post.png"), full_page=True)
    bob.page.screenshot(path=str(SHOTS / "two-nodes-bob-post.png"), full_page=True)
    assert not [e for p in (alice, bob) for e in p.errors if "Content Security" in e], [
        p.errors for p in (alice, bob)
    ]
