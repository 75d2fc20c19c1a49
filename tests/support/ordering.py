"""Which test files run first, and how long each took.

``make test`` runs the suite on three workers with ``--dist loadfile``: a worker takes a whole
file and then the next one in the queue. By default xdist queues the files with the most tests
first, so the few real-node files (minutes each, few tests) came last, and the run ended with
one worker still in a 14-minute file while the others had long been idle. Here the slowest
files are queued first (``--no-loadscope-reorder`` keeps this order), so they overlap with
everything else; the rest keep their collection order.

At the end the slowest files are listed with their times (setup, call and teardown of their
tests added up), so the list below can be kept true from any run's output.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

# Slowest first, as the list printed at the end of a whole run said (seconds, three workers, a
# clean clone at 6a6909c, 2026-12-07: the suite took 33 min of pytest): test_p2p 351, storage
# nodes 335, cadre hostile 241, cadre nodes 207, storage hostile 197, netns 183, faults 134,
# identity nodes 123, identity browser 122, look 115, adversarial 108, runnode 102, cadre
# restore 101, ledger lifts 97, convergence 96. Files not named here follow, the real-node ones
# (marked "slow") before the others.
SLOWEST_FIRST = (
    "tests/integration/test_p2p.py",
    "tests/integration/test_storage_nodes.py",
    "tests/integration/test_cadre_hostile.py",
    "tests/integration/test_cadre_nodes.py",
    "tests/integration/test_storage_hostile.py",
    "tests/integration/test_netns.py",
    "tests/integration/test_faults.py",
    "tests/integration/test_identity_nodes.py",
    "tests/browser/test_identity_browser.py",
    "tests/browser/test_look.py",
    "tests/core/thread/test_adversarial.py",
    "tests/integration/test_runnode.py",
    "tests/cadre/test_restore.py",
    "tests/integration/test_ledger_lifts.py",
    "tests/core/thread/test_convergence.py",
)
SHOWN = 15  # files listed at the end

_seconds: defaultdict[str, float] = defaultdict(float)


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: i for i, path in enumerate(SLOWEST_FIRST)}
    slow_rest = len(rank)

    def key(item: pytest.Item) -> tuple[int, int]:
        path = _file(item.nodeid)
        if path in rank:
            return (0, rank[path])
        return (0, slow_rest) if item.get_closest_marker("slow") else (1, 0)

    items.sort(key=key)  # stable: a file's tests keep their order, and so do ties


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[_file(report.nodeid)] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:
    if not _seconds:
        return
    slowest = sorted(_seconds.items(), key=lambda kv: -kv[1])[:SHOWN]
    terminalreporter.write_sep("=", f"slowest {len(slowest)} test files (seconds)")
    for path, seconds in slowest:
        terminalreporter.write_line(f"{seconds:8.1f}  {path}")
