"""A lost invite reply never strands the joiner (issue 9, defect 13): real node processes, the
inviter breaking off its answer after committing the admission (``SEREUS_TEST_DROP_INVITE_LOGS``,
the test-only fault of ``apps.p2p.protocols.invite``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.api import ApiError, wait_for
from tests.support.p2p import Peer, converged

pytestmark = pytest.mark.slow


@pytest.fixture
def peers():
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.kill()


def start(peers: list[Peer], path: Path, **kwargs: Any) -> Peer:
    peer = Peer(path, **kwargs)
    peers.append(peer)
    return peer.start()


def titles(dump: dict) -> list[str]:
    return sorted(row[1] for row in dump["notes"])


def test_a_joiner_whose_answer_was_lost_finishes_the_join_and_syncs(peers, tmp_path):
    # A admits, then breaks off its answer before the log: for the redemption the person
    # asked for, and for the first attempt in the background.
    a = start(peers, tmp_path / "a", env={"SEREUS_TEST_DROP_INVITE_LOGS": "2"})
    b = start(peers, tmp_path / "b")
    c = start(peers, tmp_path / "c")
    assert b.api is not None
    thread = a.thread_create("Lossy")
    a.note(thread, "before b")
    link = a.invite(thread)

    answer = b.redeem(link)
    assert (answer["id"], answer["state"]) == (thread, "joining"), answer
    detail = wait_for(
        lambda: (d := b.api.get(f"/api/v1/threads/{thread}/"))["state"] != "joining" and d,
        timeout=60,
        what="B to finish joining in the background",
    )
    assert detail["state"] == "active", detail
    assert detail["problem"] == ""
    assert b.network()["joins"]["joined"] == 1

    b.note(thread, "from b")
    a.note(thread, "from a")
    assert titles(converged([a, b], thread)) == ["before b", "from a", "from b"]
    # B was admitted once (one redeem op), and the link stays used for anyone else.
    assert len(b.api.get(f"/api/v1/threads/{thread}/members/")) == 2
    with pytest.raises(ApiError) as refused:
        c.redeem(link)
    assert (refused.value.status, refused.value.body["error"]) == (409, "used")
