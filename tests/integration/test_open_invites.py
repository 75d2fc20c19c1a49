"""A link for several people between real nodes (``runnode`` processes over libp2p on
127.0.0.1): it admits as many nodes as it says, and the next one to redeem it is told, by the
inviter's node over ``/sereus/invite``, that it was used up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.test_p2p import peers, start  # noqa: F401 - peers is a fixture
from tests.support.api import ApiError, wait_for

pytestmark = pytest.mark.slow


def test_a_link_for_two_people_admits_two_nodes_and_tells_the_third_it_was_used_up(
    peers,  # noqa: F811
    tmp_path,
):
    with ThreadPoolExecutor(4) as pool:  # at once: each start waits for its p2p host
        a, b, c, d = pool.map(lambda name: start(peers, tmp_path / name), "abcd")
    thread = a.thread_create("Shop")
    url = f"/api/v1/threads/{thread}/invites/"
    body = {"role": "reader", "expires_in": 3600, "uses": 2, "label": "shop followers"}
    created = a.api.post(url, body)
    link = created["link"]

    assert b.redeem(link)["role"] == "reader"
    assert c.redeem(link)["role"] == "reader"
    with pytest.raises(ApiError) as failure:
        d.redeem(link)
    assert failure.value.status == 409
    assert failure.value.body == {
        "error": "used",
        "detail": "This invite has already been used by as many people as it was made for. "
        "Ask the person who invited you for a new one.",
    }
    assert thread not in [t["id"] for t in d.api.get("/api/v1/threads/")]

    (invite,) = [i for i in a.api.get(url) if i["id"] == created["id"]]
    assert (invite["uses"], invite["used"], invite["status"], invite["label"]) == (
        2,
        2,
        "used up",
        "shop followers",
    )
    members = a.api.get(f"/api/v1/threads/{thread}/members/")
    assert sorted(m["role"] for m in members) == ["owner", "reader", "reader"]
    wait_for(lambda: len(c.api.get(f"/api/v1/threads/{thread}/members/")) == 3)
