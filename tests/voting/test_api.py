"""The voting API end to end on this node, with other members' nodes in this process (each
writes through its own database; logs are exchanged as sync would): enabling voting, opening
polls, voting and voting again, withdrawing, closing, the result every node computes, the
rules' refusals as JSON errors in plain words, and a secret poll whose trustees' nodes set up
its key and decrypt its total."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.messaging import services as messaging
from apps.voting import crypto, rules, services
from apps.voting.models import Ballot, Close, Dealing, Partial, Poll
from apps.voting.results import counted_hash
from apps.voting.shape import ballot_context, poll_context
from tests.voting.support import Member, member_join

pytestmark = pytest.mark.django_db(transaction=True)


def post(api: Client, url: str, body: dict | None = None):
    return api.post(url, body or {}, content_type="application/json")


def put(api: Client, url: str, body):
    return api.put(url, json.dumps(body), content_type="application/json")


@pytest.fixture
def api(browser) -> Client:
    return browser


@pytest.fixture
def chat(api):
    """A conversation this node owns, with voting enabled through the apps API."""
    thread = messaging.conversation_create(name="Flat share", my_name="Alice")
    enabled = post(api, f"/api/v1/threads/{thread.id}/apps/", {"app": "voting"})
    assert enabled.status_code == 201, enabled.json()
    return thread


def url(thread, rest: str = "") -> str:
    return f"/api/v1/threads/{thread.id}/polls/{rest}"


def test_opening_a_poll_where_voting_is_not_enabled_says_so(api):
    thread = messaging.conversation_create(name="Just talk")
    refused = post(api, url(thread), {"question": "Pizza?", "options": ["Yes", "No"]})
    assert refused.status_code == 409
    assert refused.json()["error"] == "not_enabled"
    assert "voting is not enabled" in refused.json()["detail"]
    missing = api.get(f"/api/v1/threads/{'0' * 64}/polls/")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


def _vote_as(member: Member, poll: str, ballot: dict) -> None:
    """Another member's node casts its ballot through its own database."""
    pk = uuid.UUID(hex=rules.ballot_id(bytes.fromhex(member.member), poll))
    Ballot.objects.using(member.alias).update_or_create(
        pk=pk, defaults={"poll": uuid.UUID(hex=poll), "choice": json.dumps(ballot), "sealed": b""}
    )


def test_a_ranked_poll_from_open_to_result_agrees_on_two_nodes(api, chat, tmp_path):
    bob = member_join(chat, tmp_path, "Bob", "writer")
    carol = member_join(chat, tmp_path, "Carol", "writer")
    opened = post(
        api,
        url(chat),
        {"question": "Where to?", "options": ["Lake", "Hills", "City"], "method": "ranked"},
    )
    assert opened.status_code == 201, opened.json()
    poll = opened.json()
    assert poll["electorate"] == 3
    assert poll["state"] == "open"
    assert poll["can_vote"]
    assert poll["options"] == ["Lake", "Hills", "City"]
    pid = poll["id"]
    bob.receive()
    carol.receive()
    voted = put(api, url(chat, f"{pid}/ballot/"), {"ranking": [0, 1]})
    assert voted.status_code == 200, voted.json()
    assert voted.json()["my_ballot"] == {"ranking": [0, 1]}
    assert voted.json()["turnout"] == 1
    again = put(api, url(chat, f"{pid}/ballot/"), {"ranking": [1]})
    assert again.json()["turnout"] == 1
    assert again.json()["my_ballot"] == {"ranking": [1]}
    _vote_as(bob, pid, {"ranking": [2, 0]})
    _vote_as(carol, pid, {"ranking": [0]})
    bob.send()
    carol.send()
    live = api.get(url(chat, f"{pid}/")).json()
    assert live["turnout"] == 3
    assert live["result"]["final"] is False
    # Malformed ballots say what is wrong.
    bad = put(api, url(chat, f"{pid}/ballot/"), {"ranking": [1, 1]})
    assert bad.status_code == 400
    assert bad.json()["detail"] == "Option 1 is ranked twice."
    wrong_shape = put(api, url(chat, f"{pid}/ballot/"), {"choice": 1})
    assert wrong_shape.status_code == 400
    closed = post(api, url(chat, f"{pid}/close/"))
    assert closed.status_code == 200, closed.json()
    body = closed.json()
    assert body["state"] == "closed"
    assert body["result"]["final"]
    assert body["result"]["stands"]
    # Round 1: Lake 1 (carol), Hills 1 (me), City 1 (bob): a three-way tie never separated,
    # so City (listed last) goes; Bob's ballot moves to Lake, which then has 2 of 3.
    assert body["result"]["winner"] == 0
    assert [r["eliminated"] for r in body["rounds"]] == [[2], []]
    late = put(api, url(chat, f"{pid}/ballot/"), {"ranking": [2]})
    assert late.status_code == 409
    assert "closed" in late.json()["detail"]
    # Bob's node computes the same result from the same ballots.
    bob.receive()
    assert Close.objects.using(bob.alias).count() == 1
    rows = Ballot.objects.using(bob.alias).filter(poll=pid).order_by("id")
    assert counted_hash(rows) == body["counted_hash"]


