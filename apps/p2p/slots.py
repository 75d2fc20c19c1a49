"""Inbound session slots: how many streams this node serves at once, and for whom (ADR 11).

Every inbound stream of a Sereus protocol (sync, invite, blob, live) holds a slot for as long as
it is served, a sync stream kept idle for the next session included. Strangers (peers that are
no device of any thread here: someone redeeming an invite, or anyone at all) share a small pool;
member devices use the rest. New identities cost nothing to make, so without the split a crowd
of them holding streams open (a stream waits up to 30 s for its first frame) would take every
slot and shut the members out. Each peer holds at most ``PER_PEER`` slots either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TOTAL = 256  # streams served at once
STRANGERS = 32  # of which strangers may hold at most this many
PER_PEER = 4

Pool = Literal["member", "stranger"]


@dataclass
class SessionSlots:
    total: int = TOTAL
    strangers: int = STRANGERS
    per_peer: int = PER_PEER
    held: dict[str, int] = field(default_factory=dict)  # peer id -> slots it holds
    in_use: dict[str, int] = field(default_factory=lambda: {"member": 0, "stranger": 0})

    def capacity(self, pool: Pool) -> int:
        return self.strangers if pool == "stranger" else self.total - self.strangers

    def take(self, peer: str, pool: Pool) -> bool:
        """A slot in ``pool`` for a new stream of ``peer``; False when its pool is full or
        the peer holds its share already (nothing is taken then)."""
        if self.in_use[pool] >= self.capacity(pool) or self.held.get(peer, 0) >= self.per_peer:
            return False
        self.in_use[pool] += 1
        self.held[peer] = self.held.get(peer, 0) + 1
        return True

    def give(self, peer: str, pool: Pool) -> None:
        """Give back a slot taken with ``take`` (the same pool: a stranger that became a
        member while it was served still frees a stranger's slot)."""
        self.in_use[pool] -= 1
        left = self.held[peer] - 1
        if left:
            self.held[peer] = left
        else:
            del self.held[peer]

    def summary(self) -> dict[str, int]:
        return {
            "members": self.in_use["member"],
            "member_slots": self.capacity("member"),
            "strangers": self.in_use["stranger"],
            "stranger_slots": self.capacity("stranger"),
        }
