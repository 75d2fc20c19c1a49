"""The voting pages without JavaScript (forms that post and redirect): enabling voting, opening
polls of each method, voting, reordering a ranking with the arrow buttons, withdrawing,
closing and the result; refusals as messages in plain words; the card of open polls on the
conversation page; and the live sockets that re-render the polls list and a poll's turnout."""

from __future__ import annotations

import html as entities
import re

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.test import Client
from django.urls import reverse

from apps.core.threads.services import thread_create
from apps.messaging import services as messaging
from apps.p2p.client import live_group
from apps.voting import selectors, services
from apps.voting.tally import TIE_BREAK
from tests.core.threads.conftest import node, thread_databases_allowed  # noqa: F401
from tests.support.sockets import logged_in_cookies, socket
from tests.voting.support import member_join, voting_conversation

pytestmark = pytest.mark.django_db(transaction=True)

HEX = re.compile(r"\b[0-9a-f]{8,}\b")
FINGERPRINT = re.compile(r'<span class="fingerprint">([0-9a-f]{4}( [0-9a-f]{4}){3})</span>')


def polls_page(thread) -> str:
    return reverse("voting:polls", args=[thread.id])


def poll_page(thread, poll_id: str) -> str:
    return reverse("voting:poll", args=[thread.id, poll_id])


def visible(html: str) -> str:
    """The page's text as read (tags, attributes and the CSRF token out), without the one hex
    string a poll page may show: the fingerprint of the counted ballots."""
    main = html.split("<main", 1)[1].split("</main>", 1)[0]
    main = FINGERPRINT.sub(" (fingerprint) ", main)
    return " ".join(entities.unescape(re.sub(r"<[^>]+>", " ", main)).split())


def looks_right(html: str) -> str:
    text = visible(html)
    assert not HEX.search(text), HEX.search(text)
    for syntax in ("{{", "{%", "{#"):
        assert syntax not in text
    assert not re.search(r"<label[^>]*>\s*</label>", html), "an empty label"
    return text


def open_poll(browser, thread, **fields) -> str:
    data = {"question": "Where do we eat?", "options": "Pizza\nSushi\nTacos", "method": "single"}
    data.update(fields)
    data.setdefault("roles", services.default_roles(thread))
    data.setdefault("results", "live")
    done = browser.post(polls_page(thread), data)
    assert done.status_code == 302, visible(done.content.decode())
    poll_id = done["Location"].rstrip("/").rsplit("/", 1)[1]
    assert done["Location"] == poll_page(thread, poll_id)
    return poll_id


def test_voting_is_enabled_from_the_polls_tab(browser):
    chat = messaging.conversation_create(name="Flat share", my_name="Alice")
    page = looks_right(browser.get(polls_page(chat)).content.decode())
    assert "No polls here yet" in page
    assert "Enable voting" in page
    assert "your role here: Owner" in page  # a person's words, not "you are owner"
    done = browser.post(reverse("voting:enable", args=[chat.id]))
    assert (done.status_code, done["Location"]) == (302, polls_page(chat))
    assert selectors.enabled(chat)
    html = browser.get(polls_page(chat)).content.decode()
    text = looks_right(html)
    assert "Voting is on in this thread" in text
    assert f'<a href="{polls_page(chat)}" aria-current="page">Polls</a>' in html
    assert "New poll" in text
    assert "Anyone" not in text
    # The roles that vote by default are checked; readers are offered, unchecked.
    assert re.search(r'value="writer"[^>]*checked', html)
    assert not re.search(r'value="reader"[^>]*checked', html)
    assert "Ranked and score polls are always named" in text
    assert browser.get(reverse("voting:polls", args=["0" * 64])).status_code == 404
    assert Client().get(polls_page(chat)).status_code == 302  # the owner's alone


