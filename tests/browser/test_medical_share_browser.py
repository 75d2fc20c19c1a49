"""Sharing a medical record by QR code between two real nodes in a real browser (Debian's
Chromium through Playwright), the issue's browser acceptance: Ada, the patient, on her desktop,
shares her record with Dr. Lee (read everything, add results and problems) and gets a
single-use QR code; Dr. Lee, on his phone, scans it on his node's Join page (a fake camera
playing a video of the code), his node joins the record (Ada's page with the code says so
without a reload) and he adds a heart rate there; Ada's
open overview shows it without a reload; her access page lists Dr. Lee, his device and when it
last synced; she revokes his access after the confirm step, and his node is out of the record.
The audit page tells all of it. Every page is checked as a person sees it (nothing wider than
the screen, no template syntax, no hex id, no empty label, axe-core finds nothing serious);
screenshots at 390 and 1280 pixels are saved under /tmp/sereus-medical-share/."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.browser.test_join_by_qr import qr_video
from tests.browser.test_ledger_browser import DESKTOP, PHONE, click
from tests.browser.test_look import AXE, AXE_RUN, FINDINGS
from tests.browser.test_messaging_browser import (  # noqa: F401 - fixtures
    CHROMIUM,
    CHROMIUM_ARGS,
    Person,
    browser,
    claimed,
    live_ready,
    peers,
)
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.support.api import ApiError, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

SHOTS = Path(tempfile.gettempdir()) / "sereus-medical-share"


def looks_right(person: Person, shot: str, *, also: dict | None = None) -> None:
    """The page as a person sees it, checked, with a full-page screenshot; ``also``: a second
    viewport to check and shoot it at (then back)."""
    page = person.page
    sizes = [page.viewport_size] + ([also] if also else [])
    for size in sizes:
        page.set_viewport_size(size)
        found = page.evaluate(FINDINGS)
        found["axe"] = page.evaluate(AXE_RUN)
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(SHOTS / f"{shot}-{size['width']}.png"), full_page=True)
        assert found == {"overflow": [], "template": [], "hex": [], "labels": [], "axe": []}, (
            shot,
            size,
            found,
        )
    page.set_viewport_size(sizes[0])
    csp = [e for e in person.errors if "Content Security" in e or "CSP" in e]
    assert not csp, csp


def grant_here(peer, thread: str) -> bool:
    """Whether the provider's node holds its grant (the patient's node writes it once it has
    admitted him; it reaches his node with the next sync)."""
    try:
        grants = peer.api.get(f"/api/v1/threads/{thread}/grants/")
    except ApiError:
        return False
    return any("Observation" in grant.get("write", []) for grant in grants)


def test_a_patient_shares_by_qr_the_provider_adds_a_result_and_is_revoked(
    peers,  # noqa: F811
    browser,  # noqa: F811
    tmp_path,
) -> None:
    SHOTS.mkdir(exist_ok=True)
    node_a, node_b = peers
    ada = claimed(browser, "ada", node_a)
    ada.context.add_init_script(path=str(AXE))
    ada.page.set_viewport_size(DESKTOP)
    node_a.api.request("PUT", "/api/v1/node/name/", {"name": "Ada"})
    record = node_a.api.post("/api/v1/threads/", {"name": "Ada Lovelace", "app": "medical"})["id"]
    base = f"{ada.url}/node/threads/{record}/record/"

    # Ada shares her record with Dr. Lee: read everything, add results and problems.
    ada.page.goto(base + "access/")
    click(ada.page, ada.page.get_by_role("link", name="Share with a provider"))
    looks_right(ada, "share-form", also=PHONE)
    form = ada.page.locator("main form")
    form.get_by_label("Who is it for?").fill("Dr. Lee, Riverside Clinic")
    form.get_by_label("Read everything, add results and problems").check()
    form.get_by_label("The link works for").select_option("1h")
    click(ada.page, form.get_by_role("button", name="Make the link"))
    terms = ada.page.locator("#link-terms").inner_text()
    assert "works once and expires in 1 hour" in terms
    assert "reads everything and adds problems and results" in terms
    link = ada.page.locator("textarea.share-link").input_value().strip()
    assert link.startswith("sereus:invite/"), link
    assert ada.page.locator(".share-qr svg").is_visible()
    looks_right(ada, "share-link", also=PHONE)
    ada_loads = ada.navigations  # her page stays open with the code while he scans it

    # Dr. Lee, on his phone, scans the code on his node's Join page (a camera of his own).
    video = qr_video(link, tmp_path / "record-qr.y4m")
    camera = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    phone = browser.browser_type.launch(
        executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *camera]
    )
    try:
        lee = claimed(phone, "lee", node_b)
        lee.context.add_init_script(path=str(AXE))
        lee.page.set_viewport_size(PHONE)
        node_b.api.request("PUT", "/api/v1/node/name/", {"name": "Dr. Lee"})
        lee.page.goto(lee.url + "/node/threads/join/")
        scan = lee.page.get_by_role("button", name="Scan a QR code")
        scan.wait_for()
        scan.click()
        lee.page.wait_for_url(f"**/node/threads/{record}/record/", timeout=30_000)
        wait_for(lambda: grant_here(node_b, record), timeout=30, what="Dr. Lee's grant")
        # Ada's page with the code says he joined, in place of the code, without a reload.
        ada.page.get_by_role("heading", name="They joined").wait_for(timeout=20_000)
        assert ada.page.get_by_text("Dr. Lee, Riverside Clinic joined with it").is_visible()
        assert ada.page.locator(".share-qr").count() == 0
        assert ada.navigations == ada_loads
        looks_right(ada, "share-joined", also=PHONE)

        # Ada watches her overview; Dr. Lee adds a heart rate on his node.
        ada.page.goto(base)
        live_ready(ada.page)
        ada_loads = ada.navigations
        lee.page.goto(f"{lee.url}/node/threads/{record}/record/observations/new/")
        entry = lee.page.locator("main form")
        entry.get_by_label("What was measured").select_option("heart")
        entry.get_by_label("Value", exact=True).fill("72")
        entry.get_by_label("Taken at").fill("2026-12-06T09:30")
        looks_right(lee, "provider-adds", also=DESKTOP)
        click(lee.page, entry.get_by_role("button", name="Add"))
        assert not lee.page.locator("main [role=alert]").count(), lee.page.locator(
            "main"
        ).inner_text()
        overview = ada.page.locator("#record-page")
        overview.get_by_text("Heart rate").first.wait_for(timeout=20_000)
        assert ada.navigations == ada_loads  # live: no reload
        looks_right(ada, "overview-with-result", also=PHONE)

        # On his node he sees who holds the record and its log, and may change none of it.
        lee.page.goto(f"{lee.url}/node/threads/{record}/record/access/")
        assert lee.page.get_by_role("heading", name="Who holds this record").is_visible()
        assert lee.page.locator("article.holder", has_text="Ada").count() == 1
        assert lee.page.get_by_text("Revoke access").count() == 0
        assert lee.page.get_by_role("link", name="Share with a provider").count() == 0
        looks_right(lee, "provider-access", also=DESKTOP)
        lee.page.goto(f"{lee.url}/node/threads/{record}/record/audit/")
        assert "You added a result: Heart rate" in lee.page.locator("#audit").inner_text()
        looks_right(lee, "provider-audit", also=DESKTOP)

        # Her access page: Dr. Lee, his device, when it last synced.
        ada.page.goto(base + "access/")
        holder = ada.page.locator("article.holder", has_text="Dr. Lee")
        assert holder.get_by_text("Riverside Clinic").count() >= 1
        assert holder.get_by_text("Dr. Lee's device").is_visible()
        assert holder.get_by_text("Reads everything; adds problems and results").is_visible()
        looks_right(ada, "access", also=PHONE)

        # She revokes his access: the confirm step says what it does and does not do.
        holder.get_by_text("Revoke access…").click()
        assert holder.get_by_text("keeps what their devices already hold").is_visible()
        click(ada.page, holder.get_by_role("button", name="Revoke access"))
        assert ada.page.get_by_text("Dr. Lee no longer holds the record").is_visible()
        assert ada.page.locator("#former").get_by_text("Dr. Lee").count() >= 1
        looks_right(ada, "access-revoked", also=PHONE)

        def lee_out() -> bool:
            return node_b.api.get(f"/api/v1/threads/{record}/")["state"] == "removed"

        wait_for(lee_out, timeout=30, what="Dr. Lee's node to learn it was removed")

        # The audit tells it all, newest first.
        ada.page.goto(base + "audit/")
        log = ada.page.locator("#audit").inner_text()
        for said in (
            "You revoked Dr. Lee's access",
            "You removed Dr. Lee from the record",
            "Dr. Lee added a result: Heart rate",
            "Dr. Lee joined the record as a provider",
            "You gave Dr. Lee “Dr. Lee, Riverside Clinic” access",
        ):
            assert said in log, (said, log)
        assert log.index("You revoked") < log.index("Dr. Lee added") < log.index("Dr. Lee joined")
        looks_right(ada, "audit", also=PHONE)
        assert not ada.errors, ada.errors
        assert not lee.errors, lee.errors
    finally:
        phone.close()
