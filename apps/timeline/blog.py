"""The public blog: its HTML pages and Atom feed (RFC 4287), rendered from plain ``PostView``s.

Nothing here reads the database: the views and ``manage.py blog_export`` pass the posts in. The
same bytes are served at ``/blog/`` and written by the export, so the pages link to each other
and to their stylesheet and feed by relative URLs (they work from any folder); only the feed,
whose ids and links must be absolute, needs ``base_url``.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.template import Context, Engine
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.text import Truncator
from feedgen.feed import FeedGenerator

from apps.timeline.post import LONG, PostView

# An engine of its own: the pages do not depend on the site's template settings or context
# processors (nothing about the node or the visitor can slip into a public page), and the export
# renders them outside any request.
_ENGINE = Engine(dirs=[str(Path(__file__).parent / "templates")])
_TEMPLATES = "timeline/blog/"

# A slug becomes a folder name in the export and a URL part: letters, digits, "-" and "_" only.
SLUG_RE = re.compile(r"^[A-Za-z0-9_-]+$")
FEED_ENTRIES = 50  # readers poll the feed; the newest posts are enough
SUMMARY_WORDS = 40
SHORT_TITLE_CHARS = 80
# The export's record of the post folders it wrote, so a later export removes a post that is no
# longer public instead of leaving its page online.
EXPORT_MANIFEST = ".sereus-blog.json"
EXPORT_FILES = ("index.html", "atom.xml", "style.css")


@dataclass(frozen=True)
class Item:
    """A post as the index lists it."""

    post: PostView
    url: str | None  # relative to the index; None for a post without a page of its own
    title: str
    summary: str
    published: datetime


def publishable(posts: Iterable[PostView]) -> list[PostView]:
    """Only public, live posts, whatever the caller passed in (a second line of defence)."""
    return [p for p in posts if p.public and not p.deleted]


def has_page(post: PostView) -> bool:
    """Long posts with a usable slug get their own page; short ones live on the index."""
    return post.kind == LONG and bool(SLUG_RE.match(post.slug))


def entry_title(post: PostView) -> str:
    if post.title:
        return post.title
    # Atom requires a title: a short post's is the start of its text.
    text = " ".join(post.text.split())
    return Truncator(text).chars(SHORT_TITLE_CHARS) or "Untitled"


def _aware(moment: datetime) -> datetime:
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def updated_at(post: PostView) -> datetime:
    return _aware(post.edited_at or post.created_at)


def _item(post: PostView, prefix: str) -> Item:
    return Item(
        post=post,
        url=f"{prefix}{post.slug}/" if has_page(post) else None,
        title=entry_title(post),
        summary=Truncator(strip_tags(post.html)).words(SUMMARY_WORDS),
        published=_aware(post.created_at),
    )


def _render(name: str, context: dict[str, Any]) -> str:
    # Dates in UTC: the pages are the same for every reader and in the export.
    with timezone.override(UTC):
        return _ENGINE.get_template(_TEMPLATES + name).render(Context(context))


def blog_index_html(posts: Iterable[PostView], *, base_url: str, title: str, author: str) -> str:
    """The index page (``<base>/``): every public post, newest first as given."""
    items = [_item(p, "") for p in publishable(posts)]
    return _render(
        "index.html",
        {"items": items, "root": "./", "base_url": base_url, "blog_title": title, "author": author},
    )


def blog_post_html(
    post: PostView, *, base_url: str, title: str, author: str, cover: str | None = None
) -> str:
    """The page of one long post (``<base>/<slug>/``); ``cover``: its cover image's file name
    beside the page ("cover.jpg"), if it has one."""
    if not (publishable([post]) and has_page(post)):
        raise ValueError("Only a public long post with a slug has a page of its own.")
    return _render(
        "post.html",
        {
            "item": _item(post, ""),
            "cover": cover,
            "updated": updated_at(post) if post.edited_at else None,
            "root": "../",
            "canonical": f"{base_url}{post.slug}/",
            "base_url": base_url,
            "blog_title": title,
            "author": author,
        },
    )


def blog_css() -> str:
    return _ENGINE.get_template(_TEMPLATES + "style.css").render(Context({}))


def entry_id(post: PostView) -> str:
    """A permanent id that survives a change of domain: the post's row id as a UUID URN."""
    try:
        return uuid.UUID(hex=post.id).urn
    except ValueError:
        return f"tag:sereus,2026:post/{post.thread}/{post.id}"


