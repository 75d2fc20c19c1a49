"""Reads of timelines. Authorship and times come from the signed ops (``sereus_rowevents``: the
member whose op first wrote a row, and the stamps of its later writes), never from columns an
author fills in; a row counts only when its id names the member who wrote it. Edit history is
read back from the ops themselves (``writes.row_history``)."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connections

from apps.core.models import Thread
from apps.core.threads import writes
from apps.core.threads.app_kit import app_thread_find
from apps.core.threads.names import Names, thread_names
from apps.core.threads.registry import thread_database
from apps.core.threads.store import stamp_parse
from apps.timeline import text
from apps.timeline.models import Attachment, Reaction
from apps.timeline.policy import APP, POST, REPLY
from apps.timeline.post import LONG, PostView

PAGE = 30
_LAST_MILLIS = 253402300799000  # 9999-12-31: a stamp beyond it is shown as that

# A row's author: the member its id names (the last twelve hex digits are the owner's row tag),
# and that member's first accepted write of it is its time; later writes are edits. Pages walk
# the post-time index (migration 0002) newest first and stop at the limit.
OWNER = (
    "sereus_members {alias} ON {alias}.tag = substr({row}.id, 21)"
    " AND substr({row}.id, 13, 1) = '8' AND substr({row}.id, 17, 1) IN ('8', '9', 'a', 'b')"
)
_COLUMNS = {
    POST: "p.kind, p.text, p.title, p.slug, p.cover, p.repost_of, p.quote_of, p.quoted_text,"
    " p.quoted_title, p.quoted_author, p.public, p.deleted",
    REPLY: "p.post, p.reply_to, p.text, p.deleted",
}
_ROWS = """
SELECT p.id, {columns}, e.member, e.hlc,
       (SELECT max(u.hlc) FROM sereus_rowevents u
         WHERE u.tbl = '{table}' AND u.pk = e.pk AND u.action = 'upsert' AND u.hlc > e.hlc)
  FROM sereus_rowevents e {index}
  JOIN {table} p ON p.id = e.pk
  JOIN OWNER_OF_P AND o.member = e.member
 WHERE e.tbl = '{table}' AND e.action = 'upsert'
   AND NOT EXISTS (SELECT 1 FROM sereus_rowevents f
                    WHERE f.tbl = '{table}' AND f.pk = e.pk AND f.member = e.member
                      AND f.hlc < e.hlc)
   AND {where}
 ORDER BY e.hlc {order}
 LIMIT %s
""".replace("OWNER_OF_P", OWNER.format(alias="o", row="p"))


@dataclass(frozen=True)
class ReplyView:
    id: str
    post: str
    reply_to: str | None
    author: str
    author_name: str
    text: str
    html: str
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    mine: bool
    reactions: dict[str, int]


@dataclass(frozen=True)
class AttachmentView:
    id: str
    target: str
    name: str
    mime: str
    size: int
    key: bytes | None
    chunks: list[bytes]
    damaged: str | None

    @property
    def is_image(self) -> bool:
        return self.mime in ("image/png", "image/jpeg", "image/gif", "image/webp")


@dataclass(frozen=True)
class Version:
    at: datetime
    text: str
    title: str
    deleted: bool


def thread_find(thread_id: str) -> Thread | None:
    thread = app_thread_find(thread_id)
    return thread if thread is not None and thread.app == APP else None


def timelines() -> list[Thread]:
    """The timelines this node has: its own and the ones it follows (not left)."""
    return list(Thread.objects.filter(app=APP).exclude(state=Thread.State.LEFT).order_by("name"))


def member_names(thread: Thread) -> Names:
    return thread_names(thread, me_as="you")


def _when(hlc: bytes | None) -> datetime | None:
    if hlc is None:
        return None
    stamp, _ = stamp_parse(bytes(hlc))
    return datetime.fromtimestamp(min(stamp.millis, _LAST_MILLIS) / 1000, tz=UTC)


def _cursor(thread: Thread):
    return connections[thread_database(thread.thread).alias].cursor()


def _fetch(thread: Thread, table: str, where: str, params: list, *, index: str = "",
           order: str = "DESC", limit: int = PAGE) -> list[tuple]:  # fmt: skip
    query = _ROWS.format(
        columns=_COLUMNS[table], table=table, index=index, where=where, order=order
    )
    with _cursor(thread) as cursor:
        cursor.execute(query, [*params, limit])
        return cursor.fetchall()


def _reactions(thread: Thread, targets: list[str]) -> dict[str, dict[str, int]]:
    """Target -> emoji -> count, counting each member's reaction once (its id is theirs)."""
    if not targets:
        return {}
    counted: dict[str, Counter[str]] = {}
    from apps.core.threads.context import thread_context

    with thread_context(thread.thread):
        rows = Reaction.objects.filter(target__in=targets).values_list("target", "emoji")
        for target, emoji in rows:
            counted.setdefault(target.hex, Counter())[emoji] += 1
    return {target: dict(sorted(c.items())) for target, c in counted.items()}


