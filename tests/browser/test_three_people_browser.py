"""Three people, three real nodes, three browsers (issue 11's acceptance test): Alice, Bob and
Carol each run a node of their own (separate processes replicating over libp2p on 127.0.0.1)
and use it in a browser context of their own (Debian's Chromium through Playwright; Alice at a
phone's size, 390 x 844, the others at a desktop's, 1280 x 800).

Alice names herself on Home's first run, starts a conversation and invites Bob and Carol from
its People tab: Bob's link with the Copy button (read back from the clipboard), Carol's with the
Share button (a stand-in for the phone's share sheet records what it is given; where the browser
has none, the button stays hidden). Each joins on their own Join page and lands in the
conversation; Bob names himself in Settings, Carol for the conversation alone (its People
tab). Over 60 messages later (most posted over the API, to be quick) every node shows people by
their names: message authors, the People tab, "read by" and "… is typing"; no hex id or peer
id shows outside a details view; and the conversation opens at its newest message, above the
pinned composer.
Screenshots are saved under /tmp/sereus-three/ to be looked at."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.browser.test_look import FINDINGS, _claim
from tests.browser.test_messaging_browser import (  # noqa: F401 - the browser fixture
    INIT_SCRIPT,
    Person,
    browser,
    live_ready,
    send,
)
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.support import messaging
from tests.support.api import wait_for
from tests.support.messaging import Nodes, three_nodes

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-three"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
BULK = 20  # messages each node posts over the API: with the browsers' own, over 60 in all

# Where the page has a share sheet only when the test says so (sessionStorage, kept across the
# tab's pages): a stand-in that records what it is given. Otherwise none, as on a computer.
SHARE_STUB = """
(() => {
  if (sessionStorage.getItem("share-sheet")) {
    window.__shared = [];
    Object.defineProperty(Navigator.prototype, "share", {
      configurable: true,
      value: (data) => { window.__shared.push(data); return Promise.resolve(); },
    });
  } else {
    delete Navigator.prototype.share;
  }
})();
"""

# The newest message and the composer, as the screen shows them right after opening the page.
IN_VIEW = """() => {
  const items = document.querySelectorAll("#messages > li.message");
  const last = items[items.length - 1].getBoundingClientRect();
  const compose = document.getElementById("compose").getBoundingClientRect();
  return {
    text: items[items.length - 1].querySelector(".body").innerText.trim(),
    top: last.top, bottom: last.bottom,
    composeTop: compose.top, composeBottom: compose.bottom,
    height: window.innerHeight,
  };
}"""


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    with three_nodes(tmp_path) as started:  # started at once
        yield started


def person(chromium, name: str, peer, viewport: dict[str, int]) -> Person:
    """A browser context of the person's own, at this size, logged in as its node's owner."""
    who = Person(name, peer)
    who.context = chromium.new_context(viewport=viewport, service_workers="block")
    who.context.add_init_script(INIT_SCRIPT)
    who.context.add_init_script(SHARE_STUB)
    who.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=who.url)
    who.page = who.context.new_page()
    who.watch(who.page)
    _claim(who.page, peer, name.lower())
    return who


def no_hex(who: Person, what: str) -> None:
    """The page as it is now shows no hex id or peer id outside details, and no template syntax;
    a screenshot of it to look at."""
    found = who.page.evaluate(FINDINGS)
    assert not found["hex"], f"{who.name}'s {what}: {found['hex']}"
    assert not found["template"], f"{who.name}'s {what}: {found['template']}"
    who.page.screenshot(path=str(SHOTS / f"{who.name.lower()}-{what}.png"))


def invite(alice: Person, label: str) -> None:
    page = alice.page
    page.get_by_label("Who is it for?").fill(label)
    with page.expect_navigation():
        page.get_by_role("button", name="Create invite").click()


def join(who: Person, link: str, conversation: str) -> None:
    """Join with the link on the person's own Join page: it lands in the conversation."""
    page = who.page
    page.goto(who.url + "/node/threads/join/")
    page.fill("textarea[name=link]", link)
    page.get_by_role("button", name="Join").click()
    page.wait_for_url(f"{who.url}/node/messages/{conversation}/", timeout=30_000)
    page.locator("#compose").wait_for()


