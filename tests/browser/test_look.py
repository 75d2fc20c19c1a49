"""How every main page looks to a person, in a real browser (Debian's Chromium through Playwright)
against real nodes: Alice's node, with a conversation Bob joined from his own node (both named),
messages, a reply, a checklist and an open invite. Each page is opened at a phone's width
(390 x 844, in dark mode) and a desktop's (1280 x 800, in light mode), and checked for:

- overflow: nothing wider than the screen (the document scrolls sideways on no page),
- template: no template syntax in the text (``{%``, ``{{``, ``{#`` and their ends),
- hex: no hex id (12 or more hex characters in a row) or libp2p peer id in the visible text,
  except inside ``<details>`` (the technical views a person opens on purpose),
- labels: no empty label, no label naming a field that is not there, no button or link
  without a name,
- axe: axe-core (vendored in tests/browser/vendor/) finds no serious or critical violation
  (contrast, names, roles, landmarks...).

A page is visited once per width; its five checks are five tests, named
``test_look[<page>-<width>-<check>]``, so a failure says which page, which width and what.
Screenshots are saved under /tmp/sereus-look/ to be looked at. The claim page is checked
before the node is claimed (its link works once)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.urls import NoReverseMatch, reverse
from playwright.sync_api import Error as PlaywrightError

from apps.website.views import USES
from tests.browser.test_pwa_browser import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM
from tests.conftest import OWNER_PASSWORD
from tests.support.api import ApiError, wait_for
from tests.support.messaging import conversation_create, send
from tests.support.p2p import Peer

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-look"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"


@dataclass(frozen=True)
class Width:
    viewport: dict[str, int]
    # Each width in one colour scheme: both schemes are checked (contrast above all) without
    # opening every page four times.
    color_scheme: str


WIDTHS = {
    "390": Width({"width": 390, "height": 844}, "dark"),
    "1280": Width({"width": 1280, "height": 800}, "light"),
}
CHECKS = ("overflow", "template", "hex", "labels", "axe")

# What a page shows, as a list of problems per check (empty: fine). Runs in the page.
FINDINGS = r"""() => {
  const width = window.innerWidth;
  const shown = (el) => el.checkVisibility({visibilityProperty: true});
  const describe = (el) => {
    let name = el.tagName.toLowerCase();
    if (el.id) return `${name}#${el.id}`;
    if (el.classList.length) name += "." + [...el.classList].join(".");
    return name;
  };
  const quote = (text) => JSON.stringify(text.trim().replace(/\s+/g, " ").slice(0, 80));
  const found = {overflow: [], template: [], hex: [], labels: []};

  const scrollWidth = Math.max(document.documentElement.scrollWidth, document.body.scrollWidth);
  if (scrollWidth > width) {
    found.overflow.push(`the page is ${scrollWidth} px wide on a ${width} px screen`);
    // The outermost elements that stick out (their parent does not): the ones to fix.
    for (const el of document.body.querySelectorAll("*")) {
      const right = el.getBoundingClientRect().right;
      const parent = el.parentElement.getBoundingClientRect().right;
      if (right > width + 0.5 && parent <= width + 0.5 && shown(el)) {
        found.overflow.push(`${describe(el)} reaches ${Math.round(right)} px`);
      }
    }
  }

  const text = document.body.innerText;
  for (const syntax of ["{%", "%}", "{{", "}}", "{#", "#}"]) {
    const at = text.indexOf(syntax);
    const around = text.slice(Math.max(0, at - 30), at + 50);
    if (at >= 0) found.template.push(`${syntax} in ${quote(around)}`);
  }

  // 12 or more hex characters with a letter among them (a long number is not an id), and
  // libp2p peer ids.
  const hex = /(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{12,}(?![0-9A-Za-z])/g;
  const peer = /12D3KooW[1-9A-HJ-NP-Za-km-z]{20,}/g;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest("details, script, style, template, noscript")) continue;
    if (!shown(parent)) continue;
    for (const match of [...node.data.matchAll(hex), ...node.data.matchAll(peer)]) {
      found.hex.push(`${match[0]} in ${describe(parent)}`);
    }
  }

  const named = (el) => {
    const by = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean);
    const parts = [
      el.getAttribute("aria-label") || "",
      by.map((id) => (document.getElementById(id) || {}).textContent || "").join(" "),
      el.innerText || "",
      el.getAttribute("title") || "",
      el.tagName === "INPUT" ? el.value || "" : "",
      [...el.querySelectorAll("img[alt], svg[aria-label]")]
        .map((img) => img.getAttribute("alt") || img.getAttribute("aria-label")).join(" "),
    ];
    return parts.join("").trim() !== "";
  };
  for (const label of document.querySelectorAll("label")) {
    if (!shown(label)) continue;
    if (!(label.innerText || "").trim()) {
      found.labels.push(`an empty label (${describe(label)}, for ${label.htmlFor || "nothing"})`);
    } else if (!label.control) {
      found.labels.push(`the label ${quote(label.innerText)} names no field on the page`);
    }
  }
  const controls = "a[href], button, [role=button], input[type=submit], input[type=button]";
  for (const el of document.querySelectorAll(controls)) {
    if (shown(el) && !named(el)) {
      found.labels.push(`a ${el.tagName === "A" ? "link" : "button"} with no name: ${
        describe(el)}${el.getAttribute("href") ? " to " + el.getAttribute("href") : ""}`);
    }
  }
  return found;
}"""

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.id} (${v.impact}: ${v.help}) at ` +
      v.nodes.slice(0, 5).map((n) => n.target.join(" ")).join(", ") +
      (v.nodes.length > 5 ? ` and ${v.nodes.length - 5} more` : ""));
}"""


