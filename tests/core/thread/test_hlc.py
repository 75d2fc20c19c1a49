"""The hybrid logical clock (hlc.py): stamps only grow, whatever the wall clock does."""

from __future__ import annotations

import random

from apps.core.thread.hlc import MAX_COUNTER, ZERO, HybridClock, Stamp

START = 1_700_000_000_000
MINUTE = 60_000


class FakeWall:
    """A wall clock the test moves by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_stamps_strictly_increase_whatever_the_wall_clock_does():
    rng = random.Random(20240611)
    wall = FakeWall(START)
    clock = HybridClock(wall=wall)
    previous = ZERO
    highest_wall = 0
    for i in range(10_000):
        if i == 1000:
            wall.now -= 5 * MINUTE  # stepped back
        elif i == 2000:
            wall.now += 10 * MINUTE  # stepped forward (5 min ahead of the original)
        elif i == 3000:
            wall.now -= 5 * MINUTE  # and back again
        elif 4000 <= i < 5000:
            pass  # stalled
        else:
            wall.now += rng.choice([-1000, -1, 0, 0, 1, 1, 2, 50])
        highest_wall = max(highest_wall, wall.now)
        stamp = clock.tick()
        assert stamp > previous, (i, previous, stamp)
        # Never behind the highest wall time seen, never invents time beyond it.
        assert stamp.millis >= highest_wall
        assert stamp.millis == max(highest_wall, previous.millis)
        previous = stamp
    assert clock.last == previous


def test_wall_clock_step_back_keeps_counting_from_the_higher_time():
    wall = FakeWall(START)
    clock = HybridClock(wall=wall)
    first = clock.tick()
    assert first == Stamp(START, 0)
    wall.now = START - 5 * MINUTE
    assert clock.tick() == Stamp(START, 1)
    assert clock.tick() == Stamp(START, 2)
    wall.now = START + 1
    assert clock.tick() == Stamp(START + 1, 0)


def test_observe_makes_the_next_tick_later_than_the_observed_stamp():
    wall = FakeWall(START)
    clock = HybridClock(wall=wall)
    clock.tick()
    remote = Stamp(START + 5 * MINUTE, 7)
    clock.observe(remote)
    nxt = clock.tick()
    assert nxt > remote
    assert nxt == Stamp(remote.millis, remote.counter + 1)
    # Observing an older stamp changes nothing.
    clock.observe(Stamp(START, 3))
    assert clock.tick() == Stamp(remote.millis, remote.counter + 2)
    # Once the wall clock passes the observed time, it takes over again.
    wall.now = remote.millis + 10
    assert clock.tick() == Stamp(remote.millis + 10, 0)


def test_random_ticks_and_observations_stay_ordered():
    rng = random.Random(7)
    wall = FakeWall(START)
    clock = HybridClock(wall=wall)
    floor = ZERO  # every stamp issued or observed so far
    for _ in range(5_000):
        wall.now += rng.randint(-100, 100)
        if rng.random() < 0.3:
            seen = Stamp(wall.now + rng.randint(-MINUTE, MINUTE), rng.randint(0, 5))
            clock.observe(seen)
            floor = max(floor, seen)
        stamp = clock.tick()
        assert stamp > floor
        floor = stamp


def test_counter_overflow_borrows_the_next_millisecond():
    wall = FakeWall(START)
    clock = HybridClock(last=Stamp(START, MAX_COUNTER - 1), wall=wall)
    assert clock.tick() == Stamp(START, MAX_COUNTER)
    assert clock.tick() == Stamp(START + 1, 0)
    assert clock.tick() == Stamp(START + 1, 1)
    # The wall clock, stuck at START, is ignored until it passes the borrowed millisecond.
    wall.now = START + 1
    assert clock.tick() == Stamp(START + 1, 2)
    wall.now = START + 2
    assert clock.tick() == Stamp(START + 2, 0)


def test_overflow_after_observing_a_saturated_stamp():
    wall = FakeWall(START)
    clock = HybridClock(wall=wall)
    clock.observe(Stamp(START + 100, MAX_COUNTER))
    assert clock.tick() == Stamp(START + 101, 0)


def test_stamp_order_and_encoding():
    assert Stamp(1, 0) > Stamp(0, MAX_COUNTER)
    assert Stamp(1, 1) > Stamp(1, 0)
    assert Stamp(5, 6).encode() == [5, 6]


def test_default_wall_clock_is_real_time():
    import time

    before = time.time_ns() // 1_000_000
    stamp = HybridClock().tick()
    after = time.time_ns() // 1_000_000
    assert before <= stamp.millis <= after