def test_three_people_see_names_and_the_newest_message(nodes: Nodes, browser) -> None:  # noqa: F811
    SHOTS.mkdir(exist_ok=True)
    alice = person(browser, "Alice", nodes.alice, PHONE)
    bob = person(browser, "Bob", nodes.bob, DESKTOP)
    carol = person(browser, "Carol", nodes.carol, DESKTOP)
    everyone = (alice, bob, carol)

    # Alice names herself on Home's first run and starts a conversation from there.
    page = alice.page
    page.goto(alice.url + "/node/")
    page.get_by_role("textbox", name="Your name").fill("Alice")
    with page.expect_navigation():
        page.get_by_role("button", name="Save name").click()
    page.get_by_role("heading", name="Welcome, Alice.").wait_for()
    page.get_by_role("link", name=re.compile(r"^Start a conversation")).click()
    page.get_by_label("Conversation name").fill("Picnic")
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    chat = page.url.split("#")[0].rstrip("/").rsplit("/", 1)[1]
    assert page.url.startswith(f"{alice.url}/node/messages/{chat}/")

    # Bob's invite from the People tab, passed on with Copy (no share sheet here: no Share).
    page.get_by_role("link", name="People", exact=True).click()
    page.wait_for_url(f"**/node/threads/{chat}/people/")
    invite(alice, "Bob")
    card = page.locator("section.invite-new")
    shown = card.get_by_label("The invite link").input_value()
    assert shown.startswith("sereus:invite/")
    assert page.evaluate("() => typeof navigator.share") == "undefined"
    assert card.get_by_role("button", name="Share…").is_hidden()
    card.get_by_role("button", name="Copy link").click()
    card.get_by_text("Copied.").wait_for()
    bob_link = page.evaluate("() => navigator.clipboard.readText()")
    assert bob_link == shown
    no_hex(alice, "new-invite")

    # Carol's, passed on with Share from the invite's own page, where there is a share sheet.
    invite(alice, "Carol")
    page.evaluate("() => sessionStorage.setItem('share-sheet', '1')")
    line = page.locator("li.invite-line", has_text="Carol")
    line.get_by_role("link", name="Link and QR code").click()
    page.get_by_role("heading", name="Invite to Picnic").wait_for()
    share = page.get_by_role("button", name="Share…")
    share.click()
    page.wait_for_function("() => window.__shared.length === 1")
    shared = page.evaluate("() => window.__shared[0]")
    carol_link = shared["text"]
    assert carol_link == page.get_by_label("The invite link").input_value()
    assert carol_link.startswith("sereus:invite/")
    assert carol_link != bob_link
    no_hex(alice, "invite-page")
    page.evaluate("() => sessionStorage.removeItem('share-sheet')")

    # Each joins on their own node and lands in the conversation; Bob names himself in Settings
    # (his name for every thread), Carol for the conversation alone (its People tab).
    join(bob, bob_link, chat)
    join(carol, carol_link, chat)
    bob.page.goto(bob.url + "/node/settings/")
    bob.page.get_by_role("textbox", name="Your name").fill("Bob")
    with bob.page.expect_navigation():
        bob.page.get_by_role("button", name="Save name").click()
    carol.page.get_by_role("link", name="Choose a name").click()
    carol.page.get_by_label("Your name here").fill("Carol")
    with carol.page.expect_navigation():
        carol.page.get_by_role("button", name="Save name").click()

    # Over 60 messages: most over the API, the three nodes at once; then one from each browser.
    def post(peer, author: str) -> None:
        for n in range(BULK):
            messaging.send(peer, chat, f"{author}'s note {n + 1} about the picnic")

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(post, nodes.each(), ("Alice", "Bob", "Carol")))
    total = 3 * BULK + 3
    for who in everyone:
        who.page.goto(f"{who.url}/node/messages/{chat}/")
        live_ready(who.page)
    last = {
        "Alice": "I'll bring the blanket",
        "Bob": "Lemonade from me",
        "Carol": "See you at noon",
    }
    for who in everyone:
        send(who, last[who.name])
        live_ready(who.page)
    for peer in nodes.each():
        wait_for(
            lambda peer=peer: len(messaging.messages(peer, chat)) >= total,
            timeout=30,
            what="every message on every node",
        )

    # Bob types: Alice's and Carol's open pages say so, by his name.
    bob.page.locator("#id_text").press_sequentially("Shall we", delay=50)
    for who in (alice, carol):
        who.page.locator("#typing").filter(has_text="Bob is typing").wait_for(timeout=5000)
    bob.page.locator("#id_text").fill("")

    # With every page open, everyone has read everything: each one's own newest message says
    # by whom, by name (live: no reload).
    for who in everyone:
        others = ", ".join(sorted(p.name for p in everyone if p is not who))
        mine = who.page.locator("li.message.mine", has_text=last[who.name])
        mine.locator(".read-by").filter(has_text=f"read by {others}").wait_for(timeout=15_000)

    for who in everyone:
        others = {p.name for p in everyone if p is not who}
        page = who.page
        # Opening the conversation: the newest message is on screen, above the composer.
        page.goto(f"{who.url}/node/messages/{chat}/")
        live_ready(page)
        view = page.evaluate(IN_VIEW)
        assert view["text"] == last["Carol"], view
        assert 0 <= view["top"] < view["bottom"] <= view["composeTop"] + 1, view
        assert view["composeBottom"] <= view["height"] + 1, view
        assert page.locator("#id_text").is_visible()
        # Authors by name (the newest page holds all three authors' messages).
        authors = set(page.locator("li.message:not(.mine) .author").all_inner_texts())
        assert authors == others, authors
        no_hex(who, "conversation")

        # The People tab lists the members by name.
        page.get_by_role("link", name="People", exact=True).click()
        page.wait_for_url(f"**/node/threads/{chat}/people/")
        rows = page.locator("table.members tbody tr")
        assert rows.count() == 3
        names = {row.locator("strong").first.inner_text() for row in rows.all()}
        assert names == {"Alice", "Bob", "Carol"}, names
        assert "(you)" in rows.filter(has_text=who.name).inner_text()
        # Only the owner is offered what the others' nodes would refuse of a writer.
        managing = page.get_by_role("button", name=re.compile("^Remove "))
        assert managing.count() == (2 if who is alice else 0)
        creating = page.get_by_role("button", name="Create invite")
        assert creating.count() == (1 if who is alice else 0)
        no_hex(who, "people")

        for where in ("/node/", "/node/settings/"):
            page.goto(who.url + where)
            no_hex(who, where.strip("/").replace("/", "-"))
        assert not who.errors, f"{who.name}'s pages logged: {who.errors}"
    for who in everyone:
        who.context.close()