@dataclass
class Site:
    """Alice's node, the other node, the browser contexts and what was found so far."""

    alice: Peer
    bob: Peer
    browser: Any
    conversation: str = ""
    invite: str = ""
    owner: dict[str, Any] = field(default_factory=dict)  # width -> Alice's logged-in page
    visitor: dict[str, Any] = field(default_factory=dict)  # width -> a page logged in nowhere
    findings: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # page -> why its data is not there

    @property
    def url(self) -> str:
        return self.alice.process.url


def _context(browser, width: str, storage: Any = None):
    context = browser.new_context(
        viewport=WIDTHS[width].viewport,
        color_scheme=WIDTHS[width].color_scheme,
        service_workers="block",
        storage_state=storage,
    )
    # An init script, unlike a script tag, is not subject to the page's Content-Security-Policy.
    context.add_init_script(path=str(AXE))
    page = context.new_page()
    page.set_default_timeout(20_000)
    return page


def look(page, name: str, width: str) -> dict[str, list[str]]:
    """Every check on the page as it is now; a full-page screenshot to look at."""
    found = page.evaluate(FINDINGS)
    found["axe"] = page.evaluate(AXE_RUN)
    # From the top: a page scrolled down (a conversation opens at its newest message) would
    # show its sticky header in the middle of a full-page picture.
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
    return found


