"""A push that lands while a session with the peer is going wrong is not lost: the session loop
tries again shortly instead of leaving it to the next anti-entropy round (a removal pushed while
the removed member's node was still finishing its join used to wait up to a minute)."""

from __future__ import annotations

import pytest
import trio

from apps.p2p import sessions
from apps.p2p.sessions import SessionOutcome, SyncSessions

THREAD, DEVICE = b"\x01" * 32, b"\x02" * 32


class Scripted(SyncSessions):
    """The session loop with scripted outcomes; ``push_during`` marks sessions during which
    something new is written (a push wanted while the session runs)."""

    def __init__(self, outcomes: list[SessionOutcome], push_during: set[int]) -> None:
        self._sessions: set[tuple[bytes, bytes]] = set()
        self._again: set[tuple[bytes, bytes]] = set()
        self._nursery = None
        self.outcomes = outcomes
        self.push_during = push_during
        self.sessions = 0

    async def _sync_once(self, thread: bytes, device: bytes) -> SessionOutcome:
        self.sessions += 1
        if self.sessions in self.push_during:
            self._want(thread, device)
        await trio.sleep(0)
        return self.outcomes[self.sessions - 1]


def run(node: Scripted) -> int:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            node._nursery = nursery
            node._want(THREAD, DEVICE)

    trio.run(main)
    return node.sessions


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(sessions, "SESSION_RETRIES", (0.0, 0.0, 0.0))


@pytest.mark.parametrize("outcome", ["refused", "unreachable"])
def test_a_push_during_a_session_that_did_not_get_through_is_tried_again(outcome):
    assert run(Scripted([outcome, "done"], push_during={1})) == 2


def test_a_session_that_did_not_get_through_with_nothing_new_is_left_to_anti_entropy():
    assert run(Scripted(["refused"], push_during=set())) == 1


def test_the_tries_are_bounded_when_the_peer_keeps_refusing():
    node = Scripted(["refused"] * 10, push_during=set(range(1, 11)))
    assert run(node) == 1 + len(sessions.SESSION_RETRIES)
