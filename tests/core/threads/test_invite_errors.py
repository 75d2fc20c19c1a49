"""Every way an invite link can be wrong is said in plain words, the same on the join page and in
the API: cut off, mistyped, not an invite link, expired, revoked, used, unknown to the inviter,
and for a thread this node is in already.

The inviter's refusals are the real ones: this node, as the inviter of a thread of its own,
refuses a newcomer (``services.invite_admit``), and that refusal, code and words as the inviter
sent them, is the answer the joining side gets for a link of another thread (the p2p layer,
which carries it between two nodes, is tested with real nodes in tests/integration)."""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.test import Client

from apps.core.models import Thread
from apps.core.thread.invite import DAMAGED, EXPIRED, INCOMPLETE, NOT_AN_INVITE, Invite
from apps.core.threads import invite_words, services
from tests.core.threads.test_admin_and_pages import owner_browser  # noqa: F401 - a fixture
from tests.core.threads.test_invites_open import newcomer

pytestmark = pytest.mark.django_db(transaction=True)

INTERNAL = ("CBOR", "base64", "stream", "map", "bytes", "canonical", "Error", "!r")


@dataclass
class Inviter:
    """The p2p layer as the services see it, answering every redeem with the refusal the
    inviter's node gave (``answer``)."""

    answer: services.ThreadServiceError | None = None

    def addresses(self) -> tuple[str, ...]:
        return ()

    def redeem(self, invite, request) -> None:
        assert self.answer is not None
        raise self.answer


@pytest.fixture
def inviter(node, monkeypatch) -> Inviter:
    stand_in = Inviter()
    monkeypatch.setattr(services, "network", stand_in)
    return stand_in


def refusal(thread: Thread, invite: Invite) -> services.ThreadServiceError:
    """What this node, as ``thread``'s inviter, answers a newcomer with ``invite``."""
    with pytest.raises(services.ThreadServiceError) as refused:
        services.invite_admit(thread=thread, request=newcomer(invite))
    return refused.value


def elsewhere() -> str:
    """A valid link to a thread this node is not in."""
    expiry = time.time_ns() // 1_000_000 + 3_600_000
    return Invite(os.urandom(32), "writer", expiry, os.urandom(32), "peer", (), "Club").link()


def said(client: Client, link: str) -> tuple[str, int, dict]:
    """What the join page says under the link, and the API's status and answer."""
    page = client.post("/node/threads/join/", {"link": link})
    assert page.status_code == 200  # the form again, with the error
    text = html.unescape(page.content.decode())
    api = client.post("/api/v1/invites/redeem/", {"link": link}, content_type="application/json")
    return text, api.status_code, api.json()


def check(client: Client, link: str, words: str, status: int, code: str) -> None:
    page, api_status, body = said(client, link)
    assert words in page
    assert (api_status, body["error"], body["detail"]) == (status, code, words)
    for word in INTERNAL:
        assert word not in words, words
    assert not Thread.objects.exclude(state=Thread.State.ACTIVE).exists()  # nothing left behind


def test_links_wrong_in_themselves(owner_browser, node):  # noqa: F811
    link = elsewhere()
    check(owner_browser, link[:-20], INCOMPLETE, 400, "malformed")
    check(owner_browser, link[:25], INCOMPLETE, 400, "malformed")
    check(owner_browser, link[:40] + "!" + link[41:], DAMAGED, 400, "malformed")
    check(owner_browser, link + "AAAA", DAMAGED, 400, "malformed")
    check(owner_browser, "https://example.org/article", NOT_AN_INVITE, 400, "malformed")
    past = Invite(os.urandom(32), "writer", 10**12, os.urandom(32), "peer", (), "Club").link()
    check(owner_browser, past, EXPIRED, 410, "expired")


def test_a_link_to_a_thread_this_node_is_in(owner_browser, thread):  # noqa: F811
    link = services.invite_create(thread=thread, role="writer", expires_in=timedelta(hours=1)).link
    words = f"You are already in {thread.name}: there is no need to join it again."
    check(owner_browser, link, words, 409, "conflict")


@pytest.mark.parametrize(
    ("case", "words", "status", "code"),
    [
        ("revoked", invite_words.REVOKED, 410, "revoked"),
        ("used once", invite_words.USED, 409, "used"),
        ("used up", invite_words.USED, 409, "used"),
        ("unknown", invite_words.UNKNOWN, 404, "unknown"),
    ],
)
def test_the_inviters_refusals(owner_browser, thread, inviter, case, words, status, code):  # noqa: F811
    def made(uses: int = 1):
        return services.invite_create(
            thread=thread, role="reader", expires_in=timedelta(hours=1), uses=uses
        ).invite

    if case == "revoked":
        invite = made()
        services.invite_revoke(thread=thread, invite_id=invite.public_key.hex())
    elif case == "used once":
        invite = made()
        services.invite_admit(thread=thread, request=newcomer(invite))
    elif case == "used up":
        invite = made(uses=2)
        for _ in range(2):
            services.invite_admit(thread=thread, request=newcomer(invite))
    else:
        invite = Invite(thread.thread, "reader", 2**47, os.urandom(32), "peer", (), "")
    inviter.answer = refusal(thread, invite)
    assert inviter.answer.code == code
    check(owner_browser, elsewhere(), words, status, code)


def test_a_refusal_is_said_in_this_nodes_words_whatever_the_inviter_sent():
    hostile = "<b>send your recovery phrase to evil.example</b>"
    for code in ("revoked", "used", "unknown", "expired", "forbidden", "malformed"):
        assert "evil" not in invite_words.refusal_words(code, hostile)
    assert invite_words.refusal_words("conflict", hostile) == invite_words.MEMBER_ALREADY
    made_here = "this invite was made by this node"
    assert invite_words.refusal_words("conflict", made_here) == invite_words.OWN_INVITE
