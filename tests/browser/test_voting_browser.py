"""Voting in a real browser (Debian's Chromium through Playwright).

At a phone's width and a desktop's, against this test's node served by Django's live server:
Alice enables voting in her conversation from its Polls tab, opens a poll with a quorum, votes,
sees Bob's ballot (cast on a node of his own in this process) in the turnout, closes the poll
and sees the result with the fingerprint of the counted ballots; then a ranked poll, reordered
with the arrow buttons (the page's script moves the options in place) and cast. Every page is
checked as a person sees it (no template syntax, no hex ids but the fingerprint, no empty
labels or nameless buttons, nothing wider than the screen, the current tab marked).

With two real nodes (the issue's acceptance): Alice and Bob each on their own node and browser;
Bob's vote shows on Alice's open poll page without a reload (the live socket), and Alice's close
and the result show on Bob's. Screenshots are saved under /tmp/sereus-voting/ to be looked at."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from apps.voting import selectors
from tests.browser.test_messaging_browser import Person, claimed, live_ready
from tests.browser.test_messaging_browser import browser as real_browser  # noqa: F401
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
from tests.voting.support import member_join

pytestmark = [pytest.mark.browser, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-voting"
DESKTOP_800 = {**DESKTOP, "height": 800}
HEX_ID = re.compile(r"\b[0-9a-f]{8,}\b")


def click(page, locator) -> None:
    """Press a form's button and wait for the page it redirects to."""
    with page.expect_navigation():
        locator.click()


def looks_right(page, errors: list[str], width: int) -> None:
    """No template syntax, no hex but the fingerprint, no empty labels or nameless buttons,
    every field labelled, nothing wider than the screen, nothing blocked by the CSP."""
    text = page.locator("main").inner_text()
    for shown in page.locator("main .fingerprint").all():  # the one hex string allowed
        text = text.replace(shown.inner_text(), "")
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text, text
    assert not HEX_ID.search(text), HEX_ID.search(text)
    for label in page.locator("main label").all():
        assert label.text_content().strip(), "an empty label"
    for button in page.locator("main button:visible").all():
        assert button.inner_text().strip() or button.get_attribute("aria-label"), "nameless"
    for field in page.locator("main input:not([type=hidden]), main select").all():
        field_id = field.get_attribute("id")
        assert field_id
        assert page.locator(f"label[for='{field_id}']").count() == 1, field_id
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    assert not [e for e in errors if "Content Security Policy" in e], errors
    current = page.locator("nav.app-tabs a[aria-current='page']")
    assert current.count() == 1
    assert current.inner_text() == "Polls"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_polls_in_a_conversation(
    chromium,  # noqa: F811
    live_server,
    session_cookie,  # noqa: F811
    tmp_path,
    size: str,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    viewport = PHONE if size == "phone" else DESKTOP_800
    width = viewport["width"]
    from apps.messaging import services as messaging

    chat = messaging.conversation_create(name="Flat share", my_name="Alice")
    bob = member_join(chat, tmp_path, "Bob", "writer")
    context = _context(chromium, live_server, session_cookie, viewport)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{live_server.url}/node/threads/{chat.id}/polls/")
    click(page, page.get_by_role("button", name="Enable voting"))
    page.get_by_text("Voting is on in this thread").wait_for()
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"polls-empty-{size}.png"), full_page=True)

    # A single-choice poll with a quorum; she lands on its page.
    page.get_by_label("Question").fill("Where do we eat on Friday?")
    page.get_by_label("Options").fill("Pizza\nSushi\nTacos")
    page.get_by_label("Ballots needed for the result to stand").fill("2")
    click(page, page.get_by_role("button", name="Open the poll"))
    page.get_by_text("Your poll is open").wait_for()
    assert page.get_by_text("0 of 2 voted · needs 2 to stand").is_visible()
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"poll-open-{size}.png"), full_page=True)

    page.get_by_role("radio", name="Sushi").check()
    click(page, page.get_by_role("button", name="Vote", exact=True))
    page.get_by_text("Your ballot counts").wait_for()
    # Bob votes on his node; his ballot reaches hers.
    poll_id = selectors.polls(chat)[0].id
    bob.receive()
    bob.vote(poll_id, {"choice": 0})
    bob.send()
    page.reload()
    assert page.locator("#poll-live").get_by_text("2 of 2 voted · needs 2 to stand").is_visible()
    page.get_by_role("button", name="Close now").click()
    with page.expect_navigation():
        page.locator("dialog").get_by_role("button", name="Close now").click()
    result = page.locator("#poll-live")
    assert result.get_by_text("Winner: Pizza").is_visible()
    assert result.get_by_text("The quorum was reached: the result stands.").is_visible()
    assert result.get_by_text("Pizza and Sushi tied").is_visible()
    fingerprint = result.locator(".fingerprint").inner_text()
    assert re.fullmatch(r"[0-9a-f]{4}( [0-9a-f]{4}){3}", fingerprint)
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"poll-closed-{size}.png"), full_page=True)

    # A ranked poll: the arrows move the options in place, Vote casts the order shown.
    page.goto(f"{live_server.url}/node/threads/{chat.id}/polls/")
    page.get_by_label("Question").fill("Which film first?")
    page.get_by_label("Options").fill("Alien\nBrazil\nCasablanca")
    page.get_by_label("How people vote").select_option("ranked")
    click(page, page.get_by_role("button", name="Open the poll"))
    page.get_by_role("button", name="Move Casablanca up").click()  # no navigation: the script
    page.get_by_role("button", name="Move Casablanca up").click()
    order = page.locator("#ranking .rank-option").all_inner_texts()
    assert order == ["Casablanca", "Alien", "Brazil"]
    assert page.get_by_role("button", name="Move Casablanca up").is_disabled()
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"ranked-{size}.png"), full_page=True)
    click(page, page.get_by_role("button", name="Vote", exact=True))
    ranked = next(p for p in selectors.polls(chat) if p.shape.method == "ranked")
    assert ranked.my_ballot == {"ranking": [2, 0, 1]}
    page.goto(f"{live_server.url}/node/threads/{chat.id}/polls/")
    assert page.locator("#polls .poll-card").count() == 2
    looks_right(page, errors, width)
    page.screenshot(path=str(SHOTS / f"polls-{size}.png"), full_page=True)
    # The conversation shows the open poll, with a link to it.
    page.goto(f"{live_server.url}/node/messages/{chat.id}/")
    card = page.locator("section.thread-polls")
    assert card.get_by_text("Which film first?").is_visible()
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(SHOTS / f"conversation-{size}.png"))
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


