"""The only writers of timelines. Each write is one transaction of the thread's database and so
one signed op, which this node's replica checks at once against the thread's policy like every
replica will (``policy.py``): a follower's post, an edit of someone else's reply, a removed row
are refused everywhere. Errors are ``ThreadServiceError`` in plain words: ``invalid`` (bad
input), ``not_found``, ``forbidden`` (the policy: a follower posting, a muted follower
replying), ``conflict`` (a post already deleted)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings

from apps.core import blobs
from apps.core.models import Thread
from apps.core.thread.rowid import row_id_for, row_tag
from apps.core.threads import services as threads
from apps.core.threads.app_kit import app_write
from apps.core.threads.context import thread_context
from apps.core.threads.services import ThreadServiceError
from apps.messaging.services import REACTIONS, Upload, _file_name, _mime
from apps.timeline import selectors, text
from apps.timeline.models import (
    MAX_LONG,
    MAX_SHORT,
    MAX_TITLE,
    Attachment,
    Post,
    Reaction,
    Reply,
)
from apps.timeline.policy import APP, COAUTHOR, FOLLOWER
from apps.timeline.post import LONG, SHORT

MAX_FILES = 10
PUBLISHERS = ("owner", "admin", COAUTHOR)


def timeline_create(*, name: str, my_name: str = "") -> Thread:
    """A new timeline owned by this node ("Alice's notes", a blog)."""
    thread = threads.thread_create(name=name, app=APP)
    if my_name.strip():
        from apps.core.threads import naming

        naming.my_name_set(thread=thread, name=my_name)
    return thread


def _plain(reason: str) -> str:
    if "role" in reason and "timeline_post" in reason:
        return "followers reply to posts; only the owner and co-authors post"
    if "not_owner" in reason or "own" in reason:
        return "you can only change what you wrote"
    return reason


def _write(thread: Thread, action):
    return app_write(
        thread,
        action,
        app=APP,
        not_enabled="this thread is not a timeline",
        plain=_plain,
    )


def _id(value: str | uuid.UUID, what: str) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(hex=str(value))
    except ValueError:
        raise ThreadServiceError("invalid", f"{what} is not a post id") from None


def _clean(value: str, most: int, what: str, *, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise ThreadServiceError("invalid", f"{what} needs some text")
    if len(value) > most:
        raise ThreadServiceError(
            "invalid", f"{what} holds at most {most} characters ({len(value)} given)"
        )
    if "\x00" in value:
        raise ThreadServiceError("invalid", f"{what} cannot contain NUL characters")
    return value


def _ref(value: str | None) -> tuple[Thread, selectors.PostView] | None:
    """A post of a timeline this node follows, by its reference "<thread>/<post>"."""
    if not value:
        return None
    thread_id, _, post_id = str(value).partition("/")
    source = selectors.thread_find(thread_id)
    found = selectors.post(source, post_id) if source is not None else None
    if found is None or found.deleted:
        raise ThreadServiceError(
            "invalid", "you can repost or quote only posts of timelines you follow"
        )
    return source, found


def _seal(thread: Thread, upload: Upload) -> blobs.Sealed:
    try:
        return blobs.seal(thread.thread, upload, limit=settings.SEREUS.max_attachment_bytes)
    except blobs.BlobError as exc:
        raise ThreadServiceError("invalid", f"{_file_name(upload.name)}: {exc}") from exc


def _attach(target: uuid.UUID, files: Sequence[Upload], sealed: Sequence[blobs.Sealed]) -> list:
    return [
        Attachment.objects.create(
            target=target,
            name=_file_name(upload.name),
            mime=_mime(upload.name),
            size=blob.size,
            key=blob.key.hex(),
            chunks=b"".join(blob.chunks).hex(),
        )
        for upload, blob in zip(files, sealed, strict=True)
    ]


def post_create(
    *,
    thread: Thread,
    text_: str = "",
    title: str = "",
    repost_of: str | None = None,
    quote_of: str | None = None,
    public: bool = False,
    files: Sequence[Upload] = (),
    cover: bool = False,
) -> Post:
    """Post to a timeline (owner and co-authors). A title makes it a long post (a blog post,
    whose first file is its cover when ``cover``); ``repost_of`` shares a post of a timeline
    this node follows as it is, ``quote_of`` with text of one's own."""
    if thread.role not in PUBLISHERS:
        raise ThreadServiceError(
            "forbidden", "followers reply to posts; only the owner and co-authors post"
        )
    if len(files) > MAX_FILES:
        raise ThreadServiceError("invalid", f"at most {MAX_FILES} files per post")
    if repost_of and quote_of:
        raise ThreadServiceError("invalid", "a post reposts or quotes, not both")
    shared = _ref(repost_of or quote_of)
    title = _clean(title, MAX_TITLE, "a title", required=False)
    kind = LONG if title else SHORT
    body = _clean(
        text_, MAX_LONG if kind == LONG else MAX_SHORT, "a post",
        required=not (repost_of or files),
    )  # fmt: skip
    if public and thread.role != "owner":
        raise ThreadServiceError("forbidden", "only the timeline's owner publishes on the blog")
    fields: dict[str, Any] = {"kind": kind, "text": body, "title": title, "public": bool(public)}
    if kind == LONG:
        fields["slug"] = _slug(thread, title)
    if shared is not None:
        _, original = shared
        fields["repost_of" if repost_of else "quote_of"] = original.key
        fields.update(
            quoted_text=original.text,
            quoted_title=original.title,
            quoted_author=original.author_name,
        )
    sealed = [_seal(thread, upload) for upload in files]

    def write() -> Post:
        post = Post.objects.create(**fields)
        made = _attach(post.id, files, sealed)
        if cover and kind == LONG and made and made[0].mime.startswith("image/"):
            post.cover = made[0].id.hex
            post.save(update_fields=["cover"])
        return post

    return _write(thread, write)


