"""Messaging between two real nodes (two ``runnode`` processes on 127.0.0.1) and a real browser
(Debian's Chromium, headless, driven by Playwright), with floors measured in the same run:

- send to visible: Alice sends a message through her API; Bob's conversation page, open in the
  browser on his node, shows it through its live socket. Time from Alice's POST response
  (``time.time()`` right after it) to the text in Bob's page DOM (a MutationObserver's
  timestamp, ``performance.timeOrigin + performance.now()``: the same wall clock). p50/p99 over
  500 messages sent one at a time, each after the page's socket has been quiet for
  ``QUIET_SECONDS`` (the socket coalesces renders: a message during the pause after a render
  waits for its end). Target (issue 20) p50 <= 20 ms. Floor: the same measure with Alice's own
  page on her own node (same HTTP, commit and live render, no network). Also reported: when the
  socket frame that brought the message reached the page (the rest is the page's swap) and its
  size, the POST's own time, and messages sent back to back (each as soon as the previous one
  showed), where the coalescing shows.
- a conversation of 10 000 messages (written with the node stopped, one op each): the first
  GET of its page after a restart and the following ones (the server time seen by an HTTP
  client with the owner's session), the page's load in the browser, and the node's RSS before
  and after. Floor: the same page of a 50-message conversation (one page). Pagination means the
  ratio should be near 1.
- attachment transfer: Bob sends a 50 MiB random file (multipart API); time from his POST
  response until Alice's node lists it ``complete`` (her client polls her API's message list,
  which is what asks her node to fetch the chunks over ``/sereus/blob/1.0.0``). Floor: the
  libp2p bulk floor, 50 MiB pushed over one stream between two processes with the node's own
  host configuration (TCP, Noise, Yamux), best of 3. Also reported: Alice's node opening
  (decrypting and serving) the same file to a local client.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bench.report import figure
from bench.stats import ms, percentiles
from tests.support.api import wait_for
from tests.support.nodes import REPO, manage
from tests.support.p2p import Peer

MiB = 1024 * 1024
MB = 1_000_000
LATENCY_TARGET_MS = 20
# Longer than the live socket's pause after a render (COALESCE_SECONDS, 0.25 s) plus a render:
# when nothing came for this long, the socket's renderer has stopped and the next change
# renders at once.
QUIET_SECONDS = 0.6
BULK_PROTOCOL = "/sereus-bench/bulk/1.0.0"
BULK_PIECE = MiB  # bytes per write: what one blob chunk is

# Runs in every page before its own scripts: counts the live socket's opens and renders, and
# records when a text first shows in the message list and when the socket frame that brought it
# arrived (epoch milliseconds, the page's clock).
INIT_SCRIPT = """
(() => {
  window.__live = {open: 0, renders: 0};
  document.addEventListener("htmx:wsOpen", () => { window.__live.open += 1; });
  document.addEventListener("htmx:wsAfterMessage", () => { window.__live.renders += 1; });
  window.__seen = {};
  window.__frames = {};  // when the socket frame that brought a watched text arrived
  window.__waiting = new Set();
  document.addEventListener("htmx:wsBeforeMessage", (e) => {
    const at = performance.timeOrigin + performance.now();
    for (const needle of window.__waiting) {
      if (e.detail.message.includes(needle)) {
        window.__frames[needle] = [at, e.detail.message.length];
        window.__waiting.delete(needle);
      }
    }
  });
  window.__watch = (needle) => {
    window.__waiting.add(needle);
    const check = () => {
      const list = document.querySelector("#messages");
      if (!(needle in window.__seen) && list && list.textContent.includes(needle)) {
        window.__seen[needle] = performance.timeOrigin + performance.now();
        observer.disconnect();
      }
    };
    const observer = new MutationObserver(check);
    const options = {subtree: true, childList: true, characterData: true};
    observer.observe(document.documentElement, options);
    check();
  };
})();
"""

NAVIGATION = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return {response: nav.responseEnd - nav.requestStart,
          dom_ready: nav.domContentLoadedEventEnd - nav.startTime,
          load: nav.loadEventEnd - nav.startTime};
}"""


