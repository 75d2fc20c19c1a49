"""The API writes answers with one serializer made once (``apps.core.api_output``): the output
must be exactly what a serializer made for each answer gives, whatever the message holds."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.safestring import mark_safe
from rest_framework import serializers

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
    zones = [None, "Europe/Berlin", "Asia/Kolkata", "America/Argentina/Buenos_Aires"]

    def expected(zone: str | None) -> list:
        with timezone.override(zone and ZoneInfo(zone)):
            return MessageOutput(views, many=True).data

    def written(zone: str | None) -> list:
        with timezone.override(zone and ZoneInfo(zone)):
            return [represent(MessageOutput, view) for view in views] + represent_many(
                MessageOutput, views
            )

    wanted = {zone: expected(zone) * 2 for zone in zones}
    assert wanted["Asia/Kolkata"] != wanted[None]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(written, zones * 25))
    assert got == [wanted[zone] for zone in zones * 25]


def test_a_write_reference_is_written_out_as_before(chat):
    services.message_send(thread=chat, text="written")
    database = thread_database(chat.thread)
    write = writes.writes_list(database).writes[0]
    assert write_ref(write) == WriteRefOutput(write).data == {"op": write.op, "state": "accepted"}
    assert write_ref(None) is None


class _Stamped(serializers.Serializer):
    own_zone = serializers.DateTimeField(default_timezone=ZoneInfo("Asia/Tokyo"))
    reader_zone = serializers.DateTimeField()
    nothing = serializers.DateTimeField(allow_null=True)


def test_a_date_time_field_with_its_own_zone_keeps_it():
    at = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)
    stamped = {"own_zone": at, "reader_zone": at, "nothing": None}
    with timezone.override(ZoneInfo("Europe/Berlin")):
        got = represent(_Stamped, stamped)
        assert got == _Stamped(stamped).data
    assert got["own_zone"].endswith("+09:00")
    assert got["reader_zone"].endswith("+01:00")
    assert represent(_Stamped, stamped) == _Stamped(stamped).data  # back in UTC
