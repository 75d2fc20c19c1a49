"""Joining with an invite QR code in the browser: the join page reads the camera (a fake one
here, playing a video of the QR code) with the vendored jsQR and joins the thread."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import segno
from PIL import Image

from tests.browser.test_messaging_browser import (  # noqa: F401 - peers is a fixture
    CHROMIUM,
    CHROMIUM_ARGS,
    claimed,
    peers,
)
from tests.support.api import wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]

WIDTH, HEIGHT = 640, 480


def qr_video(link: str, path: Path) -> Path:
    """A few Y4M frames (Chromium's fake camera plays them in a loop) showing the QR code."""
    out = io.BytesIO()
    segno.make(link, error="m").save(out, kind="png", scale=4, border=4)
    code = Image.open(io.BytesIO(out.getvalue())).convert("L")
    side = HEIGHT - 40  # as large as the frame allows, with a margin
    code = code.resize((side, side), Image.NEAREST)
    frame = Image.new("L", (WIDTH, HEIGHT), 255)
    frame.paste(code, ((WIDTH - side) // 2, (HEIGHT - side) // 2))
    luma = frame.tobytes()
    chroma = bytes([128]) * (WIDTH * HEIGHT // 4)  # grey: no colour
    with path.open("wb") as video:
        video.write(f"YUV4MPEG2 W{WIDTH} H{HEIGHT} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(10):
            video.write(b"FRAME\n" + luma + chroma + chroma)
    return path


def test_joining_by_scanning_the_invite_qr_code(peers, tmp_path) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    alice, bob = peers
    thread = alice.api.post("/api/v1/threads/", {"name": "Family", "app": "messaging"})["id"]
    video = qr_video(alice.invite(thread), tmp_path / "qr.y4m")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    camera = [
        "--use-fake-ui-for-media-stream",  # grant the camera without asking
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *camera]
        )
        try:
            person = claimed(browser, "bob", bob)
            page = person.page
            page.goto(person.url + "/node/threads/join/")
            scan = page.get_by_role("button", name="Scan a QR code")
            scan.wait_for()  # shown only where a camera can be used
            scan.click()
            # Joining lands in the conversation itself.
            page.wait_for_url(f"**/node/messages/{thread}/", timeout=30_000)
            assert not person.errors, person.errors
        finally:
            browser.close()
    joined = bob.api.get(f"/api/v1/threads/{thread}/")
    assert (joined["state"], joined["role"]) == ("active", "writer")
    wait_for(lambda: len(alice.api.get(f"/api/v1/threads/{thread}/members/")) == 2)
