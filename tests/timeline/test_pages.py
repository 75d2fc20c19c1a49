"""The timeline pages without JavaScript (forms that post and redirect): the feed and a new
timeline, posting with a photo, a post with its threaded replies, reactions, edit with history
and delete, a follower's page without the compose form (and a forged post refused in words),
the feed rules editor and recipes; and the live sockets of the feed and a timeline."""

from __future__ import annotations

import html as entities
import io
import json
import re

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from apps.core.models import Thread
from apps.p2p.client import live_group
from apps.timeline import feed, feed_index, selectors, services
from apps.timeline.recipes import RECIPE_FORMAT
from apps.timeline.views import PAGE
from tests.support.sockets import logged_in_cookies, socket

pytestmark = pytest.mark.django_db(transaction=True)

HEX = re.compile(r"\b[0-9a-f]{8,}\b")


def visible(html: str) -> str:
    """The page's main text as read (tags, attributes and the CSRF token out)."""
    main = html.split("<main", 1)[1].split("</main>", 1)[0]
    return " ".join(entities.unescape(re.sub(r"<[^>]+>", " ", main)).split())


def looks_right(response) -> str:
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    text = visible(html)
    assert not HEX.search(text), HEX.search(text)
    for syntax in ("{{", "{%", "{#", "None"):
        assert syntax not in text, syntax
    assert not re.search(r"<label[^>]*>\s*</label>", html), "an empty label"
    return text


def png(name: str = "garden.png") -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 160, 60)).save(out, format="PNG")
    return SimpleUploadedFile(name, out.getvalue(), content_type="image/png")


def timeline_url(thread: Thread) -> str:
    return reverse("timeline:timeline", args=[thread.id])


def post_url(thread: Thread, post_id: str) -> str:
    return reverse("timeline:post", args=[thread.id, post_id])


def start(browser: Client, name: str = "Alice's notes") -> Thread:
    done = browser.post(reverse("timeline:feed"), {"name": name, "my_name": "Alice"})
    assert done.status_code == 302
    thread = next(t for t in selectors.timelines() if t.name == name)
    assert done["Location"] == timeline_url(thread)
    return thread


def test_the_feed_starts_a_timeline_and_shows_its_posts_with_photos(browser):
    page = looks_right(browser.get(reverse("timeline:feed")))
    assert "Nothing in this feed yet" in page
    assert "New timeline" in page
    refused = browser.post(reverse("timeline:feed"), {"name": "  "})
    assert refused.status_code == 400
    assert "Write a timeline's name." in visible(refused.content.decode())
    assert selectors.timelines() == []
    thread = start(browser)
    page = looks_right(browser.get(timeline_url(thread)))
    assert "is ready" in page  # the toast
    assert "No posts yet" in page
    assert 'name="text"' in browser.get(timeline_url(thread)).content.decode()

    done = browser.post(
        timeline_url(thread), {"text": "First **tomatoes** of the year", "files": [png()]}
    )
    assert (done.status_code, done["Location"]) == (302, timeline_url(thread))
    html = browser.get(timeline_url(thread)).content.decode()
    assert "<strong>tomatoes</strong>" in html
    [post] = selectors.posts(thread)
    [file] = selectors.attachments(thread, [post.id])[post.id]
    thumb = reverse("timeline:thumb", args=[thread.id, file.id])
    assert f'src="{thumb}"' in html
    small = browser.get(thumb)
    assert (small.status_code, small["Content-Type"]) == (200, "image/jpeg")
    whole = browser.get(reverse("timeline:attachment", args=[thread.id, file.id]))
    assert whole["Content-Type"] == "image/png"
    assert whole["X-Content-Type-Options"] == "nosniff"
    # The feed: the post with its author, its timeline's name and the photo.
    feed_index.index_now(thread)
    page = looks_right(browser.get(reverse("timeline:feed")))
    assert "First tomatoes of the year" in page
    assert "You in Alice's notes" in page
    assert f'src="{thumb}"' in browser.get(reverse("timeline:feed")).content.decode()
    # The nav's Feed entry is the current place.
    nav = browser.get(reverse("timeline:feed")).content.decode()
    assert f'<a href="{reverse("timeline:feed")}" aria-current="page">Feed</a>' in nav