def test_a_poll_opened_voted_on_and_closed_through_the_pages(browser, tmp_path):
    chat = voting_conversation()
    bob = member_join(chat, tmp_path, "Bob", "writer")
    poll_id = open_poll(browser, chat, quorum="2", description="Friday night")
    text = looks_right(browser.get(poll_page(chat, poll_id)).content.decode())
    assert "Open 0 of 2 voted · needs 2 to stand" in text
    assert "0 of 2 voted · needs 2 to stand" in text
    assert "opened by you" in text
    assert "Waiting for your vote" in text
    assert "Only the 2 members who held a voting role" in text  # the guarantees
    assert "Friday night" in text

    voted = browser.post(reverse("voting:vote", args=[chat.id, poll_id]), {"choice": "1"})
    assert (voted.status_code, voted["Location"]) == (302, poll_page(chat, poll_id))
    bob.receive()
    bob.vote(poll_id, {"choice": 1})
    bob.send()
    html = browser.get(poll_page(chat, poll_id)).content.decode()
    text = looks_right(html)
    assert "Your ballot counts." in text
    assert "2 of 2 voted · needs 2 to stand · You voted" in text
    assert "Leading: Sushi" in text
    assert re.search(r'<progress max="2" value="2"', html)
    assert FINGERPRINT.search(html)
    assert "Fingerprint of the counted ballots — compare with other members" in text
    assert 'id="choice-1" name="choice" value="1" checked' in html  # her ballot, shown

    listed = looks_right(browser.get(polls_page(chat)).content.decode())
    assert "Where do we eat?" in listed
    assert "Single choice" in listed
    assert "Open · 2 of 2 voted · You voted" in listed

    closed = browser.post(reverse("voting:close", args=[chat.id, poll_id]), follow=True)
    text = looks_right(closed.content.decode())
    assert "The poll is closed" in text
    assert "Closed 2 of 2 voted" in text
    assert "Winner: Sushi" in text
    assert "The quorum was reached: the result stands." in text
    assert "Close now" not in text
    assert "Your ballot" not in text  # no ballot form any more
    # Voting after the close is refused in words.
    again = browser.post(
        reverse("voting:vote", args=[chat.id, poll_id]), {"choice": "0"}, follow=True
    )
    assert "Your ballot was not cast: This poll is closed." in visible(again.content.decode())


def test_a_refusal_and_an_empty_ballot_come_back_in_plain_words(browser, tmp_path):
    chat = voting_conversation()
    bob = member_join(chat, tmp_path, "Bob", "writer")
    bob.receive()
    # Bob's poll: Alice may vote in it but not close it.
    poll_id = open_poll(browser, chat)
    empty = browser.post(reverse("voting:vote", args=[chat.id, poll_id]), {}, follow=True)
    assert "Choose before you vote: your ballot was not cast." in visible(empty.content.decode())
    withdrawn = browser.post(reverse("voting:withdraw", args=[chat.id, poll_id]), follow=True)
    assert "Your ballot was not withdrawn: You have not voted in this poll." in visible(
        withdrawn.content.decode()
    )
    # A form the services refuse: the page again, with why, and nothing opened.
    refused = browser.post(
        polls_page(chat),
        {
            "question": "Colour?",
            "options": "Red\nred",
            "method": "single",
            "roles": ["writer"],
            "results": "live",
        },
    )
    assert refused.status_code == 400
    assert "Each option appears once." in visible(refused.content.decode())
    secret_ranked = browser.post(
        polls_page(chat),
        {
            "question": "Order?",
            "options": "A\nB",
            "method": "ranked",
            "roles": ["owner"],
            "results": "live",
            "secret": "on",
            "trustees": [chat.member_id, bob.member],
        },
    )
    assert secret_ranked.status_code == 400
    assert "Only single choice and approval polls can be secret." in visible(
        secret_ranked.content.decode()
    )
    assert len(selectors.polls(chat)) == 1
    # A poll someone else opened: no close button; closing it anyway is refused in words.
    bob_poll = bob_opens(bob)
    bob.send()
    text = looks_right(browser.get(poll_page(chat, bob_poll)).content.decode())
    assert "opened by Bob" in text
    assert "Close now" not in text
    refused_close = browser.post(reverse("voting:close", args=[chat.id, bob_poll]), follow=True)
    assert "The poll was not closed: Only the poll's creator closes it." in visible(
        refused_close.content.decode()
    )


