"""The dashboard socket: origin check, owner only, live status from the p2p worker."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from tests.support.sockets import logged_in_cookies, socket

pytestmark = [pytest.mark.anyio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
async def owner_cookie(owner):
    return await database_sync_to_async(logged_in_cookies)(owner)


@pytest.mark.parametrize("origin", ["http://attacker.example", None, "null"])
async def test_socket_from_a_foreign_or_missing_origin_is_refused(owner_cookie, origin):
    communicator = socket("/ws/node/", origin=origin, cookies=owner_cookie)
    connected, _ = await communicator.connect()
    assert not connected


async def test_socket_without_a_session_is_refused(db):
    communicator = socket("/ws/node/", origin="http://127.0.0.1:8000", cookies=None)
    connected, code = await communicator.connect()
    assert not connected
    assert code == 4403


async def test_owner_socket_receives_the_worker_status(owner_cookie, p2p_worker):
    communicator = socket("/ws/node/", origin="http://127.0.0.1:8000", cookies=owner_cookie)
    connected, _ = await communicator.connect()
    assert connected
    html = await communicator.receive_from(timeout=5)
    assert 'id="p2p-status"' in html
    assert 'hx-swap-oob="true"' in html
    assert "running" in html
    assert "in-process" in html
    await communicator.disconnect()


async def test_owner_socket_reports_a_silent_worker(owner_cookie, monkeypatch):
    from apps.core import consumers

    monkeypatch.setattr(consumers, "REPLY_TIMEOUT_SECONDS", 0.2)
    communicator = socket("/ws/node/", origin="http://localhost:8000", cookies=owner_cookie)
    connected, _ = await communicator.connect()
    assert connected
    html = await communicator.receive_from(timeout=5)
    assert "not running" in html
    assert "does not answer" in html
    await communicator.disconnect()
