"""The report at size: `canary report --json` against a bare sqlite3 GROUP BY.

Generates a home of `--messages` analysed messages across `--companies`
companies straight through the data layer's tables (`tests/homes.py`: no
SMTP, no DNS, so a million messages take minutes), then measures, in the
same run and on the same file:

  (a) a bare `sqlite3` `SELECT alias_id, relation, count(*) … GROUP BY
      alias_id, relation` over the messages (the baseline);
  (b) `canary report --json`, end to end (the command's start included);
  (c) `canary report` (the table);
  (d) `canary show NAME` for the company with the most mail (`--busiest`
      messages, 10,000 by default).

It prints each median and (b)/(a). Targets: (b) under 1 s and under 3x (a);
(d) under 1 s.

Usage: python benchmarks/report.py [--messages 200000] [--companies 1000] [--busiest 10000]
                                  [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from homes import fill_home
from ingest import canary_command

from data.database import Store

GROUP_BY = "SELECT alias_id, relation, count(*) FROM message GROUP BY alias_id, relation"


def median_seconds(action: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--companies", type=int, default=1_000)
    parser.add_argument("--busiest", type=int, default=10_000,
                        help="messages of the company `show` reads")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    canary = [str(canary_command())]
    with tempfile.TemporaryDirectory(prefix="canary-report-") as scratch:
        home = Path(scratch) / "home"
        env = {**os.environ, "CANARY_HOME": str(home), "COLUMNS": "160"}
        env.pop("CANARY_DB", None)

        def run(*argv: str) -> bytes:
            return subprocess.run([*canary, *argv], env=env, check=True,
                                  capture_output=True).stdout

        run("init", "--domain", "canary.example.org")
        database = home / "canary.db"
        started = time.perf_counter()
        store = Store(f"sqlite:///{database}")
        try:
            fill_home(store, companies=args.companies, messages=args.messages, seed=1,
                      realistic=True, busiest=args.busiest)
        finally:
            store.dispose()
        print(f"generated {args.messages:,} messages across {args.companies:,} companies in "
              f"{time.perf_counter() - started:.0f} s ({database.stat().st_size / 2**20:.0f} MiB)")
        with sqlite3.connect(database) as connection:
            (busiest,) = connection.execute(
                "SELECT company.name FROM message JOIN alias ON alias.id = message.alias_id "
                "JOIN company ON company.id = alias.company_id GROUP BY company.id "
                "ORDER BY count(*) DESC LIMIT 1").fetchone()
            (busiest_count,) = connection.execute(
                "SELECT count(*) FROM message JOIN alias ON alias.id = message.alias_id "
                "JOIN company ON company.id = alias.company_id WHERE company.name = ?",
                (busiest,)).fetchone()

        def group_by() -> None:
            with sqlite3.connect(database) as connection:
                connection.execute(GROUP_BY).fetchall()

        run("report", "--json")  # warm the page cache and the bytecode
        group_by()
        baseline = median_seconds(group_by, args.runs)
        report_json = median_seconds(lambda: run("report", "--json"), args.runs)
        table = median_seconds(lambda: run("report"), args.runs)
        show = median_seconds(lambda: run("show", busiest), args.runs)

    print(f"{'bare sqlite3 GROUP BY':<34} {baseline:8.3f} s")
    print(f"{'canary report --json':<34} {report_json:8.3f} s   {report_json / baseline:5.2f}x "
          "the GROUP BY (target < 1 s and < 3x)")
    print(f"{'canary report (table)':<34} {table:8.3f} s")
    print(f"{f'canary show ({busiest_count:,} messages)':<34} {show:8.3f} s   (target < 1 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