def bob_opens(bob) -> str:
    """Bob opens a poll on his node (as his node's services would write it)."""
    import json

    from apps.voting.models import Poll

    row = Poll.objects.using(bob.alias).create(
        question="Bob's question?",
        options=json.dumps(["Yes", "No"]),
        method="single",
        roles=json.dumps(["owner", "writer"]),
        electorate=json.dumps(sorted([bob.member, bob.thread.member_id])),
    )
    return row.id.hex


def test_ranked_ballots_reorder_without_javascript_and_show_the_rounds(browser, tmp_path):
    chat = voting_conversation()
    bob = member_join(chat, tmp_path, "Bob", "writer")
    carol = member_join(chat, tmp_path, "Carol", "writer")
    poll_id = open_poll(browser, chat, method="ranked", options="Pizza\nSushi\nTacos")
    vote = reverse("voting:vote", args=[chat.id, poll_id])
    html = browser.get(poll_page(chat, poll_id)).content.decode()
    assert 'aria-label="Move Tacos up"' in html
    moved = browser.post(vote, {"ranking": ["0", "1", "2"], "move": "up:2"})
    assert moved["Location"] == poll_page(chat, poll_id) + "?order=0,2,1#ballot"
    assert selectors.poll(chat, poll_id).turnout == 0  # an arrow casts nothing
    html = browser.get(moved["Location"].split("#")[0]).content.decode()
    order = re.findall(r'name="ranking" value="(\d)"', html)
    assert order == ["0", "2", "1"]
    assert "Not cast yet: press Vote" in visible(html)
    browser.post(vote, {"ranking": order, "cast": "1"})
    assert selectors.poll(chat, poll_id).my_ballot == {"ranking": [0, 2, 1]}
    for member, ranking in ((bob, [1, 2, 0]), (carol, [2, 1, 0])):
        member.receive()
        member.vote(poll_id, {"ranking": ranking})
        member.send()
    browser.post(reverse("voting:close", args=[chat.id, poll_id]))
    html = browser.get(poll_page(chat, poll_id)).content.decode()
    text = looks_right(html)
    assert "Instant runoff, round by round" in text
    assert "Winner: Sushi" in text  # Tacos, listed last, goes first in a three-way tie
    assert TIE_BREAK in text  # three first preferences of one each: a tie for the fewest
    assert "Closed 3 of 3 voted" in text
    assert text.count("Eliminated") == 1


def test_score_and_approval_ballots_and_a_withdrawal(browser):
    chat = voting_conversation()
    scored = open_poll(browser, chat, method="score", options="Red\nBlue")
    html = browser.get(poll_page(chat, scored)).content.decode()
    assert '<label for="score-0">Red</label>' in html
    browser.post(reverse("voting:vote", args=[chat.id, scored]), {"score-0": "2", "score-1": "5"})
    assert selectors.poll(chat, scored).my_ballot == {"scores": [2, 5]}
    assert "Leading: Blue" in visible(browser.get(poll_page(chat, scored)).content.decode())
    approval = open_poll(browser, chat, method="approval", results="hidden")
    browser.post(reverse("voting:vote", args=[chat.id, approval]), {"choices": ["0", "2"]})
    assert selectors.poll(chat, approval).my_ballot == {"choices": [0, 2]}
    text = looks_right(browser.get(poll_page(chat, approval)).content.decode())
    assert "Results show when the poll closes." in text
    assert "Leading" not in text
    gone = browser.post(reverse("voting:withdraw", args=[chat.id, approval]), follow=True)
    text = visible(gone.content.decode())
    assert "Your ballot is withdrawn" in text
    assert "Open 0 of 1 voted" in text


