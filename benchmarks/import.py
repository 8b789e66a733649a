"""Import throughput: `canary import` of a large mbox against a bare parse, in one run.

It generates an mbox as a provider exports it (Google Takeout style: CRLF line
ends, label headers, the provider's Delivered-To and Received on top) of
realistic marketing mail: 20 sender organisations (15 shops, 5 list brokers)
writing to 50 catch-all addresses (`shopname@me.example`), 3-15 KB each,
multipart text and HTML. A quarter is DKIM-signed (RSA-1024) with keys that a
DNS server on loopback serves together with the senders' DMARC records; one
message in ten goes to an address that is no alias. Then, in the same run:

  (a) the baseline: iterate the mbox with `mailbox.mbox` and parse every
      message with `email.message_from_bytes` (best of two, before and after);
  (b) `canary init --catch-all me.example`, `canary adopt --from` a mapping of
      the 50 addresses, then `canary import MBOX` with the installed script in
      a subprocess: reading, matching, durable storage (SQLite, WAL) and
      analysis (DKIM against the loopback DNS, DMARC, attribution).

It prints both rates in messages read per second, their ratio (target >= 0.25)
and the import's wall time (target < 10 minutes for 100,000 messages on a
2-core machine), split into the storage phase (until the import source is
marked finished) and analysis. It exits 1 unless the database holds exactly
one analysed message row per message to an alias.

    python benchmarks/import.py [--messages 100000] [--workdir DIR] [--profile]

--workdir keeps the generated mbox and keys there and reuses them when the
message count matches (generating 100,000 messages takes a minute or two).
--profile runs the import in this process under cProfile, on a fresh home,
instead of the timed subprocess, and prints where the time goes; use it with
--messages 5000.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import email
import io
import json
import mailbox
import os
import pstats
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from ingest import SELECTOR, Signer

from smtp_listener.testing.zone_server import Zones, ZoneServer

CANARY_DOMAIN = "canary.bench.example"
CATCH_ALL = "me.example"
PROVIDER = "mx.provider.example"
SHOPS = ("megamart", "shoebox", "travelnest", "bookworm", "gadgetly", "petpal", "homeharbor",
         "fitfuel", "kidzone", "winecellar", "gardenia", "cinemax", "fashionist", "autoparts",
         "musicbox")
BROKERS = ("dealblaster", "promoflood", "leadgenie", "couponcloud", "bulkblast")
ADDRESSES = 50
SIGNED_SHARE = 0.25
OTHER_SHARE = 0.10
"""Messages to addresses that are no alias (the person's own mailbox, colleagues)."""
START = datetime(2021, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)
GMAIL_FROM_LINE = b"From 1692722839261563925@xxx Wed Aug 23 16:47:19 +0000 2023\r\n"
TARGET_RATIO = 0.25
TARGET_SECONDS = 600.0
"""For 100,000 messages; scaled for other counts."""
RUN_TIMEOUT = 3600.0

_WORDS = (
    "spring sale offer members exclusive today only free delivery new arrivals limited "
    "collection discover your favourites save up to percent on selected styles shop now "
    "book early and enjoy rewards points weekend deals newsletter update account price "
    "drop back in stock gift ideas for everyone last chance ends tonight extra off code"
).split()


class BenchmarkFailed(Exception):
    """Canary misbehaved or mail went missing; the figures mean nothing."""


# --- the senders, their keys and DNS --------------------------------------------------------


def sender_domains() -> list[str]:
    return [f"{name}.example" for name in (*SHOPS, *BROKERS)]


def load_keys(path: Path) -> dict[str, Signer]:
    """The senders' DKIM keys, kept in `path` so a reused mbox still verifies."""
    if path.exists():
        stored = json.loads(path.read_text())
        return {d: Signer(k["private"].encode(), k["public"]) for d, k in stored.items()}
    keys = {domain: Signer.generate() for domain in sender_domains()}
    path.write_text(json.dumps({d: {"private": k.private_pem.decode(), "public": k.public_b64}
                                for d, k in keys.items()}))
    return keys


def sender_zones(keys: dict[str, Signer]) -> Zones:
    """DKIM keys and DMARC records as the senders publish them (a third enforce DMARC)."""
    zones = Zones()
    for number, (domain, key) in enumerate(keys.items()):
        zones.add_txt(f"{SELECTOR}._domainkey.{domain}", "v=DKIM1; k=rsa; p=", key.public_b64)
        policy = "reject" if number % 3 == 0 else "none"
        zones.add_txt(f"_dmarc.{domain}", f"v=DMARC1; p={policy}; rua=mailto:dmarc@{domain}")
        zones.add_txt(f"mail.{domain}", "v=spf1 ip4:198.51.100.0/24 -all")
    return zones


# --- the person's addresses and their mail ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Company:
    name: str
    domain: str
    address: str
    sends: bool
    """Whether the company's own domain is among the senders."""


def companies() -> list[Company]:
    """50 companies, each given its own catch-all address; the 15 shops also send mail."""
    found = [Company(name.title(), f"{name}.example", f"{name}@{CATCH_ALL}", True)
             for name in SHOPS]
    for number in range(ADDRESSES - len(SHOPS)):
        name = f"quietshop{number:02d}"
        found.append(Company(f"Quiet Shop {number:02d}", f"{name}.example",
                             f"{name}@{CATCH_ALL}", False))
    return found


def mapping_csv(path: Path) -> None:
    lines = ["address,company,domains,issued,note"]
    lines += [f"{c.address},{c.name},{c.domain},2020-12-01," for c in companies()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


class Writer:
    """Makes the messages: each unique, reproducible from the seed."""

    def __init__(self, keys: dict[str, Signer], seed: int = 2024) -> None:
        self.rng = random.Random(seed)
        self.keys = keys
        self.companies = companies()
        self.paragraphs = [textwrap.fill(self._prose(self.rng.randint(30, 90)).capitalize()
                                         + ".", 76) for _ in range(300)]

    def _prose(self, words: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(words))

    def _html(self, sender: str, index: int, length: int) -> str:
        cells: list[str] = []
        size = 0
        while size < length:
            cell = (f'<td style="padding:12px 18px;font-family:Arial,sans-serif;font-size:14px;'
                    f'color:#333333" align="left"><a href="https://click.{sender}/t/{index:x}/'
                    f'{len(cells)}" style="color:#0a66c2">{self.rng.choice(self.paragraphs)[:60]}'
                    "</a></td>")
            cells.append(cell)
            size += len(cell)
        return ('<table width="100%" cellpadding="0" cellspacing="0"><tr>' + "".join(cells)
                + "</tr></table>")

    def message(self, index: int, count: int) -> tuple[bytes, bool]:
        """One message as the provider stored it, and whether it is to an alias."""
        rng = self.rng
        senders = sender_domains()
        if rng.random() < OTHER_SHARE:
            to, aliased = rng.choice(("me@mailbox.example", "colleague@work.example",
                                      "family@home.example")), False
            sender = rng.choice(senders)
        else:
            company = rng.choice(self.companies)
            to, aliased = company.address, True
            if company.sends and rng.random() < 0.7:
                sender = company.domain
            else:
                sender = rng.choice(senders)
        received = START + SPAN * (index / max(count, 1)) + timedelta(seconds=rng.randint(0, 600))
        sent = received - timedelta(seconds=rng.randint(20, 900))
        boundary = f"=_part_{index:x}"
        text = "\n\n".join(rng.sample(self.paragraphs, rng.randint(2, 8)))
        html = self._html(sender, index, rng.randint(1_000, 8_000))
        label = sender.split(".")[0].title()
        lines = [
            f'From: "{label}" <news@{sender}>',
            f"To: <{to}>",
            f"Subject: {label}: {self._prose(rng.randint(4, 9))} #{index}",
            f"Date: {format_datetime(sent)}",
            f"Message-ID: <{index}.{rng.getrandbits(48):012x}@mail.{sender}>",
            f"List-Unsubscribe: <https://{sender}/unsubscribe/{index:x}>, "
            f"<mailto:unsubscribe@mail.{sender}?subject={index:x}>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            f"--{boundary}",
            'Content-Type: text/plain; charset="utf-8"',
            "Content-Transfer-Encoding: 8bit",
            "",
            *text.splitlines(),
            "",
            f"--{boundary}",
            'Content-Type: text/html; charset="utf-8"',
            "Content-Transfer-Encoding: 8bit",
            "",
            f"<!DOCTYPE html><html><body><!-- {index} -->",
            html,
            "</body></html>",
            "",
            f"--{boundary}--",
            "",
        ]
        raw = "\r\n".join(lines).encode()
        if rng.random() < SIGNED_SHARE:
            raw = self.keys[sender].sign(raw, sender)
        ip = f"198.51.100.{index % 250 + 1}"
        trace = (
            f"X-GM-THRID: {1692722839261563925 + index}\r\n"
            "X-Gmail-Labels: Archived,Category Promotions,Opened\r\n"
            f"Delivered-To: {to}\r\n"
            f"Received: from mail.{sender} (mail.{sender} [{ip}])\r\n"
            f"        by {PROVIDER} with ESMTPS id {index:010X}\r\n"
            f"        for <{to}>;\r\n"
            f"        {format_datetime(received)}\r\n"
            f"Return-Path: <bounce-{index:x}@mail.{sender}>\r\n"
        )
        return trace.encode() + raw, aliased


@dataclass(frozen=True, slots=True)
class Mailbox:
    path: Path
    messages: int
    aliased: int
    size: int


def make_mbox(work: Path, count: int, keys: dict[str, Signer]) -> Mailbox:
    """Write (or reuse) the mbox of `count` messages in `work`."""
    path, meta = work / "takeout.mbox", work / "takeout.json"
    if path.exists() and meta.exists():
        known = json.loads(meta.read_text())
        if known["messages"] == count and known["size"] == path.stat().st_size:
            print(f"reusing {path}", flush=True)
            return Mailbox(path, count, known["aliased"], known["size"])
    writer = Writer(keys)
    aliased = 0
    began = time.monotonic()
    with path.open("wb", buffering=1 << 20) as out:
        for index in range(count):
            raw, to_alias = writer.message(index, count)
            aliased += to_alias
            out.write(GMAIL_FROM_LINE + raw + b"\r\n")
            if index and index % 20_000 == 0:
                print(f"  generated {index} messages", flush=True)
    size = path.stat().st_size
    meta.write_text(json.dumps({"messages": count, "aliased": aliased, "size": size}))
    print(f"generated {count} messages ({size / 2**20:.0f} MB) in "
          f"{time.monotonic() - began:.0f} s", flush=True)
    return Mailbox(path, count, aliased, size)


# --- the baseline ------------------------------------------------------------------------------


def bare_parse(path: Path) -> tuple[int, float]:
    """Messages read and seconds taken by `mailbox.mbox` + `email.message_from_bytes`."""
    began = time.perf_counter()
    box = mailbox.mbox(path, factory=None, create=False)
    count = 0
    try:
        for key in box.iterkeys():
            email.message_from_bytes(box.get_bytes(key))
            count += 1
    finally:
        box.close()
    return count, time.perf_counter() - began


# --- canary ------------------------------------------------------------------------------------


def canary_command() -> Path:
    script = Path(sys.executable).parent / "canary"
    if script.exists():
        return script
    found = shutil.which("canary")
    if found is None:
        raise BenchmarkFailed("no `canary` script next to this Python; pip install -e . first")
    return Path(found)


def clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}


def make_home(canary: Path, home: Path, work: Path) -> None:
    """`canary init --catch-all`, then `canary adopt --from` the 50 addresses."""
    mapping = work / "mapping.csv"
    mapping_csv(mapping)
    for args in (["init", "--domain", CANARY_DOMAIN, "--catch-all", CATCH_ALL],
                 ["adopt", "--from", str(mapping)]):
        done = subprocess.run([str(canary), "--home", str(home), *args], capture_output=True,
                              text=True, check=False, timeout=120, env=clean_environment())
        if done.returncode != 0:
            raise BenchmarkFailed(f"canary {args[0]} failed: {done.stderr.strip()}")


def _query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(
        sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=30)
    ) as connection:
        return list(connection.execute(sql).fetchall())


