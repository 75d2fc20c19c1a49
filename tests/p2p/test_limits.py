"""Speed bumps against floods: token buckets refill at their rate up to their burst, a peer that
opens streams or sends bytes too fast is slowed, strikes lead to a temporary ban, and the state
kept per peer stays bounded."""

from __future__ import annotations

import time

import pytest

from apps.p2p import limits
from apps.p2p.limits import (
    BAN_SECONDS,
    BYTE_BURST,
    BYTES_PER_SECOND,
    MAX_STRIKES,
    STRANGER_BURST,
    STRANGER_STREAMS_PER_SECOND,
    STREAM_BURST,
    STREAMS_PER_SECOND,
    PeerLimits,
    TokenBucket,
)


class FakeClock:
    """Stands in for the ``time`` module inside ``apps.p2p.limits``."""

    def __init__(self) -> None:
        # Ahead of the real monotonic clock: buckets created during the test take their first
        # stamp from the real clock (the dataclass default), and must not look "in the future".
        self.now = time.monotonic() + 10_000.0

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(limits, "time", fake)
    return fake


# -- TokenBucket -----------------------------------------------------------------------------------


def test_a_new_bucket_is_full_and_empties_by_what_is_taken():
    bucket = TokenBucket(rate=10.0, burst=5.0, stamp=0.0)
    assert [bucket.take(now=0.0) for _ in range(6)] == [True] * 5 + [False]
    assert not bucket.take(0.5, now=0.0), "not even half a token is left"


def test_a_bucket_refills_at_its_rate():
    # Times and rates are binary fractions: the arithmetic below is exact.
    bucket = TokenBucket(rate=4.0, burst=5.0, stamp=0.0)
    assert bucket.take(5.0, now=0.0)
    assert not bucket.take(now=0.125), "half a token after 125 ms"
    assert bucket.take(now=0.25), "one token after 250 ms"
    assert not bucket.take(now=0.25)
    assert bucket.take(2.0, now=0.75)
    assert not bucket.take(0.125, now=0.75)


def test_a_bucket_never_holds_more_than_its_burst():
    bucket = TokenBucket(rate=10.0, burst=5.0, stamp=0.0)
    assert bucket.take(5.0, now=0.0)
    assert not bucket.take(6.0, now=1000.0)
    assert bucket.take(5.0, now=1000.0)


def test_a_bucket_can_start_empty():
    bucket = TokenBucket(rate=2.0, burst=5.0, tokens=0.0, stamp=0.0)
    assert not bucket.take(now=0.0)
    assert bucket.take(now=0.5)


def test_wait_time_says_when_the_tokens_are_there_without_taking_them():
    bucket = TokenBucket(rate=4.0, burst=10.0, stamp=0.0)
    assert bucket.wait_time(10.0, now=0.0) == 0.0
    assert bucket.take(10.0, now=0.0)
    assert bucket.wait_time(2.0, now=0.0) == pytest.approx(0.5)
    assert bucket.wait_time(2.0, now=0.25) == pytest.approx(0.25)
    assert bucket.wait_time(2.0, now=0.25) == pytest.approx(0.25), "asking takes nothing"
    assert bucket.wait_time(2.0, now=0.5) == 0.0
    assert bucket.take(2.0, now=0.5)


# -- PeerLimits: streams -------------------------------------------------------------------------


def test_a_peer_opening_streams_too_fast_is_refused_until_its_bucket_refills(clock):
    peers = PeerLimits()
    burst = int(STREAM_BURST)
    assert [peers.allow_stream("flood") for _ in range(burst + 1)] == [True] * burst + [False]
    assert peers.allow_stream("calm"), "another peer has its own bucket"

    clock.advance(1.01 / STREAMS_PER_SECOND)  # a hair more than one token's time
    assert peers.allow_stream("flood")
    assert not peers.allow_stream("flood")

    clock.advance(3600.0)
    allowed = sum(peers.allow_stream("flood") for _ in range(2 * burst))
    assert allowed == burst, "a long pause refills up to the burst, no further"


def test_refused_streams_are_not_strikes(clock):
    peers = PeerLimits()
    for _ in range(int(STREAM_BURST) * 3):
        peers.allow_stream("flood")
    assert not peers.banned("flood")
    assert peers.summary() == {}


# -- PeerLimits: strikes and bans ------------------------------------------------------------------


