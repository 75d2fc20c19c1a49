"""The feed's node-local state: an index of the newest posts of the timelines this node follows,
and the follower's named feeds. Plain models in the node's own database: they are this node's
reading habits and never replicate (``feed.py`` keeps them)."""

from django.db import models


class FeedEntry(models.Model):
    """A post of a followed timeline among the newest ones over all of them (the hot set). Its
    thread, author and time never change (edits keep them); ``view`` is the post as last read
    (edits, replies and reactions rewrite it), so a page of the hot set opens no thread
    database: one page of a feed over many timelines would otherwise open one per timeline."""

    thread = models.CharField(max_length=64)  # the timeline's thread id, hex
    post = models.CharField(max_length=32)  # the post's row id, hex
    created_at = models.DateTimeField(db_index=True)  # from the author's signed op
    author = models.CharField(max_length=64)  # the author's member key, hex
    view = models.JSONField(default=dict)  # the PostView's fields (``feed.py``)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["thread", "post"], name="feed_entry_once"),
        ]
        indexes = [models.Index(fields=["thread", "created_at"], name="feed_entry_thread_time")]

    def __str__(self) -> str:
        return f"{self.thread[:12]}/{self.post[:12]}"


class FeedConfig(models.Model):
    """One row: this node's named feeds as JSON (``recipes.feeds_to_data``), and the index's
    generation, counted up whenever the index changes (a ranked page is kept until then)."""

    feeds = models.JSONField(default=list)
    generation = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return "feeds"