def _reply_counts(thread: Thread, posts: list[str]) -> dict[str, int]:
    if not posts:
        return {}
    marks = ",".join("%s" for _ in posts)
    with _cursor(thread) as cursor:
        cursor.execute(
            f"SELECT post, count(*) FROM timeline_reply WHERE post IN ({marks}) AND NOT deleted"  # noqa: S608 - placeholders only
            " GROUP BY post",
            posts,
        )
        return {post: count for post, count in cursor.fetchall()}


def _post_views(thread: Thread, rows: list[tuple]) -> list[PostView]:
    names, me = member_names(thread), thread.member_id
    ids = [row[0] for row in rows]
    reactions, replies = _reactions(thread, ids), _reply_counts(thread, ids)
    views = []
    for row in rows:
        (pk, kind, body, title, slug, cover, repost_of, quote_of, quoted_text, quoted_title,
         quoted_author, public, deleted, member, created, edited) = row  # fmt: skip
        author = bytes(member).hex()
        kind = LONG if kind == LONG else "short"
        body = "" if deleted else body
        views.append(
            PostView(
                id=pk,
                thread=thread.id,
                author=author,
                author_name=names.get(author, "a former member"),
                kind=kind,
                text=body,
                html=str(text.render(kind, body)),
                title="" if deleted or kind != LONG else title,
                slug=slug if kind == LONG else "",
                created_at=_when(created),  # type: ignore[arg-type]
                edited_at=_when(edited),
                repost_of=repost_of or None,
                quote_of=quote_of or None,
                public=bool(public) and not deleted,
                tags=() if deleted else text.tags_of(f"{title} {body}"),
                deleted=bool(deleted),
                mine=author == me,
                replies=replies.get(pk, 0),
                reactions=reactions.get(pk, {}),
                cover=cover or None,
                quoted_text="" if deleted else quoted_text,
                quoted_title="" if deleted else quoted_title,
                quoted_author=quoted_author,
                cursor=bytes(created).hex(),
            )
        )
    return views


def posts(thread: Thread, *, before: str | None = None, limit: int = PAGE) -> list[PostView]:
    """A page of the timeline's posts, newest first; ``before`` is a post's ``cursor``."""
    bound = bytes.fromhex(before) if before else b"\xff" * 64
    rows = _fetch(
        thread, POST, "e.hlc < %s", [bound], index="INDEXED BY timeline_post_time", limit=limit
    )
    return _post_views(thread, rows)


def post(thread: Thread, post_id: str) -> PostView | None:
    try:
        pk = uuid.UUID(hex=str(post_id)).hex
    except ValueError:
        return None
    found = _post_views(thread, _fetch(thread, POST, "p.id = %s", [pk], limit=1))
    return found[0] if found else None


def posts_by_ids(thread: Thread, ids: list[str]) -> list[PostView]:
    """These posts (row ids, hex), those that exist; in no particular order."""
    if not ids:
        return []
    marks = ",".join("%s" for _ in ids)
    return _post_views(thread, _fetch(thread, POST, f"p.id IN ({marks})", ids, limit=len(ids)))


def targets_posts(thread: Thread, table: str, ids: list[str]) -> tuple[set[str], bool]:
    """The posts whose views rows of ``table`` (replies, reactions, files) change: the post
    they are on, or the post of the reply they are on. The flag: every row was found (a
    removed reaction is gone, and with it what it was on)."""
    if not ids:
        return set(), True
    column = "post" if table == REPLY else "target"
    with _cursor(thread) as cursor:
        marks = ",".join("%s" for _ in ids)
        cursor.execute(f"SELECT id, {column} FROM {table} WHERE id IN ({marks})", ids)  # noqa: S608 - names from this module
        found = dict(cursor.fetchall())
        targets = {str(t) for t in found.values()}
        complete = len(found) == len(set(ids))
        if table == REPLY or not targets:
            return targets, complete
        marks = ",".join("%s" for _ in targets)
        cursor.execute(f"SELECT id, post FROM {REPLY} WHERE id IN ({marks})", list(targets))  # noqa: S608 - placeholders only
        on_replies = {str(k): str(v) for k, v in cursor.fetchall()}
    return {on_replies.get(t, t) for t in targets}, complete