def test_the_conversation_shows_its_open_polls(browser):
    chat = voting_conversation()
    conversation = reverse("messaging:conversation", args=[chat.id])
    assert "Open polls" not in browser.get(conversation).content.decode()
    poll_id = open_poll(browser, chat)
    html = browser.get(conversation).content.decode()
    text = looks_right(html)
    assert "Open polls" in text
    assert "Where do we eat?" in text
    assert "Open · 0 of 1 voted" in text
    assert f'href="{poll_page(chat, poll_id)}"' in html
    assert "Vote" in text
    browser.post(reverse("voting:close", args=[chat.id, poll_id]))
    assert "Open polls" not in browser.get(conversation).content.decode()
    plain = thread_create(name="Plain")
    assert browser.get(reverse("voting:poll", args=[plain.id, poll_id])).status_code == 404


@pytest.mark.anyio
async def test_the_open_pages_are_re_rendered_when_the_thread_changes(owner_user):
    chat = await database_sync_to_async(voting_conversation)()
    poll = await database_sync_to_async(services.poll_open)(
        thread=chat, question="Live?", options=["Yes", "No"]
    )
    cookies = await database_sync_to_async(logged_in_cookies)(owner_user)
    on_poll = socket(f"/ws/voting/{chat.id}/{poll.id.hex}/", cookies=cookies)
    on_list = socket(f"/ws/voting/{chat.id}/", cookies=cookies)
    assert (await on_poll.connect())[0]
    assert (await on_list.connect())[0]
    first = await on_poll.receive_from(timeout=5)
    assert first.startswith('<div id="poll-live" hx-swap-oob="true">')
    assert "0 of 1 voted" in first
    assert (await on_list.receive_from(timeout=5)).startswith('<div id="polls" hx-swap-oob')
    await database_sync_to_async(services.ballot_cast)(
        thread=chat, poll_id=poll.id, ballot={"choice": 0}
    )
    await get_channel_layer().group_send(live_group(chat.thread), {"type": "thread.changed"})
    while "1 of 1 voted" not in (html := await on_poll.receive_from(timeout=5)):
        pass
    assert "Leading: Yes" in html
    while "1 of 1 voted" not in await on_list.receive_from(timeout=5):
        pass
    await on_poll.disconnect()
    await on_list.disconnect()
    plain = await database_sync_to_async(thread_create)(name="Plain")
    closed = socket(f"/ws/voting/{plain.id}/", cookies=cookies)
    assert await closed.connect() == (False, 4404)
    anonymous = socket(f"/ws/voting/{chat.id}/", cookies=None)
    assert await anonymous.connect() == (False, 4403)


def test_home_lists_the_polls_waiting_for_my_vote(browser):
    chat = voting_conversation()
    poll = services.poll_open(thread=chat, question="Paint the hall?", options=["Yes", "No"])
    home = visible(browser.get(reverse("core:dashboard")).content.decode())
    assert "1 poll waiting for your vote" in home
    services.ballot_cast(thread=chat, poll_id=poll.id.hex, ballot={"choice": 0})
    home = visible(browser.get(reverse("core:dashboard")).content.decode())
    assert "waiting for your vote" not in home


def test_a_poll_page_says_who_holds_a_voting_role_but_is_not_among_its_voters(browser, tmp_path):
    chat = voting_conversation()
    poll = services.poll_open(thread=chat, question="Paint the hall?", options=["Yes", "No"])
    page = looks_right(browser.get(poll_page(chat, poll.id.hex)).content.decode())
    assert "not among this poll's voters" not in page
    member_join(chat, tmp_path, "Bob", "writer")  # joins after the poll opened
    page = looks_right(browser.get(poll_page(chat, poll.id.hex)).content.decode())
    assert "One member who holds a voting role now is not among this poll's voters" in page
