"""The feed on this node: the index filled as posts are written (by the worker too), bounded,
emptied when a timeline is left; pages merging this node's timelines and one it follows on
another node of this process, ranked by the follower's rules (a mute word hides, a weight
lifts), paging on past the index into the thread databases; named feeds saved; and the API
(rules, recipes out and in, refusals in words with nothing stored)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import nacl.signing
import nacl.utils
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from apps.core.models import Thread
from apps.core.thread.policy import policy_template
from apps.core.thread.writer import ThreadWriter
from apps.core.threads import services as threads
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.p2p import client as p2p_client
from apps.timeline import feed, feed_index, feed_signals, recipes, selectors, services
from apps.timeline.feed_models import FeedConfig, FeedEntry
from apps.timeline.models import Post
from apps.timeline.ranking import NEWEST, RANKED, FeedRules, RulesError
from tests.core.threads.conftest import OtherNode

pytestmark = pytest.mark.django_db(transaction=True)

EVERYTHING = "Everything, newest first"


def _log(database: ThreadDatabase) -> list[bytes]:
    query = "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
    return [raw for (raw,) in database.raw().execute(query)]


@dataclass
class Followed:
    """Carol's timeline on a node of her own, which this node follows."""

    thread: Thread  # this node's registry row
    carol: OtherNode

    @property
    def member(self) -> str:
        key = self.carol.database.member_public()
        assert key is not None
        return key.hex()

    def post(self, text: str) -> str:
        """Carol posts on her node, and her log reaches this node; the post's id."""
        made = Post.objects.using(self.carol.alias).create(kind="short", text=text)
        threads.thread_ingest(thread=self.thread, raws=_log(self.carol.database))
        self.thread.refresh_from_db()
        time.sleep(0.002)  # the next post is a millisecond newer
        return made.id.hex


def follow_carol(tmp_path: Path) -> Followed:
    keys = NodeKeys(device=nacl.signing.SigningKey.generate(), master_secret=nacl.utils.random(32))
    writer = ThreadWriter.create(
        master_secret=keys.master_secret, device_key=keys.device, name="Carol's days",
        app="timeline", policy=policy_template("timeline"),
    )  # fmt: skip
    database = ThreadDatabase(
        writer.thread,
        path=tmp_path / "carol.sqlite3",
        alias=f"thread_{writer.thread.hex()}_carol",
        node=keys,
    )
    database.ingest(op.raw for op in writer.replica.admitted)
    database.write(lambda w: w.set_name("Carol"))
    expiry = time.time_ns() // 1_000_000 + 3_600_000
    made = database.write(lambda w: w.invite_create(role="follower", expiry=expiry, inviter="c"))
    invite, request = threads.invite_redeem_local(link=made.link())
    database.write(lambda w: w.admit(request))
    thread = threads.thread_join(invite=invite, raws=_log(database))
    return Followed(thread, OtherNode(keys, database))


def write(thread: Thread, text: str) -> str:
    made = services.post_create(thread=thread, text_=text)
    time.sleep(0.002)
    return made.id.hex


def page_ids(name: str, **kwargs) -> list[str]:
    return [p.id for p in feed.feed_page(name, **kwargs).posts]


def every_page(name: str, limit: int) -> list[str]:
    seen, before = [], None
    for _ in range(50):
        page = feed.feed_page(name, before=before, limit=limit)
        seen += [p.id for p in page.posts]
        if page.before is None:
            return seen
        before = page.before
    raise AssertionError("the pages never end")


@pytest.fixture
def notes(node) -> Thread:
    return services.timeline_create(name="Alice's notes", my_name="Alice")


@pytest.fixture
def photos(node) -> Thread:
    return services.timeline_create(name="Alice's photos")


@pytest.fixture
def api(browser) -> Client:
    return browser


def test_the_index_holds_the_newest_posts_over_all_timelines_and_no_more(
    notes, photos, monkeypatch
):
    monkeypatch.setattr(feed_index, "HOT", 4)
    written = [write(notes if n % 2 else photos, f"post {n}") for n in range(7)]
    feed_index.index_now(notes)
    feed_index.index_now(photos)
    indexed = set(FeedEntry.objects.values_list("post", flat=True))
    assert indexed == set(written[-4:])
    entry = FeedEntry.objects.get(post=written[-1])
    assert (entry.thread, entry.author) == (photos.id, photos.member_id)