def test_strikes_up_to_the_limit_ban_the_peer_for_ban_seconds(clock):
    peers = PeerLimits()
    for n in range(1, MAX_STRIKES):
        assert peers.strike("rude", f"malformed frame {n}") is False
        assert not peers.banned("rude")
        assert peers.allow_stream("rude")
    assert peers.summary() == {
        "rude": {"strikes": MAX_STRIKES - 1, "banned": False, "reason": "malformed frame 4"}
    }

    assert peers.strike("rude", "oversized frame") is True, "this strike bans"
    assert peers.banned("rude")
    assert not peers.allow_stream("rude"), "a banned peer's streams are refused"
    assert peers.summary() == {"rude": {"strikes": 0, "banned": True, "reason": "oversized frame"}}
    assert not peers.banned("polite")
    assert peers.allow_stream("polite")

    clock.advance(BAN_SECONDS - 1)
    assert peers.banned("rude")
    assert not peers.allow_stream("rude")
    clock.advance(2)
    assert not peers.banned("rude")
    assert peers.allow_stream("rude")
    assert peers.summary() == {}, "a served ban and no strikes: nothing to report"


def test_after_a_ban_the_strike_count_starts_again(clock):
    peers = PeerLimits()
    for _ in range(MAX_STRIKES):
        peers.strike("rude", "bad")
    clock.advance(BAN_SECONDS + 1)
    assert [peers.strike("rude", "bad") for _ in range(MAX_STRIKES)] == [False] * (
        MAX_STRIKES - 1
    ) + [True]


def test_summary_lists_only_peers_with_strikes_or_bans(clock):
    peers = PeerLimits()
    peers.allow_stream("quiet")
    peers.byte_delay("quiet", 1000)
    peers.banned("asked about")
    peers.strike("struck", "bad frame")
    for _ in range(MAX_STRIKES):
        peers.strike("banned", "flood")
    assert peers.summary() == {
        "struck": {"strikes": 1, "banned": False, "reason": "bad frame"},
        "banned": {"strikes": 0, "banned": True, "reason": "flood"},
    }


# -- PeerLimits: bytes -----------------------------------------------------------------------------


def test_byte_delay_is_zero_within_the_burst_then_the_time_to_pay_the_debt(clock):
    peers = PeerLimits()
    assert peers.byte_delay("reader", BYTE_BURST // 2) == 0
    assert peers.byte_delay("reader", BYTE_BURST // 2) == 0
    chunk = 1024 * 1024
    delay = peers.byte_delay("reader", chunk)
    assert delay == pytest.approx(chunk / BYTES_PER_SECOND)
    assert peers.byte_delay("other", chunk) == 0, "another peer has its own bucket"

    clock.advance(delay / 2)
    # Bytes read while in debt are charged too: the wait grows with what the peer sends.
    assert peers.byte_delay("reader", chunk) == pytest.approx(1.5 * delay)
    clock.advance(1.5 * delay)
    assert peers.byte_delay("reader", 0) == 0, "the debt is paid off"
    # The debt is capped at one burst: a single huge frame does not lock a peer out for long.
    assert peers.byte_delay("reader", 100 * BYTE_BURST) == pytest.approx(
        BYTE_BURST / BYTES_PER_SECOND
    )


# -- PeerLimits: memory ----------------------------------------------------------------------------


def test_the_state_kept_per_peer_stays_bounded(clock):
    peers = PeerLimits()
    peers.strike("struck", "bad frame")
    for i in range(30_000):
        peers.allow_stream(f"peer-{i}")
    # No public size: the bound is on the private table itself.
    assert len(peers._peers) <= 10_001
    assert peers.summary() == {"struck": {"strikes": 1, "banned": False, "reason": "bad frame"}}


def test_a_banned_peer_stays_banned_when_many_other_peers_are_seen(clock):
    peers = PeerLimits()
    for _ in range(MAX_STRIKES):
        peers.strike("rude", "flood")
    assert peers.banned("rude")
    for i in range(10_001):
        peers.allow_stream(f"peer-{i}")
    assert peers.banned("rude")


def test_strangers_share_one_small_budget_members_have_their_own(clock):
    peers = PeerLimits()
    burst = int(STRANGER_BURST)
    # Many fresh identities draw from the same bucket: making new ones buys nothing.
    assert [peers.allow_stranger_stream(f"sybil-{i}") for i in range(burst + 1)] == [
        True
    ] * burst + [False]
    assert peers.allow_stream("member"), "a member's budget is its own"
    clock.advance(1.01 / STRANGER_STREAMS_PER_SECOND)
    assert peers.allow_stranger_stream("sybil-new")
    assert STRANGER_BURST < STREAM_BURST
