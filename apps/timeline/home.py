"""What Home shows of a timeline: its newest post, in words. Nothing waits for a follower."""

from __future__ import annotations

from apps.core.models import Thread
from apps.core.threads.pages import Latest
from apps.messaging.text import first_line
from apps.timeline import selectors

PREVIEW = 80  # characters of the newest post on Home


def latest(thread: Thread) -> Latest | None:
    newest = selectors.posts(thread, limit=1)
    if not newest:
        return None
    post = newest[0]
    if post.deleted:
        said = "a deleted post"
    elif post.repost_of:
        said = f"reposted {post.quoted_author}: {first_line(post.quoted_text, PREVIEW)}"
    else:
        said = post.title or first_line(post.text, PREVIEW) or "a photo"
    who = "You" if post.mine else post.author_name
    return Latest(f"{who}: {said}", post.created_at)


def waiting(thread: Thread) -> list[str]:
    return []  # a timeline asks nothing of its followers
