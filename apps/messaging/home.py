"""What Home shows of a conversation: its newest message and how many are unread, in words."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.threads.pages import Latest
from apps.messaging import selectors
from apps.messaging.text import first_line

PREVIEW = 80  # characters of the newest message on Home


def _preview(text: str) -> str:
    """The first line with words in it, as it reads, cut to ``PREVIEW`` characters."""
    return first_line(text, PREVIEW)


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
