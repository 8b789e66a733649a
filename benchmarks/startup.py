"""CLI start time: `canary --help` and `canary aliases` against `python -c pass`.

Every `canary` command pays its imports before it does anything, and a person
who issues aliases one command at a time, or a script that calls `canary`
in a loop, pays them every time. This runs, in the same run and alternately
so that the machine's load falls on all three alike:

  (a) `python -c pass` with the same interpreter (the baseline);
  (b) `canary --help`;
  (c) `canary aliases --json` on a small home (20 aliases, SQLite);
  (d) `canary report --json` and `canary show` on the same home (no target:
      they read the way `aliases` does, with sqlite3 alone).

It prints the median wall time of each and the difference to the baseline.
Target: (b) and (c) under 0.25 s.

Usage: python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ingest import canary_command

TARGET_SECONDS = 0.25
TARGETED = ("canary --help", "canary aliases --json")


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    canary = [str(canary_command())]
    with tempfile.TemporaryDirectory(prefix="canary-startup-") as scratch:
        env = {**os.environ, "CANARY_HOME": str(Path(scratch) / "home")}
        timed([*canary, "init", "--domain", "canary.example.org"], env)
        for number in range(20):
            timed([*canary, "issue", f"Company {number}"], env)

        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "canary --help": [*canary, "--help"],
            "canary aliases --json": [*canary, "aliases", "--json"],
            "canary report --json": [*canary, "report", "--json"],
            "canary show": [*canary, "show", "Company 1"],
        }
        for command in cases.values():  # warm the page cache and the bytecode
            timed(command, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, command in cases.items():
                times[name].append(timed(command, env))

    baseline = statistics.median(times["python -c pass"])
    failed = False
    print(f"{'command':<24} {'median':>9} {'over baseline':>14}")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:<24} {median:>8.3f}s {median - baseline:>+13.3f}s")
        if name in TARGETED and median >= TARGET_SECONDS:
            failed = True
    print(f"target: {' and '.join(TARGETED)} under {TARGET_SECONDS:.2f} s "
          f"({'met' if not failed else 'not met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
