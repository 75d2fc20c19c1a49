"""Adding a device by QR code, the issue's browser acceptance (issue 17 §5), in real browsers
(Debian's Chromium through Playwright) against two real node processes on 127.0.0.1.

Alice's node A is in two threads. On her desktop she opens Settings → Your devices, adds
"another device of mine" called Phone and gets a single-use QR code. Her phone is a fresh node
B: on its claim page she chooses "Another device of mine", types her account, and scans the code
with the page's camera button (a fake camera playing a picture of the very code A's page shows,
read by the page's own jsQR). B joins: its progress page counts the threads live, A's page with
the code says the link was taken, and then B's devices page lists A and B and B's threads are
A's. Every page is checked as a person sees it (nothing wider than the screen, no template
syntax, no hex id, no empty label, axe-core finds nothing serious) at the phone's and the
desktop's width; screenshots are saved under the test's tmp dir."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.test_ledger_browser import DESKTOP, PHONE, click
from tests.browser.test_look import AXE, AXE_RUN, FINDINGS
from tests.browser.test_messaging_browser import (  # noqa: F401 - fixtures
    CHROMIUM,
    CHROMIUM_ARGS,
    INIT_SCRIPT,
    Person,
    claimed,
    peers,
)
from tests.browser.test_pwa_browser import NEEDS_CHROMIUM
from tests.conftest import OWNER_PASSWORD
from tests.support.api import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

JOINED_S = 90  # a join of two small threads takes seconds; slack for a busy machine
WIDTH, HEIGHT = 640, 480


def looks_right(person: Person, shots: Path, shot: str) -> None:
    """The page as a person sees it at both widths, checked, with full-page screenshots."""
    page = person.page
    first = page.viewport_size
    for size in (first, DESKTOP if first == PHONE else PHONE):
        page.set_viewport_size(size)
        found = page.evaluate(FINDINGS)
        found["axe"] = page.evaluate(AXE_RUN)
        page.evaluate("() => window.scrollTo(0, 0)")
        page.screenshot(path=str(shots / f"{shot}-{size['width']}.png"), full_page=True)
        assert found == {"overflow": [], "template": [], "hex": [], "labels": [], "axe": []}, (
            shot,
            size,
            found,
        )
    page.set_viewport_size(first)
    csp = [e for e in person.errors if "Content Security" in e or "CSP" in e]
    assert not csp, csp


def camera_of(png: bytes, path: Path) -> Path:
    """A few Y4M frames (Chromium's fake camera plays them in a loop) of a picture: the QR code
    as A's page drew it, on white, as large as the frame allows."""
    code = Image.open(io.BytesIO(png)).convert("L")
    side = HEIGHT - 40
    # The page draws a module in a few pixels, smoothed at its edges: scaled up smoothly, then
    # black or white again, as a camera's picture of a screen would be read.
    code = code.resize((side, side), Image.LANCZOS).point(lambda v: 255 if v > 127 else 0)
    frame = Image.new("L", (WIDTH, HEIGHT), 255)
    frame.paste(code, ((WIDTH - side) // 2, (HEIGHT - side) // 2))
    chroma = bytes([128]) * (WIDTH * HEIGHT // 4)
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(10):
            video.write(b"FRAME\n" + frame.tobytes() + chroma + chroma)
    return path


def chromium(playwright, *, camera: Path | None = None):
    """A browser; with ``camera``, one whose camera sees that video (the phone's)."""
    args = list(CHROMIUM_ARGS)
    if camera is not None:
        args += [
            "--use-fake-ui-for-media-stream",  # grant the camera without asking
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}",
        ]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)


def shows(page, url: str, needle: str) -> bool:
    page.goto(url)
    return needle in page.locator("main").inner_text()


def threads_of(peer) -> set[str]:
    return {t["name"] for t in peer.api.get("/api/v1/threads/")}


def test_a_device_is_added_by_scanning_its_qr_code_on_the_new_nodes_claim_page(
    peers,  # noqa: F811
    tmp_path: Path,
) -> None:
    from playwright.sync_api import sync_playwright

    a, b = peers
    shots = tmp_path / "shots"
    shots.mkdir()
    for name in ("Family", "Book club"):
        a.thread_create(name)
    a.api.request("PUT", "/api/v1/node/name/", {"name": "Alice"})
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as playwright:
        desktop = chromium(playwright)
        try:
            alice = link_made(desktop, a, shots)
            qr = alice.page.locator("figure.qr svg")
            code = qr.screenshot(path=str(shots / "qr.png"), scale="device")
            handset = chromium(playwright, camera=camera_of(code, tmp_path / "qr.y4m"))
            try:
                phone_joins(handset, b, shots)
            finally:
                handset.close()
            link_taken(alice, shots)
        finally:
            desktop.close()


class Retina:
    """A browser whose pages draw at twice the pixels (a laptop's retina screen): the QR code
    then has whole pixels per module, as a phone's camera sees a screen. At one pixel per CSS
    pixel the code's modules are 4 or 5 pixels wide by turns, which a camera never sees."""

    def __init__(self, browser) -> None:
        self.browser = browser

    def new_context(self, **kwargs):
        return self.browser.new_context(device_scale_factor=2, **kwargs)


def link_made(desktop, a, shots: Path) -> Person:
    """On her desktop, Alice makes a device link on A's devices page."""
    alice = claimed(Retina(desktop), "alice", a)
    page = alice.page
    alice.context.add_init_script(path=str(AXE))
    page.set_viewport_size(DESKTOP)
    page.goto(alice.url + "/node/settings/")
    click(page, page.get_by_role("link", name="Your devices"))
    assert page.url.endswith("/node/devices/")
    looks_right(alice, shots, "devices-alone")
    page.get_by_label("A name for it (optional)").fill("Phone")
    click(page, page.get_by_role("button", name="Make a link"))
    page.get_by_role("heading", name="Add a device: Phone").wait_for()
    assert page.locator("#share-link").input_value().startswith("sereus:device/")
    assert page.locator("[data-expires]").inner_text().startswith("expires in ")
    looks_right(alice, shots, "link")
    return alice


def phone_joins(handset, b, shots: Path) -> None:
    """On the phone: B's claim page, "another device of mine", the account, the scan; then the
    join's progress, B's devices and B's threads."""
    phone = Person("alice-phone", b)
    phone.context = handset.new_context(viewport=PHONE)
    phone.context.add_init_script(INIT_SCRIPT)
    phone.context.add_init_script(path=str(AXE))
    new = phone.page = phone.context.new_page()
    phone.watch(new)
    assert b.process.claim_url is not None, b.process.log()
    new.goto(b.process.claim_url)
    looks_right(phone, shots, "claim")
    click(new, new.get_by_role("link", name="This is another device of mine"))
    looks_right(phone, shots, "claim-device")
    new.fill("#id_username", "alice")
    new.fill("#id_password1", OWNER_PASSWORD)
    new.fill("#id_password2", OWNER_PASSWORD)
    scan = new.get_by_role("button", name="Scan a QR code")
    scan.wait_for()  # shown only where a camera can be used
    try:
        with new.expect_navigation(url="**/node/devices/join/", timeout=30_000):
            scan.click()  # the code read, the form submits itself
    except Exception:
        new.screenshot(path=str(shots / "DEBUG.png"), full_page=True)
        print("STATUS", new.locator("#qr-status").inner_text(), new.url, phone.errors)
        raise
    # The progress page follows the join live, then says it is done.
    done = new.get_by_role("heading", name="This node is one of your devices")
    done.wait_for(timeout=JOINED_S * 1000)
    looks_right(phone, shots, "joined")
    assert threads_of(b) == {"Family", "Book club"}
    devices = phone.url + "/node/devices/"
    wait_for(lambda: shows(new, devices, "another device of yours"), timeout=30, interval=1)
    assert new.locator("#devices li.device").count() == 3
    text = new.locator("#devices").inner_text()
    assert "this device" in text
    assert "Recovery key" in text
    looks_right(phone, shots, "devices-phone")
    new.goto(phone.url + "/node/threads/")
    assert "Family" in new.locator("main").inner_text()
    assert "Book club" in new.locator("main").inner_text()
    assert not phone.errors, phone.errors


def link_taken(alice: Person, shots: Path) -> None:
    """Alice's page with the code says the link was taken, without a reload; A lists Phone."""
    page = alice.page
    page.get_by_role("heading", name="Your new device took the link").wait_for(timeout=15_000)
    looks_right(alice, shots, "link-taken")
    wait_for(lambda: shows(page, alice.url + "/node/devices/", "Phone"), timeout=30, interval=1)
    looks_right(alice, shots, "devices-two")
    # Removing it: the confirm step says what removal does, then it is done.
    click(page, page.get_by_role("link", name="Remove Phone"))
    page.get_by_role("heading", name="Remove Phone?").wait_for()
    looks_right(alice, shots, "remove")
    click(page, page.get_by_role("button", name="Remove"))
    assert "Phone is removed" in page.locator("main").inner_text()
    assert "Phone" not in page.locator("#devices").inner_text()
    looks_right(alice, shots, "devices-removed")
    page.goto(alice.url + "/node/devices/restore/")
    looks_right(alice, shots, "restore")
    assert not alice.errors, alice.errors
