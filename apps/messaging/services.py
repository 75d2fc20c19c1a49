"""The only writers of conversations. Each write is one transaction of the thread's database and
so one signed op; the thread's policy (``policy.py``) is enforced again by every replica.

Errors are ``ThreadServiceError`` with the codes the API maps to statuses: ``invalid`` (bad
input), ``not_found``, ``forbidden`` (the policy refuses: not your message, or a reader).
"""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Sequence
from typing import Protocol

from django.conf import settings
from django.db import transaction

from apps.core import blobs
from apps.core.models import Thread
from apps.core.thread.rowid import row_id_for
from apps.core.threads import naming
from apps.core.threads import services as threads
from apps.core.threads.context import thread_context
from apps.core.threads.database import WriteRefused
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.messaging import selectors
from apps.messaging.models import (
    MAX_EMOJI,
    MAX_NAME,
    MAX_TEXT,
    Attachment,
    Message,
    Reaction,
    Receipt,
)
from apps.messaging.policy import APP

MAX_FILES = 10


class Upload(Protocol):
    """An uploaded file as Django gives it (``UploadedFile``), or any named binary stream."""

    name: str | None

    def read(self, size: int = -1) -> bytes: ...


def _file_name(name: str | None) -> str:
    # Only the last part of a path, without control characters, at most 200 characters.
    base = (name or "file").replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(c for c in base if c.isprintable()).strip() or "file"
    return clean[-200:]


def _mime(name: str | None) -> str:
    guessed, _ = mimetypes.guess_type(name or "")
    return guessed if guessed and len(guessed) <= 100 else "application/octet-stream"


def _seal(thread: Thread, upload: Upload) -> blobs.Sealed:
    try:
        return blobs.seal(thread.thread, upload, limit=settings.SEREUS.max_attachment_bytes)
    except blobs.BlobError as exc:
        raise ThreadServiceError("invalid", f"{_file_name(upload.name)}: {exc}") from exc


REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "🙏")


def conversation_create(*, name: str, my_name: str = "") -> Thread:
    thread = threads.thread_create(name=name, app=APP)
    if my_name.strip():
        profile_set(thread=thread, name=my_name)
    return thread


def _text(value: str) -> str:
    value = value.strip()
    if not value:
        raise ThreadServiceError("invalid", "a message needs some text")
    if len(value) > MAX_TEXT:
        raise ThreadServiceError(
            "invalid", f"a message holds at most {MAX_TEXT} characters ({len(value)} given)"
        )
    if "\x00" in value:
        raise ThreadServiceError("invalid", "a message cannot contain NUL characters")
    return value


def _id(value: str | uuid.UUID, what: str = "message id") -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(hex=str(value))
    except ValueError:
        raise ThreadServiceError("invalid", f"{what} is not a UUID") from None


def _write(thread: Thread, action):
    """Run ``action()`` in one transaction of the thread (one op); the policy's refusal becomes
    a ``forbidden`` error and nothing of the write is kept."""
    if thread.state != Thread.State.ACTIVE:
        raise ThreadServiceError("forbidden", f"you can no longer write in {thread.name}")
    alias = thread_database(thread.thread).alias
    try:
        with thread_context(thread.thread), transaction.atomic(using=alias):
            return action()
    except WriteRefused as exc:
        raise ThreadServiceError("forbidden", str(exc)) from exc


def _message(thread: Thread, message_id: str | uuid.UUID) -> Message:
    with thread_context(thread.thread):
        message = Message.objects.filter(pk=_id(message_id)).first()
    if message is None:
        raise ThreadServiceError("not_found", "no such message in this conversation")
    return message


def _own(thread: Thread, message: Message) -> None:
    # Checked here for a clear error; every replica refuses it anyway (update/delete: own rows).
    if selectors.author(thread, "message", message.id.hex) != thread.member_id:
        raise ThreadServiceError("forbidden", "you can only change your own messages")


