"""What this member wrote in a conversation that the conversation did not accept.

Every write is accepted by this node before the page or the API answers, but the other members'
nodes check it again, and a change this node had not seen yet (above all: this member's removal
while the node was cut off) makes every replica refuse it, this one too once the change arrives
(``apps.core.threads.writes``). Such a message never shows in the conversation, an edit or a
delete never takes effect; the page says so for each one, in plain words, with the text that was
written (read back from the op, which this node can still open), so nothing is lost.

Reads only: the thread's refused writes of this node, and the messages they were about.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from apps.core.models import Thread
from apps.core.threads import writes
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.messaging.models import Message

MESSAGE = "messaging_message"
ATTACHMENT = "messaging_attachment"
SHOWN = 20  # the newest ones on the conversation page; the thread's list has them all
SCANNED = 500  # refused writes read at most for one page (reactions and receipts included)

# The core's kinds of refusal (``writes.REFUSAL_KINDS``), said to the member who wrote.
REASONS = {
    "not_member": "You were no longer in this conversation when this was sent: you had been "
    "removed, or this device had been disconnected from it.",
    "not_admitted": "This device had not joined the conversation yet when this was sent.",
    "equivocated": "This device sent two different versions of its history (for example after "
    "an old backup was restored), so the conversation no longer accepts what it sends.",
    "old_key": "This was locked with a key the conversation had already replaced.",
    "not_owner": "Only the person who wrote that message can change it.",
    "role": "Your role in this conversation had changed and no longer allowed this when it was "
    "sent.",
    "gone": "The message had already been deleted.",
    "unreadable": "The other members could not read this: it was damaged on the way.",
    "inconsistent": "This device's history was out of order when this was sent.",
    "invalid": "This was not in a form the conversation accepts (the other members may run "
    "another version of the app).",
}
REMOVED = "You had been removed from this conversation when this was sent."
OTHER = "The conversation did not accept this."
WHAT = {"insert": "message", "update": "edit", "delete": "delete"}


@dataclass(frozen=True)
class Undelivered:
    """A message, edit or delete of this member that the conversation refused."""

    op: str  # the write's op hash (hex): a stable id for the page
    at: datetime
    what: Literal["message", "edit", "delete"]
    message: str  # the message's id (hex), as the message list has it
    text: str  # what was written: the message, or the edit's new text ("" for a delete)
    reason: str  # why, in a sentence for the member
    files: list[str] = field(default_factory=list)  # names of files sent with a message
    current: str | None = None  # the message as the conversation has it (edits, deletes)


def reason_text(thread: Thread, kind: str) -> str:
    if kind == "not_member" and thread.state == Thread.State.REMOVED:
        return REMOVED
    return REASONS.get(kind, OTHER)


def refused(thread: Thread, *, limit: int = SHOWN) -> list[Undelivered]:
    """This member's refused messages, edits and deletes in the conversation, newest first."""
    if thread.state not in (Thread.State.ACTIVE, Thread.State.REMOVED, Thread.State.LEFT):
        return []  # not (yet) in it, or its database is damaged: nothing written there
    database = thread_database(thread.thread)
    found: list[Undelivered] = []
    before, scanned = None, 0
    while len(found) < limit and scanned < SCANNED:
        page = writes.writes_list(database, state="refused", before=before)
        for write in page.writes:
            found.extend(_items(thread, write))
        scanned += len(page.writes)
        if page.next is None:
            break
        before = page.next
    found = found[:limit]
    _complete(thread, found)
    return found


def _items(thread: Thread, write: writes.Write) -> list[Undelivered]:
    changes = write.changes or ()
    files = [
        str(c.values.get("name", ""))
        for c in changes
        if c.table == ATTACHMENT and c.action == "insert"
    ]
    items = []
    for change in changes:
        if change.table != MESSAGE or not isinstance(change.row, str):
            continue
        text = change.values.get("text")
        items.append(
            Undelivered(
                op=write.op,
                at=write.at,
                what=WHAT[change.action],
                message=change.row,
                text=text if isinstance(text, str) else "",
                reason=reason_text(thread, write.refusal),
                files=[name for name in files if name] if change.action == "insert" else [],
            )
        )
    return items


def _complete(thread: Thread, items: list[Undelivered]) -> None:
    """The messages that edits and deletes were about, as the conversation has them now."""
    ids = []
    for item in items:
        try:
            ids.append(uuid.UUID(hex=item.message))
        except ValueError:
            continue  # not an id this app makes: there is no such message to show
    if not ids:
        return
    with thread_context(thread.thread):
        texts = {m.id.hex: m.text for m in Message.objects.filter(pk__in=ids).only("id", "text")}
    for index, item in enumerate(items):
        current = texts.get(item.message)
        if item.what != "message" and isinstance(current, str):
            items[index] = replace(item, current=current)
