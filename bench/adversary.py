"""The long run of the generative adversarial test (issue 9): random thread histories with one
or two hostile members drawing from every known attack (``tests/core/thread/adversary.py``),
each delivered in random orders with duplicates to 3 to 5 honest replicas, and held to the same
promises as the suite's 300 short histories: identical decisions and rows, no honest op
refused, liveness afterwards. Longer histories and many more of them; reports how many held,
the ops and attacks they carried, and the time per history against the time to merely build it
(the floor: writing the same history with no checking replicas)."""

from __future__ import annotations

import random
import time
import traceback
from typing import Any

from tests.core.thread.adversary import ATTACKS, Adversary
from tests.core.thread.test_adversarial import check


def run(*, quick: bool = False) -> dict[str, Any]:
    histories = 40 if quick else 400
    rng = random.Random(2026)
    held = ops = 0
    attacks = dict.fromkeys(ATTACKS, 0)
    failures: list[str] = []
    build = verify = 0.0
    for _ in range(histories):
        seed = rng.randrange(2**32)
        honest, hostile, steps = rng.randint(2, 5), rng.randint(1, 2), rng.randint(40, 160)
        started = time.perf_counter()
        sim = Adversary.run(seed, honest=honest, hostile=hostile, steps=steps)
        built = time.perf_counter()
        try:
            check(sim, random.Random(seed), replicas=rng.randint(3, 5))
        except AssertionError:
            failures.append(f"seed={seed} honest={honest} hostile={hostile} steps={steps}")
            traceback.print_exc()
        else:
            held += 1
        build += built - started
        verify += time.perf_counter() - built
        ops += len(sim.all_ops())
        for attack, count in sim.attacks.items():
            attacks[attack] += count
    print(f"   {held} of {histories} histories held every promise ({ops} ops)", flush=True)
    print(f"   attacks made: {attacks}", flush=True)
    print(
        f"   checking took {verify / max(build, 1e-9):.1f}x the time to build the histories "
        f"({verify:.0f} s vs {build:.0f} s)",
        flush=True,
    )
    for failure in failures:
        print(f"   FAILED: {failure} (replay with Adversary.run and check)", flush=True)
    return {
        "histories": histories,
        "held": held,
        "failures": failures,
        "ops": ops,
        "attacks": attacks,
        "check_vs_build": round(verify / max(build, 1e-9), 2),
    }