def test_the_worker_indexes_a_new_post_and_tells_open_feed_pages(notes, monkeypatch):
    told: list[tuple[str, dict]] = []
    monkeypatch.setattr(p2p_client, "home_loop", object())  # as if a web server ran here
    monkeypatch.setattr(p2p_client, "_group_send", lambda _l, group, m: told.append((group, m)))
    feed_signals.connect()
    pid = write(notes, "written, and the worker finds it")
    deadline = time.monotonic() + 10
    while not FeedEntry.objects.filter(post=pid).exists():
        assert time.monotonic() < deadline, "the worker never indexed the post"
        time.sleep(0.02)
    while not told:
        assert time.monotonic() < deadline, "no open page was told"
        time.sleep(0.02)
    assert told[-1] == (feed_index.FEED_GROUP, {"type": "feed.changed"})


def test_the_feed_merges_my_timelines_and_one_i_follow_and_forgets_it_when_left(
    notes, photos, tmp_path
):
    carol = follow_carol(tmp_path)
    first = write(notes, "Morning run")
    hers = carol.post("Garden is blooming")
    last = write(photos, "A photo of the sea")
    for thread in (notes, photos, carol.thread):
        feed_index.index_now(thread)
    page = feed.feed_page(EVERYTHING)
    assert [p.id for p in page.posts] == [last, hers, first]
    assert page.before is None
    assert page.names[carol.thread.id] == "Carol's days"
    assert page.posts[1].author == carol.member

    assert threads.thread_leave(thread=carol.thread, wait=0) is False
    feed_index.index_now(carol.thread)
    assert not FeedEntry.objects.filter(thread=carol.thread.id).exists()
    assert page_ids(EVERYTHING) == [last, first]


def test_a_mute_word_hides_and_a_weight_lifts(notes, tmp_path):
    carol = follow_carol(tmp_path)
    hers = carol.post("Old news from Carol")
    muted = write(notes, "Broccoli recipes again")
    mine = write(notes, "Fresh post")
    feed_index.index_now(notes)
    feed_index.index_now(carol.thread)
    ranked = FeedRules("Close friends", order=RANKED)
    feed.feeds_save([ranked, FeedRules(EVERYTHING, order=NEWEST, mute_words=("broccoli",))])
    assert page_ids(EVERYTHING) == [mine, hers]  # muted: the word in another case
    assert page_ids("Close friends") == [mine, muted, hers]  # newest first without weights
    lifted = replace(ranked, author_weights={carol.member: 3})
    feed.feeds_save([lifted])
    assert page_ids("close friends") == [hers, mine, muted]


def test_a_page_of_the_index_opens_no_thread_database_and_shows_the_posts_as_they_are_now(
    notes, photos, monkeypatch
):
    kept = write(notes, "First version")
    gone = write(photos, "Soon deleted")
    feed_index.index_now(notes)
    feed_index.index_now(photos)
    assert len(feed.feed_page(EVERYTHING).posts) == 2
    services.post_edit(thread=notes, post_id=kept, text_="Second version")
    services.reaction_set(thread=notes, target=kept, emoji="👍")
    services.post_delete(thread=photos, post_id=gone)
    feed_index.index_now(notes)
    feed_index.index_now(photos)

    def no_thread_database(*args, **kwargs):
        raise AssertionError("a page of the index read a thread database")

    monkeypatch.setattr(selectors, "posts", no_thread_database)
    monkeypatch.setattr(selectors, "post", no_thread_database)
    for name in (EVERYTHING, "Ranked"):
        (shown,) = feed.feed_page(name).posts
        assert (shown.id, shown.text, shown.reactions) == (kept, "Second version", {"👍": 1})
        assert shown.edited_at is not None
        assert shown.created_at < shown.edited_at


def test_named_feeds_are_saved_and_read_back(node):
    assert feed.feeds() == recipes.DEFAULT_FEEDS
    mine = (FeedRules("Calm", order=NEWEST, mute_words=("election",)), FeedRules("All"))
    assert feed.feeds_save(mine) == mine
    assert feed.feeds() == mine
    assert feed.feed_rules("calm") == mine[0]
    with pytest.raises(feed.FeedError) as unknown:
        feed.feed_rules("Gossip")
    assert unknown.value.code == "not_found"
    with pytest.raises(RulesError):
        feed.feeds_save([])
    assert feed.feeds() == mine


def test_pages_go_on_past_the_index_into_the_thread_databases(notes, photos, monkeypatch):
    monkeypatch.setattr(feed_index, "HOT", 3)
    written = [write(photos if n % 3 == 0 else notes, f"post {n}") for n in range(8)]
    feed_index.index_now(notes)
    feed_index.index_now(photos)
    assert FeedEntry.objects.count() == 3
    newest_first = written[::-1]
    assert every_page(EVERYTHING, limit=3) == newest_first
    assert every_page(EVERYTHING, limit=5) == newest_first
    assert every_page("Ranked", limit=2) == newest_first  # no weights: by age alone
    assert page_ids(EVERYTHING, before=f"t{int(time.time() * 1000) + 60_000}", limit=8) == (
        newest_first
    )


