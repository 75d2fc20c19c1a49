"""Leaving a thread on a node (issue 11): the leave waits here for the other members' nodes
(served to them, and nothing more, until one holds it), the members who could have removed the
leaver start new keys without it, and it comes back only with a new invite. The page asks
first; the API answers the thread's new state."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from apps.core import services as node_services
from apps.core.models import Thread, ThreadMember
from apps.core.thread import keys
from apps.core.thread import payloads as p
from apps.core.thread.invite import Invite
from apps.core.thread.replica import Verified, verified
from apps.core.thread.writer import redemption_request
from apps.core.threads import leaving, services
from apps.core.threads.database import NodeKeys, ThreadDatabase
from apps.core.threads.redemption import MADE_BEFORE, RedemptionRefused, redemption_check
from apps.core.threads.registry import thread_database
from apps.p2p import threads_io
from apps.p2p.protocols.sync import admissible
from tests.core.threads.conftest import (
    OtherNode,
    admit,
    exchange,
    log_since,
    log_size,
    new_thread,
    other_node,
)
from tests.replicated_app.models import Note

pytestmark = pytest.mark.django_db(transaction=True)

HOUR_MS = 3_600_000


def raws(database: ThreadDatabase) -> list[bytes]:
    query = "SELECT raw FROM sereus_ops WHERE place = 'log' ORDER BY n"
    return [raw for (raw,) in database.raw().execute(query)]


def device_of(database: ThreadDatabase) -> bytes:
    return bytes(database.node.device.verify_key)


def invite_from(database: ThreadDatabase, role: str = "writer", uses: int | None = 1) -> Invite:
    expiry = time.time_ns() // 1_000_000 + HOUR_MS
    return database.write(
        lambda w: w.invite_create(role=role, expiry=expiry, inviter="peer", uses=uses)
    )


def join_here(owner: OtherNode, invite: Invite) -> Thread:
    """This node redeems ``invite`` at ``owner``'s node and takes in its log."""
    node = NodeKeys.of_this_node()
    request = redemption_request(invite, master_secret=node.master_secret, device_key=node.device)
    owner.database.write(lambda w: w.admit(request))
    return services.thread_join(invite=invite, raws=raws(owner.database))


@pytest.fixture
def club(node, tmp_path) -> OtherNode:
    """A thread Alice owns on a node of her own."""
    return new_thread(tmp_path, "club")


def test_a_leave_waits_here_for_a_member_and_is_all_they_get(club: OtherNode):
    thread = join_here(club, invite_from(club.database))
    alice = device_of(club.database)
    assert services.thread_leave(thread=thread, wait=0) is False  # no network: not told yet
    thread.refresh_from_db()
    assert (thread.state, thread.problem) == (Thread.State.LEFT, leaving.LEAVE_PENDING)
    database = thread_database(thread.thread)
    leave = leaving.leave_op(database.replica(), bytes.fromhex(thread.member_id))
    assert leave is not None

    # Synced for its leave only: Alice's device gets what led up to it, nothing is taken in.
    assert thread.thread in threads_io.thread_ids()
    assert threads_io.access(thread.thread, alice) == ("leaving", leave)
    info = threads_io.thread_info(thread.thread, device_of(database))
    assert info is not None
    assert info.leaving == leave
    assert [(peer.device, peer.until) for peer in info.peers] == [(alice, leave)]
    page, _ = threads_io.ops_page(
        thread.thread, club.database.replica().version_vector(), "leaving", leave,
        limit_bytes=10**9, limit_ops=10**9,
    )  # fmt: skip
    assert page == [leave.raw]
    before = log_size(club.database)
    Note.objects.using(club.database.alias).create(title="after the leave")
    ((note, _),) = log_since(club.database, before)
    assert admissible(verified([note.raw]), "leaving", leave) == (Verified(()), 0)

    # Alice's node has it: the thread is done here.
    club.database.ingest(page)
    assert club.database.replica().control.state.role_of(leave_member(thread)) is None
    leaving.leave_delivered(thread.thread)
    assert thread.thread not in threads_io.thread_ids()
    assert threads_io.access(thread.thread, alice) == ("none", None)
    assert threads_io.thread_info(thread.thread, device_of(database)) is None


def leave_member(thread: Thread) -> bytes:
    return bytes.fromhex(thread.member_id)


def test_the_owner_cannot_leave_and_is_told_so_in_words(thread: Thread):
    with pytest.raises(services.ThreadServiceError) as refused:
        services.thread_leave(thread=thread, wait=0)
    assert refused.value.code == "forbidden"
    assert "make another member the owner first" in str(refused.value)
    thread.refresh_from_db()
    assert thread.state == Thread.State.ACTIVE


def test_who_could_have_removed_the_leaver_starts_new_keys_without_it(
    thread: Thread, tdb: ThreadDatabase, tmp_path
):
    bob = other_node(tmp_path, thread.thread, "bob")
    admit(tdb, bob, "writer")
    bob_member = bytes(keys.member_key(bob.keys.master_secret, thread.thread).verify_key)
    bob.database.write(lambda w: w.control(p.Leave()))
    before = log_size(tdb)
    services.thread_ingest(thread=thread, raws=raws(bob.database))
    written = [op for op, _ in log_since(tdb, before) if op.device == device_of(tdb)]
    assert [op.kind for op in written] == ["keys"], "this node (the owner) rotated at once"
    rotation = tdb.replica().control.actions[written[0].hash]
    assert bob_member not in rotation.seals
    assert not ThreadMember.objects.filter(thread=thread, member_id=bob_member.hex()).exists()
    # What is written from now on, Bob's node holds no key for.
    before = log_size(tdb)
    Note.objects.using(tdb.alias).create(title="after Bob left")
    ((note, _),) = log_since(tdb, before)
    assert note.epoch == rotation.epoch
    exchange(tdb, bob.database)
    assert bob.database.replica().decision(note.hash).status == "opaque"


