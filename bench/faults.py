"""The long fault run (the suite's is ``tests/integration/test_faults.py``): five real nodes in
network namespaces share a conversation for five minutes while the scheduler of
``tests/support/faults.py`` partitions them, throttles their links, pauses them (SIGSTOP), kills
them (SIGKILL) and restarts them with their clock moved by up to 5 minutes, and members join,
change role, are removed and invited back. After healing, every node is checked.

Reported:

- writes: acknowledged (2xx from a node's API), accepted everywhere, refused with a reason on
  their author's node (and the reasons), lost (acknowledged but neither on every member's node
  nor refused), message rows that differ from what their author's writes left, rejected at once
  (4xx) and unanswered; the acknowledgement latency under faults (p50/p99).
- divergent: member nodes whose replica (log with decisions, app tables) differs from the
  others' once the run gave up waiting; stranded: members per the control state whose node does
  not hold the thread or does not sync it.
- converge time: from the moment every fault is undone until every member holds the same
  replica, probes included (each member writes once after healing); when a stranded member
  never does, the time until the members' nodes that hold the thread agree is reported apart.
  Floor: the time one message takes to reach every member before any fault (push), measured in
  the same run. Anti-entropy runs every 3 s in these nodes, so a repair that needs more than a
  few rounds shows here. Also: the longest stretch in which two members could reach each other
  but finished no sync session (a stalled connection).

``SEREUS_FAULT_SEED`` picks the schedule (default 1); the full report (schedule, what happened,
every finding) is written next to the results as ``faults-<seed>-<time>.txt``. ``--quick``: three
nodes for one minute. Needs root (network namespaces) and libfaketime; skipped otherwise.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.stats import percentiles
from tests.support.faults import faults_unavailable, plan_make, run_faults

RESULTS = Path(__file__).resolve().parent / "results"


def run(*, quick: bool = False) -> dict[str, Any]:
    reason = faults_unavailable()
    if reason:
        print(f"   skipped: {reason}", flush=True)
        return {"skipped": reason}
    seed = int(os.environ.get("SEREUS_FAULT_SEED", 1))
    nodes, duration = (3, 60.0) if quick else (5, 300.0)
    plan = plan_make(seed, nodes=nodes, duration=duration)
    folder = Path(tempfile.mkdtemp(prefix="sereus-bench-faults-"))
    started = time.perf_counter()
    outcome = run_faults(plan, folder, converge_timeout=180, floor=True)
    wall = time.perf_counter() - started

    RESULTS.mkdir(exist_ok=True)
    report = RESULTS / f"faults-{seed}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    report.write_text(outcome.report() + "\n")

    f = outcome.figures
    acked = [w.ended - w.started for w in outcome.writes if w.outcome == "ack"]
    converge, floor = f.get("converge_s"), f.get("floor_propagation_s")
    result: dict[str, Any] = {
        "seed": seed,
        "nodes": nodes,
        "fault_seconds": duration,
        "faults": sum(1 for e in plan.events if e.until is not None),
        "membership_changes": sum(1 for e in plan.events if e.until is None),
        "acknowledged": f["acknowledged"],
        "accepted": f["accepted"],
        "refused_with_reason": f["refused_with_reason"],
        "refusal_reasons": f["refusal_reasons"],
        "lost": f["lost"],
        "wrong_rows": f["wrong_rows"],
        "rejected_at_once": f["rejected_at_once"],
        "no_answer": f["no_answer"],
        "divergent_nodes": f["divergent_nodes"],
        "stranded": f["stranded"],
        "converged": f["converged"],
        "converge_s": converge,
        "converge_holders_s": f["converge_holders_s"],
        "longest_sync_stall_s": f["longest_sync_stall_s"],
        "floor_propagation_s": floor,
        "converge_of_floor": round(converge / floor, 1) if converge and floor else None,
        "ack_latency": percentiles(acked) if acked else {},
        "findings": len(outcome.findings),
        "wall_s": round(wall),
        "report": str(report),
    }
    print(
        f"   seed {seed}, {nodes} nodes, {duration:.0f} s of faults ({result['faults']} faults, "
        f"{result['membership_changes']} membership changes): {f['acknowledged']} writes "
        f"acknowledged, {f['accepted']} accepted everywhere, {f['refused_with_reason']} refused "
        f"with a reason, {f['lost']} lost ({f['wrong_rows']} message rows not as written); "
        f"{f['divergent_nodes']} divergent and {f['stranded']} stranded nodes",
        flush=True,
    )
    if converge is not None:
        print(
            f"   converged {converge:.1f} s after healing; floor (one message to every member, "
            f"no fault) {floor:.2f} s: {result['converge_of_floor']}x",
            flush=True,
        )
    else:
        holders = f["converge_holders_s"]
        print(
            "   did not converge within 180 s of healing"
            + (f"; the nodes holding the thread agreed after {holders:.1f} s" if holders else ""),
            flush=True,
        )
    print(f"   longest sync stall between reachable members: {f['longest_sync_stall_s']} s")
    if acked:
        lat = result["ack_latency"]
        print(f"   ack latency under faults: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms")
    for finding in outcome.findings[:10]:
        print(f"   finding: {finding[:300]}", flush=True)
    print(f"   full report: {report}", flush=True)
    return result