def _seconds(start: object, end: object) -> float:
    return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()


@dataclass(frozen=True, slots=True)
class ImportRun:
    wall: float
    cpu: float
    storage: float
    """From the import's start to its source being marked finished (reading and storing)."""
    document: dict[str, object]
    relations: list[tuple[object, ...]]


def run_import(canary: Path, home: Path, mbox: Mailbox, dns: str) -> ImportRun:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run([str(canary), "--home", str(home), "--dns", dns, "import",
                           str(mbox.path), "--json"], capture_output=True, text=True,
                          check=False, timeout=RUN_TIMEOUT, env=clean_environment())
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise BenchmarkFailed(f"canary import exited {done.returncode}: {done.stderr[-2000:]}")
    document = json.loads(done.stdout)
    database = home / "canary.db"
    [(started, finished)] = _query(database, "SELECT started_at, finished_at FROM importsource")
    [(rows, analysed)] = _query(database, "SELECT count(*), count(analysed_at) FROM message")
    expected = {"read": mbox.messages, "stored": mbox.aliased, "problems": 0,
                "analysed": mbox.aliased, "duplicates": 0}
    got = {k: document[k] for k in expected}
    if got != expected or (rows, analysed) != (mbox.aliased, mbox.aliased):
        raise BenchmarkFailed(f"the import reported {got} and the database holds {rows} "
                              f"messages ({analysed} analysed); expected {expected}")
    relations = _query(database, "SELECT relation, count(*) FROM message GROUP BY relation "
                                 "ORDER BY count(*) DESC")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ImportRun(wall, cpu, _seconds(started, finished), document, relations)


