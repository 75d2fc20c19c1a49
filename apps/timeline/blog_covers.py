"""The cover images of public long posts: served at ``/blog/<slug>/cover.<ext>`` and written
beside each page by the export, so the page's relative link works in both.

A post has a cover only when its ``cover`` names an image file attached to that very post by
its own author (``selectors.attachments`` checks authorship) and this node holds the file whole:
the public blog never waits on other members, and nothing but that one file becomes public.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.core import blobs
from apps.timeline import selectors
from apps.timeline.post import PostView

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


@dataclass(frozen=True)
class Cover:
    name: str  # "cover.jpg": the file's name beside the post's page
    mime: str
    thread: bytes
    key: bytes
    chunks: tuple[bytes, ...]


def cover_of(post: PostView) -> Cover | None:
    if not post.cover:
        return None
    thread = selectors.thread_find(post.thread)
    if thread is None:
        return None
    files = selectors.attachments(thread, [post.id]).get(post.id, [])
    found = next((f for f in files if f.id == post.cover), None)
    if found is None or found.damaged or found.mime not in EXTENSIONS or found.key is None:
        return None
    if blobs.missing(thread.thread, found.chunks):
        return None
    ext = EXTENSIONS[found.mime]
    return Cover(f"cover.{ext}", found.mime, thread.thread, found.key, tuple(found.chunks))


def cover_bytes(cover: Cover) -> bytes:
    """The file's bytes (raises ``blobs.BlobError`` when a chunk on disk is damaged)."""
    return b"".join(blobs.open_blob(cover.thread, cover.key, list(cover.chunks)))
