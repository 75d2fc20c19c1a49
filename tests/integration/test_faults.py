"""A short seeded fault run (``tests/support/faults.py``): four real nodes in network namespaces
share a conversation while they are partitioned, throttled, paused, killed with SIGKILL and
restarted, some with their clock 5 minutes off, and while members join, are demoted and
promoted, and one is removed. After healing: every acknowledged write is on every member's node
or refused with a reason on its author's, the replicas are identical and match their logs'
rebuilds, and no member is stranded.

Replay or explore with ``SEREUS_FAULT_SEED=<n>`` (the failure message starts with the seed and
the schedule); the long run is the ``faults`` benchmark (``python -m bench faults``).

Skipped, with the reason, where namespaces cannot be made (not root, no iproute2) or libfaketime
is missing and cannot be installed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.faults import SKEW, faults_unavailable, plan_make, run_faults, skew_check

pytestmark = pytest.mark.slow

# The suite's schedule: among the rest, both joiners are killed just after their inviter
# admitted them (issue 9, defect 13: it strands them on today's code). Any other seed replays or
# explores through SEREUS_FAULT_SEED.
SEED = 2
NODES = 4
DURATION = 20.0  # seconds of faults and workload (the whole test takes about a minute)


@pytest.fixture(scope="module")
def fault_tools() -> None:
    reason = faults_unavailable()
    if reason:
        pytest.skip(reason)


def test_the_schedule_is_drawn_from_the_seed_alone_and_has_every_fault() -> None:
    for seed in range(20):
        plan = plan_make(seed, nodes=NODES, duration=DURATION)
        assert plan == plan_make(seed, nodes=NODES, duration=DURATION)
        kinds = {event.kind for event in plan.events}
        assert {"partition", "pause", "kill", "throttle", "join", "role", "remove"} <= kinds
        assert {SKEW, -SKEW} <= set(plan.skews.values())
        assert all(e.until is None or e.until <= DURATION for e in plan.events)
    assert plan_make(1).describe() != plan_make(2).describe()


def test_faketime_moves_the_wall_clock_only(fault_tools: None) -> None:
    """What the fault run relies on: a node under libfaketime sees its wall clock 5 minutes off,
    while its monotonic clock is true and its sleeps (time.sleep in any thread, trio's,
    asyncio's, a lock's timeout) last as long as asked."""
    for skew in (SKEW, -SKEW):
        assert skew_check(skew) is None, skew_check(skew)


# About a minute on an idle machine; a loaded one slows every node start (a dozen of them).
@pytest.mark.timeout(480)
def test_a_seeded_fault_run_keeps_every_promise(fault_tools: None, tmp_path: Path) -> None:
    seed = int(os.environ.get("SEREUS_FAULT_SEED", SEED))
    plan = plan_make(seed, nodes=NODES, duration=DURATION)
    outcome = run_faults(plan, tmp_path, converge_timeout=45)
    print(outcome.report())  # shown with -s, and by pytest when the test fails
    assert outcome.ok, outcome.report()
