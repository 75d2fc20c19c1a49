"""Post text: the Markdown subset of messages for short posts and replies, and for long posts
headings and rules as well, rendered to safe HTML (markdown-it-py with raw HTML off, then nh3).
No images in text: a picture in a post would make every reader's browser fetch an address the
author chose (a tracking pixel); a long post's cover is an attachment."""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from apps.messaging.text import render as render_short

_long = MarkdownIt("commonmark", {"html": False, "breaks": False}).disable(["image"])
_TAGS = {
    "p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a",
    "h2", "h3", "h4", "hr",
}  # fmt: skip
# Built once, as in ``apps.messaging.text``: ``nh3.clean`` builds its sanitizer on every call.
_cleaner = nh3.Cleaner(
    tags=_TAGS,
    attributes={"a": {"href", "title"}, "ol": {"start"}},
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
)
_TAG = re.compile(r"(?<![\w#])#([^\W\d_][\w-]{0,39})", re.UNICODE)
_SLUG_DROP = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=1024)
def render_long(text: str) -> SafeString:
    # A post's "# Title" is its title: headings in the body start one level down.
    html = _long.render(text).replace("<h1>", "<h2>").replace("</h1>", "</h2>")
    html = re.sub(r"<(/?)h[56]>", r"<\1h4>", html)
    return mark_safe(_cleaner.clean(html))  # noqa: S308 - sanitized here


def render(kind: str, text: str) -> SafeString:
    return render_long(text) if kind == "long" else render_short(text)


def tags_of(text: str) -> tuple[str, ...]:
    """The "#words" of a text, lower case, without the "#", each once, in order."""
    return tuple(dict.fromkeys(m.group(1).casefold() for m in _TAG.finditer(text)))


def slugify(title: str) -> str:
    """A URL part from a title: "Hello, World!" -> "hello-world" (ASCII letters and digits)."""
    ascii_title = title.casefold().encode("ascii", "ignore").decode()
    return _SLUG_DROP.sub("-", ascii_title).strip("-")[:80].strip("-")