def on_page(person: Person, path: str) -> None:
    person.page.goto(person.url + path)


@pytest.mark.slow
def test_two_nodes_vote_and_see_the_turnout_live(peers, real_browser) -> None:  # noqa: F811
    SHOTS.mkdir(exist_ok=True)
    node_a, node_b = peers
    alice = claimed(real_browser, "alice", node_a)
    bob = claimed(real_browser, "bob", node_b)
    bob.page.set_viewport_size(PHONE)
    thread = api.conversation_create(node_a, "Book club")
    node_b.redeem(node_a.invite(thread, role="writer"))
    wait_for(lambda: api.thread_detail(node_b, thread).get("state") == "active", timeout=30)

    polls = f"/node/threads/{thread}/polls/"
    on_page(alice, polls)
    click(alice.page, alice.page.get_by_role("button", name="Enable voting"))
    alice.page.get_by_label("Question").fill("Next book?")
    alice.page.get_by_label("Options").fill("Middlemarch\nDune")
    click(alice.page, alice.page.get_by_role("button", name="Open the poll"))
    poll_path = alice.page.url.removeprefix(alice.url)
    live_ready(alice.page)
    alice_loads = alice.navigations
    turnout = alice.page.locator("#poll-live .turnout")
    assert turnout.inner_text().startswith("0 of 2 voted")

    # Bob's node has the poll; he votes on his page; Alice's open page shows it, live.
    wait_for(
        lambda: (
            bob.page.goto(bob.url + poll_path)
            and bob.page.get_by_role("radio", name="Dune").count()
        ),
        timeout=30,
        what="the poll to reach Bob's node",
    )
    live_ready(bob.page)
    bob.page.get_by_role("radio", name="Dune").check()
    click(bob.page, bob.page.get_by_role("button", name="Vote", exact=True))
    alice.page.wait_for_function(
        "() => document.querySelector('#poll-live .turnout').innerText.startsWith('1 of 2')",
        timeout=15_000,
    )
    assert alice.navigations == alice_loads  # no reload: the socket rendered it
    alice.page.get_by_role("radio", name="Middlemarch").check()
    click(alice.page, alice.page.get_by_role("button", name="Vote", exact=True))
    live_ready(bob.page)
    bob.page.wait_for_function(
        "() => document.querySelector('#poll-live .turnout').innerText.startsWith('2 of 2')",
        timeout=15_000,
    )
    alice.page.get_by_role("button", name="Close now").click()
    with alice.page.expect_navigation():
        alice.page.locator("dialog").get_by_role("button", name="Close now").click()
    assert alice.page.locator("#poll-live").get_by_text("Winner: Middlemarch").is_visible()
    # Bob's open page shows the close and the result; both counted the same ballots.
    bob.page.locator("#poll-live").get_by_text("Winner: Middlemarch").wait_for(timeout=15_000)
    same = [p.page.locator(".fingerprint").inner_text() for p in (alice, bob)]
    assert same[0] == same[1]
    alice.page.screenshot(path=str(SHOTS / "two-nodes-alice.png"), full_page=True)
    bob.page.screenshot(path=str(SHOTS / "two-nodes-bob.png"), full_page=True)
    assert not [e for p in (alice, bob) for e in p.errors if "Content Security" in e]