def message_send(
    *,
    thread: Thread,
    text: str,
    reply_to: str | uuid.UUID | None = None,
    id: uuid.UUID | None = None,
    files: Sequence[Upload] = (),
) -> Message:
    if len(files) > MAX_FILES:
        raise ThreadServiceError("invalid", f"at most {MAX_FILES} attachments per message")
    body = _text(text) if text.strip() or not files else ""
    answer = _message(thread, reply_to).id if reply_to else None
    fields = {"text": body, "reply_to": answer}
    if id is not None:  # chosen by the client (an offline queue resends without duplicating)
        # The row's id must name its author (apps.core.thread.rowid): the client's id is its
        # seed, so the same client id always gives the same message.
        fields["id"] = row_id_for(bytes.fromhex(thread.member_id), _id(id).bytes)
        with thread_context(thread.thread):
            existing = Message.objects.filter(pk=fields["id"]).first()
        if existing is not None:
            if selectors.author(thread, "message", existing.id.hex) != thread.member_id:
                raise ThreadServiceError("invalid", "that message id is taken")
            return existing
    if thread.state != Thread.State.ACTIVE:
        raise ThreadServiceError("forbidden", f"you can no longer write in {thread.name}")
    # The chunks are filed first; the rows that point at them are one op with the message.
    sealed = [_seal(thread, upload) for upload in files]

    def send() -> Message:
        message = Message.objects.create(**fields)
        for upload, blob in zip(files, sealed, strict=True):
            Attachment.objects.create(
                message=message.id,
                name=_file_name(upload.name),
                mime=_mime(upload.name),
                size=blob.size,
                key=blob.key.hex(),
                chunks=b"".join(blob.chunks).hex(),
            )
        return message

    message = _write(thread, send)
    return message


def message_edit(*, thread: Thread, message_id: str | uuid.UUID, text: str) -> Message:
    body = _text(text)
    message = _message(thread, message_id)
    _own(thread, message)
    if message.text == body:
        return message

    def edit() -> Message:
        message.text = body
        message.save(update_fields=["text"])
        return message

    return _write(thread, edit)


def message_delete(*, thread: Thread, message_id: str | uuid.UUID) -> None:
    message = _message(thread, message_id)
    _own(thread, message)

    def delete() -> None:
        # This member's reactions to it go with it. Other members' reactions are their rows,
        # which only they may delete: they stay, unseen, with no message to show them on.
        Reaction.objects.filter(message=message.id, pk__in=_mine(thread, "reaction")).delete()
        message.delete()

    _write(thread, delete)


def reaction_toggle(*, thread: Thread, message_id: str | uuid.UUID, emoji: str) -> bool:
    """Add this member's reaction, or take it back if present; returns whether it is now on."""
    if emoji not in REACTIONS or len(emoji) > MAX_EMOJI:
        raise ThreadServiceError("invalid", f"a reaction is one of {' '.join(REACTIONS)}")
    message = _message(thread, message_id)
    with thread_context(thread.thread):
        mine = list(
            Reaction.objects.filter(
                message=message.id, emoji=emoji, pk__in=_mine(thread, "reaction")
            ).values_list("pk", flat=True)
        )
    if mine:
        _write(thread, lambda: Reaction.objects.filter(pk__in=mine).delete())
        return False
    _write(thread, lambda: Reaction.objects.create(message=message.id, emoji=emoji))
    return True


def _mine(thread: Thread, kind: str) -> list[uuid.UUID]:
    return [uuid.UUID(hex=pk) for pk in selectors.own_rows(thread, kind)]


def _own_row_save(thread: Thread, model, kind: str, **fields) -> None:
    """Update this member's one row of a per-member table (a name, a receipt), or insert it."""
    mine = _mine(thread, kind)

    def save() -> None:
        if mine:
            model.objects.filter(pk=mine[0]).update(**fields)
        else:
            model.objects.create(**fields)

    _write(thread, save)


def profile_set(*, thread: Thread, name: str) -> None:
    """The name this member goes by in the conversation: the thread's own name for it, written
    as the core's set_name (ADR 16; no longer a ``messaging_profile`` row)."""
    if not name.strip():
        raise ThreadServiceError("invalid", f"a name has 1 to {MAX_NAME} characters")
    naming.my_name_set(thread=thread, name=name)


def receipt_mark(*, thread: Thread, up_to: str) -> bool:
    """Say this member has read up to the message with cursor ``up_to``; only ever moves forward
    (a page opened on an older page, or a repeat, writes nothing). Returns whether it wrote."""
    if not selectors.is_cursor(up_to):
        raise ThreadServiceError("invalid", "not a message cursor")
    if thread.state != Thread.State.ACTIVE:
        return False
    if selectors.receipts(thread).get(thread.member_id, "") >= up_to:
        return False
    _own_row_save(thread, Receipt, "receipt", read_up_to=up_to)
    return True


def conversation_read(*, thread: Thread) -> bool:
    """The member has seen the conversation's newest message (its page is open)."""
    newest = selectors.messages(thread, limit=1)
    if not newest or thread.state != Thread.State.ACTIVE:
        return False
    return receipt_mark(thread=thread, up_to=newest[0].cursor)
