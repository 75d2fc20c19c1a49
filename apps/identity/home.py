"""What waits for this member in a thread's achievements, in words, for Home."""

from __future__ import annotations

from apps.core.models import Thread
from apps.identity import selectors


def waiting(thread: Thread) -> list[str]:
    if not selectors.enabled(thread) or thread.state != Thread.State.ACTIVE:
        return []
    found = []
    claims = selectors.waiting_count(thread)
    if claims:
        found.append(f"{claims} claim{'s' if claims != 1 else ''} waiting for your word")
    challenges = sum(1 for c in selectors.challenges(thread) if c.can_accept or c.can_judge)
    if challenges:
        found.append(f"{challenges} challenge{'s' if challenges != 1 else ''} waiting for you")
    return found
