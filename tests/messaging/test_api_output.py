"""The API writes answers with one serializer made once (``apps.core.api_output``): the output
must be exactly what a serializer made for each answer gives, whatever the message holds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.safestring import mark_safe

from apps.core.api_output import represent, represent_many
from apps.core.threads import writes
from apps.core.threads.apis import WriteRefOutput, write_ref
from apps.core.threads.registry import thread_database
from apps.messaging import selectors, services
from apps.messaging.apis import MessageOutput
from apps.messaging.selectors import AttachmentView, MessageView, Reactions


def _synthetic() -> MessageView:
    return MessageView(
        id="ab" * 16,
        text="*hi*",
        html=mark_safe("<p><em>hi</em></p>"),
        reply_to=None,
        author="cd" * 32,
        author_name="amber falcon",
        mine=False,
        created_at=datetime(2026, 12, 7, 12, 0, 1, 123456, tzinfo=UTC),
        edited_at=None,
        cursor="ef" * 20,
        reactions=[Reactions("👍", 2, True), Reactions("😂", 1, False)],
        read_by=["Bob", "Carol"],
        attachments=[
            AttachmentView(
                "01" * 16, "ab" * 16, "a.bin", "application/octet-stream", 10, None, [], 0
            ),
            AttachmentView(
                "02" * 16, "ab" * 16, "b", "x/y", 0, None, [], 0, "its description is malformed"
            ),
        ],
    )


def test_a_message_is_written_out_as_its_own_serializer_would(chat):
    first = services.message_send(thread=chat, text="first")
    services.message_send(
        thread=chat,
        text="a reply",
        reply_to=first.id,
        files=[SimpleUploadedFile("plans.bin", b"x" * 100)],
    )
    services.message_edit(thread=chat, message_id=first.id, text="first, edited")
    services.reaction_toggle(thread=chat, message_id=first.id, emoji="👍")
    page = selectors.messages(chat)
    assert page[1].edited_at is not None
    assert page[0].attachments
    assert page[1].reactions
    views = [*page, _synthetic()]
    for zone in (None, ZoneInfo("Europe/Berlin"), ZoneInfo("America/Argentina/Buenos_Aires")):
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            assert represent_many(MessageOutput, views) == MessageOutput(views, many=True).data
            for view in views:
                assert represent(MessageOutput, view) == MessageOutput(view).data
        finally:
            timezone.deactivate()


def test_answers_written_at_once_on_several_threads_do_not_mix(chat):
    services.message_send(thread=chat, text="one more")
    views = [_synthetic(), *selectors.messages(chat)]
    expected = [MessageOutput(view).data for view in views] * 50
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda view: represent(MessageOutput, view), views * 50))
    assert got == expected


def test_a_write_reference_is_written_out_as_before(chat):
    services.message_send(thread=chat, text="written")
    database = thread_database(chat.thread)
    write = writes.writes_list(database).writes[0]
    assert write_ref(write) == WriteRefOutput(write).data == {"op": write.op, "state": "accepted"}
    assert write_ref(None) is None