def _slug(thread: Thread, title: str) -> str:
    base = text.slugify(title) or "post"
    with thread_context(thread.thread):
        taken = set(Post.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base[:74]}-{n}", n + 1
    return slug


def _post(thread: Thread, post_id: str | uuid.UUID) -> Post:
    with thread_context(thread.thread):
        found = Post.objects.filter(pk=_id(post_id, "the post")).first()
    if found is None:
        raise ThreadServiceError("not_found", "no such post in this timeline")
    return found


def _own(thread: Thread, pk: uuid.UUID, what: str) -> None:
    # Said here in words; every replica refuses it anyway (update: own rows).
    mine = row_tag(pk.hex) == row_tag(row_id_for(bytes.fromhex(thread.member_id), b"x").hex)
    if not mine:
        raise ThreadServiceError("forbidden", f"you can only change {what} you wrote")


def post_edit(
    *, thread: Thread, post_id: str | uuid.UUID, text_: str, title: str | None = None,
    public: bool | None = None,
) -> Post:  # fmt: skip
    post = _post(thread, post_id)
    _own(thread, post.id, "posts")
    if post.deleted:
        raise ThreadServiceError("conflict", "this post was deleted")
    changed: dict[str, Any] = {}
    body = _clean(text_, MAX_LONG if post.kind == LONG else MAX_SHORT, "a post",
                  required=not post.repost_of)  # fmt: skip
    if body != post.text:
        changed["text"] = body
    if title is not None and post.kind == LONG:
        new_title = _clean(title, MAX_TITLE, "a title")
        if new_title != post.title:
            changed["title"] = new_title
    if public is not None and bool(public) != post.public:
        if thread.role != "owner":
            raise ThreadServiceError("forbidden", "only the timeline's owner publishes on the blog")
        changed["public"] = bool(public)
    if not changed:
        return post

    def edit() -> Post:
        for name, value in changed.items():
            setattr(post, name, value)
        post.save(update_fields=list(changed))
        return post

    return _write(thread, edit)


def post_delete(*, thread: Thread, post_id: str | uuid.UUID) -> None:
    """A tombstone: the text goes, the post stays deleted everywhere, and its files are freed
    on every node (``blobs_free``)."""
    post = _post(thread, post_id)
    _own(thread, post.id, "posts")
    if post.deleted:
        return

    def delete() -> None:
        post.text, post.title, post.quoted_text, post.quoted_title = "", "", "", ""
        post.public, post.deleted = False, True
        post.save(
            update_fields=["text", "title", "quoted_text", "quoted_title", "public", "deleted"]
        )

    _write(thread, delete)
    blobs_free(thread=thread)


