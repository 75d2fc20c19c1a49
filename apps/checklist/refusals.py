"""What became of this node's checklist writes that the thread refused, in plain words.

A write is answered once this node accepted it; the other replicas judge it again, and a row
from elsewhere that orders before it (a concurrent claim of the same item, a close its author
had not seen) turns it over, on this node too once that row arrives
(``apps.core.threads.writes``). The op stays in the log with its reason: the page and the API
show each one with the item it was about.

Reads only: the thread's refused writes of this node (the newest ``SCANNED`` of them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from apps.checklist import rules
from apps.checklist.policy import APPROVAL, CLOSE, ITEM
from apps.core.models import Thread
from apps.core.threads import writes
from apps.core.threads.registry import thread_database

SCANNED = 500

# The rules' reasons that read better from the member's side.
_PLAIN = {
    rules.ALREADY_CLAIMED: "someone else claimed it first",
    "the list was closed before this row was seen": "the list had been closed",
}
# What a write was, for "Your ... was refused".
WHAT = {
    "add": "new item",
    "edit": "change",
    "delete": "deletion",
    "claim": "claim",
    "unclaim": "release of the item",
    "done": "“done”",
    "undone": "“not done”",
    "approve": "approval",
    "close": "closing of the list",
}


@dataclass(frozen=True)
class RefusedWrite:
    op: str  # the write's op hash, hex
    at: datetime
    what: str  # a key of WHAT
    item: str | None  # the item's id (hex) it was about; None for a close
    text: str  # the item's text as written (an add or an edit), the list (a close), or ""
    reason: str  # why, in plain words

    @property
    def sentence(self) -> str:
        return f"Your {WHAT[self.what]} was refused: {self.reason}."


def plain(reason: str, thread: Thread | None = None) -> str:
    """A refusal of the core or of the checklist's rules, in plain words (lower case, no full
    stop: it ends a sentence)."""
    reason = reason.removeprefix("refused: ")
    table, sep, said = reason.partition(": ")
    said = said if sep and table in (ITEM, APPROVAL, CLOSE) else reason
    if said in _PLAIN:
        return _PLAIN[said]
    kind = writes.refusal_kind(said)
    if kind == "other":
        return said
    removed = thread is not None and thread.state == Thread.State.REMOVED
    text = writes.refusal_text(kind, removed)
    return text[:1].lower() + text[1:].rstrip(".")


def what_of(change: writes.RowWrite) -> tuple[str, str | None, str] | None:
    """(what, the item it was about, its text) of one row a write changed; None for rows the
    page does not speak of (planned closes)."""
    values = change.values
    if change.table == APPROVAL:
        return "approve", str(values.get("item", "")), ""
    if change.table == CLOSE:
        return "close", None, str(values.get("scope", ""))
    if change.table != ITEM or not isinstance(change.row, str):
        return None
    text = values.get("text")
    text = text if isinstance(text, str) else ""
    if change.action in ("insert", "delete"):
        return ("add" if change.action == "insert" else "delete"), change.row, text
    if "done" in values:
        return ("done" if values["done"] else "undone"), change.row, ""
    if "claimed_by" in values:
        return ("claim" if values["claimed_by"] else "unclaim"), change.row, ""
    return "edit", change.row, text


def refused_writes(thread: Thread) -> list[RefusedWrite]:
    """This node's checklist writes the thread refused, newest first."""
    if thread.state not in (Thread.State.ACTIVE, Thread.State.REMOVED, Thread.State.LEFT):
        return []
    database = thread_database(thread.thread)
    found: list[RefusedWrite] = []
    before, scanned = None, 0
    while scanned < SCANNED:
        page = writes.writes_list(database, state="refused", before=before)
        for write in page.writes:
            reason = plain(write.reason, thread)
            for change in write.changes or ():
                said = what_of(change)
                if said is not None:
                    found.append(RefusedWrite(write.op, write.at, *said, reason))
                    break  # one line per write: its first checklist row says what it was
        scanned += len(page.writes)
        if page.next is None:
            break
        before = page.next
    return found
