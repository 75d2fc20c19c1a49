"""Speed bumps against floods (DESIGN §8): per-peer token buckets, strikes, temporary bans.

A peer that opens streams or sends bytes faster than its buckets refill is slowed (its streams
are refused with "busy", its reads wait); a peer that sends malformed or oversized frames collects
strikes, and at ``MAX_STRIKES`` it is disconnected and ignored for ``BAN_SECONDS``. Honest peers
never come near these limits: a sync session is one stream and batched frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Streams, and sessions on a kept stream, per member device: a push is a session, and a node
# writing fast pushes up to a few hundred a second (bursts coalesce into one session each).
STREAMS_PER_SECOND = 100.0
STREAM_BURST = 300.0
# All strangers together (peers that are no device of any thread here): they can only be refused
# or redeem an invite, and new identities cost nothing to make.
STRANGER_STREAMS_PER_SECOND = 20.0
STRANGER_BURST = 60.0
BYTES_PER_SECOND = 16 * 1024 * 1024
BYTE_BURST = 64 * 1024 * 1024
MAX_STRIKES = 5
BAN_SECONDS = 300.0


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, amount: float = 1.0, now: float | None = None) -> bool:
        self._refill(time.monotonic() if now is None else now)
        if self.tokens >= amount:
            self.tokens -= amount
            return True
        return False

    def charge(self, amount: float, now: float | None = None) -> float:
        """Take ``amount`` even if that goes into debt (at most one burst); the seconds until
        the debt is paid off."""
        self._refill(time.monotonic() if now is None else now)
        self.tokens = max(-self.burst, self.tokens - amount)
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def wait_time(self, amount: float, now: float | None = None) -> float:
        """Seconds until ``amount`` tokens are there (0 if they are)."""
        self._refill(time.monotonic() if now is None else now)
        missing = amount - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate


@dataclass
class PeerState:
    streams: TokenBucket = field(
        default_factory=lambda: TokenBucket(STREAMS_PER_SECOND, STREAM_BURST)
    )
    bytes: TokenBucket = field(default_factory=lambda: TokenBucket(BYTES_PER_SECOND, BYTE_BURST))
    strikes: int = 0
    banned_until: float = 0.0
    last_reason: str = ""


class PeerLimits:
    def __init__(self) -> None:
        self._peers: dict[str, PeerState] = {}
        self._strangers = TokenBucket(STRANGER_STREAMS_PER_SECOND, STRANGER_BURST)

    def _state(self, peer: str) -> PeerState:
        state = self._peers.get(peer)
        if state is None:
            if len(self._peers) > 10_000:  # forget the quiet ones rather than grow forever
                now = time.monotonic()
                quiet = [
                    key
                    for key, known in self._peers.items()
                    if not known.strikes and known.banned_until <= now
                ]
                for key in quiet[:5000]:
                    del self._peers[key]
            state = self._peers[peer] = PeerState()
        return state

    def banned(self, peer: str) -> bool:
        return self._state(peer).banned_until > time.monotonic()

    def allow_stream(self, peer: str) -> bool:
        return not self.banned(peer) and self._state(peer).streams.take()

    def allow_stranger_stream(self, peer: str) -> bool:
        """A stream from a peer that is no member device: from the strangers' shared budget."""
        return not self.banned(peer) and self._strangers.take()

    def byte_delay(self, peer: str, amount: int) -> float:
        """Charge ``amount`` bytes read from ``peer``; how long to wait before reading more
        (back-pressure: a peer over its rate waits for every byte it is over)."""
        return self._state(peer).bytes.charge(amount)

    def strike(self, peer: str, reason: str) -> bool:
        """Count a violation; True when the peer is now banned (and should be disconnected)."""
        state = self._state(peer)
        state.strikes += 1
        state.last_reason = reason
        if state.strikes >= MAX_STRIKES:
            state.banned_until = time.monotonic() + BAN_SECONDS
            state.strikes = 0
            return True
        return False

    def summary(self) -> dict[str, dict[str, object]]:
        now = time.monotonic()
        return {
            peer: {"strikes": s.strikes, "banned": s.banned_until > now, "reason": s.last_reason}
            for peer, s in self._peers.items()
            if s.strikes or s.banned_until > now
        }
