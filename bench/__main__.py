"""Run the benchmarks: ``python -m bench`` runs all, ``python -m bench thread_validation`` one."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

BENCHMARKS = [
    "thread_validation",
    "thread_writes",
    "ordered",
    "p2p_sync",
    "messaging",
    "adversary",
    "faults",
    "tti",
]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (of {BENCHMARKS})")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sereus_web.settings.test")
    import django

    django.setup()
    results = {}
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        results[name] = module.run(quick=args.quick)
        print(f"   ({time.perf_counter() - started:.0f} s)\n", flush=True)
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    print(f"results: bench/results/{stamp}.json")


if __name__ == "__main__":
    sys.exit(main())
