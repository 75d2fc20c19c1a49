"""A real browser (Debian's Chromium, headless, driven by Playwright) against a real node:
the public site, the claim, logging in, the live dashboard, the service worker and the manifest."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import OWNER_PASSWORD
from tests.support.nodes import NodeProcess

CHROMIUM = Path("/usr/bin/chromium")

# Browser tests run on Debian's Chromium only (never a downloaded browser).
NEEDS_CHROMIUM = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)"
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    NEEDS_CHROMIUM,
]

# The flags Chromium needs on this closed network (no background calls to Google's services).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[NodeProcess]:
    process = NodeProcess(tmp_path / "node").start()
    yield process
    process.kill()


@pytest.fixture
def context(tmp_path: Path) -> Iterator:
    """A browser profile of its own (not incognito: Chromium never offers to install from one)."""
    from playwright.sync_api import sync_playwright

    # Playwright must not look for (or download) a browser of its own.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        browser_context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        yield browser_context
        browser_context.close()


def test_public_site_login_service_worker_and_manifest(node: NodeProcess, context) -> None:
    page = context.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    # The public site, no login.
    page.goto(node.url + "/")
    assert "Sereus" in page.title()
    page.get_by_role("link", name="Run a node").first.click()
    page.wait_for_url("**/fabric/run/")
    assert page.locator("h1").first.inner_text()

    # Claim the node with the link it printed, then see the recovery phrase.
    assert node.claim_url is not None
    page.goto(node.claim_url)
    page.fill("#id_username", "alice")
    page.fill("#id_password1", OWNER_PASSWORD)
    page.fill("#id_password2", OWNER_PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    assert page.locator("ol.phrase li").count() == 24

    # Log out (under Settings), and log in again through the login page.
    page.goto(node.url + "/node/settings/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", OWNER_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/node/")

    # The Network page's WebSocket passes the origin check and shows the p2p worker live; the
    # peer id and the worker's mode are in its technical details.
    page.goto(node.url + "/node/settings/network/")
    page.locator("#p2p-status .status-ok").wait_for(timeout=10_000)
    for summary in page.locator("summary", has_text="Technical details").all():
        summary.click()
    assert node.peer_id in page.locator("#peer-id").inner_text()
    assert "in-process" in page.locator("#p2p-technical").inner_text()

    # The service worker registers for the whole site and takes control.
    scope = page.evaluate("async () => (await navigator.serviceWorker.ready).scope", [])
    assert scope == node.url + "/"
    page.reload()
    assert page.evaluate("() => navigator.serviceWorker.controller !== null")

    # Chromium parsed the manifest without errors and finds the app installable.
    cdp = context.new_cdp_session(page)
    manifest = cdp.send("Page.getAppManifest")
    assert manifest["errors"] == [], manifest["errors"]
    assert manifest["url"] == node.url + "/manifest.webmanifest"
    assert manifest["parsed"]["scope"] == node.url + "/"
    assert json.loads(manifest["data"])["start_url"] == "/node/"
    installability = cdp.send("Page.getInstallabilityErrors")
    assert installability["installabilityErrors"] == [], installability

    # Offline, a page that was never visited falls back to the cached offline page.
    context.set_offline(True)
    page.goto(node.url + "/fabric/uses/community-voting/")
    assert "offline" in page.content().lower()
    context.set_offline(False)

    # Nothing was blocked by the Content-Security-Policy.
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
    assert node.stop() == 0
