"""The Chats page's list: each conversation with its newest message and unread count, as a chat
app lists them (unread first, then the newest first)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from apps.core.models import Thread
from apps.core.threads.pages import Latest, activity, open_url
from apps.messaging import selectors

# What a conversation that cannot be read yet (or any more) says in place of its newest message.
STATE_WORDS = {
    Thread.State.JOINING: "Still joining: this node keeps trying",
    Thread.State.NOT_ADMITTED: "Not admitted: open it to see why",
    Thread.State.REMOVED: "You were removed from this conversation",
    Thread.State.DAMAGED: "Cannot be read on this node",
}


@dataclass(frozen=True)
class Chat:
    thread: Thread
    url: str
    unread: int
    latest: Latest | None
    state: str  # the conversation's state in words, when it is not simply active

    @property
    def at(self) -> datetime:
        """When something last happened there: its newest message, else when it was made."""
        return self.latest.at if self.latest and self.latest.at else self.thread.created_at


def chats() -> list[Chat]:
    """This node's conversations, those with unread messages first, the newest first in each."""
    found = [
        Chat(
            link.thread,
            open_url(link.thread),
            link.unread,
            link.latest,
            STATE_WORDS.get(link.thread.state, ""),
        )
        for link in activity(selectors.conversations())
    ]
    return sorted(found, key=lambda chat: (not chat.unread, -chat.at.timestamp()))
