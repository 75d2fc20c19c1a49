"""A claim's evidence files: the bytes (streamed, never sniffed or run by the browser) and a
small JPEG preview of an image, made here from the whole file."""

from __future__ import annotations

import io
from pathlib import Path

from django.conf import settings as django_settings
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET
from PIL import Image

from apps.core import blobs
from apps.identity import evidence as evidence_files
from apps.identity.views_common import claim_view, enabled_thread

PREVIEW = (480, 480)
MAX_PREVIEW_SOURCE = 32 * 1024 * 1024  # bigger images get their link, not a preview
MAX_PIXELS = 50_000_000


def _evidence(thread_id: str, claim_id: str, index: int):
    thread = enabled_thread(thread_id)
    view = claim_view(thread, claim_id)
    item = next((f for f in view.evidence if f.index == index), None)
    if item is None:
        raise Http404("no such file with this claim")
    return thread, view, item


def _untrusted(response: HttpResponse, name: str, *, inline: bool) -> HttpResponse:
    # The bytes are whatever a member sent: never let the browser sniff or run them.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=not inline, filename=name
    )
    return response


@require_GET
def evidence(request: HttpRequest, thread_id: str, claim_id: str, index: int) -> HttpResponse:
    thread, _view, item = _evidence(thread_id, claim_id, index)
    if not item.complete:
        evidence_files.fetch_missing(thread, [item])
        text = f"Still fetching this file from the other members ({item.percent}%)."
        words = {"content_type": "text/plain; charset=utf-8", "headers": {"Retry-After": "2"}}
        return HttpResponse(text, status=503, **words)
    kind = item.mime if item.is_image else "application/octet-stream"
    response = StreamingHttpResponse(evidence_files.file_bytes(thread, item), content_type=kind)
    response["Content-Length"] = str(item.size)
    return _untrusted(response, item.name, inline=item.is_image)


@require_GET
def evidence_preview(request: HttpRequest, thread_id: str, claim_id: str, index: int):
    """A small JPEG of an image, made here from the whole file (never one the sender made)."""
    thread, view, item = _evidence(thread_id, claim_id, index)
    if not item.is_image or not item.complete or item.size > MAX_PREVIEW_SOURCE:
        raise Http404("no preview of this file")
    path = Path(django_settings.DATA_DIR) / "thumbs" / thread.id / f"claim-{view.id}-{index}.jpg"
    if not path.exists():
        try:
            made = preview_of(b"".join(evidence_files.file_bytes(thread, item)))
        except (OSError, ValueError, Image.DecompressionBombError, blobs.BlobError) as exc:
            raise Http404("this image cannot be previewed") from exc
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(made)
        partial.replace(path)
    response = HttpResponse(path.read_bytes(), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return _untrusted(response, item.name, inline=True)


def preview_of(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        if image.width * image.height > MAX_PIXELS:  # a small file that decodes to a huge one
            raise ValueError("the image is too large to draw")
        image.thumbnail(PREVIEW)
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=80)
        return out.getvalue()
