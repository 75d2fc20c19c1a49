"""The record's pages on a real node in a real browser (Debian's Chromium through Playwright):
Alice, on her desktop, starts her record, adds an allergy and blood pressure readings through the
forms, and watches her overview take a reading her node writes through the API without a reload;
then on her phone she goes over the same pages (overview, a list, an entry, a form, the chart).
Every page is checked as a person sees it (nothing wider than the screen, no template syntax, no
hex id, no empty label or nameless button, axe-core finds nothing serious); screenshots are saved
under /tmp/sereus-medical/ to be looked at."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_ledger_browser import DESKTOP, PHONE, click
from tests.browser.test_look import AXE, AXE_RUN, FINDINGS
from tests.browser.test_messaging_browser import Person, browser, claimed, live_ready  # noqa: F401
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.medical import samples
from tests.support.p2p import Peer

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-medical"


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[Peer]:
    """One node: the pages need no other."""
    node = Peer(tmp_path / "a")
    try:
        node.start()
        yield node
    finally:
        node.kill()


def looks_right(person: Person, shot: str) -> None:
    """The page as a person sees it, checked; a full-page screenshot to look at."""
    page = person.page
    found = page.evaluate(FINDINGS)
    found["axe"] = page.evaluate(AXE_RUN)
    assert not [e for e in person.errors if "Content Security" in e or "CSP" in e], person.errors
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    assert found == {"overflow": [], "template": [], "hex": [], "labels": [], "axe": []}, found


def blood_pressure(page, high: str, low: str, taken: str) -> None:
    form = page.locator("#entry-form")
    form.get_by_label("What was measured").select_option("bp")
    form.get_by_label("Systolic (upper, mmHg)").fill(high)
    form.get_by_label("Diastolic (lower, mmHg)").fill(low)
    form.get_by_label("Taken at").fill(taken)


def test_a_patient_keeps_her_record_in_words_on_desktop_and_phone(peer, browser) -> None:  # noqa: F811
    SHOTS.mkdir(exist_ok=True)
    alice = claimed(browser, "alice", peer)
    alice.context.add_init_script(path=str(AXE))
    page = alice.page
    page.set_viewport_size(DESKTOP)
    peer.api.request("PUT", "/api/v1/node/name/", {"name": "Alice"})

    # Start my record.
    page.goto(alice.url + "/medical/")
    looks_right(alice, "records-empty-desktop")
    start = page.locator("#start")
    start.get_by_label("Your name").fill("Alice Martin")
    start.get_by_label("Birth date").fill("1980-04-02")
    click(page, start.get_by_role("button", name="Start my record"))
    assert page.get_by_text("Your record is ready").is_visible()
    overview = page.url
    thread = overview.rstrip("/").split("/")[-2]
    looks_right(alice, "overview-empty-desktop")

    # An allergy through its form.
    click(
        page,
        page.get_by_role("navigation", name="This record").get_by_role("link", name="Allergies"),
    )
    click(page, page.get_by_role("link", name="Add allergy"))
    form = page.locator("#entry-form")
    form.get_by_label("Substance").fill("Penicillin")
    form.get_by_label("Reaction").fill("Hives")
    form.get_by_label("Risk").select_option("high")
    looks_right(alice, "form-allergy-desktop")
    click(page, form.get_by_role("button", name="Add"))
    assert page.get_by_role("heading", name="Penicillin").is_visible()
    assert page.get_by_text("High risk").is_visible()
    entry = page.url
    page.get_by_text("FHIR resource (JSON)").click()  # the raw text opens and is checked too
    looks_right(alice, "entry-desktop")

    # Blood pressure readings through the observation form.
    for day, (high, low) in enumerate((("121", "79"), ("134", "86"), ("127", "81")), start=1):
        page.goto(f"{alice.url}/node/threads/{thread}/record/observations/new/")
        blood_pressure(page, high, low, f"2026-03-0{day}T08:30")
        if day == 1:
            looks_right(alice, "form-observation-desktop")
        click(page, page.locator("#entry-form").get_by_role("button", name="Add"))
        assert page.get_by_text(f"{high}/{low} mmHg").is_visible()

    # The overview takes a reading written elsewhere (here: the API) without a reload.
    page.goto(overview)
    live_ready(page)
    loads = alice.navigations
    api = f"/api/v1/threads/{thread}/fhir/Observation/"
    peer.api.post(api, samples.heart_rate(66, when="2026-03-03T09:00:00Z"))
    page.locator("#record-live").get_by_text("66 beats/min").wait_for(timeout=15_000)
    assert alice.navigations == loads
    looks_right(alice, "overview-desktop")
    page.goto(f"{alice.url}/node/threads/{thread}/record/observations/")
    looks_right(alice, "list-desktop")
    click(page, page.get_by_role("link", name="Chart", exact=True))
    assert page.locator("svg.chart-svg polyline").count() == 2
    assert page.get_by_role("img", name="Blood pressure over time").is_visible()
    looks_right(alice, "chart-desktop")
    page.goto(f"{alice.url}/node/threads/{thread}/record/io/")
    looks_right(alice, "io-desktop")

    # The same pages on her phone.
    page.set_viewport_size(PHONE)
    for url, shot in (
        (overview, "overview-phone"),
        (f"{alice.url}/node/threads/{thread}/record/observations/", "list-phone"),
        (entry, "entry-phone"),
        (f"{alice.url}/node/threads/{thread}/record/conditions/new/", "form-condition-phone"),
        (f"{alice.url}/node/threads/{thread}/record/chart/", "chart-phone"),
        (alice.url + "/medical/", "records-phone"),
        (f"{alice.url}/node/threads/{thread}/record/io/", "io-phone"),
    ):
        page.goto(url)
        looks_right(alice, shot)
