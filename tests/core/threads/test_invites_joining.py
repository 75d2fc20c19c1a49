"""The joining node's record of a join: a redemption interrupted after the redeem was sent
leaves the thread joining (with its link, for the background attempts), a refusal for good
leaves it not admitted with the reason, anything else leaves no trace; pages and API say so."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import pytest
from django.test import Client

from apps.core import services as node_services
from apps.core.models import Thread
from apps.core.thread.invite import Invite
from apps.core.threads import invite_words, joining, services

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class FakeNetwork:
    """The p2p layer as the services see it, failing the way it is told to."""

    failures: list[services.ThreadServiceError] = field(default_factory=list)
    redeemed: list[bytes] = field(default_factory=list)

    def addresses(self) -> tuple[str, ...]:
        return ()

    def redeem(self, invite, request) -> None:
        self.redeemed.append(invite.thread)
        assert Thread.objects.get(pk=invite.thread.hex()).state == Thread.State.JOINING
        if self.failures:
            raise self.failures.pop(0)
        raise AssertionError("these tests never complete a join")


@pytest.fixture
def network(node, monkeypatch) -> FakeNetwork:
    fake = FakeNetwork()
    monkeypatch.setattr(services, "network", fake)
    return fake


def link() -> tuple[Invite, str]:
    expiry = time.time_ns() // 1_000_000 + 3_600_000
    invite = Invite(os.urandom(32), "writer", expiry, os.urandom(32), "peer", (), "Book club")
    return invite, invite.link()


def fail(code: str, message: str = "it went wrong") -> services.ThreadServiceError:
    return services.ThreadServiceError(code, message)


def test_an_interrupted_redemption_leaves_the_thread_joining_with_its_link(network):
    invite, text = link()
    network.failures.append(fail(joining.INTERRUPTED, "the inviter's answer was lost"))
    thread = services.invite_redeem(link=text)
    assert thread.state == Thread.State.JOINING
    assert thread.join_link == text
    assert thread.name == "Book club"
    assert "answer was lost" in thread.problem
    assert joining.joins_pending() == [invite.thread.hex()]
    again, request = joining.join_request(thread_id=invite.thread.hex())
    assert again == invite
    assert request.invite == invite.public_key


def test_a_redemption_that_never_reached_the_inviter_leaves_no_trace(network):
    _invite, text = link()
    network.failures.append(fail("unreachable", "cannot reach the inviter's node"))
    with pytest.raises(services.ThreadServiceError) as failure:
        services.invite_redeem(link=text)
    assert failure.value.code == "unreachable"
    assert not Thread.objects.exists()
    network.failures.append(fail("used", "the invite was already used"))
    with pytest.raises(services.ThreadServiceError):
        services.invite_redeem(link=text)
    assert not Thread.objects.exists()


def test_a_refusal_for_good_ends_a_join_with_the_reason_and_forgets_the_link(network):
    invite, text = link()
    network.failures.append(fail(joining.INTERRUPTED))
    services.invite_redeem(link=text)
    # The person tries again meanwhile: the inviter refuses for good this time.
    network.failures.append(fail("revoked", "the invite was revoked"))
    with pytest.raises(services.ThreadServiceError):
        services.invite_redeem(link=text)
    thread = Thread.objects.get(pk=invite.thread.hex())
    assert (thread.state, thread.problem, thread.join_link) == (
        Thread.State.NOT_ADMITTED,
        invite_words.REVOKED,  # said in this node's words, not the inviter's
        "",
    )
    assert joining.joins_pending() == []


def test_background_attempts_note_why_and_stop_at_a_hard_refusal(network):
    invite, text = link()
    network.failures.append(fail(joining.INTERRUPTED))
    services.invite_redeem(link=text)
    assert not joining.join_failed(thread=invite.thread, code="unreachable", reason="offline")
    assert Thread.objects.get().problem == "offline"
    assert joining.join_failed(thread=invite.thread, code="used", reason="used by someone else")
    thread = Thread.objects.get()
    assert thread.state == Thread.State.NOT_ADMITTED
    assert joining.join_request(thread_id=thread.id) is None


def test_leaving_a_thread_being_joined_stops_the_attempts(network):
    _invite, text = link()
    network.failures.append(fail(joining.INTERRUPTED))
    thread = services.invite_redeem(link=text)
    services.thread_leave(thread=thread)
    thread.refresh_from_db()
    assert (thread.state, thread.join_link) == (Thread.State.LEFT, "")
    assert joining.joins_pending() == []


def test_the_api_and_the_pages_show_a_join_under_way_and_its_reason(network):
    token = node_services.claim_token_issue()
    owner = node_services.owner_claim(token=token, username="alice", password="pw " * 6).user
    client = Client()
    client.force_login(owner)
    invite, text = link()
    network.failures.append(fail(joining.INTERRUPTED, "the inviter's answer was lost"))
    response = client.post(
        "/api/v1/invites/redeem/", {"link": text}, content_type="application/json"
    )
    assert response.status_code == 202
    body = response.json()
    assert (body["id"], body["state"]) == (invite.thread.hex(), "joining")
    assert "answer was lost" in body["problem"]
    detail = client.get(f"/api/v1/threads/{invite.thread.hex()}/").json()
    assert detail["state"] == "joining"
    page = client.get("/node/threads/").content.decode()
    assert "still joining" in page
    thread_page = client.get(f"/node/threads/{invite.thread.hex()}/", follow=True)
    thread_page = thread_page.content.decode()
    assert "still joining this thread" in thread_page
    joining.join_failed(thread=invite.thread, code="expired", reason="the invite has expired")
    assert "not admitted: the invite has expired" in client.get("/node/threads/").content.decode()