def profile_import(home: Path, mbox: Mailbox, dns: str, top: int = 35) -> None:
    """The import in this process under cProfile: where the time goes."""
    import typer.main

    from cli.main import app

    command = typer.main.get_command(app)
    args = ["--home", str(home), "--dns", dns, "import", str(mbox.path), "--json"]
    profiler = cProfile.Profile()
    out = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(out):
        profiler.runcall(command.main, args=args, standalone_mode=False)
    wall = time.perf_counter() - began
    document = json.loads(out.getvalue())
    print(f"profiled import: {document['read']} read, {document['stored']} stored, "
          f"{document['analysed']} analysed in {wall:.1f} s "
          f"({document['read'] / wall:.0f} msg/s under the profiler)")
    stats = pstats.Stats(profiler)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


# --- the run -----------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir(path: Path | None) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="canary-import-bench-") as scratch:
        yield Path(scratch)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000,
                        help="messages in the generated mbox")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep (and reuse) the generated mbox and keys here")
    parser.add_argument("--profile", action="store_true",
                        help="profile the import in this process instead of timing it")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be positive")

    began = time.monotonic()
    try:
        with workdir(args.workdir) as work:
            keys = load_keys(work / "keys.json")
            mbox = make_mbox(work, args.messages, keys)
            canary = canary_command()
            home = work / "home"
            shutil.rmtree(home, ignore_errors=True)
            make_home(canary, home, work)
            with ZoneServer(sender_zones(keys)) as (dns_host, dns_port):
                dns = f"{dns_host}:{dns_port}"
                if args.profile:
                    profile_import(home, mbox, dns)
                    return 0
                parsed, first = bare_parse(mbox.path)
                run = run_import(canary, home, mbox, dns)
                _, second = bare_parse(mbox.path)
            shutil.rmtree(home, ignore_errors=True)
    except BenchmarkFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1

    if parsed != mbox.messages:
        print(f"FAILED: mailbox.mbox read {parsed} messages, not {mbox.messages}",
              file=sys.stderr)
        return 1
    bare_rate = mbox.messages / min(first, second)
    canary_rate = mbox.messages / run.wall
    ratio = canary_rate / bare_rate
    target_wall = TARGET_SECONDS * mbox.messages / 100_000
    analysis = run.wall - run.storage
    print(f"mbox: {mbox.messages} messages ({mbox.aliased} to the 50 adopted addresses), "
          f"{mbox.size / 2**20:.0f} MB, {mbox.size / mbox.messages / 1024:.1f} KB on average, "
          f"{SIGNED_SHARE:.0%} DKIM-signed")
    print(f"bare mailbox.mbox + email.message_from_bytes: {bare_rate:8.0f} msg/s "
          f"({first:.1f} s before, {second:.1f} s after the import)")
    print(f"canary import (storage + analysis):           {canary_rate:8.0f} msg/s")
    print(f"ratio: {ratio:.2f} (target >= {TARGET_RATIO:.2f})"
          f"{'' if ratio >= TARGET_RATIO else '  BELOW TARGET'}")
    print(f"import wall time: {run.wall:.0f} s (target < {target_wall:.0f} s)"
          f"{'' if run.wall < target_wall else '  OVER TARGET'}; storage phase "
          f"{run.storage:.0f} s ({mbox.messages / max(run.storage, 1e-9):.0f} msg/s read, "
          f"{mbox.aliased / max(run.storage, 1e-9):.0f} msg/s stored), analysis "
          f"{analysis:.0f} s ({mbox.aliased / max(analysis, 1e-9):.0f} msg/s); "
          f"CPU {run.cpu:.0f} s ({100 * run.cpu / run.wall:.0f}% of a core)")
    print("relations: " + ", ".join(f"{relation} {count}" for relation, count in run.relations))
    print(f"every message to an alias stored and analysed once; total "
          f"{time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