def reply_create(
    *, thread: Thread, post_id: str | uuid.UUID, text_: str, reply_to: str | uuid.UUID | None = None
) -> Reply:
    post = _post(thread, post_id)
    if post.deleted:
        raise ThreadServiceError("conflict", "this post was deleted")
    answer = None
    if reply_to:
        with thread_context(thread.thread):
            parent = Reply.objects.filter(pk=_id(reply_to, "the reply"), post=post.id).first()
        if parent is None:
            raise ThreadServiceError("not_found", "no such reply to this post")
        answer = parent.id
    if thread.role not in (*PUBLISHERS, FOLLOWER):
        raise ThreadServiceError("forbidden", "you can read this timeline but not reply")
    body = _clean(text_, MAX_SHORT, "a reply")
    return _write(thread, lambda: Reply.objects.create(post=post.id, reply_to=answer, text=body))


def _reply(thread: Thread, reply_id: str | uuid.UUID) -> Reply:
    with thread_context(thread.thread):
        found = Reply.objects.filter(pk=_id(reply_id, "the reply")).first()
    if found is None:
        raise ThreadServiceError("not_found", "no such reply in this timeline")
    return found


def reply_edit(*, thread: Thread, reply_id: str | uuid.UUID, text_: str) -> Reply:
    reply = _reply(thread, reply_id)
    _own(thread, reply.id, "replies")
    if reply.deleted:
        raise ThreadServiceError("conflict", "this reply was deleted")
    body = _clean(text_, MAX_SHORT, "a reply")
    if body == reply.text:
        return reply

    def edit() -> Reply:
        reply.text = body
        reply.save(update_fields=["text"])
        return reply

    return _write(thread, edit)


def reply_delete(*, thread: Thread, reply_id: str | uuid.UUID) -> None:
    reply = _reply(thread, reply_id)
    _own(thread, reply.id, "replies")
    if reply.deleted:
        return

    def delete() -> None:
        reply.text, reply.deleted = "", True
        reply.save(update_fields=["text", "deleted"])

    _write(thread, delete)


def reaction_set(*, thread: Thread, target: str | uuid.UUID, emoji: str, on: bool = True) -> bool:
    """Put this member's reaction on a post or reply (``on``), or take it back. Its id follows
    from the member, the target and the emoji, so reacting twice is one reaction."""
    if emoji not in REACTIONS:
        raise ThreadServiceError("invalid", f"a reaction is one of {' '.join(REACTIONS)}")
    pk = _id(target, "the target")
    with thread_context(thread.thread):
        exists = Post.objects.filter(pk=pk).exists() or Reply.objects.filter(pk=pk).exists()
    if not exists:
        raise ThreadServiceError("not_found", "no such post or reply in this timeline")
    if thread.role not in (*PUBLISHERS, FOLLOWER):
        raise ThreadServiceError("forbidden", "you can read this timeline but not react")
    rid = row_id_for(bytes.fromhex(thread.member_id), b"react/" + pk.bytes + emoji.encode())
    with thread_context(thread.thread):
        current = Reaction.objects.filter(pk=rid).exists()
    if current == on:
        return on
    if on:
        _write(thread, lambda: Reaction.objects.create(id=rid, target=pk, emoji=emoji))
    else:
        _write(thread, lambda: Reaction.objects.filter(pk=rid).delete())
    return on


def _chunks(hexed: str) -> set[bytes]:
    try:
        raw = bytes.fromhex(hexed)
    except ValueError:
        return set()
    return {raw[i : i + 32] for i in range(0, len(raw) - len(raw) % 32, 32)}


def blobs_free(*, thread: Thread) -> int:
    """Drop the chunks of deleted posts' files from this node (every node does, as the
    tombstones reach it), keeping any chunk a live post's file still uses. Returns how many
    chunks went."""
    with thread_context(thread.thread):
        gone = set(Post.objects.filter(deleted=True).values_list("id", flat=True))
        rows = list(Attachment.objects.values_list("target", "chunks"))
    dead, live = set(), set()
    for target, chunks in rows:
        (dead if target in gone else live).update(_chunks(chunks))
    return sum(blobs.chunk_drop(thread.thread, chunk) for chunk in dead - live)