def test_a_long_post_public_and_script_stays_text(browser):
    thread = start(browser)
    done = browser.post(
        timeline_url(thread),
        {"text": "<script>alert(1)</script> hello", "title": "A <b>title</b>", "public": "on"},
    )
    assert done.status_code == 302
    [post] = selectors.posts(thread)
    assert post.public
    assert post.title == "A <b>title</b>"
    html = browser.get(timeline_url(thread)).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "A &lt;b&gt;title&lt;/b&gt;" in html
    assert "on the public blog" in visible(html)
    # Long: the list shows its beginning and a link; its page shows all of it.
    browser.post(timeline_url(thread), {"title": "Spring", "text": "sow " * 100 + "THE END"})
    page = looks_right(browser.get(timeline_url(thread)))
    assert "Read all of “Spring”" in page
    assert "THE END" not in page
    spring = selectors.posts(thread)[0]
    assert "THE END" in looks_right(browser.get(post_url(thread, spring.id)))
    # Too long: refused in words, nothing stored.
    refused = browser.post(timeline_url(thread), {"text": "x" * 6000})
    assert refused.status_code == 400
    assert "A post holds at most 5000 characters; this one has 6000." in visible(
        refused.content.decode()
    )
    empty = browser.post(timeline_url(thread), {"text": "  "})
    assert "Write something or add a photo." in visible(empty.content.decode())
    assert len(selectors.posts(thread)) == 2


def test_a_post_page_replies_reactions_edit_history_and_delete(browser):
    thread = start(browser)
    browser.post(timeline_url(thread), {"text": "Who wants seedlings?"})
    [post] = selectors.posts(thread)
    url = post_url(thread, post.id)
    page = looks_right(browser.get(url))
    assert "No replies yet" in page

    done = browser.post(url, {"text": "Me, please!"})
    assert (done.status_code, done["Location"]) == (302, url + "#replies-end")
    [first] = selectors.replies(thread, post.id)
    browser.post(url, {"text": "Two of them", "reply_to": first.id})
    page = looks_right(browser.get(url))
    assert "2 replies" in page
    html = browser.get(url).content.decode()
    assert 'class="reply depth-1' in html  # the answer to the reply is indented under it
    assert page.index("Me, please!") < page.index("Two of them")

    react = reverse("timeline:react", args=[thread.id, post.id])
    done = browser.post(react, {"target": post.id, "emoji": "👍", "on": "1", "back": url})
    assert (done.status_code, done["Location"]) == (302, f"{url}#p-{post.id}")
    html = browser.get(url).content.decode()
    assert 'aria-pressed="true"' in html
    assert "👍 1" in visible(html)
    browser.post(react, {"target": post.id, "emoji": "👍", "back": url})  # taken back
    assert "👍 1" not in visible(browser.get(url).content.decode())
    browser.post(react, {"target": first.id, "emoji": "❤️", "on": "1"})
    assert selectors.replies(thread, post.id)[0].reactions == {"❤️": 1}
    bad = browser.post(react, {"target": post.id, "emoji": "🦄", "on": "1"})
    assert bad.status_code == 302
    assert "a reaction is one of" in visible(browser.get(url).content.decode()).lower()

    assert "Edit your post" in looks_right(browser.get(url + "?edit=1"))
    done = browser.post(
        reverse("timeline:edit", args=[thread.id, post.id]), {"text": "Who wants tomatoes?"}
    )
    assert done.status_code == 302
    page = looks_right(browser.get(url))
    assert "Who wants tomatoes?" in page
    assert "edited" in page
    history = looks_right(browser.get(reverse("timeline:history", args=[thread.id, post.id])))
    assert history.index("Who wants tomatoes?") < history.index("Who wants seedlings?")

    reply_edit = reverse("timeline:reply_edit", args=[thread.id, post.id, first.id])
    browser.post(reply_edit, {"text": "Me, please (two)!"})
    assert "Me, please (two)!" in visible(browser.get(url).content.decode())
    browser.post(reverse("timeline:reply_delete", args=[thread.id, post.id, first.id]))
    assert "This reply was deleted." in visible(browser.get(url).content.decode())

    done = browser.post(reverse("timeline:delete", args=[thread.id, post.id]))
    assert (done.status_code, done["Location"]) == (302, timeline_url(thread))
    page = looks_right(browser.get(timeline_url(thread)))
    assert "This post was deleted." in page
    assert "tomatoes" not in page


