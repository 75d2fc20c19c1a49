"""Hybrid logical clock: wall-clock milliseconds plus a counter.

Each device stamps its ops with ``HybridClock.tick()``; stamps only ever grow, whatever the wall
clock does (a clock stepped back five minutes keeps counting from where it was, one stepped forward
and back again keeps the higher time), so a device never reorders its own ops and a later write
always wins last-writer-wins. ``observe`` folds in the stamps of ops received from others, so an op
is always stamped later than everything its author had seen (the validator checks that).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

MAX_COUNTER = 2**32 - 1
MAX_MILLIS = 2**48 - 1  # year 10889: far enough, small enough to refuse absurd stamps


class Stamp(NamedTuple):
    millis: int
    counter: int

    def encode(self) -> list[int]:
        return [self.millis, self.counter]


ZERO = Stamp(0, 0)


def wall_millis() -> int:
    return time.time_ns() // 1_000_000


class HybridClock:
    def __init__(self, last: Stamp = ZERO, wall: Callable[[], int] = wall_millis) -> None:
        self.last = last
        self._wall = wall

    def tick(self) -> Stamp:
        """A stamp later than every stamp this clock has issued or observed."""
        wall = self._wall()
        if wall > self.last.millis:
            self.last = Stamp(wall, 0)
        elif self.last.counter < MAX_COUNTER:
            self.last = Stamp(self.last.millis, self.last.counter + 1)
        elif self.last.millis < MAX_MILLIS:
            # Counter exhausted within one millisecond: borrow the next millisecond.
            self.last = Stamp(self.last.millis + 1, 0)
        else:
            # Never a stamp peers could not decode (a replica holds ops stamped far ahead of
            # its clock, so only a broken clock gets here).
            raise OverflowError("the hybrid clock reached the end of its range")
        return self.last

    def observe(self, stamp: Stamp) -> None:
        if self.last < stamp <= Stamp(MAX_MILLIS, MAX_COUNTER):
            self.last = stamp
