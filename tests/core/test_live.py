"""The live UI: ops reach open thread pages over their socket (coalesced, last state shown),
only the owner may listen, and the p2p fragments show peers, connections and sync state."""

from __future__ import annotations

import asyncio
import re
import time

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from apps.core.consumers import node_status_html
from apps.core.models import Thread, ThreadMember
from apps.core.threads import services
from apps.core.threads.consumers import thread_sync_html
from apps.core.threads.context import thread_context
from apps.core.threads.registry import thread_database
from apps.core.threads.selectors import LoggedOp, thread_ops
from apps.p2p import client
from apps.p2p.client import live_group
from tests.core.threads.conftest import admit, other_node
from tests.replicated_app.models import Note
from tests.support.sockets import logged_in_cookies, session_cookies, socket

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]

ACTIVITY = 'id="thread-activity"'


@pytest.fixture
async def owner_cookies(thread, owner) -> dict[str, str]:
    # ``thread`` first: the owner's claim must find the node's keys already made.
    return await database_sync_to_async(logged_in_cookies)(owner)


def _write_note(thread: Thread, title: str) -> LoggedOp:
    """A real write through the ORM; returns the op it became."""
    with thread_context(thread.thread):
        Note.objects.create(title=title)
    return thread_ops(thread.thread, limit=1000)[-1]


async def _changed(thread: Thread) -> None:
    await get_channel_layer().group_send(
        live_group(thread.thread), {"type": "thread.changed", "thread": thread.id}
    )


async def _next_with(communicator: WebsocketCommunicator, marker: str) -> str:
    while True:
        html = await communicator.receive_from(timeout=5)
        if marker in html:
            return html


async def _all_with(communicator: WebsocketCommunicator, marker: str, seconds: float) -> list[str]:
    """Every message with ``marker`` sent within ``seconds``."""
    found = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        # A receive that times out ends the app under test; asking whether nothing came does not.
        if await communicator.receive_nothing(timeout=min(left, 0.05)):
            continue
        html = await communicator.receive_from()
        if marker in html:
            found.append(html)
    return found


async def _open(thread: Thread, cookies: dict[str, str]) -> WebsocketCommunicator:
    """A thread page's socket, past its first render (which may already hold recent ops)."""
    communicator = socket(f"/ws/threads/{thread.id}/", cookies=cookies)
    connected, _ = await communicator.connect()
    assert connected
    await _next_with(communicator, ACTIVITY)
    return communicator


def _op_row(op: LoggedOp) -> str:
    return f"<td>{op.n}</td>"


async def test_a_change_announced_to_the_group_reaches_the_page(thread, owner_cookies):
    communicator = await _open(thread, owner_cookies)
    op = await database_sync_to_async(_write_note)(thread, "hello")
    await _changed(thread)
    html = await _next_with(communicator, ACTIVITY)
    assert 'hx-swap-oob="true"' in html
    assert _op_row(op) in html
    assert f"#{op.seq}" in html
    assert "accepted" in html
    assert 'id="thread-members"' in html
    assert 'id="thread-devices"' in html
    await communicator.disconnect()


async def test_a_write_notifies_open_pages_through_the_p2p_client(
    thread, owner_cookies, monkeypatch
):
    communicator = await _open(thread, owner_cookies)
    # As runnode does: the in-memory channel layer's loop, reached from the writing thread.
    monkeypatch.setattr(client, "home_loop", asyncio.get_running_loop())
    op = await database_sync_to_async(_write_note)(thread, "from a write")
    html = await _next_with(communicator, _op_row(op))
    assert ACTIVITY in html
    await communicator.disconnect()


async def test_a_burst_of_changes_is_rendered_at_most_a_few_times_ending_with_the_last(
    thread, owner_cookies
):
    communicator = await _open(thread, owner_cookies)
    await _all_with(communicator, ACTIVITY, 0.3)  # past the first render's pause
    await _changed(thread)
    first = await _next_with(communicator, ACTIVITY)  # the leading edge, at once
    last = await database_sync_to_async(_write_note)(thread, "last")
    assert _op_row(last) not in first
    for _ in range(19):
        await _changed(thread)
    renders = [first, *await _all_with(communicator, ACTIVITY, 1.0)]
    assert len(renders) <= 3, len(renders)
    assert _op_row(last) in renders[-1]
    await communicator.disconnect()