def test_who_may_vote_and_close_is_enforced_with_reasons(api, chat, tmp_path):
    bob = member_join(chat, tmp_path, "Bob", "writer")
    # Bob opens a poll this node did not open: only he closes it.
    bobs = Poll.objects.using(bob.alias).create(
        question="Pets?",
        options=json.dumps(["Cat", "Dog"]),
        method="single",
        roles=json.dumps(["owner", "writer"]),
        electorate=json.dumps(
            sorted([bob.member, thread_database(chat.thread).member_public().hex()])
        ),
    )
    bob.send()
    pid = bobs.id.hex
    refused = post(api, url(chat, f"{pid}/close/"))
    assert refused.status_code == 403
    assert refused.json()["detail"] == "only the poll's creator closes it"
    assert put(api, url(chat, f"{pid}/ballot/"), {"choice": 1}).status_code == 200
    withdrawn = api.delete(url(chat, f"{pid}/ballot/"))
    assert withdrawn.status_code == 200
    assert withdrawn.json()["turnout"] == 0
    assert api.delete(url(chat, f"{pid}/ballot/")).status_code == 404
    # A poll only writers vote in, opened while this node is the owner: not a voter.
    writers_only = post(
        api,
        url(chat),
        {"question": "Rota?", "options": ["A", "B"], "roles": ["writer"]},
    )
    assert writers_only.status_code == 201
    wid = writers_only.json()["id"]
    assert writers_only.json()["can_vote"] is False
    not_voter = put(api, url(chat, f"{wid}/ballot/"), {"choice": 0})
    assert not_voter.status_code == 403
    assert not_voter.json()["detail"] == "You were not among this poll's voters when it opened"
    # Bad polls.
    for body, said in [
        ({"question": "One?", "options": ["Only", "only"]}, "each option appears once"),
        ({"question": "Who?", "options": ["A", "B"], "roles": ["wizard"]}, "no role called"),
        (
            {
                "question": "S?",
                "options": ["A", "B"],
                "method": "ranked",
                "secret": True,
                "trustees": [bob.member, bob.member],
            },
            "secret poll",
        ),
    ]:
        answer = post(api, url(chat), body)
        assert answer.status_code == 400, answer.json()
        assert said in answer.json()["detail"]


def test_a_planned_end_closes_the_poll_on_its_creators_node(api, chat):
    ends = timezone.now() + timedelta(hours=1)
    opened = post(
        api, url(chat), {"question": "Soon?", "options": ["A", "B"], "ends_at": ends.isoformat()}
    )
    assert opened.status_code == 201
    pid = opened.json()["id"]
    assert services.polls_due(thread=chat) == []
    assert services.polls_due(thread=chat, now=ends + timedelta(seconds=1)) == [pid]
    assert api.get(url(chat, f"{pid}/")).json()["state"] == "closed"


