"""What the timeline pages show of posts and replies: ``Card``s (a post with its timeline, files
as messaging's serving functions take them, and reactions with this member's marked), replies
threaded, and who may do what. No writes; shared by the timeline, post and feed pages and their
live sockets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.urls import reverse

from apps.core import blobs
from apps.core.models import Thread
from apps.core.thread.rowid import row_id_for
from apps.core.threads.context import thread_context
from apps.messaging import attachments as serving
from apps.messaging.selectors import AttachmentView as Served
from apps.messaging.services import REACTIONS
from apps.timeline import selectors, services, text
from apps.timeline.models import Reaction
from apps.timeline.policy import FOLLOWER
from apps.timeline.post import PostView
from apps.timeline.selectors import ReplyView

MAX_DEPTH = 4  # replies to replies are indented this deep at most (a phone is narrow)


@dataclass
class Card:
    """A post as a page draws it: where it is, its files and reactions, the words around it."""

    post: PostView
    thread: Thread
    url: str
    files: list[Served] = field(default_factory=list)
    reactions: list[tuple[str, int, bool]] = field(default_factory=list)  # emoji, count, mine
    quoted_html: str = ""
    can_react: bool = False


def said(exc: Exception) -> str:
    """A refusal as a sentence for the page."""
    words = str(exc).strip() or "The timeline refused this."
    words = words[:1].upper() + words[1:]
    return words if words.endswith((".", "!", "?")) else words + "."


def active(thread: Thread) -> bool:
    return thread.state == Thread.State.ACTIVE


def can_post(thread: Thread) -> bool:
    return active(thread) and thread.role in services.PUBLISHERS


def can_reply(thread: Thread) -> bool:
    return active(thread) and thread.role in (*services.PUBLISHERS, FOLLOWER)


def served(thread: Thread, found: selectors.AttachmentView) -> Served:
    """A timeline file in the form messaging's serving functions take (how much of it is here)."""
    have = (
        0 if found.damaged else len(found.chunks) - len(blobs.missing(thread.thread, found.chunks))
    )
    return Served(
        found.id,
        found.target,
        found.name,
        found.mime,
        found.size,
        found.key,
        found.chunks,
        have,
        found.damaged,
    )


def _lacking(thread: Thread, found: Served) -> list[bytes]:
    return [] if found.damaged else blobs.missing(thread.thread, found.chunks)


def my_reactions(thread: Thread, targets: Iterable[str]) -> set[tuple[str, str]]:
    """(target, emoji) this member reacted with: its reaction's id follows from both."""
    if not thread.member_id:
        return set()
    me = bytes.fromhex(thread.member_id)
    ids = {
        row_id_for(me, b"react/" + uuid.UUID(hex=t).bytes + emoji.encode()): (t, emoji)
        for t in targets
        for emoji in REACTIONS
    }
    with thread_context(thread.thread):
        found = Reaction.objects.filter(pk__in=list(ids)).values_list("pk", flat=True)
        return {ids[pk] for pk in found}


def reaction_list(counts: dict[str, int], target: str, mine: set) -> list[tuple[str, int, bool]]:
    return [(emoji, count, (target, emoji) in mine) for emoji, count in counts.items() if count]


def post_url(thread_id: str, post_id: str) -> str:
    return reverse("timeline:post", args=[thread_id, post_id])


def cards(posts: list[PostView], threads: dict[str, Thread] | None = None) -> list[Card]:
    """Posts of one or several timelines as the pages draw them (files asked for if missing)."""
    threads = dict(threads or {})
    by_thread: dict[str, list[PostView]] = {}
    for post in posts:
        by_thread.setdefault(post.thread, []).append(post)
        if post.thread not in threads:
            found = selectors.thread_find(post.thread)
            if found is not None:
                threads[post.thread] = found
    files: dict[str, list[Served]] = {}
    mine: set[tuple[str, str]] = set()
    for thread_id, group in by_thread.items():
        thread = threads.get(thread_id)
        if thread is None:
            continue
        ids = [p.id for p in group]
        wanted: list[bytes] = []
        for target, found in selectors.attachments(thread, ids).items():
            files[target] = [served(thread, f) for f in found]
            wanted += [c for f in files[target] if not f.complete for c in _lacking(thread, f)]
        mine |= my_reactions(thread, ids)
        if wanted and serving.threads.network is not None:
            serving.threads.network.blobs_want(thread.thread, wanted)
    shown = []
    for post in posts:
        thread = threads.get(post.thread)
        if thread is None:
            continue
        quoted = ""
        if post.quoted_text:
            quoted = str(text.render("long" if post.quoted_title else "short", post.quoted_text))
        shown.append(
            Card(
                post=post,
                thread=thread,
                url=post_url(thread.id, post.id),
                files=[] if post.deleted else files.get(post.id, []),
                reactions=reaction_list(post.reactions, post.id, mine),
                quoted_html=quoted,
                can_react=can_reply(thread) and not post.deleted,
            )
        )
    return shown


@dataclass
class ReplyRow:
    reply: ReplyView
    depth: int
    reactions: list[tuple[str, int, bool]]


def threaded(thread: Thread, found: list[ReplyView]) -> list[ReplyRow]:
    """Replies in conversation order: each followed by its answers, indented (oldest first)."""
    children: dict[str | None, list[ReplyView]] = {}
    ids = {r.id for r in found}
    for reply in found:
        parent = reply.reply_to if reply.reply_to in ids else None
        children.setdefault(parent, []).append(reply)
    mine = my_reactions(thread, [r.id for r in found])
    rows: list[ReplyRow] = []

    def walk(parent: str | None, depth: int) -> None:
        for reply in children.get(parent, []):
            counts = reaction_list(reply.reactions, reply.id, mine)
            rows.append(ReplyRow(reply, min(depth, MAX_DEPTH), counts))
            walk(reply.id, depth + 1)

    walk(None, 0)
    return rows
