"""A sync session computes each flight with the peer's access as it stands then, not as it stood
when the session opened: a device revoked while a session with it runs gets nothing written
after its revocation from the rest of that session (seen on real nodes under load: a removed
device received the note written after its removal over a session opened before it)."""

from __future__ import annotations

from typing import Any

import trio

from apps.p2p import frames, threads_io
from apps.p2p.protocols import sync

THREAD, DEVICE = b"\x01" * 32, b"\x02" * 32


class Node:
    """What a session asks of its node here: run a call on the node's database thread."""

    async def db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)


def test_each_flight_is_computed_with_the_access_the_peer_has_now(monkeypatch):
    access = {"grant": ("full", None)}
    flights: list[str] = []

    def flight(thread: bytes, vv: dict, grant: str, removal: Any, **kwargs: Any) -> str:
        flights.append(grant)
        return "flight"

    monkeypatch.setattr(threads_io, "access", lambda thread, device: access["grant"])
    monkeypatch.setattr(threads_io, "flight", flight)
    session = sync._Session(Node(), None, THREAD, DEVICE, "full", None)
    theirs = frames.VersionVector({})

    trio.run(session.next_flight, theirs)
    access["grant"] = ("none", None)  # the device is revoked while the session runs
    trio.run(session.next_flight, theirs)

    assert flights == ["full", "none"]
    assert session.grant == "none"
