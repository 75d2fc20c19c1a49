"""What waits for this member in a thread's polls, in words, for Home."""

from __future__ import annotations

from apps.core.models import Thread
from apps.voting import selectors


def waiting(thread: Thread) -> list[str]:
    if not selectors.enabled(thread):
        return []
    count = len(selectors.waiting_for_me(thread))
    if not count:
        return []
    return [f"{count} poll{'s' if count != 1 else ''} waiting for your vote"]
