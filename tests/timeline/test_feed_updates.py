"""The feed index follows new ops by reading only the posts they changed, falls back to reading
everything known when that cannot be told, and ranked pages are kept only until it changes."""

from __future__ import annotations

import pytest
from django.db.models import F

from apps.core.threads.changes import changes_since
from apps.core.threads.registry import thread_database
from apps.timeline import feed, feed_index, feed_signals, selectors, services
from apps.timeline.feed_models import FeedConfig, FeedEntry
from apps.timeline.policy import POST
from tests.timeline.test_feed import write

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def no_worker():
    """These tests run the updates themselves: the worker must not run them meanwhile (nor
    backfill a thread just made: ``thread_added`` queues that)."""
    from apps.core.threads.signals import ops_written, thread_added

    ops_written.disconnect(dispatch_uid="timeline-feed-ops")
    thread_added.disconnect(dispatch_uid="timeline-feed-added")
    yield
    feed_signals.connect()


@pytest.fixture
def notes(node):
    return services.timeline_create(name="Alice's notes", my_name="Alice")


def _entry(post_id: str) -> dict:
    return FeedEntry.objects.get(post=post_id).view


def _no_full_read(monkeypatch) -> None:
    def refused(*args, **kwargs):
        raise AssertionError("the update read the timeline's newest posts again")

    monkeypatch.setattr(selectors, "posts", refused)


def test_changes_since_names_the_rows_of_new_data_ops_and_gives_up_on_a_control_op(notes):
    database = thread_database(notes.thread)
    first = changes_since(database, None)
    assert first.rows is None  # no mark yet: read everything
    pid = write(notes, "hello")
    after = changes_since(database, first.mark)
    assert (POST, pid) in after.rows
    assert changes_since(database, after.mark).rows == frozenset()
    database.write(lambda w: w.set_name("Alice, renamed"))
    assert changes_since(database, after.mark).rows is None


def test_an_update_reads_only_the_posts_that_new_replies_and_reactions_are_on(notes, monkeypatch):
    first, second = write(notes, "first"), write(notes, "second")
    feed_index.index_now(notes)
    reply = services.reply_create(thread=notes, post_id=first, text_="an answer")
    services.reaction_set(thread=notes, target=reply.id.hex, emoji="👍")
    services.reaction_set(thread=notes, target=second, emoji="😂")
    _no_full_read(monkeypatch)
    assert feed_index.index_update(notes) == 2
    assert _entry(first)["replies"] == 1
    assert _entry(second)["reactions"] == {"😂": 1}
    third = write(notes, "third")
    assert feed_index.index_update(notes) == 1
    assert FeedEntry.objects.filter(post=third).exists()
    assert feed_index.index_update(notes) == 0  # nothing new: nothing read


def test_what_the_new_ops_cannot_tell_makes_the_update_read_everything_known_again(
    notes, monkeypatch
):
    pid = write(notes, "liked, then not")
    services.reaction_set(thread=notes, target=pid, emoji="👍")
    feed_index.index_now(notes)
    assert _entry(pid)["reactions"] == {"👍": 1}
    # A removed reaction is gone from its table: which post it was on is not known any more.
    services.reaction_set(thread=notes, target=pid, emoji="👍", on=False)
    read = []
    real = selectors.posts
    monkeypatch.setattr(selectors, "posts", lambda *a, **k: read.append(1) or real(*a, **k))
    feed_index.index_update(notes)
    assert read
    assert _entry(pid)["reactions"] == {}
    # A control op (here a rename) may refuse ops already in the log: everything again.
    read.clear()
    thread_database(notes.thread).write(lambda w: w.set_name("Alice, renamed"))
    feed_index.index_update(notes)
    assert read
    # And now and then, in any case.
    read.clear()
    monkeypatch.setattr(feed_index, "REREAD_S", -1.0)
    feed_index.index_update(notes)
    assert read


def test_a_ranked_page_is_kept_until_the_index_changes_in_this_process_or_another(notes):
    old = write(notes, "an old post")
    feed_index.index_now(notes)
    assert [p.id for p in feed.feed_page("Ranked").posts] == [old]
    new = write(notes, "a new post")
    feed_index.index_batch({notes.thread: False})
    assert [p.id for p in feed.feed_page("Ranked").posts] == [new, old]
    # Another process rewrites an entry and counts the generation up: this one reads again.
    entry = FeedEntry.objects.get(post=old)
    entry.view = {**entry.view, "text": "as another process indexed it"}
    entry.save()
    FeedConfig.objects.filter(pk=1).update(generation=F("generation") + 1)
    shown = {p.id: p.text for p in feed.feed_page("Ranked").posts}
    assert shown[old] == "as another process indexed it"


def test_the_newest_page_shows_a_post_the_index_has_not_taken_yet(notes, monkeypatch):
    old = write(notes, "indexed")
    feed_index.index_now(notes)
    new = write(notes, "not indexed yet")  # the worker is off: the index lags
    assert [p.id for p in feed.feed_page("Everything, newest first").posts] == [old]
    feed_index.mark_dirty(notes.thread)  # what the worker's receiver does as the ops are written
    assert [p.id for p in feed.feed_page("Everything, newest first").posts] == [new, old]
    feed_index.index_batch({notes.thread: False})  # the index takes it: no more direct reads
    assert notes.id not in feed_index._dirty

    def refused(*args, **kwargs):
        raise AssertionError("a page read a timeline the index is up to date with")

    monkeypatch.setattr(selectors, "posts", refused)
    assert [p.id for p in feed.feed_page("Everything, newest first").posts] == [new, old]


def test_a_feed_post_is_answered_as_its_schema_says(notes):
    from apps.timeline.feed_apis import FeedPostOutput, _post_body

    pid = write(notes, "a #tagged post")
    services.reaction_set(thread=notes, target=pid, emoji="👍")
    services.post_edit(thread=notes, post_id=pid, text_="a #tagged post, edited")
    feed_index.index_now(notes)
    (post,) = feed.feed_page("Everything, newest first").posts
    names = {notes.id: "Alice's notes"}
    as_schema = dict(
        FeedPostOutput({**post.__dict__, "key": post.key, "thread_name": names[notes.id]}).data
    )
    assert _post_body(post, names) == as_schema
