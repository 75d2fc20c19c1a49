"""The timeline API on this node, with another member's node in this process: creating a
timeline, posting short and long posts, replying, reacting, editing with a history read back
from the ops, deleting (a tombstone), reposting only what this node follows, the Atom feed, and
the refusals in words."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from django.test import Client

from apps.core.threads.context import thread_context
from apps.timeline.models import Post
from tests.support import members

pytestmark = pytest.mark.django_db(transaction=True)


def post(api: Client, url: str, body: dict | None = None):
    return api.post(url, body or {}, content_type="application/json")


@pytest.fixture
def api(browser) -> Client:
    return browser


@pytest.fixture
def notes(api):
    made = post(api, "/api/v1/threads/", {"name": "Alice's notes", "app": "timeline"})
    assert made.status_code == 201, made.json()
    from apps.timeline import selectors

    return selectors.thread_find(made.json()["id"])


def url(thread, rest: str = "") -> str:
    return f"/api/v1/threads/{thread.id}/posts/{rest}"


def test_post_reply_react_edit_and_delete(api, notes):
    made = post(api, url(notes), {"text": "Hello #world, <script>alert(1)</script>"})
    assert made.status_code == 201, made.json()
    body = made.json()
    assert body["tags"] == ["world"]
    assert body["author_name"] == "you"
    assert "<script>" not in body["html"]
    assert body["kind"] == "short"
    pid = body["id"]
    replied = post(api, url(notes), {"text": "and a reply", "reply_to": pid})
    assert replied.status_code == 201
    assert [r["text"] for r in replied.json()["conversation"]] == ["and a reply"]
    assert api.put(url(notes, f"{pid}/reactions/👍/")).status_code == 204
    assert api.put(url(notes, f"{pid}/reactions/👍/")).status_code == 204  # once per emoji
    assert api.get(url(notes, f"{pid}/")).json()["reactions"] == {"👍": 1}
    assert api.put(url(notes, f"{pid}/reactions/x/")).status_code == 400
    edited = api.patch(url(notes, f"{pid}/"), json.dumps({"text": "Hello again"}),
                       content_type="application/json")  # fmt: skip
    assert edited.status_code == 200
    assert edited.json()["edited_at"] is not None
    history = api.get(url(notes, f"{pid}/history/")).json()
    assert [v["text"] for v in history] == [
        "Hello #world, <script>alert(1)</script>",
        "Hello again",
    ]
    assert api.delete(url(notes, f"{pid}/")).status_code == 204
    gone = api.get(url(notes, f"{pid}/")).json()
    assert gone["deleted"]
    assert gone["text"] == ""
    assert gone["html"] == ""
    late = post(api, url(notes), {"text": "too late", "reply_to": pid})
    assert late.status_code == 409
    too_long = post(api, url(notes), {"text": "x" * 5001})
    assert too_long.status_code == 400
    assert "at most 5000 characters" in too_long.json()["detail"]
    assert post(api, url(notes), {"text": "  "}).status_code == 400


def test_a_long_public_post_and_the_atom_feed(api, notes):
    made = post(api, url(notes), {"text": "# Part one\n\nBody", "title": "First <b>post</b> & more",
                                  "public": True})  # fmt: skip
    assert made.status_code == 201, made.json()
    body = made.json()
    assert body["kind"] == "long"
    assert body["slug"] == "first-b-post-b-more"
    assert body["public"]
    assert "<h2>Part one</h2>" in body["html"]
    atom = api.get(f"/api/v1/threads/{notes.id}/atom/")
    assert atom.status_code == 200
    assert atom["Content-Type"].startswith("application/atom+xml")
    feed = ET.fromstring(atom.content)  # noqa: S314 - this node's own output
    titles = [e.text for e in feed.iter("{http://www.w3.org/2005/Atom}title")]
    assert "First <b>post</b> & more" in titles  # escaped in the XML, read back as text
    assert api.get("/blog/first-b-post-b-more/").status_code == 200  # public on the owner's blog


def test_a_follower_replies_but_cannot_post_and_reposts_need_a_followed_timeline(
    api, notes, tmp_path
):
    bob = members.member_join(notes, tmp_path, "Bob", "follower", members.Member)
    first = post(api, url(notes), {"text": "Welcome"}).json()
    bob.receive()
    # Bob's node writes a post in Alice's timeline: every replica refuses it (the policy).
    from apps.core.thread.writer import WriteError

    with pytest.raises((WriteError, Exception)):
        Post.objects.using(bob.alias).create(text="from a follower")
    # Alice's own node: a repost of a post of this timeline (which this node has) works ...
    ref = f"{notes.id}/{first['id']}"
    reposted = post(api, url(notes), {"repost_of": ref})
    assert reposted.status_code == 201, reposted.json()
    assert reposted.json()["quoted_text"] == "Welcome"
    # ... and of one this node does not follow is refused in words.
    stranger = post(api, url(notes), {"repost_of": f"{'ab' * 32}/{first['id']}"})
    assert stranger.status_code == 400
    assert "timelines you follow" in stranger.json()["detail"]
    with thread_context(notes.thread):
        assert Post.objects.count() == 2


def test_malformed_ids_and_cursors_are_answered_in_words(api, notes):
    for method, rest, body in [
        ("post", "", {"text": "x", "reply_to": "not-an-id"}),
        ("patch", "not-an-id/", {"text": "y"}),
        ("delete", "not-an-id/", None),
        ("get", "not-an-id/history/", None),
    ]:
        answer = getattr(api, method)(url(notes, rest), json.dumps(body) if body else None,
                                      content_type="application/json")  # fmt: skip
        assert answer.status_code == 404, (method, rest, answer.content)
        assert answer.json()["error"] == "not_found"
    cursor = api.get(url(notes) + "?before=zz")
    assert cursor.status_code == 400
    assert "cursor" in cursor.json()["detail"]
