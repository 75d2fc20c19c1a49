"""Benchmarks (``make bench`` or ``python -m bench [name ...]``).

Every benchmark measures the project against a floor measured in the same run on the same machine
(the machines are shared and noisy): figures are reported as ratios, each the best of several
rounds.
"""