def _claim(page, peer: Peer, name: str) -> None:
    assert peer.process.claim_url is not None, peer.process.log()
    page.goto(peer.process.claim_url)
    page.fill("#id_username", name)
    page.fill("#id_password1", OWNER_PASSWORD)
    page.fill("#id_password2", OWNER_PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Create my account").click()


def _name(peer: Peer, name: str) -> None:
    """The name this person goes by in every thread."""
    assert peer.api is not None
    peer.api.request("PUT", "/api/v1/node/name/", {"name": name})


def _fill(site: Site) -> None:
    """A conversation between Alice and Bob with a reply, a checklist and an open invite."""
    alice, bob = site.alice, site.bob
    assert alice.api is not None
    _name(alice, "Alice")
    _name(bob, "Bob")
    chat = site.conversation = conversation_create(alice, "Flat share")
    bob.redeem(alice.invite(chat, "writer"))
    first = send(alice, chat, "Who is in for a **film night** on Friday?")
    send(bob, chat, "Me! I can bring popcorn.")
    wait_for(
        lambda: len(alice.api.get(f"/api/v1/threads/{chat}/messages/")) >= 2,
        what="Bob's message to reach Alice",
    )
    send(alice, chat, "Great, 8 pm at ours then.", reply_to=first["id"])
    send(alice, chat, "Shopping:\n- popcorn\n- *lemonade*\n\n> bring a blanket")

    try:
        alice.api.post(f"/api/v1/threads/{chat}/apps/", {"app": "checklist"})
        items = [
            alice.api.post(f"/api/v1/threads/{chat}/checklist/", {"text": text, **group})
            for text, group in (
                ("Buy popcorn", {"list": "Shopping"}),
                ("Pick a film", {}),
                ("Borrow two chairs", {}),
            )
        ]
        alice.api.post(f"/api/v1/threads/{chat}/checklist/{items[1]['id']}/claim/")
    except ApiError as exc:
        # The checklist page's checks fail with it; the other pages are still looked at.
        site.broken["checklist"] = f"its items could not be made: {exc}"
    invite = alice.api.post(
        f"/api/v1/threads/{chat}/invites/",
        {"role": "reader", "expires_in": 86400, "uses": None, "label": "neighbours"},
    )
    site.invite = invite["id"]


@pytest.fixture(scope="module")
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never its own browser
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(chromium, tmp_path_factory) -> Iterator[Site]:
    SHOTS.mkdir(exist_ok=True)
    base = tmp_path_factory.mktemp("look")
    alice, bob = Peer(base / "alice"), Peer(base / "bob")
    try:
        with ThreadPoolExecutor(2) as pool:  # each start waits for its own p2p host
            list(pool.map(Peer.start, [alice, bob]))
        site = Site(alice, bob, chromium)
        for width in WIDTHS:
            page = site.visitor[width] = _context(chromium, width)
            assert alice.process.claim_url is not None, alice.process.log()
            page.goto(alice.process.claim_url)
            site.findings["claim", width] = look(page, "claim", width)
        _claim(site.visitor["1280"], alice, "alice")
        storage = site.visitor["1280"].context.storage_state()
        site.visitor["1280"].context.clear_cookies()  # a visitor again
        for width in WIDTHS:
            site.owner[width] = _context(chromium, width, storage)
        _fill(site)
        yield site
        for page in [*site.visitor.values(), *site.owner.values()]:
            page.context.close()
    finally:
        alice.kill()
        bob.kill()


@dataclass(frozen=True)
class Page:
    """A page by its URL name (so the check follows the project's URLs), what its URL takes,
    and whether a visitor (not logged in) or the owner opens it."""

    url_name: str
    args: Callable[[Site], list[str]] = lambda site: []
    owner: bool = True
    # Something to do on the page before looking at it (e.g. submitting a form).
    then: Callable[[Any], None] | None = None

    def open(self, site: Site, width: str):
        page = (site.owner if self.owner else site.visitor)[width]
        response = page.goto(site.url + reverse(self.url_name, args=self.args(site)))
        if response is not None and response.status >= 400:
            raise PageMissing(f"{self.url_name} answered HTTP {response.status}")
        if self.then is not None:
            self.then(page)
        return page


class PageMissing(Exception):
    pass


def _make_invite(page) -> None:
    """Make an invite with the form's defaults: the page then shows the link to pass on."""
    with page.expect_navigation():
        page.locator("form[action$='/invite/'] [type=submit]").first.click()


def _invite_someone(page) -> None:
    """Invite someone to chat in one step: the page then shows the link to pass on."""
    page.fill("input[name=label]", "Sam")
    with page.expect_navigation():
        page.get_by_role("button", name="Make the invite").click()


def _conversation(site: Site) -> list[str]:
    return [site.conversation]


PAGES: dict[str, Page] = {
    "home": Page("core:dashboard"),
    "conversations": Page("messaging:list"),
    "conversation": Page("messaging:conversation", _conversation),
    "people": Page("core:thread_people", _conversation),
    "checklist": Page("checklist:checklist", _conversation),
    "new-invite": Page("core:thread_people", _conversation, then=_make_invite),
    "invite-qr": Page("core:thread_invite_qr", lambda site: [site.conversation, site.invite]),
    "invite-someone": Page("messaging:invite"),
    "invited": Page("messaging:invite", then=_invite_someone),
    "join": Page("core:thread_join"),
    "settings": Page("core:settings"),
    "network": Page("core:network"),
    "ui-gallery": Page("core:ui_gallery"),  # every component of the design system
    "login": Page("core:login", owner=False),
    "claim": Page("core:claim", owner=False),  # looked at in ``site``, before the claim
    "site-home": Page("website:home", owner=False),
    "site-threads": Page("website:threads", owner=False),
    "site-uses": Page("website:uses", owner=False),
    **{
        f"site-use-{slug}": Page("website:use", lambda site, slug=slug: [slug], owner=False)
        for slug in USES
    },
    "site-run": Page("website:run", owner=False),
    "site-api": Page("website:api", owner=False),
}


def findings(site: Site, name: str, width: str) -> dict[str, list[str]]:
    """What each check found on the page at this width; a page that cannot be opened fails
    every check, once."""
    if name in site.broken:
        return {check: [site.broken[name]] for check in CHECKS}
    if (name, width) not in site.findings:
        try:
            page = PAGES[name].open(site, width)
            found = look(page, name, width)
        except (NoReverseMatch, PageMissing, PlaywrightError) as exc:
            found = {check: [f"could not open the page: {exc}"] for check in CHECKS}
        site.findings[name, width] = found
    return site.findings[name, width]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_look(site: Site, name: str, width: str, check: str) -> None:
    problems = findings(site, name, width)[check]
    assert not problems, f"{name} at {width} px, {check}:\n  " + "\n  ".join(problems)


# A page with one of each fault, and what is allowed: hex inside details, a long number.
FAULTY = """<!doctype html><html lang="en"><head><title>Faulty</title></head><body><main>
<h1>Faulty</h1>
<p>Hello {{ person.name }}</p>
<p>Added by 3f9a0c2e7b1d4e5f, seen by 12D3KooWQb4jm1VfWb7mEkL2pRX9tNcZoYdGhS8aA.</p>
<p>Order number 1733472000123.</p>
<details><summary>Technical details</summary><p class="mono">6a7b3f9a0c2e7b1d4e5f</p></details>
<form><label for="id_reply_to">Reply to</label><input type="hidden" id="id_reply_to">
<label for="text"></label><input id="text" name="text"><button></button></form>
<a href="/elsewhere"></a>
<div style="width: 2000px">a wide table</div>
<p style="color: #777; background: #888">grey on grey</p>
</main></body></html>"""


def test_the_checks_find_each_fault(chromium) -> None:
    SHOTS.mkdir(exist_ok=True)
    page = _context(chromium, "390")
    # Served by the browser itself: the request never leaves it.
    page.route(
        "http://127.0.0.1:9/**", lambda route: route.fulfill(body=FAULTY, content_type="text/html")
    )
    page.goto("http://127.0.0.1:9/faulty/")
    found = look(page, "faulty", "390")
    page.context.close()
    assert found["overflow"][0] == "the page is 2008 px wide on a 390 px screen"
    assert "div reaches 2008 px" in found["overflow"]
    assert [problem.split(" ")[0] for problem in found["template"]] == ["{{", "}}"]
    assert "Hello {{ person.name }} Added by" in found["template"][0]
    assert found["hex"] == [
        "3f9a0c2e7b1d4e5f in p",
        "12D3KooWQb4jm1VfWb7mEkL2pRX9tNcZoYdGhS8aA in p",
    ]
    assert found["labels"] == [
        'the label "Reply to" names no field on the page',
        "an empty label (label, for text)",
        "a button with no name: button",
        "a link with no name: a to /elsewhere",
    ]
    assert found["axe"] == [
        "button-name (critical: Buttons must have discernible text) at button",
        "color-contrast (serious: Elements must meet minimum color contrast ratio thresholds) "
        "at p:nth-child(9)",
        "label (critical: Form elements must have labels) at #text",
        "link-name (serious: Links must have discernible text) at a",
    ]
