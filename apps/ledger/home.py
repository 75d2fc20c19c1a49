"""What waits for this member in a tally, in words, for Home."""

from __future__ import annotations

from apps.core.models import Thread
from apps.ledger import display, selectors


def waiting(thread: Thread) -> list[str]:
    state = selectors.tally(thread)
    if state is None:
        return []
    found = []
    if not state.i_signed:
        found.append("waiting for your signature")
    asked = len(display.asked_of_me(thread, state))
    if asked:
        found.append(f"{asked} payment request{'s' if asked != 1 else ''} for you")
    return found
