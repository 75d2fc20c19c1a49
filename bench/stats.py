"""Summaries shared by the benchmarks: samples in seconds, reported in milliseconds."""

from __future__ import annotations

import statistics


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": ms(statistics.median(ordered)),
        "p99_ms": ms(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]),
        "min_ms": ms(ordered[0]),
        "max_ms": ms(ordered[-1]),
    }
