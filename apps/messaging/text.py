"""Message text: a Markdown subset rendered to safe HTML.

markdown-it-py parses with raw HTML off; nh3 (Ammonia) then keeps only the tags and attributes a
message may use, as a second line of defence. Images are not rendered: a picture in a message
would make every reader's browser fetch an address the sender chose (a tracking pixel).
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

_markdown = MarkdownIt("commonmark", {"html": False, "breaks": True}).disable(
    ["image", "heading", "lheading", "hr"]
)
_TAGS = {"p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a"}
_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}


@lru_cache(maxsize=4096)  # live pages re-render the same messages on every change
def render(text: str) -> SafeString:
    html = _markdown.render(text)
    clean = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
    return mark_safe(clean)  # noqa: S308 - sanitized just above
