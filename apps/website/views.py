"""Views of the public website and of the PWA files. All are public: no login, no private data.

The pages are static prose in templates; the only data here is the list of example uses (for the
index, the per-use pages and their 404, each "available now" exactly when this node has the app
that does it) and what the manifest and the service worker need.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps as django_apps
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles import finders
from django.core.files.storage import Storage
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.views.decorators.http import require_safe
from django.views.generic import TemplateView

import sereus_web


@dataclass(frozen=True)
class Use:
    """One example use of Sereus Fabric; its page is ``website/uses/<slug>.html``. ``app`` is the
    label of the Django app that does it: the site calls the use available only while that app
    is installed, so it stays true as apps land (and if one is taken out)."""

    slug: str
    title: str
    summary: str
    replaces: str
    app: str

    @property
    def available(self) -> bool:
        return app_installed(self.app)


def app_installed(label: str) -> bool:
    return any(config.label == label for config in django_apps.get_app_configs())


USES: dict[str, Use] = {
    use.slug: use
    for use in (
        Use(
            "secure-messaging",
            "Secure messaging",
            "One-to-one and group chats where the conversation lives on the members' own devices.",
            "messenger apps run by one company",
            "messaging",
        ),
        Use(
            "social-media",
            "Social media",
            "Publish to the people who chose to follow you, and read your feed in the order you "
            "pick.",
            "ad-funded timelines and their ranking algorithms",
            "timeline",
        ),
        Use(
            "classifieds",
            "Classifieds and e-commerce",
            "List things for sale, make offers and settle with escrow and shipping, without a "
            "marketplace taking a cut.",
            "online marketplaces and auction sites",
            "market",
        ),
        Use(
            "distributed-storage",
            "Distributed storage",
            "Keep encrypted copies of your files on your own machines and on those of people you "
            "trust.",
            "cloud backup and file-sharing services",
            "storage",
        ),
        Use(
            "medical-records",
            "Medical records",
            "A health record the patient holds, with access for care providers granted by a QR "
            "code and revoked at any time.",
            "patient portals, one per clinic",
            "medical",
        ),
        Use(
            "community-voting",
            "Community voting",
            "Polls and elections where every member's node checks one ballot per voter and "
            "counts the result itself.",
            "poll websites and trusted vote counters",
            "voting",
        ),
        Use(
            "digital-currency",
            "Digital currency",
            "Credit between people who trust each other, kept as two-party tallies both sides "
            "sign.",
            "banks and payment platforms",
            "ledger",
        ),
    )
}

# Static files the service worker stores at install, so the offline page has its look and icons.
PRECACHE_STATIC = (
    "css/sereus.css",
    "css/website.css",
    "vendor/htmx/htmx.min.js",
    "vendor/htmx/ext/ws.js",
    "js/sw-register.js",
    "js/ui.js",
    "icons/icon-192.png",
    "icons/icon-512.png",
    "icons/maskable-192.png",
    "icons/maskable-512.png",
)
# Paths whose responses the service worker never stores: private, one-time or live.
NEVER_CACHE = ("/api/", "/admin/", "/claim/", "/ws/")
# The conversation list and the last few conversations stay readable offline (cleared on logout).
KEPT_PAGES = 6
# Where the installed app opens: the node's dashboard (the login page when logged out).
APP_START_URL = "/node/"
THEME_COLOR = "#1d4ed8"
BACKGROUND_COLOR = "#f8fafc"  # the page background of sereus.css, shown while the app starts
ICON_SIZES = (192, 512)
# Files that static finders skip, like collectstatic's defaults.
STATIC_IGNORE = ["CVS", ".*", "*~"]


def public_page(template_name: str) -> Callable[..., HttpResponse]:
    return login_not_required(TemplateView.as_view(template_name=template_name))


threads = public_page("website/threads.html")
run = public_page("website/run.html")
api = public_page("website/api.html")
offline = public_page("website/offline.html")


def _status() -> dict:
    """What the pages say works: the uses whose app this node has, and those still planned."""
    return {
        "available": [use for use in USES.values() if use.available],
        "planned": [use for use in USES.values() if not use.available],
        "checklist": app_installed("checklist"),
    }


@login_not_required
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "website/home.html", _status())


@login_not_required
@require_safe
def uses(request: HttpRequest) -> HttpResponse:
    return render(request, "website/uses.html", {"uses": USES.values()})


@login_not_required
@require_safe
def use(request: HttpRequest, slug: str) -> HttpResponse:
    # Only known slugs reach the template name, so a URL can never pick another template.
    item = USES.get(slug)
    if item is None:
        raise Http404("No such use.")
    others = [other for other in USES.values() if other.slug != slug]
    return render(request, f"website/uses/{slug}.html", {"use": item, "others": others})


@login_not_required
@require_safe
def manifest(request: HttpRequest) -> JsonResponse:
    """The web app manifest: what a browser needs to install the node as an app."""
    icons = [
        {
            "src": static(f"icons/{prefix}-{size}.png"),
            "sizes": f"{size}x{size}",
            "type": "image/png",
            "purpose": purpose,
        }
        for prefix, purpose in (("icon", "any"), ("maskable", "maskable"))
        for size in ICON_SIZES
    ]
    data = {
        "name": "Sereus",
        "short_name": "Sereus",
        "description": "Your Sereus node: invite-only threads with the people you choose, "
        "kept on your own devices.",
        "id": APP_START_URL,
        "start_url": APP_START_URL,
        "scope": "/",
        "display": "standalone",
        "background_color": BACKGROUND_COLOR,
        "theme_color": THEME_COLOR,
        "lang": "en",
        "icons": icons,
    }
    return JsonResponse(data, content_type="application/manifest+json")


@functools.cache
def static_fingerprint() -> str:
    """A short hash of every static file this node serves, computed once per process.

    The service worker keeps any file it fetches under /static/, so all of them count: when an
    upgrade (or an edit, in development) changes one, the cache name changes and the new service
    worker replaces the whole cache instead of serving a stale copy.
    """
    files: dict[str, Storage] = {}
    for finder in finders.get_finders():
        for path, storage in finder.list(STATIC_IGNORE):
            files.setdefault(path, storage)  # the first finder wins, as when serving
    digest = hashlib.blake2b(digest_size=5)
    for path in sorted(files):
        digest.update(path.encode() + b"\0")
        with files[path].open(path) as f:
            digest.update(hashlib.blake2b(f.read()).digest())
    return digest.hexdigest()


def precache_urls() -> list[str]:
    """The app shell the service worker stores at install."""
    pages = [reverse("website:offline"), reverse("website:manifest")]
    return pages + [static(path) for path in PRECACHE_STATIC]


# Reading pages kept for offline reading too (no query string: not an older page or a form):
# the feed, a timeline and a post with its replies.
READ_PATTERNS = [
    r"^/node/feed/$",
    r"^/node/threads/[0-9a-f]{64}/timeline/(p/[0-9a-f]{32}/)?$",
]


@login_not_required
@require_safe
def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker script, at the site root so that its scope covers every page."""
    cache_name = f"sereus-{sereus_web.__version__}-{static_fingerprint()}"
    context = {
        # JSON literals are valid JavaScript; the template inserts them unescaped.
        "cache_name": json.dumps(cache_name),
        "precache": json.dumps(precache_urls()),
        "offline_url": json.dumps(reverse("website:offline")),
        "static_prefix": json.dumps(settings.STATIC_URL),
        "never_cache": json.dumps(list(NEVER_CACHE)),
        "kept_prefix": json.dumps(reverse("messaging:list")),
        "kept_pages": json.dumps(KEPT_PAGES),
        "read_patterns": json.dumps(READ_PATTERNS if app_installed("timeline") else []),
    }
    # Rendered without the request: no context processors, nothing user-specific in the script.
    body = render_to_string("website/sw.js", context)
    response = HttpResponse(body, content_type="application/javascript; charset=utf-8")
    # The browser checks for a new worker on each visit; no-cache makes it ask the node each time.
    response["Cache-Control"] = "no-cache"
    return response
