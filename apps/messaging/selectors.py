"""Reads of conversations. Authorship and times come from the signed ops (``sereus_rowevents``:
the member whose op inserted a row, and the stamps of its inserts and updates), never from
columns a sender fills in."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.utils.safestring import SafeString

from apps.core import blobs, plain_reads
from apps.core.models import Thread
from apps.core.thread.rowid import member_tag
from apps.core.threads.names import Names, thread_names
from apps.core.threads.registry import thread_database
from apps.core.threads.store import stamp_parse
from apps.messaging import text
from apps.messaging.policy import APP

PAGE = 50


@dataclass(frozen=True)
class Reactions:
    emoji: str
    count: int
    mine: bool


IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass
class AttachmentView:
    id: str
    message: str
    name: str
    mime: str
    size: int
    key: bytes | None
    chunks: list[bytes]
    have: int  # chunks on this node
    damaged: str | None = None  # why it cannot be opened, when its description is broken

    @property
    def complete(self) -> bool:
        return self.damaged is None and self.have == len(self.chunks)

    @property
    def percent(self) -> int:
        return 100 if not self.chunks else self.have * 100 // len(self.chunks)

    @property
    def is_image(self) -> bool:
        return self.mime in IMAGE_TYPES


@dataclass
class MessageView:
    id: str
    text: str
    html: SafeString
    reply_to: str | None
    author: str
    author_name: str
    mine: bool
    created_at: datetime
    edited_at: datetime | None
    cursor: str  # pass as ``before`` to page to older messages
    reactions: list[Reactions] = field(default_factory=list)
    read_by: list[str] = field(default_factory=list)  # names of the others who have read it
    attachments: list[AttachmentView] = field(default_factory=list)


def conversation_find(thread_id: str) -> Thread | None:
    # Every request of a conversation starts here: plain SQL (the ORM's filter/exclude/first
    # cost 0.5-0.8 ms of query building for this one-row read by primary key).
    return plain_reads.first(
        Thread,
        '"id" = %s AND "app" = %s AND NOT ("state" = %s)',
        [thread_id, APP, Thread.State.LEFT],
    )


def conversations():
    return Thread.objects.filter(app=APP).exclude(state=Thread.State.LEFT).order_by("name")


# The latest time a page can show (the end of year 9999): a stamp past it is still decodable,
# so it must not break a page (issue 9); replicas hold ops stamped far ahead, so only a page
# reading an old log could meet one.
_LAST_MILLIS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)


def _when(hlc: bytes) -> datetime:
    stamp, _ = stamp_parse(hlc)
    return datetime.fromtimestamp(min(stamp.millis, _LAST_MILLIS) / 1000, tz=UTC)


def _read(thread: Thread, sql: str, params: Sequence = ()) -> list[tuple]:
    """The rows of one statement on the thread's database, run on this thread's connection
    straight (``ThreadDatabase.raw``: the one Django's cursor would use, without its wrappers).
    Those cost ~0.1 ms a statement, and a page or a sent message's answer runs five."""
    return thread_database(thread.thread).raw().execute(sql, params).fetchall()


# A row's author is the member its id names (``apps.core.thread.rowid``: the last twelve hex
# digits of the id are the owner's row tag, ``sereus_members``): the same owner the policy
# enforces, whatever any op's deps claimed. Its time is the author's first accepted write of it;
# later writes are edits. Read newest first along the message-time index (migration 0005), so a
# page costs the same in a conversation of 50 messages or of 100 000.
OWNER = (
    "sereus_members {alias} ON {alias}.tag = substr({row}.id, 21)"
    " AND substr({row}.id, 13, 1) = '8' AND substr({row}.id, 17, 1) IN ('8', '9', 'a', 'b')"
)
_MESSAGES = """
SELECT m.id, m.text, m.reply_to, e.member, e.hlc,
       (SELECT max(u.hlc) FROM sereus_rowevents u
         WHERE u.tbl = 'messaging_message' AND u.pk = e.pk AND u.action = 'upsert'
           AND u.hlc > e.hlc)
  FROM sereus_rowevents e {index}
  JOIN messaging_message m ON m.id = e.pk
  JOIN OWNER_OF_M AND o.member = e.member
 WHERE e.tbl = 'messaging_message' AND e.action = 'upsert'
   AND NOT EXISTS (SELECT 1 FROM sereus_rowevents f
                    WHERE f.tbl = 'messaging_message' AND f.pk = e.pk AND f.member = e.member
                      AND f.hlc < e.hlc)
   AND {where}
 ORDER BY e.hlc DESC
 LIMIT ?
""".replace("OWNER_OF_M", OWNER.format(alias="o", row="m"))


def member_names(thread: Thread) -> Names:
    """Member (hex) → the name this node shows for them: the core's one rule for every page
    (``apps.core.threads.names``; the conversation's old ``messaging_profile`` rows are no
    longer read, ADR 16)."""
    return thread_names(thread)


def messages(thread: Thread, *, before: str | None = None, limit: int = PAGE) -> list[MessageView]:
    """A page of messages, newest first; ``before`` is the ``cursor`` of a message on the
    previous page (raises ValueError when it is not one)."""
    bound = bytes.fromhex(before) if before else b"\xff" * 64
    # Pages walk the message-time index newest first and stop at the limit.
    query = _MESSAGES.format(index="INDEXED BY messaging_message_time", where="e.hlc < ?")
    return _views(thread, query, [bound, limit])


def message(thread: Thread, message_id: str, *, fresh: bool = False) -> MessageView | None:
    """One message as a page shows it. ``fresh``: the caller made it just now, with a new id
    and no files, so nobody can have reacted to it yet and it has no attachments: those two
    reads are skipped (a sent message's answer)."""
    try:
        pk = uuid.UUID(message_id).hex  # as the table stores it
    except ValueError:
        return None
    query = _MESSAGES.format(index="", where="m.id = ?")
    found = _views(thread, query, [pk, 1], extras=not fresh)
    return found[0] if found else None


def _views(thread: Thread, query: str, params: list, *, extras: bool = True) -> list[MessageView]:
    names = member_names(thread)
    me = thread.member_id
    rows = _read(thread, query, params)
    page = []
    for pk, body, reply_to, member, hlc, edited in rows:
        author = bytes(member).hex()
        page.append(
            MessageView(
                id=pk,
                text=body,
                html=text.render(body),
                reply_to=reply_to,
                author=author,
                author_name=names[author],
                mine=author == me,
                created_at=_when(bytes(hlc)),
                edited_at=_when(bytes(edited)) if edited is not None else None,
                cursor=bytes(hlc).hex(),
            )
        )
    if extras:
        _add_reactions(thread, page)
        _add_attachments(thread, page)
    _add_receipts(thread, page, names)
    return page


def _add_receipts(thread: Thread, page: list[MessageView], names: Names) -> None:
    read = receipts(thread)
    for view in page:
        view.read_by = sorted(
            names[member]
            for member, up_to in read.items()
            if member != view.author and up_to >= view.cursor
        )


def _add_reactions(thread: Thread, page: list[MessageView]) -> None:
    if not page:
        return
    by_id = {m.id: m for m in page}
    rows = _read(
        thread,
        "SELECT r.message, r.emoji, o.member FROM messaging_reaction r JOIN "  # noqa: S608 - fixed names
        + OWNER.format(alias="o", row="r")
        + " WHERE r.message IN (SELECT value FROM json_each(?))",
        [json.dumps(list(by_id))],
    )
    seen: dict[str, dict[str, set[str]]] = {}
    for message, emoji, member in rows:
        # One vote per member and emoji, whatever number of rows a member wrote.
        seen.setdefault(message, {}).setdefault(emoji, set()).add(bytes(member).hex())
    for message, emojis in seen.items():
        view = by_id[message]
        view.reactions = [
            Reactions(emoji, len(members), thread.member_id in members)
            for emoji, members in emojis.items()
        ]


_TABLES = {
    "receipt": "messaging_receipt",
    "message": "messaging_message",
    "reaction": "messaging_reaction",
}


def author(thread: Thread, kind: str, pk: str) -> str | None:
    """The member (hex) who owns the row (its id names them), or None if there is no such
    row or it names nobody."""
    table = _TABLES[kind]
    rows = _read(
        thread,
        f"SELECT o.member FROM {table} t JOIN "  # noqa: S608 - fixed names
        + OWNER.format(alias="o", row="t")
        + " WHERE t.id = ?",
        [pk],
    )
    return bytes(rows[0][0]).hex() if rows else None


_CURSOR = re.compile(r"\A[0-9a-f]{24,128}\Z")


def is_cursor(value: object) -> bool:
    return isinstance(value, str) and _CURSOR.match(value) is not None


def receipts(thread: Thread) -> dict[str, str]:
    """Member (hex) → the cursor they have read up to (their own row; malformed values, which
    only a hostile member's node could write, count as nothing read)."""
    rows = _read(
        thread,
        "SELECT o.member, r.read_up_to FROM messaging_receipt r JOIN "  # noqa: S608 - fixed names
        + OWNER.format(alias="o", row="r"),
    )
    found: dict[str, str] = {}
    for member, value in rows:
        if is_cursor(value):
            key = bytes(member).hex()
            found[key] = max(found.get(key, ""), value)
    return found


def unread(thread: Thread) -> int:
    """Messages of others newer than what this member has read."""
    read = receipts(thread).get(thread.member_id, "")
    bound = bytes.fromhex(read) if read else b""
    rows = _read(
        thread,
        "SELECT count(*) FROM messaging_message m JOIN "  # noqa: S608 - fixed names
        + OWNER.format(alias="o", row="m")
        + " JOIN sereus_rowevents e"
        " ON e.tbl = 'messaging_message' AND e.pk = m.id AND e.action = 'upsert'"
        " AND e.member = o.member"
        " WHERE e.hlc = (SELECT min(f.hlc) FROM sereus_rowevents f"
        "                 WHERE f.tbl = 'messaging_message' AND f.pk = m.id"
        "                   AND f.member = o.member)"
        " AND e.hlc > ? AND o.member != ?",
        [bound, bytes.fromhex(thread.member_id)],
    )
    return rows[0][0]


MAX_TERMS = 10


def fts_query(query: str) -> str | None:
    """User words as an FTS5 query: each word a quoted phrase (no operators from the user), all
    required, the last one as a prefix (results while typing). None when there are no words."""
    words = re.findall(r"\w+", query)[:MAX_TERMS]
    if not words:
        return None
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def search(thread: Thread, query: str, *, limit: int = PAGE) -> list[MessageView]:
    """Messages matching ``query`` (full-text, this thread's FTS5 index), newest first."""
    match = fts_query(query)
    if match is None:
        return []
    where = (
        "m.rowid IN (SELECT rowid FROM messaging_message_fts WHERE messaging_message_fts MATCH ?)"
    )
    return _views(
        thread,
        _MESSAGES.format(index="INDEXED BY messaging_message_time", where=where),
        [match, limit],
    )


def own_rows(thread: Thread, kind: str) -> list[str]:
    """The ids of the rows of ``kind`` this member owns (their ids name it), oldest first."""
    table = _TABLES[kind]
    tag = member_tag(bytes.fromhex(thread.member_id)).hex()
    rows = _read(
        thread,
        f"SELECT t.id FROM {table} t"  # noqa: S608 - fixed names
        " WHERE substr(t.id, 21) = ? AND substr(t.id, 13, 1) = '8'"
        f" ORDER BY (SELECT min(e.hlc) FROM sereus_rowevents e"
        f"            WHERE e.tbl = '{table}' AND e.pk = t.id)",
        [tag],
    )
    return [pk for (pk,) in rows]


def _attachment_view(thread: Thread, row: tuple) -> AttachmentView:
    pk, message, name, mime, size, key, chunks = row
    view = AttachmentView(pk, message, str(name), str(mime), 0, None, [], 0)
    try:
        view.key = bytes.fromhex(key)
        raw = bytes.fromhex(chunks)
        view.chunks = [raw[i : i + blobs.HASH] for i in range(0, len(raw), blobs.HASH)]
        if len(view.key) != blobs.KEY or len(raw) % blobs.HASH:
            raise ValueError("wrong lengths")
        # Columns hold what the sender's op said: check types as well as values.
        if type(size) is not int or not 0 <= size <= len(view.chunks) * blobs.CHUNK:
            raise ValueError("a size its chunks cannot hold")
        # A hostile member can describe a file of any size: nothing larger than this node
        # accepts is fetched (the limit holds on fetch, not only on send).
        limit = settings.SEREUS.max_attachment_bytes
        if size > limit or len(view.chunks) > -(-limit // blobs.CHUNK) + 1:
            view.damaged = "it is larger than this node accepts"
            view.chunks = []
            return view
        view.size = size
    except (ValueError, TypeError):
        view.damaged = "its description is malformed"
        view.chunks = []
        return view
    view.have = len(view.chunks) - len(blobs.missing(thread.thread, view.chunks))
    return view


def _add_attachments(thread: Thread, page: list[MessageView]) -> None:
    if not page:
        return
    by_id = {m.id: m for m in page}
    # Only the message's author attaches files to it: rows owned by anyone else are ignored.
    rows = _read(
        thread,
        "SELECT a.id, a.message, a.name, a.mime, a.size, a.key, a.chunks, o.member"  # noqa: S608 - fixed names
        " FROM messaging_attachment a JOIN "
        + OWNER.format(alias="o", row="a")
        + " WHERE a.message IN (SELECT value FROM json_each(?))"
        " ORDER BY (SELECT min(e.hlc) FROM sereus_rowevents e"
        "            WHERE e.tbl = 'messaging_attachment' AND e.pk = a.id)",
        [json.dumps(list(by_id))],
    )
    for *row, member in rows:
        message = by_id[row[1]]
        if bytes(member).hex() == message.author:
            message.attachments.append(_attachment_view(thread, tuple(row)))


def attachment(thread: Thread, attachment_id: str) -> AttachmentView | None:
    """An attachment of a message this node shows (its author's own), or None."""
    try:
        pk = uuid.UUID(attachment_id).hex
    except ValueError:
        return None
    rows = _read(thread, "SELECT message FROM messaging_attachment WHERE id = ?", [pk])
    shown = message(thread, rows[0][0]) if rows else None
    if shown is None:
        return None
    return next((a for a in shown.attachments if a.id == pk), None)