def _mb(size: int) -> float:
    return round(size / MiB, 1)


# -- the browser --------------------------------------------------------------------------------


def _claimed(browser, peer: Peer, name: str):
    """A browser context of its own, logged in as the owner of ``peer`` (claiming the node with
    the link it printed logs in); returns (context, page)."""
    from tests.conftest import OWNER_PASSWORD

    context = browser.new_context()
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    page.set_default_timeout(30_000)
    assert peer.process.claim_url is not None, peer.process.log()
    page.goto(peer.process.claim_url)
    page.fill("#id_username", name)
    page.fill("#id_password1", OWNER_PASSWORD)
    page.fill("#id_password2", OWNER_PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    page.locator("ol.phrase li").first.wait_for()
    return context, page


def _open_live(page, url: str) -> None:
    """Open a conversation page and wait until its live socket is open and has rendered once
    (from then on every change reaches the page), then until it is quiet."""
    page.goto(url)
    page.wait_for_function("() => window.__live.open >= 1 && window.__live.renders >= 1")
    _quiet(page)


def _quiet(page, seconds: float = QUIET_SECONDS, timeout: float = 30.0) -> None:
    """Wait until the page's socket has rendered nothing for ``seconds``."""
    renders = page.evaluate("() => window.__live.renders")
    changed = started = time.monotonic()
    while time.monotonic() - changed < seconds and time.monotonic() - started < timeout:
        time.sleep(0.05)
        now = page.evaluate("() => window.__live.renders")
        if now != renders:
            renders, changed = now, time.monotonic()


def _clock_offset_ms(page) -> float:
    """The page's wall clock minus this process's (the evaluate's round trip halved out)."""
    offsets = []
    for _ in range(5):
        before = time.time() * 1000
        on_page = page.evaluate("() => performance.timeOrigin + performance.now()")
        after = time.time() * 1000
        offsets.append((after - before, on_page - (before + after) / 2))
    return round(min(offsets)[1], 2)  # the one with the shortest round trip


@dataclass
class Sent:
    """Per message, in seconds: from the POST's response to the message in the page's DOM
    (negative if the page showed it first), the POST itself, and from the POST's response to
    the arrival of the socket frame that brought it (the rest is the page's swap); and the
    frames' sizes in characters."""

    visible: list[float] = field(default_factory=list)
    post: list[float] = field(default_factory=list)
    frame: list[float] = field(default_factory=list)
    frame_chars: list[int] = field(default_factory=list)


def _send_to_visible(sender: Peer, thread: str, page, count: int, *, quiet: bool = True) -> Sent:
    """Send ``count`` messages through the sender's API, one at a time, each once the previous
    one showed in ``page`` (and, with ``quiet``, the page's socket has stopped rendering)."""
    assert sender.api is not None
    sent = Sent()
    for i in range(count):
        needle = f"bench-{uuid.uuid4().hex[:16]}"
        page.evaluate("(n) => window.__watch(n)", needle)
        started = time.perf_counter()
        sender.api.post(f"/api/v1/threads/{thread}/messages/", {"text": f"{needle} number {i}"})
        responded = time.time() * 1000
        sent.post.append(time.perf_counter() - started)
        page.wait_for_function("(n) => n in window.__seen", arg=needle, timeout=30_000)
        seen, frame = page.evaluate("(n) => [window.__seen[n], window.__frames[n]]", needle)
        sent.visible.append((seen - responded) / 1000)
        sent.frame.append(((frame[0] if frame else seen) - responded) / 1000)
        if frame:
            sent.frame_chars.append(frame[1])
        if quiet:
            _quiet(page)
    return sent


# -- pages of a big conversation ------------------------------------------------------------------


def _rss_mb(peer: Peer) -> float:
    """The node's resident memory (its process and any children), MiB."""
    assert peer.process.proc is not None
    process = psutil.Process(peer.process.proc.pid)
    total = process.memory_info().rss
    total += sum(child.memory_info().rss for child in process.children(recursive=True))
    return round(total / MiB, 1)


def _get(url: str, cookie: str) -> tuple[float, str]:
    # Always the node's own http:// address (``NodeProcess.url``).
    request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        body = response.read().decode()
    return time.perf_counter() - started, body


def _page_cost(peer: Peer, page, cookie: str, thread: str, gets: int) -> dict[str, Any]:
    """A conversation page: the first GET (its first render since the node started), then
    ``gets`` more, then its load in the browser; the node's RSS before and after."""
    url = f"{peer.process.url}/node/messages/{thread}/"
    rss_before = _rss_mb(peer)
    first, body = _get(url, cookie)
    shown = body.count('<li id="m-')
    samples = [_get(url, cookie)[0] for _ in range(gets)]
    loads = []
    for _ in range(3):
        page.goto(url)
        page.wait_for_load_state("load")
        loads.append(page.evaluate(NAVIGATION))
        page.goto("about:blank")
    rss_after = _rss_mb(peer)
    return {
        "shown": shown,
        "older_link": "Older messages" in body,
        "first_get_ms": ms(first),
        "get": percentiles(samples),
        "browser_response_ms": round(statistics.median(n["response"] for n in loads), 2),
        "browser_load_ms": round(statistics.median(n["load"] for n in loads), 2),
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
    }


def _ops(peer: Peer, thread: str) -> int:
    status = peer.network()
    return next((t["ops"] for t in status.get("threads", ()) if t["thread"] == thread), 0)


def _fill_offline(peer: Peer, threads: dict[str, int]) -> float:
    """Write the messages with the node stopped; seconds it took."""
    calls = "; ".join(f"messages_bulk('{thread}', {count})" for thread, count in threads.items())
    code = f"from tests.support.offline_messages import messages_bulk; {calls}"
    started = time.perf_counter()
    result = manage(peer.data_dir, "shell", "-v", "0", "-c", code, env=peer.env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return time.perf_counter() - started


# -- attachments --------------------------------------------------------------------------------


def _transfer(alice: Peer, bob: Peer, thread: str, size: int) -> dict[str, Any]:
    """Bob sends a ``size``-byte file; until Alice's node lists it complete; then Alice's node
    serves it to a local client."""
    from tests.support.attachments import download, upload

    assert alice.api is not None
    data = secrets.token_bytes(size)
    started = time.perf_counter()
    sent = upload(bob, thread, "a big file", [("bench.bin", data)])
    responded = time.perf_counter()
    attachment = sent["attachments"][0]["id"]

    def complete() -> dict | None:
        listed = alice.api.get(f"/api/v1/threads/{thread}/messages/")
        found = next((m for m in listed if m["id"] == sent["id"]), None)
        if found and found["attachments"] and all(a["complete"] for a in found["attachments"]):
            return found
        return None

    wait_for(complete, timeout=1800, interval=0.1, what="the attachment to reach Alice")
    arrived = time.perf_counter()
    opened = time.perf_counter()
    response = download(alice, thread, attachment)
    local = time.perf_counter() - opened
    assert response.status == 200, (response.status, response.body[:200])
    assert hashlib.sha256(response.body).digest() == hashlib.sha256(data).digest()
    return {
        "upload_s": round(responded - started, 3),
        "transfer_s": round(arrived - responded, 3),
        "local_open_s": round(local, 3),
    }


async def _push(rogue, peer_id: str, size: int) -> float:
    """In the rogue's trio thread: ``size`` bytes over one new stream to the sink, until the
    sink says it has them all; seconds."""
    import trio
    from libp2p.custom_types import TProtocol
    from libp2p.peer.id import ID

    stream = await rogue.host.new_stream(ID.from_base58(peer_id), [TProtocol(BULK_PROTOCOL)])
    piece = os.urandom(BULK_PIECE)
    try:
        started = time.perf_counter()
        await stream.write(size.to_bytes(8, "big"))
        sent = 0
        while sent < size:
            step = min(BULK_PIECE, size - sent)
            await stream.write(piece[:step])
            sent += step
        ack = b""
        with trio.fail_after(600):
            while len(ack) < 8:
                got = await stream.read(8 - len(ack))
                if not got:
                    raise RuntimeError("the sink closed the stream")
                ack += got
        elapsed = time.perf_counter() - started
    finally:
        await stream.close()
    assert int.from_bytes(ack, "big") == size
    return elapsed


def _bulk_floor(size: int, rounds: int) -> list[float]:
    """Seconds to push ``size`` bytes over libp2p from this process to a sink process."""
    from tests.support.rogue import RoguePeer

    sink = subprocess.Popen(
        [sys.executable, "-m", "bench.messaging", "sink"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        info = json.loads(sink.stdout.readline())
        rogue = RoguePeer().start()
        try:
            rogue.call(rogue.connect, info["peer_id"], info["addrs"])
            return [
                rogue.call(_push, rogue, info["peer_id"], size, timeout=900) for _ in range(rounds)
            ]
        finally:
            rogue.stop()
    finally:
        sink.terminate()
        sink.wait(10)


def _sink() -> None:
    """``python -m bench.messaging sink``: a libp2p host (the node's configuration) that reads
    what each bulk stream sends (an 8-byte length, then that many bytes) and answers the count.
    Prints its peer id and addresses as one JSON line."""
    import multiaddr
    import nacl.signing
    import trio
    from libp2p.custom_types import TProtocol

    from apps.p2p.host import host_build, quiet_libp2p_logs

    quiet_libp2p_logs()

    async def read_exactly(stream, size: int) -> bytes:
        data = b""
        while len(data) < size:
            got = await stream.read(min(BULK_PIECE, size - len(data)))
            if not got:
                break
            data += got
        return data

    async def handle(stream) -> None:
        size = int.from_bytes(await read_exactly(stream, 8), "big")
        received = 0
        while received < size:
            got = await stream.read(min(BULK_PIECE, size - received))
            if not got:
                break
            received += len(got)
        await stream.write(received.to_bytes(8, "big"))
        await stream.close()

    async def serve() -> None:
        host = host_build(nacl.signing.SigningKey.generate())
        host.set_stream_handler(TProtocol(BULK_PROTOCOL), handle)
        async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            addrs = [str(a).split("/p2p/")[0] for a in host.get_addrs()]
            print(json.dumps({"peer_id": host.get_id().to_base58(), "addrs": addrs}), flush=True)
            await trio.sleep_forever()

    trio.run(serve)


# -- the benchmark --------------------------------------------------------------------------------


def run(*, quick: bool = False) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.browser.test_pwa_browser import CHROMIUM, CHROMIUM_ARGS
    from tests.support.messaging import conversation_create

    count = 50 if quick else 500
    back_to_back = 20 if quick else 100
    file_size = (10 if quick else 50) * MiB
    big, small = 10_000, 50
    gets = 10 if quick else 30

    # Playwright must not look for (or download) a browser of its own.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-messaging-"))
    alice = Peer(folder / "alice")
    bob = Peer(folder / "bob")
    result: dict[str, Any] = {}
    try:
        with ThreadPoolExecutor(2) as pool:  # each start waits for its own p2p host
            for future in [pool.submit(alice.start), pool.submit(bob.start)]:
                future.result()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            try:
                alice_context, alice_page = _claimed(browser, alice, "alice")
                _, bob_page = _claimed(browser, bob, "bob")
                thread = conversation_create(alice, "bench")
                bob.redeem(alice.invite(thread, "writer"))
                page_path = f"/node/messages/{thread}/"

                # The floor: Alice's own page on her node, her own messages.
                _open_live(alice_page, alice.process.url + page_path)
                _send_to_visible(alice, thread, alice_page, 10)  # warm-up
                offsets = [_clock_offset_ms(alice_page)]
                local = _send_to_visible(alice, thread, alice_page, count)
                offsets.append(_clock_offset_ms(alice_page))
                alice_page.goto("about:blank")

                # Bob's page on his node, Alice's messages.
                _open_live(bob_page, bob.process.url + page_path)
                _send_to_visible(alice, thread, bob_page, 10)
                offsets.append(_clock_offset_ms(bob_page))
                remote = _send_to_visible(alice, thread, bob_page, count)
                offsets.append(_clock_offset_ms(bob_page))
                _quiet(bob_page)
                burst = _send_to_visible(alice, thread, bob_page, back_to_back, quiet=False)
                bob_page.goto("about:blank")

                result["send_to_visible"] = {
                    "messages": count,
                    "gap_quiet_s": QUIET_SECONDS,
                    "remote": percentiles(remote.visible),
                    "local_floor": percentiles(local.visible),
                    "ratio_p50": round(
                        statistics.median(remote.visible) / statistics.median(local.visible), 2
                    ),
                    "back_to_back": {"messages": back_to_back, **percentiles(burst.visible)},
                    "post": percentiles(local.post + remote.post),
                    "remote_frame": percentiles(remote.frame),
                    "local_floor_frame": percentiles(local.frame),
                    "frame_chars_p50": round(
                        statistics.median(local.frame_chars + remote.frame_chars)
                    ),
                    "clock_offset_ms": offsets,
                }
                s = result["send_to_visible"]
                s["figure"] = figure(
                    f"messaging send to visible in the other browser, p50 over {count}",
                    s["remote"]["p50_ms"],
                    "ms",
                    target=LATENCY_TARGET_MS,
                    higher=False,
                    floor=f"Alice's own page p50 {s['local_floor']['p50_ms']} ms; p99 "
                    f"{s['remote']['p99_ms']} ms; the POST p50 {s['post']['p50_ms']} ms",
                )
                print(
                    f"   send to visible over {count} messages, Alice's API to Bob's page: p50 "
                    f"{s['remote']['p50_ms']} ms, p99 {s['remote']['p99_ms']} ms (target p50 "
                    f"{LATENCY_TARGET_MS}); floor, Alice's API to her own page: p50 "
                    f"{s['local_floor']['p50_ms']} ms, p99 {s['local_floor']['p99_ms']} ms; "
                    f"ratio p50 {s['ratio_p50']}x; back to back ({back_to_back} messages, no "
                    f"pause): p50 {s['back_to_back']['p50_ms']} ms, p99 "
                    f"{s['back_to_back']['p99_ms']} ms; the socket frame reached the page at p50 "
                    f"{s['remote_frame']['p50_ms']} ms (Bob) and {s['local_floor_frame']['p50_ms']}"
                    f" ms (Alice's own), frames of {s['frame_chars_p50']} characters; the POST "
                    f"itself: p50 {s['post']['p50_ms']} ms; page "
                    f"clock - bench clock "
                    f"{min(offsets)}..{max(offsets)} ms",
                    flush=True,
                )

                # Attachments: Bob's file to Alice's node, against the libp2p bulk floor.
                transfer = _transfer(alice, bob, thread, file_size)
                floors = _bulk_floor(file_size, 3)
                rate = file_size / MB / transfer["transfer_s"]
                floor = file_size / MB / min(floors)
                local_rate = file_size / MB / transfer["local_open_s"]
                result["attachment"] = {
                    "bytes": file_size,
                    **transfer,
                    "mb_per_s": round(rate, 1),
                    "baseline": "libp2p bulk floor: one stream between two processes, best of 3",
                    "libp2p_floor_s": [round(f, 3) for f in floors],
                    "libp2p_floor_mb_per_s": round(floor, 1),
                    "of_floor": round(rate / floor, 3),
                    "local_open_mb_per_s": round(local_rate, 1),
                }
                a = result["attachment"]
                a["figure"] = figure(
                    f"attachment of {_mb(file_size)} MiB to the other node",
                    a["mb_per_s"],
                    "MB/s",
                    floor=f"libp2p bulk floor {a['libp2p_floor_mb_per_s']} MB/s "
                    f"({a['of_floor']:.0%} of it)",
                )
                print(
                    f"   attachment of {_mb(file_size)} MiB, Bob's POST response (upload "
                    f"{a['upload_s']} s) to complete on Alice: {a['transfer_s']} s, "
                    f"{a['mb_per_s']} MB/s; baseline, libp2p bulk floor (one stream between "
                    f"two processes, best of 3): {a['libp2p_floor_mb_per_s']} MB/s, so "
                    f"{a['of_floor']:.0%} of it; Alice's node opening it locally: "
                    f"{a['local_open_s']} s, {a['local_open_mb_per_s']} MB/s",
                    flush=True,
                )

                # A conversation of 10 000 messages against one of 50, on Alice's node.
                threads = {
                    conversation_create(alice, "big"): big,
                    conversation_create(alice, "small"): small,
                }
                cookie = "; ".join(f"{c['name']}={c['value']}" for c in alice_context.cookies())
                bob.stop()
                alice.stop()
                fill = _fill_offline(alice, threads)
                alice.start()
                for name, n in threads.items():
                    wait_for(lambda t=name, n=n: _ops(alice, t) >= n, timeout=600, what="load")
                big_thread, small_thread = list(threads)
                # Whatever any first page costs (templates, the session), not one of these.
                _get(f"{alice.process.url}{page_path}", cookie)
                in_small = _page_cost(alice, alice_page, cookie, small_thread, gets)
                in_big = _page_cost(alice, alice_page, cookie, big_thread, gets)
                assert in_small["shown"] == in_big["shown"] == small, (in_small, in_big)
                assert in_big["older_link"]
                result["big_conversation"] = {
                    "messages": big,
                    "baseline_messages": small,
                    "fill_s": round(fill, 1),
                    "big": in_big,
                    "small": in_small,
                    "ratio_first_get": round(in_big["first_get_ms"] / in_small["first_get_ms"], 2),
                    "ratio_get_p50": round(in_big["get"]["p50_ms"] / in_small["get"]["p50_ms"], 2),
                    "ratio_browser_load": round(
                        in_big["browser_load_ms"] / in_small["browser_load_ms"], 2
                    ),
                }
                c = result["big_conversation"]
                c["figure"] = figure(
                    f"conversation page GET, {big} messages, p50",
                    in_big["get"]["p50_ms"],
                    "ms",
                    floor=f"{small} messages {in_small['get']['p50_ms']} ms "
                    f"({c['ratio_get_p50']}x)",
                )
                print(
                    f"   conversation page, {big} vs {small} messages: first GET "
                    f"{in_big['first_get_ms']} vs {in_small['first_get_ms']} ms "
                    f"({c['ratio_first_get']}x), then p50 {in_big['get']['p50_ms']} vs "
                    f"{in_small['get']['p50_ms']} ms ({c['ratio_get_p50']}x, p99 "
                    f"{in_big['get']['p99_ms']} vs {in_small['get']['p99_ms']} ms); browser load "
                    f"{in_big['browser_load_ms']} vs {in_small['browser_load_ms']} ms "
                    f"({c['ratio_browser_load']}x); node RSS {in_small['rss_before_mb']} MiB "
                    f"before, {in_small['rss_after_mb']} after the small page, "
                    f"{in_big['rss_after_mb']} after the big one (filled offline in "
                    f"{c['fill_s']} s)",
                    flush=True,
                )
            finally:
                browser.close()
    finally:
        for peer in (alice, bob):
            if peer.process.proc is not None and peer.process.proc.poll() is None:
                peer.stop()
        shutil.rmtree(folder, ignore_errors=True)  # the files and chunks: over 100 MiB
    return result


if __name__ == "__main__":
    if sys.argv[1:] == ["sink"]:
        _sink()