def test_a_follower_sees_no_compose_form_and_a_forged_post_is_refused(browser):
    thread = start(browser)
    browser.post(timeline_url(thread), {"text": "Hello followers"})
    # This node as a follower of the timeline (the page and the service read its role; every
    # replica's policy refusing a follower's post is tested with the policy).
    Thread.objects.filter(pk=thread.pk).update(role="follower")
    html = browser.get(timeline_url(thread)).content.decode()
    page = looks_right(browser.get(timeline_url(thread)))
    assert 'enctype="multipart/form-data"' not in html
    assert "you follow it" in page
    forged = browser.post(timeline_url(thread), {"text": "Not mine to post"})
    assert (forged.status_code, forged["Location"]) == (302, timeline_url(thread))
    page = visible(browser.get(timeline_url(thread)).content.decode())
    assert "Your post was not published: Followers reply to posts; only the owner" in page
    assert [p.text for p in selectors.posts(thread)] == ["Hello followers"]
    # A follower still replies and reacts from the post's page.
    [post] = selectors.posts(thread)
    assert "Send reply" in looks_right(browser.get(post_url(thread, post.id)))
    # A muted follower reads only: no reply form, no reaction buttons.
    Thread.objects.filter(pk=thread.pk).update(role="reader")
    page = looks_right(browser.get(post_url(thread, post.id)))
    assert "You can read this timeline but not reply to it." in page
    assert "timeline:react" not in page
    assert "/react/" not in browser.get(post_url(thread, post.id)).content.decode()
    refused = browser.post(post_url(thread, post.id), {"text": "Sneaky"})
    assert (refused.status_code, refused["Location"]) == (302, post_url(thread, post.id))
    page = visible(browser.get(post_url(thread, post.id)).content.decode())
    assert "Your reply was not sent: You can read this timeline but not reply." in page
    assert "Delete" not in page
    assert selectors.replies(thread, post.id) == []


def rules_data(browser: Client, index: int = 0, **changes: str) -> dict:
    """The rules form of feed ``index`` as the page draws it, with ``changes``."""
    html = browser.get(reverse("timeline:rules")).content.decode()
    prefix = f"f{index}-"
    data: dict = {"save": str(index)}
    for name, value in re.findall(rf'name="({prefix}[\w-]+)"[^>]*value="([^"]*)"', html):
        data[name] = entities.unescape(value)
    for name, value in re.findall(rf'<textarea name="({prefix}[\w-]+)"[^>]*>\n?([^<]*)<', html):
        data[name] = entities.unescape(value)
    for name in re.findall(rf'<select name="({prefix}[\w-]+)"', html):
        data.setdefault(name, "newest")
    data.update({prefix + key: value for key, value in changes.items()})
    return data


