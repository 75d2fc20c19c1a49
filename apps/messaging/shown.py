"""What a conversation page draws around each message, as a chat app does: a day separator
before the first message of each day ("Today", "Yesterday", "Monday", "3 March"), and, on a
reply, a quote of the message it answers (its author and first line, linking to it), or what
became of it when it is not there.

Reads only. The page's messages are ``selectors.MessageView`` objects; ``annotate`` sets two
more attributes on each (``day`` and ``quote``), so the message template finds them both on a
full page and on the live socket's renders of single messages (which share ``page_context``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import connections
from django.utils import dateformat, timezone

from apps.core.models import Thread
from apps.core.threads.registry import thread_database
from apps.messaging import selectors
from apps.messaging.text import first_line as text_first_line

QUOTE_CHARS = 100
DELETED = "a deleted message"
NOT_HERE = "a message not here yet"  # it may arrive later: replies are not foreign keys


@dataclass(frozen=True)
class Quote:
    """The message a reply answers, as the reply shows it."""

    id: str
    author_name: str = ""
    line: str = ""
    mine: bool = False
    # Not on this page: the cursor of the older page that ends with it (the page's ``before``).
    before: str = ""
    absent: str = ""  # DELETED or NOT_HERE when the message cannot be shown


def first_line(text: str, limit: int = QUOTE_CHARS) -> str:
    """What a reply's quote shows of the message it answers."""
    return text_first_line(text, limit)


def day_label(day: date, today: date) -> str:
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    if today - timedelta(days=7) < day < today:
        return dateformat.format(day, "l")  # "Monday"
    if day.year == today.year:
        return dateformat.format(day, "l j F")  # "Monday 3 March"
    return dateformat.format(day, "j F Y")


def _local_day(moment: datetime) -> date:
    return timezone.localtime(moment).date()


def _deleted(thread: Thread, ids: Sequence[str]) -> set[str]:
    """Which of the messages ``ids`` this node has seen deleted (their delete is in the log)."""
    if not ids:
        return set()
    with connections[thread_database(thread.thread).alias].cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT pk FROM sereus_rowevents WHERE tbl = 'messaging_message'"
            " AND action = 'delete' AND pk IN (SELECT value FROM json_each(%s))",
            [json.dumps(list(ids))],
        )
        return {pk for (pk,) in cursor.fetchall()}


def _quote(message: selectors.MessageView, before: str = "") -> Quote:
    line = first_line(message.text)
    if not line and message.attachments:
        line = "📎 " + message.attachments[0].name
    return Quote(message.id, message.author_name, line, message.mine, before)


def quotes(
    thread: Thread, page: Sequence[selectors.MessageView], more: Sequence[str] = ()
) -> dict[str, Quote]:
    """The quote of every message the page's replies answer (and of the messages ``more``
    names), by its id."""
    on_page = {m.id: m for m in page}
    wanted = {m.reply_to for m in page if m.reply_to} | set(more)
    found = {pk: _quote(on_page[pk]) for pk in wanted if pk in on_page}
    for pk in sorted(wanted - set(found)):
        original = selectors.message(thread, pk)
        if original is not None:
            # The older page whose newest message is the original: every message before a
            # bound just above its stamp (the stamp with a zero byte after it).
            found[pk] = _quote(original, before=original.cursor + "00")
    missing = sorted(wanted - set(found))
    deleted = _deleted(thread, missing)
    for pk in missing:
        found[pk] = Quote(pk, absent=DELETED if pk in deleted else NOT_HERE)
    return found


RUN = timedelta(minutes=5)  # messages closer than this to the one before continue its run


def annotate(thread: Thread, page: Sequence[selectors.MessageView]) -> None:
    """Set ``day`` (the separator's label on the first message of each day, else ""),
    ``quote`` (a ``Quote`` on a reply, else None) and ``read_here`` (who has read up to this
    message of mine and no further one: a reader's name shows once, at the newest of my
    messages they have read, as chat apps mark it) and ``continued`` (the same author's run goes
    on: its name is not shown again) on each message of ``page``, oldest first."""
    today = _local_day(timezone.now())
    found = quotes(thread, page)
    previous: date | None = None
    before: selectors.MessageView | None = None
    for message in page:
        day = _local_day(message.created_at)
        # A run of one author's messages names them once, as chat apps do (for screen
        # readers each still says who wrote it).
        message.continued = (  # type: ignore[attr-defined]
            before is not None
            and before.author == message.author
            and day == previous
            and message.created_at - before.created_at < RUN
        )
        before = message
        message.day = day_label(day, today) if day != previous else ""  # type: ignore[attr-defined]
        message.quote = found.get(message.reply_to) if message.reply_to else None  # type: ignore[attr-defined]
        previous = day
    marked: set[str] = set()
    for message in reversed(page):
        here = [name for name in message.read_by if name not in marked] if message.mine else []
        message.read_here = here  # type: ignore[attr-defined]
        marked.update(here)
