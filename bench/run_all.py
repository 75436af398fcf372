"""Run every benchmark, one after another, and say which failed.

    python bench/run_all.py [--only NAME ...] [--skip NAME ...] [--timeout-s 1800]

Runs each ``bench/<name>.py`` (not this file, not the ``_*.py`` helpers, not the shared
``benchdoc.py`` module) with this interpreter from the repository root, in name order. Each
writes its own section of ``docs/benchmarks.md``. Exit status 1 if any benchmark failed (non-zero
exit or past its timeout), with the list of failures at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
#: modules in bench/ that are imported by benchmarks, not benchmarks themselves
NOT_BENCHMARKS = {"run_all", "benchdoc"}


def benchmarks() -> list[Path]:
    return sorted(
        p for p in BENCH.glob("*.py") if not p.name.startswith("_") and p.stem not in NOT_BENCHMARKS
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=[], help="run just these (names, no .py)")
    parser.add_argument("--skip", nargs="*", default=[], help="do not run these")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="per benchmark")
    args = parser.parse_args()
    chosen = [
        p
        for p in benchmarks()
        if (not args.only or p.stem in args.only) and p.stem not in args.skip
    ]
    unknown = set(args.only) - {p.stem for p in benchmarks()}
    if unknown:
        names = ", ".join(p.stem for p in benchmarks())
        print(
            f"run_all: no benchmark named {', '.join(sorted(unknown))}; there are: {names}",
            file=sys.stderr,
        )
        return 2
    outcomes: list[tuple[str, str, float]] = []
    for path in chosen:
        print(f"\n=== {path.stem} ({path.relative_to(ROOT)}) ===", flush=True)
        start = time.monotonic()
        try:
            status = subprocess.run(
                [sys.executable, str(path)], cwd=ROOT, timeout=args.timeout_s, check=False
            ).returncode
            outcome = "ok" if status == 0 else f"failed (exit {status})"
        except subprocess.TimeoutExpired:
            outcome = f"failed (killed after {args.timeout_s:.0f} s)"
        outcomes.append((path.stem, outcome, time.monotonic() - start))
    print("\n=== summary ===")
    for name, outcome, seconds in outcomes:
        print(f"{name:24} {outcome:32} {seconds:7.1f} s")
    failed = [name for name, outcome, _ in outcomes if outcome != "ok"]
    if failed:
        print(f"failed: {', '.join(failed)}")
        return 1
    print(f"all {len(outcomes)} benchmarks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
