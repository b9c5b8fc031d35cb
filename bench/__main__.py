"""``make bench``: runs the benchmarks, prints a table each, writes JSON under bench/results/.

Usage: python -m bench [NAME ...]   (default: all). Targets are reported as ratios against a
baseline measured in the same run, never asserted: the machine is noisy. A benchmark that
judges itself (the soak) reports ``"passed"``; false makes the command exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
# name -> module with `run(quick: bool) -> dict` that prints its own table.
BENCHMARKS: dict[str, str] = {}


def register(name: str, module: str) -> None:
    BENCHMARKS[name] = module


def _discover() -> None:
    for path in sorted(Path(__file__).parent.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        register(name, f"bench.{path.stem}")


def main(argv: list[str] | None = None) -> int:
    _discover()
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    RESULTS.mkdir(exist_ok=True)
    failed: list[str] = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        started = time.time()
        result: dict[str, Any] = importlib.import_module(BENCHMARKS[name]).run(quick=args.quick)
        result["_meta"] = {
            "benchmark": name,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "seconds": round(time.time() - started, 1),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "quick": args.quick,
        }
        # A smoke run never overwrites the full run's results.
        out = RESULTS / f"{name}{'_quick' if args.quick else ''}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"-> {out}")
        if result.get("passed") is False:
            failed.append(name)
    if failed:
        print(f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
