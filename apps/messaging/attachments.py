"""Serving attachments: the file itself (decrypted as it streams), image thumbnails made here,
and asking the p2p node for chunks that have not come yet. Shared by the pages and the API."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from PIL import Image, UnidentifiedImageError

from apps.core import blobs
from apps.core.models import Thread
from apps.core.threads import services as threads
from apps.messaging.selectors import AttachmentView, MessageView

logger = logging.getLogger(__name__)

THUMB_SIZE = (480, 480)
MAX_THUMB_SOURCE = 32 * 1024 * 1024  # bigger images get a download link, not a thumbnail
# A decompression bomb (a small file that decodes to a huge bitmap) is refused, not decoded.
MAX_PIXELS = 50_000_000


def fetch_missing(thread: Thread, page: list[MessageView]) -> None:
    """Ask the p2p node for the chunks the shown attachments still lack."""
    network = threads.network
    if network is None:
        return
    wanted = [
        chunk
        for message in page
        for attachment in message.attachments
        if attachment.damaged is None and not attachment.complete
        for chunk in blobs.missing(thread.thread, attachment.chunks)
    ]
    if wanted:
        network.blobs_want(thread.thread, wanted)


def _safe_headers(response: HttpResponse, attachment: AttachmentView, *, inline: bool) -> None:
    # The bytes are whatever a member sent: never let the browser sniff or run them.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    # An ASCII filename= plus filename*= in UTF-8 (RFC 6266) for any name a member chose.
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=not inline, filename=attachment.name
    )


def download(thread: Thread, attachment: AttachmentView) -> HttpResponse:
    if attachment.damaged:
        return HttpResponse(
            f"This attachment cannot be opened: {attachment.damaged}.",
            status=422,
            content_type="text/plain; charset=utf-8",
        )
    if attachment.complete and blobs.verify(thread.thread, attachment.chunks):
        # A chunk was damaged on this disk: it is gone now, and fetched again from members.
        attachment.have = len(attachment.chunks) - len(
            blobs.missing(thread.thread, attachment.chunks)
        )
    if not attachment.complete:
        fetch_missing_of(thread, attachment)
        return HttpResponse(
            f"Still fetching this attachment from the other members ({attachment.percent}%).",
            status=503,
            content_type="text/plain; charset=utf-8",
            headers={"Retry-After": "2"},
        )
    assert attachment.key is not None
    inline = attachment.is_image
    response = StreamingHttpResponse(
        _chunks(thread, attachment),
        content_type=attachment.mime if inline else "application/octet-stream",
    )
    response["Content-Length"] = str(attachment.size)
    _safe_headers(response, attachment, inline=inline)
    return response


def _chunks(thread: Thread, attachment: AttachmentView):
    try:
        yield from blobs.open_blob(thread.thread, attachment.key, attachment.chunks)
    except blobs.BlobError:
        # Headers are gone already: cutting the body short is how the client learns.
        logger.warning("attachment %s of thread %s does not open", attachment.id, thread.id[:12])
        raise


def fetch_missing_of(thread: Thread, attachment: AttachmentView) -> None:
    network = threads.network
    if network is not None:
        network.blobs_want(thread.thread, blobs.missing(thread.thread, attachment.chunks))


def _thumb_path(thread: Thread, attachment: AttachmentView) -> Path:
    return Path(settings.DATA_DIR) / "thumbs" / thread.id / f"{attachment.id}.jpg"


def thumbnail(thread: Thread, attachment: AttachmentView) -> HttpResponse | None:
    """A small JPEG made here from the whole image (never one the sender supplied); None when
    there is none to show (not an image, not all here, too big, not a readable image)."""
    if not attachment.is_image or not attachment.complete or attachment.size > MAX_THUMB_SOURCE:
        return None
    path = _thumb_path(thread, attachment)
    if not path.exists():
        assert attachment.key is not None
        try:
            data = b"".join(blobs.open_blob(thread.thread, attachment.key, attachment.chunks))
            made = _make_thumbnail(data)
        except (blobs.BlobError, OSError, ValueError, Image.DecompressionBombError) as exc:
            logger.info("no thumbnail for attachment %s: %s", attachment.id, exc)
            return None
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(made)
        partial.replace(path)
    response = HttpResponse(path.read_bytes(), content_type="image/jpeg")
    _safe_headers(response, attachment, inline=True)
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _make_thumbnail(data: bytes) -> bytes:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError("the image is too large to draw")
            image.thumbnail(THUMB_SIZE)
            out = io.BytesIO()
            image.convert("RGB").save(out, format="JPEG", quality=80)
            return out.getvalue()
    except UnidentifiedImageError as exc:
        raise ValueError("not an image it claims to be") from exc
