"""Attachments on one node and as rows from another: sent with a message, served whole with
headers that keep the browser from running them, thumbnails made here, and broken or foreign
descriptions shown as such without breaking the page."""

from __future__ import annotations

import dataclasses
import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.core import blobs
from apps.core.threads import services as threads_services
from apps.core.threads.registry import thread_database
from apps.core.threads.services import ThreadServiceError
from apps.messaging import selectors, services
from apps.messaging.models import Attachment, Message
from tests.core.threads.conftest import admit, exchange, log_size, other_node

pytestmark = pytest.mark.django_db(transaction=True)


def _png(width: int = 800, height: int = 600) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def _get(browser: Client, chat, attachment_id: str, thumb: bool = False):
    name = "messaging:attachment_thumb" if thumb else "messaging:attachment"
    return browser.get(reverse(name, args=[chat.id, attachment_id]))


def test_files_sent_with_a_message_download_whole_with_safe_headers(chat, browser):
    data = os.urandom(blobs.CHUNK * 2 + 17)
    picture = _png()
    browser.post(
        reverse("messaging:conversation", args=[chat.id]),
        {
            "text": "the plans",
            "files": [
                SimpleUploadedFile("plans.bin", data),
                SimpleUploadedFile("../../etc/photo.png", picture),
            ],
        },
    )
    (message,) = selectors.messages(chat)
    binary, image = message.attachments
    assert (binary.name, binary.size, binary.complete, binary.is_image) == (
        "plans.bin",
        len(data),
        True,
        False,
    )
    assert (image.name, image.mime, image.is_image) == ("photo.png", "image/png", True)
    got = _get(browser, chat, binary.id)
    assert b"".join(got.streaming_content) == data
    assert got["Content-Type"] == "application/octet-stream"
    assert got["Content-Disposition"] == 'attachment; filename="plans.bin"'
    assert got["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in got["Content-Security-Policy"]
    shown = _get(browser, chat, image.id)
    assert b"".join(shown.streaming_content) == picture
    assert shown["Content-Type"] == "image/png"
    assert shown["Content-Disposition"].startswith("inline")


def test_an_image_gets_a_thumbnail_made_here(chat, browser):
    services.message_send(
        thread=chat, text="", files=[SimpleUploadedFile("big.png", _png(2000, 1000))]
    )
    (image,) = selectors.messages(chat)[0].attachments
    thumb = _get(browser, chat, image.id, thumb=True)
    assert thumb.status_code == 200
    assert thumb["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert small.size == (480, 240)
    page = browser.get(reverse("messaging:conversation", args=[chat.id])).content.decode()
    assert reverse("messaging:attachment_thumb", args=[chat.id, image.id]) in page


def test_a_file_that_only_claims_to_be_an_image_gets_no_thumbnail(chat, browser):
    services.message_send(
        thread=chat, text="", files=[SimpleUploadedFile("fake.png", b"<svg onload=alert(1)>")]
    )
    (fake,) = selectors.messages(chat)[0].attachments
    assert _get(browser, chat, fake.id, thumb=True).status_code == 404
    served = _get(browser, chat, fake.id)
    assert served["Content-Type"] == "image/png"  # never sniffed into something that runs
    assert served["X-Content-Type-Options"] == "nosniff"


def test_a_decompression_bomb_is_not_drawn(chat, browser):
    out = io.BytesIO()
    Image.new("1", (12000, 12000)).save(out, format="PNG")  # ~20 kB, 144 million pixels
    services.message_send(
        thread=chat, text="", files=[SimpleUploadedFile("bomb.png", out.getvalue())]
    )
    (bomb,) = selectors.messages(chat)[0].attachments
    assert _get(browser, chat, bomb.id, thumb=True).status_code == 404


def test_too_many_or_too_large_files_are_refused_and_nothing_is_posted(chat, settings):
    size = log_size(thread_database(chat.thread))
    files = [SimpleUploadedFile(f"f{i}", b"x") for i in range(services.MAX_FILES + 1)]
    with pytest.raises(ThreadServiceError, match="at most 10 attachments"):
        services.message_send(thread=chat, text="many", files=files)
    settings.SEREUS = dataclasses.replace(settings.SEREUS, max_attachment_bytes=blobs.CHUNK)
    big = SimpleUploadedFile("big.bin", os.urandom(blobs.CHUNK + 1))
    with pytest.raises(ThreadServiceError, match=r"big\.bin: the file is larger than 1 MiB"):
        services.message_send(thread=chat, text="big", files=[big])
    assert log_size(thread_database(chat.thread)) == size
    assert selectors.messages(chat) == []


def test_another_members_attachment_is_fetching_until_its_chunks_come(chat, browser, tmp_path):
    chat_db = thread_database(chat.thread)
    bob = other_node(tmp_path, chat.thread, "bob")
    admit(chat_db, bob, "writer")
    message = Message.objects.using(bob.alias).create(text="from Bob")
    Attachment.objects.using(bob.alias).create(
        message=message.id,
        name="notes.txt",
        mime="text/plain",
        size=5000,
        key="11" * 32,
        chunks="22" * 32,
    )
    exchange(bob.database, chat_db)
    (attachment,) = selectors.messages(chat)[0].attachments
    assert (attachment.complete, attachment.percent, attachment.damaged) == (False, 0, None)
    response = _get(browser, chat, attachment.id)
    assert response.status_code == 503
    assert "Still fetching" in response.content.decode()
    assert (
        "fetching"
        in browser.get(reverse("messaging:conversation", args=[chat.id])).content.decode()
    )


@pytest.mark.parametrize(
    ("key", "chunks", "size"),
    [
        ("zz", "22" * 32, 10),  # not hex
        ("11" * 31, "22" * 32, 10),  # a short key
        ("11" * 32, "22" * 33, 10),  # a partial chunk hash
        ("11" * 32, "22" * 32, blobs.CHUNK + 1),  # more bytes than its chunks hold
        ("11" * 32, "22" * 32, -1),
    ],
)
def test_a_malformed_description_shows_as_damaged_and_breaks_nothing(
    chat, browser, tmp_path, key, chunks, size
):
    chat_db = thread_database(chat.thread)
    bob = other_node(tmp_path, chat.thread, "bob")
    admit(chat_db, bob, "writer")
    message = Message.objects.using(bob.alias).create(text="odd")
    Attachment.objects.using(bob.alias).create(
        message=message.id, name="odd", mime="x/y", size=size, key=key, chunks=chunks
    )
    exchange(bob.database, chat_db)
    (attachment,) = selectors.messages(chat)[0].attachments
    assert attachment.damaged == "its description is malformed"
    assert _get(browser, chat, attachment.id).status_code == 422
    page = browser.get(reverse("messaging:conversation", args=[chat.id]))
    assert page.status_code == 200
    assert "cannot be opened" in page.content.decode()


def test_nobody_attaches_files_to_someone_elses_message(chat, tmp_path):
    chat_db = thread_database(chat.thread)
    mine = services.message_send(thread=chat, text="mine")
    bob = other_node(tmp_path, chat.thread, "bob")
    admit(chat_db, bob, "writer")
    Attachment.objects.using(bob.alias).create(
        message=mine.id,
        name="planted.exe",
        mime="application/octet-stream",
        size=1,
        key="11" * 32,
        chunks="22" * 32,
    )
    exchange(bob.database, chat_db)
    assert selectors.messages(chat)[0].attachments == []


def test_any_file_name_gives_a_header_browsers_read(chat, browser):
    services.message_send(
        thread=chat, text="", files=[SimpleUploadedFile('日本語 "q".txt', b"hello")]
    )
    (attachment,) = selectors.messages(chat)[0].attachments
    header = _get(browser, chat, attachment.id)["Content-Disposition"]
    assert header.startswith("attachment; filename*=utf-8''")
    assert "%E6%97%A5%E6%9C%AC%E8%AA%9E" in header
    assert header.isascii()


def test_a_chunk_damaged_on_disk_is_fetched_again_not_served(chat, browser, data_dir):
    data = os.urandom(blobs.CHUNK + 100)
    services.message_send(thread=chat, text="", files=[SimpleUploadedFile("d.bin", data)])
    (attachment,) = selectors.messages(chat)[0].attachments
    path = data_dir / "blobs" / chat.thread.hex() / attachment.chunks[0].hex()
    path.write_bytes(b"bit rot" + path.read_bytes()[7:])
    response = _get(browser, chat, attachment.id)
    assert response.status_code == 503  # not a file cut short halfway
    assert not path.exists()
    (again,) = selectors.messages(chat)[0].attachments
    assert (again.complete, again.percent) == (False, 50)


def test_a_description_larger_than_this_node_accepts_is_never_fetched(
    chat, browser, tmp_path, settings, monkeypatch
):
    """A hostile member describes a file of 15 000 chunks: its size is consistent, but nobody
    fetches more than their own node accepts (the limit holds on fetch too)."""
    chat_db = thread_database(chat.thread)
    bob = other_node(tmp_path, chat.thread, "bob")
    admit(chat_db, bob, "writer")
    message = Message.objects.using(bob.alias).create(text="a huge file")
    count = 15_000
    Attachment.objects.using(bob.alias).create(
        message=message.id,
        name="huge.bin",
        mime="application/octet-stream",
        size=count * blobs.CHUNK,
        key="11" * 32,
        chunks="22" * 32 * count,
    )
    exchange(bob.database, chat_db)
    wanted = []
    monkeypatch.setattr(
        threads_services,
        "network",
        type("Net", (), {"blobs_want": lambda self, t, chunks: wanted.extend(chunks)})(),
    )
    (attachment,) = selectors.messages(chat)[0].attachments
    assert attachment.damaged == "it is larger than this node accepts"
    page = browser.get(reverse("messaging:conversation", args=[chat.id]))
    assert page.status_code == 200
    assert wanted == []
