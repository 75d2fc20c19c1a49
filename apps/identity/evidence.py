"""A claim's evidence: photos, videos and PDFs sealed as blobs in the thread the way messaging
seals attachments (``apps.core.blobs``), described in ``Claim.evidence`` as a JSON list of
``{name, mime, size, key, chunks}``. Other members' nodes fetch the chunks from the thread's
members when a page shows the claim (``fetch_missing``), as messaging does.

The type is read from the file's first bytes, never from its name or what the browser said,
and only images, videos and PDFs are taken."""

from __future__ import annotations

import io
import json
import mimetypes
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from apps.core import blobs
from apps.core.models import Thread

MAX_FILES = 10
MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_NAME = 200
_HEAD = 64


class EvidenceError(ValueError):
    """A file that cannot be evidence, in words."""


def sniff(head: bytes) -> str | None:
    """The type the first bytes show, if it is one taken as evidence."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"mif1", b"msf1"):
            return "image/heic"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand == b"qt  ":
            return "video/quicktime"
        return "video/mp4"
    return None


def _name(name: str | None) -> str:
    base = (name or "file").replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in base if c.isprintable()).strip() or "file"
    return clean[-MAX_NAME:]


@dataclass
class _Upload:
    name: str
    stream: Any


def _uploads(files: Sequence[Any]) -> list[_Upload]:
    found = []
    for item in files:
        if isinstance(item, tuple):
            name, _mime, data = item
            found.append(_Upload(_name(name), io.BytesIO(bytes(data))))
        else:
            found.append(_Upload(_name(getattr(item, "name", None)), item))
    return found


class _Prefixed(io.RawIOBase):
    """The stream with the bytes already read for sniffing put back in front."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head, self._rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)


def seal_all(thread: Thread, files: Sequence[Any]) -> list[dict[str, Any]]:
    """Seal each file as a blob of the thread; their descriptions for the claim. Checks every
    file's type before sealing any, so a bad file costs nothing."""
    uploads = _uploads(files)
    if len(uploads) > MAX_FILES:
        raise EvidenceError(f"a claim carries at most {MAX_FILES} evidence files")
    checked = []
    for upload in uploads:
        head = upload.stream.read(_HEAD) or b""
        mime = sniff(head)
        if not head:
            raise EvidenceError(f"{upload.name} is empty")
        if mime is None:
            raise EvidenceError(
                f"{upload.name} is not a photo, a video or a PDF (other files are not evidence)"
            )
        checked.append((upload, head, mime))
    described = []
    for upload, head, mime in checked:
        try:
            sealed = blobs.seal(thread.thread, _Prefixed(head, upload.stream), limit=MAX_FILE_BYTES)
        except blobs.BlobError as exc:
            raise EvidenceError(f"{upload.name}: {exc}") from exc
        described.append(
            {
                "name": upload.name,
                "mime": mime,
                "size": sealed.size,
                "key": sealed.key.hex(),
                "chunks": b"".join(sealed.chunks).hex(),
            }
        )
    return described


@dataclass(frozen=True)
class EvidenceFile:
    index: int
    name: str
    mime: str
    size: int
    key: bytes
    chunks: list[bytes]
    have: int  # chunks this node holds

    @property
    def complete(self) -> bool:
        return self.have == len(self.chunks)

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")

    @property
    def percent(self) -> int:
        return 100 if not self.chunks else self.have * 100 // len(self.chunks)


def files_of(thread: Thread, evidence: str) -> list[EvidenceFile]:
    """A claim's evidence column read (the rules made sure it is well formed)."""
    try:
        items = json.loads(evidence or "[]")
    except ValueError:
        return []
    found = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        try:
            chunks_hex = str(item["chunks"])
            chunks = [bytes.fromhex(chunks_hex[i : i + 64]) for i in range(0, len(chunks_hex), 64)]
            have = len(chunks) - len(blobs.missing(thread.thread, chunks))
            found.append(
                EvidenceFile(
                    index=index,
                    name=str(item["name"]),
                    mime=str(item["mime"]),
                    size=int(item["size"]),
                    key=bytes.fromhex(str(item["key"])),
                    chunks=chunks,
                    have=have,
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return found


def fetch_missing(thread: Thread, files: Iterable[EvidenceFile]) -> None:
    """Ask the p2p node for the chunks of these files this node does not hold yet."""
    from apps.core.threads import services as threads

    network = threads.network
    if network is None:
        return
    wanted = [c for f in files if not f.complete for c in blobs.missing(thread.thread, f.chunks)]
    if wanted:
        network.blobs_want(thread.thread, wanted)


def file_bytes(thread: Thread, item: EvidenceFile) -> Iterable[bytes]:
    """The file's bytes, chunk by chunk (``blobs.Missing`` if a chunk is not here yet)."""
    return blobs.open_blob(thread.thread, item.key, item.chunks)


def guess_extension(mime: str) -> str:
    return mimetypes.guess_extension(mime) or ""