def test_the_rules_editor_round_trip_and_recipes(browser):
    thread = start(browser)
    rules = reverse("timeline:rules")
    page = looks_right(browser.get(rules))
    assert "Everything, newest first" in page
    assert "Alice's notes" in page
    data = rules_data(
        browser,
        1,
        name="Garden",
        order="ranked",
        people="Alice 2",
        keywords="tomato 1.5\nslug: -2",
        tags="#seeds 1",
        mute_words="politics",
        half_life_hours="12",
        dedupe_reposts="on",
        timelines=thread.id,
        **{f"weight_{thread.id}": "1"},
    )
    done = browser.post(rules, data)
    assert done.status_code == 302, visible(done.content.decode())
    saved = feed.feeds()[1]
    assert saved.name == "Garden"
    assert saved.order == "ranked"
    assert dict(saved.keywords) == {"tomato": 1.5, "slug": -2.0}
    assert dict(saved.tags) == {"seeds": 1.0}
    assert saved.mute_words == ("politics",)
    assert dict(saved.author_weights) == {thread.member_id: 2.0}
    assert saved.timelines == (thread.id,)
    assert dict(saved.timeline_weights) == {thread.id: 1.0}
    assert saved.half_life_hours == 12
    assert not saved.hide_replies_to_unfollowed
    page = looks_right(browser.get(rules))
    assert "Garden" in page
    assert "The feed “Garden” is saved." in page
    html = browser.get(rules).content.decode()
    assert "tomato 1.5" in html
    assert "Alice 2" in html
    assert "#seeds 1" in html

    # Someone nobody follows, a weight out of range: refused in words, nothing saved.
    for people, said in (
        ("Zed 1", "Nobody in the timelines you follow is called “Zed”."),
        ("Alice 9", "A weight is a number from -5 to 5"),
    ):
        refused = browser.post(rules, rules_data(browser, 1, people=people))
        assert refused.status_code == 400
        assert said in visible(refused.content.decode())
    assert feed.feeds()[1] == saved

    # A recipe out, and in again under another name; a file that is no recipe is refused.
    recipe = browser.get(reverse("timeline:recipe") + "?feed=Garden")
    assert recipe["Content-Disposition"].startswith("attachment")
    data = json.loads(recipe.content)
    assert data["format"] == RECIPE_FORMAT
    assert "author_weights" not in data["feed"]
    upload = SimpleUploadedFile("garden.json", recipe.content, content_type="application/json")
    done = browser.post(reverse("timeline:recipe_upload"), {"recipe": upload, "name": "Copy"})
    assert done.status_code == 302
    assert [f.name for f in feed.feeds()][-1] == "Copy"
    assert feed.feeds()[-1].keywords == saved.keywords
    junk = SimpleUploadedFile("photo.json", b"\x89PNG not a recipe", content_type="image/png")
    refused = browser.post(reverse("timeline:recipe_upload"), {"recipe": junk})
    assert refused.status_code == 400
    assert "This file is not a feed recipe." in visible(refused.content.decode())
    assert len(feed.feeds()) == 3

    # Add a feed, remove one; the last one stays.
    browser.post(reverse("timeline:feed_add"), {"name": "Close friends"})
    assert "Close friends" in [f.name for f in feed.feeds()]
    twice = browser.post(reverse("timeline:feed_add"), {"name": "close friends"})
    assert "You have a feed called “close friends” already." in visible(twice.content.decode())
    for gone in ("Copy", "Garden", "Close friends"):
        browser.post(reverse("timeline:feed_remove"), {"feed": gone})
    assert [f.name for f in feed.feeds()] == ["Everything, newest first"]
    browser.post(reverse("timeline:feed_remove"), {"feed": "Everything, newest first"})
    assert len(feed.feeds()) == 1
    assert "Your last feed stays" in visible(browser.get(rules).content.decode())
    # The feed chooser shows the feeds by name.
    browser.post(reverse("timeline:feed_add"), {"name": "Quiet"})
    page = looks_right(browser.get(reverse("timeline:feed") + "?feed=Quiet"))
    assert "Quiet" in page