def cursor_of(thread: Thread, post_id: str) -> str | None:
    """Where a post stands in its timeline's pages (pass as ``before`` for older ones)."""
    with _cursor(thread) as cursor:
        cursor.execute(
            "SELECT min(hlc) FROM sereus_rowevents WHERE tbl = %s AND pk = %s", [POST, post_id]
        )
        (hlc,) = cursor.fetchone()
    return bytes(hlc).hex() if hlc is not None else None


def replies(thread: Thread, post_id: str) -> list[ReplyView]:
    """A post's conversation, oldest first (threaded by ``reply_to``)."""
    try:
        pk = uuid.UUID(hex=str(post_id)).hex
    except ValueError:
        return []
    rows = _fetch(thread, REPLY, "p.post = %s", [pk], order="ASC", limit=5000)
    names, me = member_names(thread), thread.member_id
    reactions = _reactions(thread, [row[0] for row in rows])
    found = []
    for rid, post_pk, reply_to, body, deleted, member, created, edited in rows:
        author = bytes(member).hex()
        body = "" if deleted else body
        found.append(
            ReplyView(
                id=rid,
                post=post_pk,
                reply_to=reply_to or None,
                author=author,
                author_name=names.get(author, "a former member"),
                text=body,
                html=str(text.render("short", body)),
                created_at=_when(created),  # type: ignore[arg-type]
                edited_at=_when(edited),
                deleted=bool(deleted),
                mine=author == me,
                reactions=reactions.get(rid, {}),
            )
        )
    return found


def history(thread: Thread, post_id: str) -> list[Version]:
    """Every version of a post, oldest first, from the signed ops of its author (a write by
    anyone else never counted, so it is not history either)."""
    found = post(thread, post_id)
    if found is None:
        return []
    author = bytes.fromhex(found.author)
    versions, current = [], {"text": "", "title": "", "deleted": False}
    for change in writes.row_history(thread_database(thread.thread), POST, found.id):
        if change.member != author or change.action == "delete":
            continue
        current = {**current, **{k: change.values[k] for k in current if k in change.values}}
        versions.append(
            Version(
                change.at,
                str(current["text"] or ""),
                str(current["title"] or ""),
                bool(current["deleted"]),
            )
        )
    return versions


def attachments(thread: Thread, targets: list[str]) -> dict[str, list[AttachmentView]]:
    """Target -> its files. A file counts only when its author is the target's author (anyone
    may write a row; nobody adds files to someone else's post)."""
    if not targets:
        return {}
    from apps.core.thread.rowid import row_tag
    from apps.core.threads.context import thread_context

    with thread_context(thread.thread):
        rows = list(Attachment.objects.filter(target__in=targets).order_by("id"))
    found: dict[str, list[AttachmentView]] = {}
    for row in rows:
        if row_tag(row.id.hex) != row_tag(row.target.hex):
            continue
        damaged, key, chunks = None, None, []
        try:
            key = bytes.fromhex(row.key)
            raw = bytes.fromhex(row.chunks)
            chunks = [raw[i : i + 32] for i in range(0, len(raw), 32)]
            if len(key) != 32 or len(raw) % 32 or not chunks:
                raise ValueError
        except ValueError:
            damaged, key, chunks = "its description is damaged", None, []
        found.setdefault(row.target.hex, []).append(
            AttachmentView(
                row.id.hex, row.target.hex, row.name, row.mime, row.size, key, chunks, damaged
            )
        )
    return found


def public_posts() -> list[PostView]:
    """Every public post of the timelines this node owns, newest first (the public blog)."""
    found: list[PostView] = []
    for thread in timelines():
        if thread.role != "owner" or thread.state != Thread.State.ACTIVE:
            continue
        with _cursor(thread) as cursor:
            cursor.execute("SELECT id FROM timeline_post WHERE public AND NOT deleted")
            ids = [pk for (pk,) in cursor.fetchall()]
        for pk in ids:
            view = post(thread, pk)
            if view is not None and view.public and view.author == thread.member_id:
                found.append(view)
    found.sort(key=lambda p: (p.created_at, p.id), reverse=True)
    return found


def public_post(slug: str) -> PostView | None:
    return next((p for p in public_posts() if p.slug == slug), None)