def _trustee_duties(member: Member, poll: str, trustees: list[bytes], threshold: int) -> None:
    """What a trustee's node does (``services.duties``), done on another node of this process."""
    key = member.node.database.writer().member_key
    index = trustees.index(bytes(key.verify_key)) + 1
    dealings_db = Dealing.objects.using(member.alias)
    mine = uuid.UUID(hex=rules.dealing_id(bytes(key.verify_key), poll))
    if not dealings_db.filter(pk=mine).exists():
        dealing = crypto.dealing_make(poll_context(poll), threshold, trustees)
        dealings_db.create(pk=mine, poll=uuid.UUID(hex=poll), dealing=dealing)
        return
    rows = {d.id.hex: bytes(d.dealing) for d in dealings_db.filter(poll=poll)}
    dealings = [rows[rules.dealing_id(t, poll)] for t in trustees]
    share = crypto.share_open(poll_context(poll), threshold, trustees, dealings, index, key)
    sealed = [bytes(b.sealed) for b in Ballot.objects.using(member.alias).filter(poll=poll)]
    total = crypto.aggregate(sealed, 3)
    partial = crypto.partial_make(poll_context(poll), total, share, index)
    Partial.objects.using(member.alias).create(
        pk=uuid.UUID(hex=rules.partial_id(bytes(key.verify_key), poll)),
        poll=uuid.UUID(hex=poll),
        partial=partial,
    )


def test_a_secret_poll_waits_for_its_trustees_and_counts_with_two_of_three(api, chat, tmp_path):
    bob = member_join(chat, tmp_path, "Bob", "writer")
    carol = member_join(chat, tmp_path, "Carol", "writer")
    me = thread_database(chat.thread).member_public()
    trustees = [me, bytes.fromhex(bob.member), bytes.fromhex(carol.member)]
    opened = post(
        api,
        url(chat),
        {
            "question": "Treasurer?",
            "options": ["Ann", "Ben", "Cy"],
            "method": "single",
            "secret": True,
            "trustees": [t.hex() for t in trustees],
            "threshold": 2,
        },
    )
    assert opened.status_code == 201, opened.json()
    poll = opened.json()
    pid = poll["id"]
    # This node dealt its share at once; the others have not yet: nobody votes.
    assert poll["state"] == "waiting_key"
    assert [t["key_ready"] for t in poll["trustees"]] == [True, False, False]
    early = put(api, url(chat, f"{pid}/ballot/"), {"choice": 0})
    assert early.status_code == 409
    assert "trustees" in early.json()["detail"]
    for member in (bob, carol):
        member.receive()
        _trustee_duties(member, pid, trustees, 2)
        member.send()
    assert api.get(url(chat, f"{pid}/")).json()["state"] == "open"
    assert put(api, url(chat, f"{pid}/ballot/"), {"choice": 2}).status_code == 200
    # Bob votes from his node with an encrypted ballot.
    bob.receive()
    rows = {d.id.hex: bytes(d.dealing) for d in Dealing.objects.using(bob.alias).filter(poll=pid)}
    key = crypto.poll_key([rows[rules.dealing_id(t, pid)] for t in trustees])
    sealed = crypto.ballot_make(ballot_context(pid, trustees[1]), key, [0, 0, 1], True)
    Ballot.objects.using(bob.alias).create(
        pk=uuid.UUID(hex=rules.ballot_id(trustees[1], pid)), poll=uuid.UUID(hex=pid), sealed=sealed
    )
    bob.send()
    # Nothing in this node's database says how anyone voted.
    with thread_context(chat.thread):
        stored = list(Ballot.objects.filter(poll=pid))
        assert len(stored) == 2
        assert all(b.choice == "" and len(bytes(b.sealed)) > 100 for b in stored)
    hidden = api.get(url(chat, f"{pid}/")).json()
    assert hidden["result"] is None
    assert hidden["turnout"] == 2
    closed = post(api, url(chat, f"{pid}/close/")).json()
    # This node decrypted its part at the close; one more trustee is needed (Carol is away).
    assert closed["result"]["missing_trustees"] == 1
    assert closed["result"]["totals"] is None
    bob.receive()
    _trustee_duties(bob, pid, trustees, 2)
    bob.send()
    final = api.get(url(chat, f"{pid}/")).json()
    assert final["result"]["totals"] == [0, 0, 2]
    assert final["result"]["winner"] == 2
    assert final["result"]["stands"]
    assert [t["decrypted"] for t in final["trustees"]] == [True, True, False]