def test_a_member_who_could_not_have_removed_the_leaver_does_not_rotate(club: OtherNode, tmp_path):
    thread = join_here(club, invite_from(club.database))  # this node: a writer
    bob = other_node(tmp_path, club.database.thread, "bob")
    admit(club.database, bob, "writer")
    bob.database.write(lambda w: w.control(p.Leave()))
    database = thread_database(thread.thread)
    before = log_size(database)
    services.thread_ingest(thread=thread, raws=raws(bob.database))
    assert all(op.device != device_of(database) for op, _ in log_since(database, before))


def admission_check(club: OtherNode, invite: Invite) -> str:
    """What Alice's node answers this node's redemption of ``invite`` (before writing)."""
    node = NodeKeys.of_this_node()
    request = redemption_request(invite, master_secret=node.master_secret, device_key=node.device)
    control = club.database.replica().control
    return redemption_check(
        club.database.thread,
        control.state,
        request,
        admitter=control.state.owner,
        now_ms=time.time_ns() // 1_000_000,
        timeline=control.timeline,
    )


def test_a_member_who_left_comes_back_only_with_a_new_invite(club: OtherNode):
    old = invite_from(club.database)
    thread = join_here(club, old)
    services.thread_leave(thread=thread, wait=0)
    database = thread_database(thread.thread)
    club.database.ingest(raws(database))
    with pytest.raises(RedemptionRefused, match="already used"):
        admission_check(club, old)
    new = invite_from(club.database)
    services.invite_redeem_local(link=new.link())  # not "this node is already in the thread"
    assert admission_check(club, new) == "admit"
    back = join_here(club, new)
    assert (back.state, back.problem, back.role) == (Thread.State.ACTIVE, "", "writer")
    assert leaving.leave_op(database.replica(), leave_member(back)) is None
    assert thread.thread not in leaving.leaves_pending()


def test_coming_back_before_the_others_heard_of_the_leave_tells_them_first(
    club: OtherNode, monkeypatch
):
    thread = join_here(club, invite_from(club.database))
    services.thread_leave(thread=thread, wait=0)
    calls: list[str] = []

    class Network:
        def leave_deliver(self, thread: bytes, timeout: float) -> bool:
            calls.append("leave")
            return True

        def redeem(self, invite: Invite, request) -> None:
            calls.append("redeem")
            raise services.ThreadServiceError("unreachable", "the inviter is offline")

    monkeypatch.setattr(services, "network", Network())
    with pytest.raises(services.ThreadServiceError):
        services.invite_redeem(link=invite_from(club.database).link())
    assert calls == ["leave", "redeem"]
    thread.refresh_from_db()
    assert (thread.state, thread.problem) == (Thread.State.LEFT, leaving.LEAVE_PENDING)


def test_an_open_link_made_before_the_leave_does_not_bring_the_leaver_back(club: OtherNode):
    link = invite_from(club.database, "reader", uses=None)  # for anyone who has it
    thread = join_here(club, link)
    services.thread_leave(thread=thread, wait=0)
    club.database.ingest(raws(thread_database(thread.thread)))
    with pytest.raises(RedemptionRefused) as refused:
        admission_check(club, link)
    assert (refused.value.code, str(refused.value)) == ("used", MADE_BEFORE)


# -- the page and the API ----------------------------------------------------------------------


@pytest.fixture
def browser(node) -> Client:
    token = node_services.claim_token_issue()
    result = node_services.owner_claim(token=token, username="alice", password="pw " * 6)
    client = Client()
    client.force_login(result.user)
    return client


def test_the_leave_page_asks_first_then_leaves(browser: Client, club: OtherNode):
    thread = join_here(club, invite_from(club.database))
    url = f"/node/threads/{thread.id}/leave/"
    page = browser.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Leave club?" in text
    assert "The others will see that you left" in text
    assert "only with a new invite" in text
    assert 'type="submit" class="danger">Leave</button>' in text
    thread.refresh_from_db()
    assert thread.state == Thread.State.ACTIVE, "looking at the page leaves nothing"
    done = browser.post(url, follow=True)
    assert "You left club" in done.content.decode()
    thread.refresh_from_db()
    assert thread.state == Thread.State.LEFT
    again = browser.get(url).content.decode()
    assert "You left this thread" in again
    assert 'class="danger"' not in again


def test_the_owner_sees_in_words_why_it_cannot_leave(browser: Client, thread: Thread):
    text = browser.get(f"/node/threads/{thread.id}/leave/").content.decode()
    assert "The owner cannot leave a thread" in text
    assert 'class="danger"' not in text
    page = browser.post(f"/node/threads/{thread.id}/leave/").content.decode()
    assert "make another member the owner first" in page
    thread.refresh_from_db()
    assert thread.state == Thread.State.ACTIVE


def test_the_api_leaves_and_answers_the_new_state(browser: Client, club: OtherNode, thread):
    joined = join_here(club, invite_from(club.database))
    url = f"/api/v1/threads/{joined.id}/leave/"
    left = browser.post(url)
    assert left.status_code == 202  # no member's node reachable here: told later
    body = left.json()
    assert (body["id"], body["state"], body["problem"]) == (
        joined.id,
        "left",
        leaving.LEAVE_PENDING,
    )
    again = browser.post(url)
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    owner = browser.post(f"/api/v1/threads/{thread.id}/leave/")
    assert owner.status_code == 403
    assert "make another member the owner first" in owner.json()["detail"]
    assert browser.post("/api/v1/threads/" + "0" * 64 + "/leave/").status_code == 404
