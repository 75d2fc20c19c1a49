"""The public blog at ``/blog/``: the only pages of the node anyone may read without logging in.

Each view answers only what ``selectors.public_posts`` / ``public_post`` return (public, live
posts of the timelines this node owns) and 404 for anything else; the rendering is ``blog.py``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_safe

from apps.core.blobs import BlobError
from apps.core.threads import naming
from apps.timeline import blog, blog_covers, selectors
from apps.timeline.post import PostView

# Readers and feed pollers may keep a copy for a few minutes: a new post shows up soon enough,
# and a busy feed reader does not make the node render the feed on every poll.
CACHE_SECONDS = 300


def blog_identity() -> dict[str, str]:
    """The blog's title and author, from the name the node's person goes by."""
    name = naming.display_name()
    return {"title": f"{name}'s blog" if name else "Blog", "author": name or "Anonymous"}


def configured_base_url() -> str | None:
    """The blog's address on the node's own domain (SEREUS_DOMAIN), if one is set."""
    domain = settings.SEREUS.domain
    return f"https://{domain}/blog/" if domain else None


def _identity(request: HttpRequest) -> dict[str, str]:
    # The configured domain keeps the feed's ids the same however the node was reached.
    base_url = configured_base_url() or request.build_absolute_uri(reverse("blog:index"))
    return {"base_url": base_url, **blog_identity()}


def public(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous GET/HEAD only, with the blog's cache headers."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        patch_cache_control(response, public=True, max_age=CACHE_SECONDS)
        return response

    return login_not_required(require_safe(wrapper))


@public
def index(request: HttpRequest) -> HttpResponse:
    html = blog.blog_index_html(selectors.public_posts(), **_identity(request))
    return HttpResponse(html)


def _page_post(slug: str) -> PostView:
    found = selectors.public_post(slug)
    if found is None or not blog.publishable([found]) or not blog.has_page(found):
        raise Http404("There is no public post at this address.")
    return found


@public
def post(request: HttpRequest, slug: str) -> HttpResponse:
    found = _page_post(slug)
    cover = blog_covers.cover_of(found)
    html = blog.blog_post_html(found, **_identity(request), cover=cover.name if cover else None)
    return HttpResponse(html)


@public
def cover(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    found = blog_covers.cover_of(_page_post(slug))
    if found is None or found.name != name:
        raise Http404("This post has no such picture.")
    try:
        data = blog_covers.cover_bytes(found)
    except BlobError as error:
        raise Http404("This picture cannot be opened here.") from error
    response = HttpResponse(data, content_type=found.mime)
    # The bytes are what the author uploaded: never sniffed, never run.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@public
def feed(request: HttpRequest) -> HttpResponse:
    body = blog.atom_feed(selectors.public_posts(), **_identity(request))
    return HttpResponse(body, content_type="application/atom+xml; charset=utf-8")


@public
def stylesheet(request: HttpRequest) -> HttpResponse:
    return HttpResponse(blog.blog_css(), content_type="text/css; charset=utf-8")