async def test_re_rendered_member_forms_carry_a_working_csrf_token(thread, owner, tmp_path):
    bob = other_node(tmp_path, thread.thread, "bob")
    await database_sync_to_async(admit)(thread_database(thread.thread), bob, "writer")
    await database_sync_to_async(services.index_refresh)(thread=thread)
    browser = Client(enforce_csrf_checks=True)
    await database_sync_to_async(browser.force_login)(owner)
    page = await database_sync_to_async(browser.get)(
        reverse("core:thread_people", args=[thread.id])
    )
    assert page.status_code == 200

    communicator = await _open(thread, session_cookies(browser))
    await _changed(thread)
    html = await _next_with(communicator, 'id="thread-members"')
    await communicator.disconnect()
    action, token = re.search(
        r'action="([^"]+/role/)".*?name="csrfmiddlewaretoken" value="([^"]+)"', html, re.S
    ).groups()
    response = await database_sync_to_async(browser.post)(
        action, {"role": "reader", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    roles = await database_sync_to_async(
        lambda: list(ThreadMember.objects.filter(is_me=False).values_list("role", flat=True))
    )()
    assert roles == ["reader"]


async def test_only_the_owner_may_listen(thread, owner_cookies):
    stranger = await database_sync_to_async(get_user_model().objects.create_user)(
        "mallory", password="not the owner"
    )
    cookies = await database_sync_to_async(logged_in_cookies)(stranger)
    for who in (cookies, None):
        communicator = socket(f"/ws/threads/{thread.id}/", cookies=who)
        assert await communicator.connect() == (False, 4403)


@pytest.mark.parametrize(
    "thread_id", ["ab" * 32, "not-a-thread", "a" * 63, "g" * 64, "a" * 64 + "0"]
)
async def test_unknown_or_malformed_threads_are_refused(thread, owner_cookies, thread_id):
    communicator = socket(f"/ws/threads/{thread_id}/", cookies=owner_cookies)
    assert await communicator.connect() == (False, 4404)


async def test_the_page_shows_the_threads_state_from_the_running_worker(
    thread, owner_cookies, p2p_worker, monkeypatch
):
    from apps.core import consumers

    # The worker learns its threads just after it starts: ask again soon rather than in 10 s.
    monkeypatch.setattr(consumers, "REFRESH_SECONDS", 0.1)
    communicator = socket(f"/ws/threads/{thread.id}/", cookies=owner_cookies)
    assert (await communicator.connect())[0]
    # A thread with only this node's device in it: nobody to be behind or out of touch with.
    html = await _next_with(communicator, "only your devices so far")
    assert 'id="thread-sync" hx-swap-oob="true"' in html
    assert "0 of 0 member devices connected" in html
    await communicator.disconnect()


def test_the_thread_page_renders_the_live_parts_without_javascript(thread, owner):
    browser = Client()
    browser.force_login(owner)
    html = browser.get(reverse("core:thread_people", args=[thread.id])).content.decode()
    assert f'ws-connect="/ws/threads/{thread.id}/"' in html
    assert "vendor/htmx/ext/ws.js" in html
    assert "checking…" in html
    # The thread's creation ops, newest first, by this node.
    ops = thread_ops(thread.thread)
    assert html.index(_op_row(ops[-1])) < html.index(_op_row(ops[0]))
    assert "this node #1" in html


PEER_A = "12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAPeerAA"
PEER_B = "12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBPeerBB"


def _status(thread_id: str, *, behind: int, connected: bool) -> dict:
    device = "d1" * 32
    return {
        "type": "p2p.status.reply",
        "running": True,
        "mode": "in-process",
        "listen": "/ip4/0.0.0.0/tcp/4001",
        "peer_id": "12D3KooWSelf",
        "started_at": "2026-01-01T00:00:00+00:00",
        "addresses": ["/ip4/192.0.2.7/tcp/4001", "/ip6/2001:db8::7/tcp/4001"],
        "connections": [PEER_A] if connected else [],
        "peers": [
            {
                "peer_id": PEER_A,
                "addrs": [],
                "connected": connected,
                "threads": 1,
                "last_error": "",
            },
            {
                "peer_id": PEER_B,
                "addrs": [],
                "connected": False,
                "threads": 1,
                "last_error": "dial failed: OSError",
            },
        ],
        "threads": [
            {
                "thread": thread_id,
                "ops": 12,
                "behind": behind,
                "connected_peers": int(connected),
                "peers": [
                    {
                        "device": device,
                        "peer_id": PEER_A,
                        "connected": connected,
                        "last_sync": time.time() - 120,
                        "seconds_since_sync": 120.0,
                        "behind": behind,
                    },
                    {
                        "device": "d2" * 32,
                        "peer_id": PEER_B,
                        "connected": False,
                        "last_sync": None,
                        "seconds_since_sync": None,
                        "behind": 0,
                    },
                ],
            }
        ],
        "limited": {PEER_B: {"strikes": 3, "banned": True, "reason": "malformed ops"}},
        "stats": {"sessions": 4, "ops_sent": 10, "ops_received": 7, "refused_streams": 1},
        "relay": False,
        "mdns": True,
        "dht": False,
    }


def test_the_dashboard_shows_addresses_peers_sync_and_limits(thread):
    html = node_status_html(_status(thread.id, behind=5, connected=True))
    assert 'id="p2p-status" hx-swap-oob="true"' in html
    assert "/ip6/2001:db8::7/tcp/4001" in html
    assert '<dd id="p2p-connections">1</dd>' in html
    assert f"…{PEER_A[-10:]}" in html[html.index('id="p2p-peers"') :]
    assert "dial failed: OSError" in html
    sync = html[html.index('id="p2p-sync"') :]
    assert "Test thread" in sync
    assert "5 changes still to fetch" in sync
    assert "1 of 2" in sync
    limited = html[html.index('id="p2p-limited"') :]
    assert "PeerBB" in limited
    assert "banned" in limited
    assert "malformed ops" in limited


def test_the_dashboard_copes_with_a_stopped_worker(db):
    html = node_status_html({"running": False})
    assert "not running" in html
    assert "p2p-peers" not in html


@pytest.mark.parametrize(
    ("behind", "connected", "expected"),
    [
        (5, True, "5 changes still to fetch"),
        (1, False, "1 change still to fetch"),
        (0, True, "up to date"),
        (0, False, "no other member's device reachable now"),
    ],
)
def test_the_thread_sync_state(thread, behind, connected, expected):
    html = thread_sync_html(thread.id, _status(thread.id, behind=behind, connected=connected))
    assert expected in html
    assert f"{int(connected)} of 2 member devices connected" in html
    assert "2\xa0minutes ago" in html
    assert "never" in html


def test_the_thread_sync_state_without_the_worker(thread):
    assert "not running" in thread_sync_html(thread.id, {"running": False})
    assert "does not serve this thread" in thread_sync_html(
        "ab" * 32, _status(thread.id, behind=0, connected=True)
    )