def atom_feed(posts: Iterable[PostView], *, base_url: str, title: str, author: str) -> bytes:
    """The Atom feed (``<base>/atom.xml``) of the newest public posts. ``base_url`` is the
    blog's absolute URL, ending in "/"."""
    live = publishable(posts)[:FEED_ENTRIES]
    feed = FeedGenerator()
    feed.id(base_url)
    feed.title(title)
    feed.author({"name": author})
    feed.link(href=base_url, rel="alternate", type="text/html")
    feed.link(href=f"{base_url}atom.xml", rel="self", type="application/atom+xml")
    feed.language("en")
    # An empty blog has no post to date it by; "now" is what feedgen would say.
    feed.updated(max((updated_at(p) for p in live), default=datetime.now(UTC)))
    for post in live:
        entry = feed.add_entry(order="append")
        entry.id(entry_id(post))
        entry.title(entry_title(post))
        link = f"{base_url}{post.slug}/" if has_page(post) else f"{base_url}#p-{post.id}"
        entry.link(href=link, rel="alternate", type="text/html")
        entry.published(_aware(post.created_at))
        entry.updated(updated_at(post))
        entry.content(post.html, type="html")
    return feed.atom_str(pretty=True)


def blog_export(
    directory: Path,
    posts: Iterable[PostView],
    *,
    base_url: str,
    title: str,
    author: str,
    covers: Mapping[str, tuple[str, bytes]] | None = None,
) -> list[Path]:
    """Write the blog into ``directory`` as static files; returns the files written.
    ``covers``: a post's id -> its cover image's file name and bytes, written beside its page.

    Raises ``OSError`` when the folder cannot be made or written.
    """
    live = publishable(posts)
    pages = [p for p in live if has_page(p)]
    identity = {"base_url": base_url, "title": title, "author": author}
    directory.mkdir(parents=True, exist_ok=True)
    written = [
        _write(directory / "index.html", blog_index_html(live, **identity).encode()),
        _write(directory / "atom.xml", atom_feed(live, **identity)),
        _write(directory / "style.css", blog_css().encode()),
    ]
    slugs = sorted({p.slug for p in pages})
    for post in pages:
        target = directory / post.slug / "index.html"
        target.parent.mkdir(exist_ok=True)
        cover = (covers or {}).get(post.id)
        for old in target.parent.glob("cover.*"):  # an earlier export's, maybe another type
            if cover is None or old.name != cover[0]:
                old.unlink()
        if cover is not None:
            written.append(_write(target.parent / cover[0], cover[1]))
        html = blog_post_html(post, **identity, cover=cover[0] if cover else None)
        written.append(_write(target, html.encode()))
    _remove_unpublished(directory, keep=set(slugs))
    _write(directory / EXPORT_MANIFEST, json.dumps({"slugs": slugs}).encode())
    return written


def _write(path: Path, data: bytes) -> Path:
    # Written beside and renamed over: a web server serving the folder never sees half a page.
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def _remove_unpublished(directory: Path, *, keep: set[str]) -> None:
    """Remove the pages an earlier export wrote for posts that are no longer public."""
    try:
        earlier = json.loads((directory / EXPORT_MANIFEST).read_text())["slugs"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    for slug in earlier:
        if not isinstance(slug, str) or slug in keep or not SLUG_RE.match(slug):
            continue
        (directory / slug / "index.html").unlink(missing_ok=True)
        for cover in (directory / slug).glob("cover.*"):
            cover.unlink()
        with contextlib.suppress(OSError):  # something else is in that folder: not ours
            (directory / slug).rmdir()