def test_repost_to_my_other_timeline(browser):
    notes = start(browser)
    other = start(browser, "Alice's links")
    browser.post(timeline_url(notes), {"text": "Rain tomorrow"})
    [post] = selectors.posts(notes)
    share = reverse("timeline:share", args=[notes.id, post.id])
    done = browser.post(share, {"timeline": other.id})
    assert (done.status_code, done["Location"]) == (302, timeline_url(other))
    page = looks_right(browser.get(timeline_url(other)))
    assert "reposted from" in page
    assert "Rain tomorrow" in page
    browser.post(share, {"timeline": other.id, "text": "Bring umbrellas"})
    page = looks_right(browser.get(timeline_url(other)))
    assert "Quoting" in page
    assert "Bring umbrellas" in page


def test_older_posts_page_on_the_timeline_and_the_feed_and_home_shows_the_newest(browser):
    thread = start(browser)
    for n in range(PAGE + 2):
        services.post_create(thread=thread, text_=f"Note number {n}")
    html = browser.get(timeline_url(thread)).content.decode()
    page = looks_right(browser.get(timeline_url(thread)))
    assert "Note number 21" in page
    assert "Note number 1 " not in page + " "
    older = re.search(r'href="([^"]*\?before=[^"]+)">Older posts', html)[1]
    page = looks_right(browser.get(entities.unescape(older)))
    assert "Note number 0" in page
    assert "Note number 1" in page
    assert "Note number 21" not in page
    assert "Newest posts" in page
    feed_index.index_now(thread)
    html = browser.get(reverse("timeline:feed")).content.decode()
    assert "Note number 21" in visible(html)
    older = re.search(r'href="([^"]*before=[^"]+)">Older posts', html)[1]
    page = looks_right(browser.get(entities.unescape(older)))
    assert "Note number 0" in page
    assert "Note number 21" not in page
    home = visible(browser.get(reverse("core:dashboard")).content.decode())
    assert "You: Note number 21" in home


def test_pages_of_what_is_not_there_are_404(browser):
    thread = start(browser)
    assert browser.get(post_url(thread, "0" * 32)).status_code == 404
    assert browser.get(reverse("timeline:timeline", args=["ab" * 32])).status_code == 404
    assert browser.get(reverse("timeline:thumb", args=[thread.id, "nope"])).status_code == 404
    assert browser.get(timeline_url(thread) + "?before=zz").status_code == 404


@pytest.mark.anyio
async def test_the_open_feed_and_timeline_pages_are_re_rendered_live(owner_user):
    thread = await database_sync_to_async(services.timeline_create)(
        name="Alice's notes", my_name="Alice"
    )
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    on_feed = socket("/ws/feed/?feed=Everything%2C+newest+first", cookies=cookies)
    on_timeline = socket(f"/ws/timeline/{thread.id}/", cookies=cookies)
    assert (await on_feed.connect())[0]
    assert (await on_timeline.connect())[0]
    first = await on_timeline.receive_from(timeout=5)
    assert first.startswith('<div id="timeline-posts" hx-swap-oob="true">')
    await database_sync_to_async(services.post_create)(thread=thread, text_="Live one")
    await database_sync_to_async(feed_index.index_now)(thread)
    await get_channel_layer().group_send(feed_index.FEED_GROUP, {"type": "feed.changed"})
    html = await on_feed.receive_from(timeout=5)  # the page as it was when the socket opened
    assert html.startswith('<div id="feed-posts" hx-swap-oob="true">')
    while "Live one" not in html:
        html = await on_feed.receive_from(timeout=5)
    assert "Live one" in html
    assert "csrfmiddlewaretoken" in html
    await get_channel_layer().group_send(live_group(thread.thread), {"type": "thread.changed"})
    while "Live one" not in (html := await on_timeline.receive_from(timeout=5)):
        pass
    await on_feed.disconnect()
    await on_timeline.disconnect()
    anonymous = socket("/ws/feed/", cookies=None)
    assert await anonymous.connect() == (False, 4403)
