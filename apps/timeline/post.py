"""A post as the timeline's pages, feed, API and blog read it: what this node's replica holds,
with its author named and its text rendered. Built by ``selectors.py``; nothing here reads a
database, so the feed's ranking and the blog's rendering work on plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

SHORT, LONG = "short", "long"
POST_KINDS = (SHORT, LONG)


@dataclass(frozen=True)
class PostView:
    id: str  # the post's row id, 32 hex digits
    thread: str  # the timeline's thread id, hex
    author: str  # the author's member key in that thread, hex
    author_name: str  # as this node names them ("you", "Alice", ...)
    kind: str  # SHORT or LONG
    text: str  # as written (Markdown subset)
    html: str  # rendered and sanitized
    title: str  # long posts: the title ("" for short ones)
    slug: str  # long posts: the URL part of a public post ("" for short ones)
    created_at: datetime
    edited_at: datetime | None = None
    reply_to: str | None = None  # the post it answers (same timeline)
    repost_of: str | None = None  # "<thread hex>/<post id>": a post of a timeline this node follows
    quote_of: str | None = None  # the same form, with text of one's own
    public: bool = False  # on the owner's public blog
    tags: tuple[str, ...] = ()  # "#words" of the text, lower case, without the "#"
    deleted: bool = False  # a tombstone: text and title are empty
    mine: bool = False
    replies: int = 0
    reactions: dict[str, int] = field(default_factory=dict)
    reply_to_author: str | None = None  # the member answered (hex), for "hide replies to ..."
    cover: str | None = None  # long posts: an attachment id of the cover image
    quoted_text: str = ""  # a repost's or quote's copy of what the other post said
    quoted_title: str = ""
    quoted_author: str = ""  # its author, as the reposter's node named them
    cursor: str = ""  # where it stands in its timeline's pages (``before`` for older ones)

    @property
    def key(self) -> str:
        """The post's reference across timelines: "<thread hex>/<post id>"."""
        return f"{self.thread}/{self.id}"
