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
# Built once: ``nh3.clean`` builds its sanitizer from these sets on every call, which cost as
# much again as the sanitizing of a short message.
_cleaner = nh3.Cleaner(
    tags={"p", "br", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a"},
    attributes={"a": {"href", "title"}, "ol": {"start"}},
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
)


@lru_cache(maxsize=4096)  # live pages re-render the same messages on every change
def render(text: str) -> SafeString:
    return mark_safe(_cleaner.clean(_markdown.render(text)))  # noqa: S308 - sanitized here


def _plain(children) -> str:
    """An inline run as it reads: its words without emphasis, code or link marks."""
    said = []
    for child in children or ():
        if child.type in ("text", "code_inline"):
            said.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            said.append("\n")
    return "".join(said)


def first_line(text: str, limit: int) -> str:
    """The first line with words in it, as a reader sees it (no Markdown marks: not those of
    emphasis, nor a quote's or a list item's lead), cut to ``limit`` characters; for a quote
    of a message or a preview of it."""
    for token in _markdown.parse(text):
        if token.type != "inline":
            continue
        for line in _plain(token.children).splitlines():
            line = " ".join(line.split())
            if line:
                return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return ""
