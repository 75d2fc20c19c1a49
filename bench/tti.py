"""Time to interactive of the node's pages in a real browser (Debian's Chromium, headless, driven
by Playwright) against one node process on 127.0.0.1, as ratios to the public home page measured
in the same run.

Time to interactive (TTI), as measured here: from the navigation's start (``performance``'s time
origin, when the browser begins to fetch the page) to the first moment at which

1. the document is parsed and its scripts have run: ``DOMContentLoaded`` has been handled (the
   node's pages load their scripts with ``defer``, and deferred scripts run before that event),
2. and the page's main control is on screen and enabled: the composer's text box on a page that
   has one (a conversation), otherwise the first link or button in ``<main>`` (Home's first
   action, the public home page's first link).

Whatever comes later and is not needed to start using the page (images, the live socket, the
service worker) is not waited for; when the live socket opened is reported beside it. The
browser keeps its HTTP cache between visits (a person coming back to the page): each page is
opened once to warm up, then ``runs`` times, the three pages in turn so that noise falls on all.

Pages: the public home page (the baseline: one template, no database), Home (the person's
activity across threads) and a conversation of 10 000 messages (written with the node stopped,
one op each, like ``bench.messaging``). Reported: the median TTI of each and its ratio to the
baseline's, and the medians of the parts: the page's last byte (the server's share),
``DOMContentLoaded`` and the live socket's opening.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.messaging import _claimed, _fill_offline, _ops
from tests.support.api import wait_for
from tests.support.p2p import Peer

# Runs in every page before its own scripts: records (milliseconds since the navigation began)
# when the page's last byte arrived, when DOMContentLoaded was handled, when the main control
# was first usable after it, and when the live socket opened.
INIT_SCRIPT = """
(() => {
  const tti = window.__tti = {response: null, dcl: null, usable: null, live: null};
  const control = () => document.querySelector("main textarea[name=text]")
    || document.querySelector("main a[href], main button");
  const usable = (el) => el && !el.disabled && el.checkVisibility({visibilityProperty: true});
  let observer = null;
  const check = () => {
    if (tti.usable === null && usable(control())) {
      tti.usable = performance.now();
      if (observer) observer.disconnect();
    }
  };
  document.addEventListener("htmx:wsOpen", () => {
    if (tti.live === null) tti.live = performance.now();
  });
  // Registered now, before any script of the page: the page's own DOMContentLoaded handlers
  // run after this one, so the check waits for them with a task of its own.
  document.addEventListener("DOMContentLoaded", () => {
    setTimeout(() => {
      const navigation = performance.getEntriesByType("navigation")[0];
      tti.response = navigation.responseEnd;
      tti.dcl = navigation.domContentLoadedEventEnd;
      check();
      if (tti.usable === null) {
        observer = new MutationObserver(check);
        observer.observe(document.documentElement,
          {subtree: true, childList: true, attributes: true});
      }
    });
  });
})();
"""


def _visit(page, url: str, *, live: bool) -> dict[str, float]:
    """One visit: the TTI and its parts, milliseconds since the navigation began."""
    page.goto(url, wait_until="commit")
    page.wait_for_function("() => window.__tti && window.__tti.usable !== null", timeout=60_000)
    if live:
        page.wait_for_function("() => window.__tti.live !== null", timeout=60_000)
    found = page.evaluate("() => window.__tti")
    page.goto("about:blank")
    return {
        "tti": found["usable"],
        "response": found["response"],
        "dcl": found["dcl"],
        "live": found["live"],
    }


def _summary(visits: list[dict[str, float]]) -> dict[str, Any]:
    def median(key: str) -> float | None:
        values = [v[key] for v in visits if v[key] is not None]
        return round(statistics.median(values), 1) if values else None

    return {
        "tti_ms": median("tti"),
        "response_end_ms": median("response"),
        "dom_content_loaded_ms": median("dcl"),
        "live_socket_ms": median("live"),
        "tti_all_ms": [round(v["tti"], 1) for v in visits],
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.browser.test_pwa_browser import CHROMIUM, CHROMIUM_ARGS
    from tests.support.messaging import conversation_create

    runs = 5 if quick else 25
    messages = 10_000

    # Playwright must not look for (or download) a browser of its own.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-tti-"))
    alice = Peer(folder / "alice")
    try:
        alice.start()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                claim_context, _ = _claimed(browser, alice, "alice")
                storage = claim_context.storage_state()
                claim_context.close()
                thread = conversation_create(alice, "big")
                alice.stop()
                fill = _fill_offline(alice, {thread: messages})
                alice.start()
                wait_for(lambda: _ops(alice, thread) >= messages, timeout=600, what="load")

                context = browser.new_context(storage_state=storage, service_workers="block")
                context.add_init_script(INIT_SCRIPT)
                page = context.new_page()
                base = alice.process.url
                pages = {
                    "public_home": (f"{base}/", False),
                    "home": (f"{base}/node/", False),
                    "conversation": (f"{base}/node/messages/{thread}/", True),
                }
                visits: dict[str, list[dict[str, float]]] = {name: [] for name in pages}
                for url, live in pages.values():  # warm-up: caches, templates
                    _visit(page, url, live=live)
                started = time.perf_counter()
                for _ in range(runs):
                    for name, (url, live) in pages.items():
                        visits[name].append(_visit(page, url, live=live))
                elapsed = time.perf_counter() - started
            finally:
                browser.close()
    finally:
        if alice.process.proc is not None and alice.process.proc.poll() is None:
            alice.stop()
        shutil.rmtree(folder, ignore_errors=True)

    result: dict[str, Any] = {
        "runs": runs,
        "messages": messages,
        "fill_s": round(fill, 1),
        "measure_s": round(elapsed, 1),
        **{name: _summary(v) for name, v in visits.items()},
    }
    floor = result["public_home"]["tti_ms"]
    for name in ("home", "conversation"):
        result[name]["ratio_to_public_home"] = round(result[name]["tti_ms"] / floor, 2)
    h, c = result["home"], result["conversation"]
    print(
        f"   time to interactive, median of {runs}: public home page (baseline) {floor} ms; "
        f"Home {h['tti_ms']} ms ({h['ratio_to_public_home']}x); a conversation of {messages} "
        f"messages {c['tti_ms']} ms ({c['ratio_to_public_home']}x: last byte at "
        f"{c['response_end_ms']} ms, DOMContentLoaded {c['dom_content_loaded_ms']} ms, live "
        f"socket open at {c['live_socket_ms']} ms; the baseline's last byte at "
        f"{result['public_home']['response_end_ms']} ms)",
        flush=True,
    )
    return result
