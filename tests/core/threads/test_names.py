"""Names on this node (ADR 16): who is called what (a contact name, else the member's own name,
else two words of its key; never hex), the display name and a thread's own name written as
set_name ops, contact names that never leave the node, and the pages and API that show them."""

from __future__ import annotations

import html
import re

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse
from mnemonic import Mnemonic

from apps.core import services as node_services
from apps.core.models import Thread
from apps.core.thread.keys import member_key
from apps.core.threads import naming, services
from apps.core.threads.names import Names, fallback_name, thread_names
from apps.core.threads.registry import thread_database
from apps.core.threads.selectors import thread_live
from apps.core.threads.services import ThreadServiceError
from tests.core.threads.conftest import admit, exchange, log_since, log_size, other_node

pytestmark = pytest.mark.django_db(transaction=True)

HEX = re.compile(r"\b[0-9a-f]{12,}\b")
WORDS = set(Mnemonic("english").wordlist)


def _own_names(thread: Thread) -> dict[str, str]:
    state = thread_database(thread.thread).replica().control.state
    return {member.hex(): name for member, name in state.names.items()}


def _visible_outside_details(page: str) -> str:
    page = re.sub(r"<details.*?</details>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture
def bob(thread: Thread, tmp_path):
    """Bob's node, a writer in the thread (this node's index knows him)."""
    bob = other_node(tmp_path, thread.thread, "bob")
    admit(thread_database(thread.thread), bob, "writer")
    services.index_refresh(thread=thread)
    bob.member_id = bytes(member_key(bob.keys.master_secret, thread.thread).verify_key).hex()
    return bob


@pytest.fixture
def browser(node) -> Client:
    token = node_services.claim_token_issue()
    user = node_services.owner_claim(token=token, username="alice", password="pw " * 6).user
    client = Client()
    client.force_login(user)
    return client


def test_an_unnamed_member_gets_two_words_of_its_key_the_same_everywhere():
    keys = [bytes([i]) * 32 for i in range(64)]
    names = [fallback_name(key) for key in keys]
    assert names == [fallback_name(key) for key in keys]  # a function of the key alone
    for name in names:
        first, second = name.split(" ")
        assert {first, second} <= WORDS
        assert not HEX.search(name)
    assert len(set(names)) == len(names)


def test_a_contact_name_wins_over_the_own_name_which_wins_over_the_words():
    alice, bob, carol = "a" * 64, "b" * 64, "c" * 64
    names = Names(
        me=alice,
        own={alice: "Alice", bob: "Bob"},
        contacts={bob: "Uncle Bob"},
        devices={"d" * 64: bob},
        this_device="e" * 64,
    )
    assert names[alice] == "Alice"
    assert names[bob] == "Uncle Bob"
    assert names[carol] == fallback_name(bytes.fromhex(carol))
    assert names.person(bob).own_name == "Bob"
    assert names.get("not a key", "a former member") == "a former member"
    assert names["not a key"] == "someone"
    assert names.device("e" * 64) == "this device"
    assert names.device("d" * 64) == "Uncle Bob's device"
    assert names.device("f" * 64) == "a device no longer in the thread"


def test_two_members_who_took_one_name_are_told_apart():
    alice, mallory, bob = "a" * 64, "b" * 64, "c" * 64
    names = Names(
        me=bob,
        own={alice: "Alice", mallory: "alice"},
        contacts={},
        devices={},
        this_device="",
    )
    assert names[alice] == f"Alice ({fallback_name(bytes.fromhex(alice))})"
    assert names[mallory] == f"alice ({fallback_name(bytes.fromhex(mallory))})"
    # A contact name is this node's own choice: it is shown as given.
    names = Names(
        me=bob,
        own={alice: "Alice", mallory: "Alice"},
        contacts={alice: "Alice"},
        devices={},
        this_device="",
    )
    assert names[alice] == "Alice"
    assert names[mallory] == f"Alice ({fallback_name(bytes.fromhex(mallory))})"


def test_creating_a_thread_writes_the_display_name_into_it(node):
    assert naming.display_name_set(name="  Alice   Liddell ") == []
    thread = services.thread_create(name="Tea party")
    assert _own_names(thread) == {thread.member_id: "Alice Liddell"}
    # Unchanged: nothing more is written.
    database = thread_database(thread.thread)
    before = log_size(database)
    assert naming.name_publish(thread=thread) is False
    assert log_size(database) == before


def test_the_display_name_goes_into_threads_without_their_own_name_only(node):
    plain = services.thread_create(name="Plain")
    own = services.thread_create(name="Own")
    assert _own_names(plain) == {}  # no display name yet: nothing written
    naming.my_name_set(thread=own, name="Captain")
    naming.display_name_set(name="Alice")
    assert _own_names(plain) == {plain.member_id: "Alice"}
    assert _own_names(own) == {own.member_id: "Captain"}
    # Back to the usual name: the thread gets the display name.
    naming.my_name_set(thread=Thread.objects.get(pk=own.pk), name="")
    assert _own_names(own) == {own.member_id: "Alice"}


def test_a_name_that_cannot_be_one_is_refused_in_words(thread):
    for bad in ("x" * 81, "Bob\u202e", "Bob\x07"):
        with pytest.raises(ThreadServiceError) as refused:
            naming.my_name_set(thread=thread, name=bad)
        assert refused.value.code == "invalid"
        assert "name" in str(refused.value)
    with pytest.raises(ThreadServiceError, match="1 to 80"):
        naming.display_name_set(name="   ")


def test_a_contact_name_stays_on_this_node(thread, bob):
    database = thread_database(thread.thread)
    bob.database.write(lambda writer: writer.set_name("Bob"))
    exchange(bob.database, database)
    before = log_size(database)
    naming.contact_name_set(thread=thread, member_id=bob.member_id.upper(), name="Uncle  Bob")
    assert log_since(database, before) == []  # nothing written into the thread
    assert thread_names(thread)[bob.member_id] == "Uncle Bob"
    naming.contact_name_set(thread=thread, member_id=bob.member_id, name="")
    assert thread_names(thread)[bob.member_id] == "Bob"
    with pytest.raises(ThreadServiceError, match="that is you"):
        naming.contact_name_set(thread=thread, member_id=thread.member_id, name="Me")
    with pytest.raises(ThreadServiceError, match="no such member"):
        naming.contact_name_set(thread=thread, member_id="ab" * 32, name="Nobody")


def test_the_members_and_devices_lists_show_names_and_keep_keys_in_details(thread, bob):
    naming.display_name_set(name="Alice")
    bob.database.write(lambda writer: writer.set_name("Bob"))
    exchange(bob.database, thread_database(thread.thread))
    live = thread_live(Thread.objects.get(pk=thread.pk))
    members = render_to_string("core/_thread_members.html", {"live": live})
    devices = render_to_string("core/_thread_devices.html", {"live": live})
    shown = _visible_outside_details(members + devices)
    assert "Alice" in shown
    assert "(you)" in shown
    assert "Bob" in shown
    assert "this device" in shown
    assert "Bob's device" in shown
    assert not HEX.search(shown), HEX.search(shown)
    # The keys are there for whoever opens the technical details.
    assert bob.member_id in members
    assert "Technical details" in members


def test_renaming_a_member_on_its_page(browser, thread, bob):
    page = reverse("core:thread_member", args=[thread.id, bob.member_id])
    shown = browser.get(page).content.decode()
    words = fallback_name(bytes.fromhex(bob.member_id))
    assert words in shown
    assert not HEX.search(_visible_outside_details(shown))
    answer = browser.post(page, {"name": "Bobby"})
    assert answer.status_code == 302
    assert "Bobby" in browser.get(page).content.decode()
    assert thread_names(thread)[bob.member_id] == "Bobby"
    stranger = reverse("core:thread_member", args=[thread.id, "ab" * 32])
    assert browser.get(stranger).status_code == 404


def test_my_name_here_and_the_display_name_from_their_forms(browser, thread):
    back = reverse("core:thread", args=[thread.id])
    answer = browser.post(
        reverse("core:thread_my_name", args=[thread.id]), {"name": "Al", "next": back}
    )
    assert answer.status_code == 302
    assert answer["Location"] == back
    assert _own_names(thread) == {thread.member_id: "Al"}
    answer = browser.post(
        reverse("core:display_name"), {"name": "Alice", "next": "https://elsewhere.example/"}
    )
    assert answer["Location"] == reverse("core:settings")  # never off this site
    assert naming.display_name() == "Alice"
    assert _own_names(thread) == {thread.member_id: "Al"}  # the thread keeps its own
    form = render_to_string(
        "core/_display_name_form.html", {"request": answer.wsgi_request, "next": back}
    )
    assert 'value="Alice"' in form
    form = render_to_string(
        "core/_name_form.html",
        {"request": answer.wsgi_request, "thread": Thread.objects.get(pk=thread.pk)},
    )
    assert 'value="Al"' in form


def test_the_api_names_members_and_sets_names(browser, thread, bob):
    token = node_services.api_token_create(user=_owner())
    api = Client(headers={"Authorization": f"Token {token}"})
    assert api.put("/api/v1/node/name/", {"name": "Alice"}, "application/json").json() == {
        "name": "Alice",
        "not_written": [],
    }
    answer = api.put(
        f"/api/v1/threads/{thread.id}/members/{bob.member_id}/contact-name/",
        {"name": "Bobby"},
        "application/json",
    )
    assert answer.status_code == 200
    assert answer.json()["name"] == "Bobby"
    members = {m["id"]: m for m in api.get(f"/api/v1/threads/{thread.id}/members/").json()}
    assert members[thread.member_id]["name"] == "Alice"
    assert members[bob.member_id]["name"] == "Bobby"
    answer = api.put(f"/api/v1/threads/{thread.id}/my-name/", {"name": "Al"}, "application/json")
    assert answer.json() == {"name": "Al", "own": "Al"}
    bad = api.put(f"/api/v1/threads/{thread.id}/my-name/", {"name": "x" * 81}, "application/json")
    assert bad.status_code == 400
    assert "80" in bad.json()["detail"]


def _owner():
    from apps.core.models import Node

    return Node.objects.get(pk=Node.SINGLETON_PK).owner
