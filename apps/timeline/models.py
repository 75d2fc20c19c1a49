"""What a timeline replicates. Who wrote a row and when are not columns: the row's id names its
author (``apps.core.thread.rowid``) and the signed ops say when (``sereus_rowevents``), so nobody
posts in another member's name or dates a post into the past. Posts and replies are separate
tables so that the thread's policy alone says who may do which: followers reply, only the owner
and co-authors post (ADR 20). A delete is a tombstone (``deleted``), never a removed row, so that
every replica shows the same "deleted" and frees the post's files."""

from django.db import models

from apps.core.replicated import ReplicatedModel

MAX_SHORT = 5000  # characters of a short post or a reply
MAX_LONG = 100_000  # characters of a long post's body
MAX_TITLE = 200
MAX_SLUG = 80
MAX_EMOJI = 16
REF = 97  # "<thread id hex>/<post id hex>"


class Post(ReplicatedModel):
    kind = models.CharField(max_length=8, default="short")  # short, long
    text = models.TextField(blank=True, default="")
    title = models.CharField(max_length=MAX_TITLE, blank=True, default="")
    slug = models.CharField(max_length=MAX_SLUG, blank=True, default="", db_index=True)
    cover = models.CharField(max_length=32, blank=True, default="")  # an attachment's id, hex
    # A repost or quote of a post of another timeline this node follows: its reference, and a
    # copy of what it said (the reposter's followers may not follow that timeline).
    repost_of = models.CharField(max_length=REF, blank=True, default="")
    quote_of = models.CharField(max_length=REF, blank=True, default="")
    quoted_text = models.TextField(blank=True, default="")
    quoted_title = models.CharField(max_length=MAX_TITLE, blank=True, default="")
    quoted_author = models.CharField(max_length=80, blank=True, default="")
    public = models.BooleanField(default=False)  # on the owner's public blog
    deleted = models.BooleanField(default=False)


class Reply(ReplicatedModel):
    post = models.UUIDField(db_index=True)  # the post whose conversation it is in
    reply_to = models.UUIDField(null=True, blank=True)  # a reply it answers (None: the post)
    text = models.TextField(blank=True, default="")
    deleted = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "replies"


class Reaction(ReplicatedModel):
    """A member's emoji on a post or reply; its id follows from the member, target and emoji."""

    target = models.UUIDField(db_index=True)
    emoji = models.CharField(max_length=MAX_EMOJI)


class Attachment(ReplicatedModel):
    """An image or file of a post (its chunks travel apart, ``apps.core.blobs``). Whatever a
    hostile member writes here is checked before use."""

    target = models.UUIDField(db_index=True)
    name = models.CharField(max_length=200)
    mime = models.CharField(max_length=100)
    size = models.BigIntegerField()
    key = models.CharField(max_length=64)  # hex
    chunks = models.TextField()  # hex chunk hashes, concatenated


from apps.timeline.feed_models import FeedConfig, FeedEntry  # noqa: E402,F401 - node-local
