"""Run the benchmarks: ``python -m bench`` runs all, ``python -m bench thread_validation`` one."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

BENCHMARKS = [
    "thread_validation",
    "thread_writes",
    "ordered",
    "p2p_sync",
    "fanout",
    "messaging",
    "request_path",
    "adversary",
    "faults",
    "tti",
    "control_scale",
    "voting",
    "timeline",
    "ledger",
    "market",
    "medical",
    "cadre",
    "storage",
    "identity",
]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (of {BENCHMARKS})")
    parser.add_argument("--quick", action="store_true", help="smaller inputs, for a smoke run")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sereus_web.settings.test")
    import django

    django.setup()
    from bench import report

    results: dict = {}
    failed = []
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            results[name] = module.run(quick=args.quick)
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
            results[name] = {"error": traceback.format_exc(limit=3)}
        print(f"   ({time.perf_counter() - started:.0f} s)\n", flush=True)
    figures = report.collected()
    if figures:
        print("== summary (value, target, floor of the same run)")
        for item in figures:
            print(f"   {item.line()}")
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"{stamp}.json").write_text(json.dumps(results, indent=2))
    print(f"results: bench/results/{stamp}.json")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
