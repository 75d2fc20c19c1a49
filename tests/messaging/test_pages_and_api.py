"""The conversation pages (without JavaScript), the live socket, and the REST API: the same
services behind each, the same refusals, harmless rendering of hostile text."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.core.threads.registry import thread_database
from apps.core.threads.services import thread_create
from apps.messaging import selectors, services
from apps.messaging.models import MAX_TEXT, Message
from apps.p2p.client import live_group
from tests.core.threads.conftest import admit, exchange, other_node
from tests.support.sockets import logged_in_cookies, socket

pytestmark = pytest.mark.django_db(transaction=True)


def _url(chat, name="messaging:conversation", *args) -> str:
    return reverse(name, args=[chat.id, *args])


def test_start_a_conversation_and_post_in_it_without_javascript(browser, chat):
    started = browser.post(reverse("messaging:list"), {"name": "Family", "my_name": "Mum"})
    assert started.status_code == 302
    family = selectors.conversations().get(name="Family")
    assert started["Location"] == _url(family)
    sent = browser.post(_url(family), {"text": "Dinner at **7**"})
    assert sent.status_code == 302
    page = browser.get(_url(family)).content.decode()
    assert "Dinner at <strong>7</strong>" in page
    assert f'ws-connect="/ws/messages/{family.id}/"' in page
    listing = browser.get(reverse("messaging:list")).content.decode()
    assert "Family" in listing
    assert "Chat" in listing


def test_hostile_text_is_shown_harmlessly_and_huge_text_is_refused(browser, chat):
    browser.post(_url(chat), {"text": "<script>alert('x')</script>"})
    page = browser.get(_url(chat)).content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page
    huge = browser.post(_url(chat), {"text": "x" * (MAX_TEXT + 1)})
    assert huge.status_code == 400
    assert "the limit is 8\u00a0000" in huge.content.decode()
    assert len(selectors.messages(chat)) == 1


def test_edit_react_reply_and_delete_through_the_page(browser, chat):
    message = services.message_send(thread=chat, text="helo")
    form = browser.get(_url(chat) + f"?edit={message.id.hex}").content.decode()
    assert "Save" in form
    assert "helo" in form
    browser.post(_url(chat, "messaging:edit", message.id.hex), {"text": "hello"})
    browser.post(_url(chat, "messaging:react", message.id.hex), {"emoji": "👍"})
    browser.post(_url(chat), {"text": "a reply", "reply_to": message.id.hex})
    newest, first = selectors.messages(chat)
    assert (first.text, first.edited_at is not None) == ("hello", True)
    assert [(r.emoji, r.count) for r in first.reactions] == [("👍", 1)]
    assert newest.reply_to == message.id.hex
    browser.post(_url(chat, "messaging:delete", message.id.hex))
    assert [m.text for m in selectors.messages(chat)] == ["a reply"]


def test_someone_elses_message_cannot_be_changed_through_the_page(browser, chat, tmp_path):
    chat_db = thread_database(chat.thread)
    bob = other_node(tmp_path, chat.thread, "bob")
    admit(chat_db, bob, "writer")
    bobs = Message.objects.using(bob.alias).create(text="Bob's")
    exchange(bob.database, chat_db)
    page = browser.get(_url(chat)).content.decode()
    assert _url(chat, "messaging:edit", bobs.id.hex) not in page  # no edit button offered
    response = browser.post(
        _url(chat, "messaging:edit", bobs.id.hex), {"text": "mine now"}, follow=True
    )
    assert "only change your own messages" in response.content.decode()
    assert [m.text for m in selectors.messages(chat)] == ["Bob's"]


def test_only_messaging_threads_are_conversations(browser, chat):
    other = thread_create(name="Not a chat")
    assert browser.get(_url(other)).status_code == 404
    assert browser.get(reverse("messaging:conversation", args=["zz"])).status_code == 404


def test_pages_are_the_owners_only(chat, owner_user):
    assert Client().get(_url(chat)).status_code == 302  # to the login page


# -- API ------------------------------------------------------------------------------------------


def test_api_send_list_edit_delete(browser, chat):
    api = f"/api/v1/threads/{chat.id}/messages/"
    sent = browser.post(api, {"text": "hi _there_"}, content_type="application/json")
    assert sent.status_code == 201, sent.content
    body = sent.json()
    assert body["text"] == "hi _there_"
    assert body["html"] == "<p>hi <em>there</em></p>\n"
    assert body["author"] == chat.member_id
    assert body["mine"] is True
    assert body["edited_at"] is None
    assert body["reactions"] == []
    assert body["write"]["state"] == "accepted"  # by this node; the thread may still refuse it
    replied = browser.post(
        api, {"text": "again", "reply_to": body["id"]}, content_type="application/json"
    ).json()
    assert [m["id"] for m in browser.get(api).json()] == [replied["id"], body["id"]]
    older = browser.get(api, {"before": replied["cursor"]}).json()
    assert [m["id"] for m in older] == [body["id"]]
    edited = browser.patch(
        api + body["id"] + "/", {"text": "edited"}, content_type="application/json"
    )
    assert edited.status_code == 200
    assert edited.json()["edited_at"] is not None
    assert edited.json()["write"]["op"] != body["write"]["op"]
    deleted = browser.delete(api + body["id"] + "/")
    assert deleted.status_code == 200
    assert deleted.json()["write"]["state"] == "accepted"
    assert [m["id"] for m in browser.get(api).json()] == [replied["id"]]


def test_a_sends_answer_shows_its_files_and_a_resends_its_reactions(browser, chat):
    # A new message's answer skips the reads of reactions and attachments; these two are not new.
    api = f"/api/v1/threads/{chat.id}/messages/"
    upload = SimpleUploadedFile("notes.txt", b"some notes")
    with_file = browser.post(api, {"text": "see the file", "files": [upload]}).json()
    assert [(a["name"], a["size"]) for a in with_file["attachments"]] == [("notes.txt", 10)]
    client_id = uuid.uuid4().hex
    first = browser.post(api, {"text": "hi", "id": client_id}, content_type="application/json")
    services.reaction_toggle(thread=chat, message_id=first.json()["id"], emoji="👍")
    again = browser.post(api, {"text": "hi", "id": client_id}, content_type="application/json")
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["reactions"] == [{"emoji": "👍", "count": 1, "mine": True}]


@pytest.mark.parametrize(
    ("payload", "status", "error"),
    [
        ({}, 400, "invalid"),
        ({"text": ""}, 400, "invalid"),
        ({"text": "x" * (MAX_TEXT + 1)}, 400, "invalid"),
        ({"text": "hi", "reply_to": "not-a-uuid"}, 400, "invalid"),
        ({"text": "hi", "reply_to": uuid.uuid4().hex}, 404, "not_found"),
        ({"text": "a\x00b"}, 400, "invalid"),
    ],
)
def test_api_refuses_bad_input_clearly(browser, chat, payload, status, error):
    response = browser.post(
        f"/api/v1/threads/{chat.id}/messages/", payload, content_type="application/json"
    )
    assert response.status_code == status, response.content
    assert response.json()["error"] == error
    assert selectors.messages(chat) == []


def test_api_errors_for_unknown_things(browser, chat):
    assert browser.get("/api/v1/threads/" + "ab" * 32 + "/messages/").status_code == 404
    api = f"/api/v1/threads/{chat.id}/messages/"
    assert browser.get(api, {"before": "zz"}).json()["error"] == "invalid"
    missing = browser.patch(
        api + uuid.uuid4().hex + "/", {"text": "x"}, content_type="application/json"
    )
    assert missing.status_code == 404
    assert Client().get(api).status_code in (401, 403)


def test_the_schema_documents_the_messages_api(browser):
    schema = browser.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/threads/{thread_id}/messages/"])
    assert {"patch", "delete"} <= set(paths["/api/v1/threads/{thread_id}/messages/{message_id}/"])


# -- the live socket ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_new_message_reaches_the_open_page(chat, owner_user):
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    communicator = socket(f"/ws/messages/{chat.id}/", cookies=cookies)
    assert (await communicator.connect())[0]
    first = await communicator.receive_from(timeout=5)
    assert 'id="messages" class="messages" hx-swap-oob="true"' in first
    await database_sync_to_async(services.message_send)(thread=chat, text="*live*")
    await get_channel_layer().group_send(live_group(chat.thread), {"type": "thread.changed"})
    while "<em>live</em>" not in (html := await communicator.receive_from(timeout=5)):
        pass
    assert "csrfmiddlewaretoken" in html  # the re-rendered forms still post
    await communicator.disconnect()


@pytest.mark.anyio
async def test_the_socket_is_for_conversations_and_the_owner_only(chat, owner_user):
    other = await database_sync_to_async(thread_create)(name="Not a chat")
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    communicator = socket(f"/ws/messages/{other.id}/", cookies=cookies)
    assert await communicator.connect() == (False, 4404)
    communicator = socket(f"/ws/messages/{chat.id}/", cookies=None)
    assert await communicator.connect() == (False, 4403)


@pytest.mark.anyio
async def test_live_updates_send_only_what_changed(chat, owner_user):
    send = database_sync_to_async(services.message_send)
    await send(thread=chat, text="zeroth")
    first = await send(thread=chat, text="first")
    second = await send(thread=chat, text="second")
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    communicator = socket(f"/ws/messages/{chat.id}/", cookies=cookies)
    assert (await communicator.connect())[0]
    whole = await communicator.receive_from(timeout=5)
    assert 'id="messages"' in whole  # the first render is the whole list

    async def changed() -> str:
        await get_channel_layer().group_send(live_group(chat.thread), {"type": "thread.changed"})
        return await communicator.receive_from(timeout=5)

    await send(thread=chat, text="third")
    added = await changed()
    assert added.startswith('<ol hx-swap-oob="beforeend:#messages">')
    assert "third" in added
    assert "first" not in added
    assert "second" not in added
    assert len(added) < len(whole) / 2  # one message of the three shown
    await database_sync_to_async(services.message_edit)(
        thread=chat, message_id=first.id, text="first, edited"
    )
    edited = await changed()
    assert edited.startswith(f'<li id="m-{first.id.hex}"')
    assert 'hx-swap-oob="true"' in edited
    assert "second" not in edited
    await database_sync_to_async(services.message_delete)(thread=chat, message_id=second.id)
    assert await changed() == f'<li id="m-{second.id.hex}" hx-swap-oob="delete"></li>'
    await communicator.disconnect()


def test_older_messages_are_linked_only_when_there_are_some(browser, chat):
    page_size = selectors.PAGE
    for i in range(page_size):
        services.message_send(thread=chat, text=f"m{i}")
    page = browser.get(_url(chat)).content.decode()
    assert "Older messages" not in page  # exactly one page: nothing older
    services.message_send(thread=chat, text="one more")
    page = browser.get(_url(chat)).content.decode()
    assert "Older messages" in page
    assert ">m0<" not in page.replace("<p>", ">").replace("</p>", "<")  # on the older page


@pytest.mark.anyio
async def test_an_open_page_reads_what_arrives_once_quiet(chat, owner_user, tmp_path, monkeypatch):
    from apps.messaging import consumers

    monkeypatch.setattr(consumers, "READ_AFTER", 0.2)
    chat_db = thread_database(chat.thread)
    bob = other_node(tmp_path, chat.thread, "bob")
    await database_sync_to_async(admit)(chat_db, bob, "writer")
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    communicator = socket(f"/ws/messages/{chat.id}/", cookies=cookies)
    assert (await communicator.connect())[0]
    await communicator.receive_from(timeout=5)

    def bob_says() -> None:
        Message.objects.using(bob.alias).create(text="are you there?")
        exchange(bob.database, chat_db)

    await database_sync_to_async(bob_says)()
    assert await database_sync_to_async(selectors.unread)(chat) == 1
    await get_channel_layer().group_send(live_group(chat.thread), {"type": "thread.changed"})
    assert "are you there?" in await communicator.receive_from(timeout=5)
    for _ in range(100):
        if await database_sync_to_async(selectors.unread)(chat) == 0:
            break
        await asyncio.sleep(0.05)
    assert await database_sync_to_async(selectors.unread)(chat) == 0
    await communicator.disconnect()
