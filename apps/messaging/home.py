"""What Home shows of a conversation: its newest message and how many are unread, in words."""

from __future__ import annotations

import re

from apps.core.models import Thread
from apps.core.threads.pages import Latest
from apps.messaging import selectors

PREVIEW = 80  # characters of the newest message on Home


# Markdown's marks of emphasis and code, and a quote's or list item's lead: a preview is plain.
MARKS = re.compile(r"(?<!\w)[*_`~]+|[*_`~]+(?!\w)")
LEAD = re.compile(r"\A(?:>+|[-+]|\d+[.)])\s+")


def _preview(text: str) -> str:
    """The first line with words in it, as it reads, cut to ``PREVIEW`` characters."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    line = " ".join(MARKS.sub("", LEAD.sub("", line)).split())
    return line if len(line) <= PREVIEW else line[: PREVIEW - 1].rstrip() + "…"


def latest(thread: Thread) -> Latest | None:
    newest = selectors.messages(thread, limit=1)
    if not newest:
        return None
    message = newest[0]
    said = _preview(message.text)
    if not said and message.attachments:
        first = message.attachments[0]
        said = "a photo" if first.is_image else f"a file ({first.name})"
    who = "You" if message.mine else message.author_name
    return Latest(f"{who}: {said}", message.created_at)


def waiting(thread: Thread) -> list[str]:
    count = selectors.unread(thread)
    return [f"{count} unread message{'s' if count != 1 else ''}"] if count else []
