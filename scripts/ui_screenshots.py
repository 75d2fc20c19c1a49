"""Screenshots of the design system's components for docs/ui.md.

Starts a throwaway node (its own temporary data dir, 127.0.0.1 only), claims it in headless
Chromium (Debian's, through Playwright), opens the component gallery (Settings > How the pages
look, /node/settings/ui/: one ``section.gallery-item`` per component, its id the component's
name) and writes ``docs/ui/<component>.png`` for each: the component's sample cropped out of the
page in light mode (left) and dark mode (right), side by side, reduced to a 256-colour palette.

    .venv/bin/python scripts/ui_screenshots.py [--width 480]

Run it again when a component changes, and commit the PNGs it wrote (it removes none: delete a
component's PNG by hand when the gallery drops it).
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.nodes import NodeProcess  # noqa: E402 - after the repo is on the path

CHROMIUM = Path("/usr/bin/chromium")
# As the browser tests run it: no calls to Google's services from this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
]
OUT = REPO / "docs" / "ui"
GALLERY = "/node/settings/ui/"
GAP = 16  # pixels between the light and the dark picture


def _claim(browser, node: NodeProcess) -> dict:
    """Claim the node in a context of its own; the logged-in session to reuse."""
    context = browser.new_context(service_workers="block")
    page = context.new_page()
    assert node.claim_url is not None, node.log()
    password = secrets.token_urlsafe(24)
    page.goto(node.claim_url)
    page.fill("#id_username", "owner")
    page.fill("#id_password1", password)
    page.fill("#id_password2", password)
    with page.expect_navigation():
        page.get_by_role("button", name="Create my account").click()
    state = context.storage_state()
    context.close()
    return state


def _shots(browser, node: NodeProcess, session: dict, scheme: str, width: int) -> dict:
    """Each component's sample as PNG bytes, by the component's id, in one colour scheme."""
    context = browser.new_context(
        storage_state=session,
        viewport={"width": width, "height": 900},
        color_scheme=scheme,
        service_workers="block",
    )
    page = context.new_page()
    response = page.goto(node.url + GALLERY)
    if response is None or response.status != 200:
        raise SystemExit(f"the gallery at {GALLERY} answered {response and response.status}")
    shots = {}
    for section in page.locator("section.gallery-item[id]").all():
        name = section.get_attribute("id")
        sample = section.locator(".gallery-sample").first
        # Animations run as they would (finishing them would fade the good-news toast out).
        shots[name] = sample.screenshot(caret="hide")
    context.close()
    return shots


def _side_by_side(light: bytes, dark: bytes) -> Image.Image:
    left, right = Image.open(io.BytesIO(light)), Image.open(io.BytesIO(dark))
    height = max(left.height, right.height)
    both = Image.new("RGB", (left.width + GAP + right.width, height), "white")
    both.paste(left, (0, 0))
    both.paste(right, (left.width + GAP, 0))
    return both


def _save(image: Image.Image, path: Path) -> int:
    """Write ``image`` as a small PNG (a 256-colour palette: flat UI colours survive it)."""
    small = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=480, help="the page's width in CSS pixels")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")  # never its own browser
    with tempfile.TemporaryDirectory(prefix="sereus-ui-") as folder:
        node = NodeProcess(Path(folder) / "node").start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                session = _claim(browser, node)
                light = _shots(browser, node, session, "light", args.width)
                dark = _shots(browser, node, session, "dark", args.width)
                browser.close()
        finally:
            node.stop()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, shot in light.items():
        path = OUT / f"{name}.png"
        size = _save(_side_by_side(shot, dark[name]), path)
        print(f"{path.relative_to(REPO)}: {size // 1024} KiB")


if __name__ == "__main__":
    main()