def test_bad_page_links_are_refused_in_words(notes):
    for before in ("nonsense", "r-1", "tabc"):
        with pytest.raises(feed.FeedError) as refused:
            feed.feed_page(EVERYTHING, before=before)
        assert refused.value.code == "invalid"
        assert "start again" in str(refused.value)


# -- the API -------------------------------------------------------------------------------------


def test_the_feed_api_lists_pages_with_the_timelines_names(api, notes, photos):
    first = write(notes, "one")
    second = write(photos, "two")
    feed_index.index_now(notes)
    answer = api.get("/api/v1/feed/", {"limit": 1})
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["feed"] == EVERYTHING
    (top,) = body["posts"]
    assert (top["id"], top["thread"], top["thread_name"]) == (second, photos.id, "Alice's photos")
    assert top["key"] == f"{photos.id}/{second}"
    older = api.get("/api/v1/feed/", {"limit": 1, "before": body["before"]}).json()
    assert [p["id"] for p in older["posts"]] == [first]
    ranked = api.get("/api/v1/feed/", {"feed": "Ranked"}).json()
    assert [p["id"] for p in ranked["posts"]] == [second, first]

    missing = api.get("/api/v1/feed/", {"feed": "Gossip"})
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert "no feed called" in missing.json()["detail"]
    for query in ({"before": "zzz"}, {"limit": "many"}, {"limit": 0}):
        assert api.get("/api/v1/feed/", query).status_code == 400
    assert Client().get("/api/v1/feed/").status_code in (401, 403)


def test_the_rules_api_saves_valid_feeds_and_refuses_the_rest_as_a_whole(api, node):
    defaults = api.get("/api/v1/feed/rules/").json()
    assert [f["name"] for f in defaults] == [f.name for f in recipes.DEFAULT_FEEDS]
    wanted = [{"name": "Calm", "mute_words": ["election"], "order": "newest"}]
    saved = api.put("/api/v1/feed/rules/", json.dumps(wanted), content_type="application/json")
    assert saved.status_code == 200, saved.json()
    assert api.get("/api/v1/feed/rules/").json() == saved.json()
    assert saved.json()[0]["mute_words"] == ["election"]

    bad = [{"name": "Loud", "keywords": {"news": 50}}, {"name": "Calm"}]
    refused = api.put("/api/v1/feed/rules/", json.dumps(bad), content_type="application/json")
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("Feed number 1: A weight is a number from -5 to 5")
    assert [f.name for f in feed.feeds()] == ["Calm"]
    not_a_list = api.put("/api/v1/feed/rules/", json.dumps({"name": "x"}),
                         content_type="application/json")  # fmt: skip
    assert not_a_list.status_code == 400
    assert not_a_list.json()["detail"] == "The feeds must be given as a list."


def test_a_recipe_goes_out_and_comes_back_in_under_another_name(api, node):
    calm = FeedRules("Calm feed", order=NEWEST, keywords={"garden": 2}, mute_words=("war",))
    feed.feeds_save([calm])
    out = api.get("/api/v1/feed/recipes/Calm feed/")
    assert out.status_code == 200
    assert out["Content-Disposition"] == 'attachment; filename="calm-feed.sereus-feed.json"'
    upload = SimpleUploadedFile("calm.json", out.content, content_type="application/json")
    same_name = api.post("/api/v1/feed/recipes/", {"file": upload})
    assert same_name.status_code == 400
    assert "already" in same_name.json()["detail"]
    upload.seek(0)
    taken = api.post("/api/v1/feed/recipes/", {"file": upload, "name": "Bob's calm"})
    assert taken.status_code == 201, taken.json()
    assert [f.name for f in feed.feeds()] == ["Calm feed", "Bob's calm"]
    assert feed.feed_rules("Bob's calm") == replace(calm, name="Bob's calm")
    assert api.get("/api/v1/feed/recipes/Gossip/").status_code == 404


def test_a_file_that_is_not_a_recipe_is_refused_and_nothing_is_stored(api, node):
    for content in (b"\x89PNG\r\n\x1a\n" + bytes(64), b'{"name": "Sneaky"}', b"[]"):
        upload = SimpleUploadedFile("feed.json", content)
        refused = api.post("/api/v1/feed/recipes/", {"file": upload})
        assert refused.status_code == 400
        assert refused.json()["detail"] == "This file is not a feed recipe."
    assert api.post("/api/v1/feed/recipes/", {}).status_code == 400
    assert not FeedConfig.objects.exists()
    assert feed.feeds() == recipes.DEFAULT_FEEDS
