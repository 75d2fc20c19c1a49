"""The installable app: web manifest, icons, service worker, offline page and vendored htmx."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client, override_settings
from django.urls import reverse
from PIL import Image

import sereus_web
from apps.website import views

pytestmark = pytest.mark.django_db

ROOT = Path(settings.BASE_DIR)
VENDOR = ROOT / "static" / "vendor" / "htmx"
BLUE = (29, 78, 216)


def static_path(url: str) -> Path:
    """The file a /static/ URL serves, found as the node finds it."""
    assert url.startswith(settings.STATIC_URL), url
    found = finders.find(url.removeprefix(settings.STATIC_URL))
    assert found, f"no static file for {url}"
    return Path(found)


def get_manifest(client: Client) -> dict:
    response = client.get(reverse("website:manifest"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/manifest+json"
    return json.loads(response.content)


def get_service_worker(client: Client) -> tuple[str, dict[str, object]]:
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] in ("application/javascript", "text/javascript")
    assert "no-cache" in response["Cache-Control"]
    script = response.content.decode()
    constants = {
        name: json.loads(value)
        for name, value in re.findall(r"^const ([A-Z_]+) = (.+);$", script, flags=re.MULTILINE)
    }
    return script, constants


# --- manifest -------------------------------------------------------------------------------


def test_manifest_has_what_chromium_needs_to_install(client: Client) -> None:
    manifest = get_manifest(client)
    assert manifest["name"] == "Sereus"
    assert manifest["short_name"] == "Sereus"
    assert manifest["description"]
    assert manifest["id"] == "/node/"
    assert manifest["start_url"] == "/node/"
    assert manifest["scope"] == "/"
    assert manifest["start_url"].startswith(manifest["scope"])
    assert manifest["display"] == "standalone"
    assert manifest["theme_color"] == "#1d4ed8"
    assert re.fullmatch(r"#[0-9a-f]{6}", manifest["background_color"])
    assert manifest.get("prefer_related_applications") is not True
    declared = {(icon["sizes"], icon["purpose"]) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any")} <= declared
    assert {("192x192", "maskable"), ("512x512", "maskable")} <= declared


def test_manifest_icons_are_pngs_of_their_declared_size(client: Client) -> None:
    for icon in get_manifest(client)["icons"]:
        assert icon["type"] == "image/png"
        width, height = (int(n) for n in icon["sizes"].split("x"))
        with Image.open(static_path(icon["src"])) as image:
            assert image.format == "PNG"
            assert image.size == (width, height)


def test_maskable_icons_keep_the_motif_in_the_safe_zone(client: Client) -> None:
    maskable = [icon for icon in get_manifest(client)["icons"] if icon["purpose"] == "maskable"]
    assert maskable
    for icon in maskable:
        with Image.open(static_path(icon["src"])) as image:
            rgba = image.convert("RGBA")
        size = rgba.width
        centre = (size - 1) / 2
        safe_radius = 0.4 * size  # the circle no launcher mask may cut into
        outside, inside_motif = [], 0
        for y in range(size):
            for x in range(size):
                r, g, b, a = rgba.getpixel((x, y))
                assert a == 255, "a maskable icon must be full-bleed, without transparency"
                off = max(abs(r - BLUE[0]), abs(g - BLUE[1]), abs(b - BLUE[2]))
                if math.hypot(x - centre, y - centre) > safe_radius:
                    outside.append(off)
                elif off > 60:
                    inside_motif += 1
        assert max(outside) <= 8, "the motif spills outside the safe zone"
        assert inside_motif > size * size * 0.05, "no motif inside the safe zone"


def test_any_icons_have_a_visible_motif(client: Client) -> None:
    for icon in get_manifest(client)["icons"]:
        with Image.open(static_path(icon["src"])) as image:
            colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None
        assert len(colours) > 20


# --- service worker -------------------------------------------------------------------------


def test_service_worker_is_served_at_the_root_uncached(client: Client) -> None:
    assert reverse("website:service_worker") == "/sw.js"
    get_service_worker(client)


def test_service_worker_cache_name_carries_version_and_static_hash(client: Client) -> None:
    _, constants = get_service_worker(client)
    expected = f"sereus-{sereus_web.__version__}-{views.static_fingerprint()}"
    assert constants["CACHE_NAME"] == expected
    assert str(constants["CACHE_NAME"]).startswith(constants["CACHE_PREFIX"])


def test_service_worker_precaches_the_app_shell(client: Client) -> None:
    _, constants = get_service_worker(client)
    precache = constants["PRECACHE_URLS"]
    assert isinstance(precache, list)
    required = [
        reverse("website:offline"),
        reverse("website:manifest"),
        *(settings.STATIC_URL + path for path in ("css/sereus.css", "js/sw-register.js")),
        *(settings.STATIC_URL + f"vendor/htmx/{path}" for path in ("htmx.min.js", "ext/ws.js")),
        *(icon["src"] for icon in get_manifest(client)["icons"]),
    ]
    for url in required:
        assert url in precache, url
    assert constants["OFFLINE_URL"] == reverse("website:offline")
    assert constants["STATIC_PREFIX"] == settings.STATIC_URL


def test_every_precached_url_answers(client: Client) -> None:
    _, constants = get_service_worker(client)
    for url in constants["PRECACHE_URLS"]:
        if url.startswith(settings.STATIC_URL):
            assert static_path(url).stat().st_size > 0
        else:
            # The worker fetches these without cookies: they must work for anyone.
            assert client.get(url).status_code == 200, url


def test_service_worker_never_caches_private_paths(client: Client) -> None:
    script, constants = get_service_worker(client)
    assert set(constants["NEVER_CACHE"]) >= {"/api/", "/admin/", "/claim/", "/ws/"}
    private = tuple(constants["NEVER_CACHE"])
    assert not [url for url in constants["PRECACHE_URLS"] if str(url).startswith(private)]
    # Old caches are dropped and open pages taken over on activation.
    assert "caches.delete" in script
    assert "clients.claim()" in script


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to parse JavaScript")
def test_service_worker_is_valid_javascript(client: Client, tmp_path: Path) -> None:
    script, _ = get_service_worker(client)
    path = tmp_path / "sw.js"
    path.write_text(script)
    result = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_static_fingerprint_is_computed_once() -> None:
    first = views.static_fingerprint()
    hits = views.static_fingerprint.cache_info().hits
    assert views.static_fingerprint() == first
    assert views.static_fingerprint.cache_info().hits == hits + 1


def test_static_fingerprint_follows_file_contents(tmp_path: Path) -> None:
    (tmp_path / "extra.css").write_text("body { color: black; }")
    with override_settings(STATICFILES_DIRS=[*settings.STATICFILES_DIRS, tmp_path]):
        before = views.static_fingerprint.__wrapped__()
        assert views.static_fingerprint.__wrapped__() == before
        (tmp_path / "extra.css").write_text("body { color: white; }")
        after = views.static_fingerprint.__wrapped__()
    assert after != before


def test_sw_register_reads_its_url_from_the_script_tag() -> None:
    source = Path(finders.find("js/sw-register.js")).read_text()
    assert "document.currentScript" in source
    assert "dataset.swUrl" in source
    assert '"serviceWorker" in navigator' in source
    assert 'scope: "/"' in source


def test_pages_register_the_service_worker(client: Client) -> None:
    html = client.get(reverse("website:home")).content.decode()
    assert 'data-sw-url="/sw.js"' in html
    assert reverse("website:manifest") in html


def test_offline_page_renders_for_anonymous_visitors(client: Client) -> None:
    response = client.get(reverse("website:offline"))
    assert response.status_code == 200
    assert "You're offline" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


# --- vendored htmx --------------------------------------------------------------------------


def test_vendored_htmx_matches_its_record() -> None:
    versions = (VENDOR / "VERSIONS").read_text()
    script = (ROOT / "scripts" / "vendor_js.sh").read_text()
    pinned = dict(re.findall(r'^(HTMX_\w+)="([^"]+)"$', script, flags=re.MULTILINE))
    assert pinned["HTMX_VERSION"].startswith("2.0.")
    assert pinned["HTMX_WS_VERSION"].startswith("2.")
    for key in ("HTMX_VERSION", "HTMX_INTEGRITY", "HTMX_WS_VERSION", "HTMX_WS_INTEGRITY"):
        assert pinned[key] in versions, key
    htmx = (VENDOR / "htmx.min.js").read_text()
    assert f'version:"{pinned["HTMX_VERSION"]}"' in htmx
    assert 'defineExtension("ws"' in (VENDOR / "ext" / "ws.js").read_text().replace("'", '"')
    assert "Zero-Clause BSD" in (VENDOR / "LICENSE").read_text()
    assert "BSD Zero Clause" in (VENDOR / "ext" / "LICENSE").read_text()


def test_service_worker_keeps_only_the_conversations_and_timelines_for_offline(
    client: Client,
) -> None:
    script, constants = get_service_worker(client)
    assert constants["KEPT_PREFIX"] == "/node/messages/"
    assert 1 <= constants["KEPT_PAGES"] <= 10
    patterns = [re.compile(p) for p in constants["READ_PATTERNS"]]  # type: ignore[attr-defined]
    thread, post = "ab" * 32, "cd" * 16
    for path in ("/node/feed/", f"/node/threads/{thread}/timeline/",
                 f"/node/threads/{thread}/timeline/p/{post}/"):  # fmt: skip
        assert any(p.match(path) for p in patterns), path
    for path in ("/node/feed/rules/", f"/node/threads/{thread}/", "/node/settings/",
                 f"/node/threads/{thread}/timeline/p/{post}/edit/"):  # fmt: skip
        assert not any(p.match(path) for p in patterns), path
    # Not kept: the other node pages, whatever is under a private prefix.
    assert not str(constants["KEPT_PREFIX"]).startswith(tuple(constants["NEVER_CACHE"]))
    assert "Clear-Site-Data" in script  # the header comment says how it is forgotten


def test_vendored_jsqr_matches_its_record() -> None:
    folder = ROOT / "static" / "vendor" / "jsqr"
    script = (ROOT / "scripts" / "vendor_js.sh").read_text()
    pinned = dict(re.findall(r'^(JSQR_\w+)="([^"]+)"$', script, flags=re.MULTILINE))
    versions = (folder / "VERSIONS").read_text()
    assert pinned["JSQR_VERSION"] in versions
    assert pinned["JSQR_INTEGRITY"] in versions
    assert "Apache License" in (folder / "LICENSE").read_text()
    assert "jsQR" in (folder / "jsQR.js").read_text()[:2000]
