"""Ingest throughput: `canary serve` against a bare aiosmtpd `Sink`, in one run.

The same client load and the same message set go to two servers, each in
its own subprocess on loopback:

- sink: aiosmtpd's own CLI with `aiosmtpd.handlers.Sink`, which accepts
  and drops everything. The CLI has no line-limit option and aiosmtpd's
  default of 1,001 bytes would answer a long HTML line with 500, so the
  line limit is raised exactly as `CanarySMTP` raises it before the CLI's
  `main` runs. Nothing else differs from `python -m aiosmtpd -n -c ...Sink`.
- canary: `canary serve` on a fresh home made by `canary init` and
  `canary issue`: SQLite WAL, `synchronous=FULL`, group commit, 250 only
  after the commit, and the analyst thread running as in production. Its
  SPF, DKIM and DMARC lookups go to a small DNS server on loopback
  (`cli.zone_server`) that serves the senders' records, never to the
  system resolver.

Several threads, each with one persistent `smtplib` connection, send unique
5-20 KB marketing messages (DKIM-signed, with a long HTML line) to the
issued aliases. After a short warm-up the wall time of the measured batch is
taken. Runs alternate (sink, canary, canary, sink, ...) and the best of each
is kept, because the client and both servers share a small, noisy machine.
The figure that matters is the ratio canary/sink, not the absolute rate.

After every canary run the database is opened read-only and must hold
exactly one `message` row per message sent, both while the server still
runs (each 250 came after a commit) and after it has stopped on SIGTERM.
A lost message, a refused one or a non-zero exit makes this script exit 1.
Each canary run also says how far analysis had got when the last 250 went
out and how long it then took to catch up (not part of the timed figure).

    python benchmarks/ingest.py [--messages 2000] [--connections 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import random
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from smtp_listener.testing.zone_server import Zones, ZoneServer

HOST = "127.0.0.1"
CANARY_DOMAIN = "bench.example"
COMPANIES = (
    ("Fretwork Guitars", "fretwork.example"),
    ("Harbour Bank", "harbourbank.example"),
    ("Nimbus Travel", "nimbustravel.example"),
    ("Pebble Shoes", "pebbleshoes.example"),
)
THIRD_PARTY = "bulkblast.example"
"""A bulk mailer every fourth message comes from, as mail to a sold address does."""
SELECTOR = "bench"
KEY_BITS = 1024
"""RSA key of the DKIM signatures. dkimpy signs in pure Python: 2048 bits take
about 7 ms a message here, 1024 bits 1.5 ms; verifying costs about the same."""
SIGNED_HEADERS = [b"From", b"To", b"Subject", b"Date", b"Message-ID", b"List-Unsubscribe"]
MAX_SIZE = 25 * 1024 * 1024
"""`canary serve`'s default --max-size; the sink is given the same."""
TARGET_RATIO = 0.70
START_TIMEOUT = 20.0
STOP_TIMEOUT = 45.0
SOCKET_TIMEOUT = 60.0
ANALYSIS_WAIT = 20.0
"""How long a canary run waits, after the measured batch, for analysis to catch up."""

SINK_MAIN = (
    "import aiosmtpd.smtp, aiosmtpd.main, sys\n"
    f"aiosmtpd.smtp.SMTP.line_length_limit = {2 * MAX_SIZE}\n"
    "aiosmtpd.main.main(sys.argv[1:])\n"
)


class BenchmarkFailed(Exception):
    """A server misbehaved or mail went missing; the figures mean nothing."""


# --- the mail and the senders' DNS ----------------------------------------------------------

_WORDS = (
    "spring sale offer members exclusive today only free delivery new arrivals limited "
    "collection discover your favourites save up to percent on selected styles shop now "
    "book early and enjoy rewards points weekend deals newsletter update account"
).split()


@dataclass(frozen=True, slots=True)
class Mail:
    mail_from: str
    rcpt_to: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Signer:
    private_pem: bytes
    public_b64: str

    @classmethod
    def generate(cls) -> Signer:
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(private, base64.b64encode(public).decode())

    def sign(self, message: bytes, domain: str) -> bytes:
        return bytes(dkim.sign(message, SELECTOR.encode(), domain.encode(), self.private_pem,
                               include_headers=SIGNED_HEADERS)) + message


def sender_zones(signer: Signer) -> Zones:
    """SPF for the bounce domains, the DKIM key and DMARC of every sender, as ESPs publish."""
    zones = Zones()
    for domain in [d for _, d in COMPANIES] + [THIRD_PARTY]:
        zones.add_txt(f"mail.{domain}", f"v=spf1 ip4:{HOST} -all")
        zones.add_txt(f"{SELECTOR}._domainkey.{domain}", "v=DKIM1; k=rsa; p=",
                      signer.public_b64)
        zones.add_txt(f"_dmarc.{domain}", f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}")
    return zones


def _prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _html_line(rng: random.Random, length: int) -> str:
    """One long line of inline-styled table HTML, as bulk mailers send it."""
    cells = []
    size = 0
    while size < length:
        cell = (
            f'<td style="padding:12px 18px;font-family:Arial,Helvetica,sans-serif;'
            f'font-size:14px;color:#333333;line-height:20px" align="left">'
            f'<a href="https://click.{THIRD_PARTY}/t/{rng.getrandbits(64):016x}" '
            f'style="color:#0a66c2;text-decoration:none">{_prose(rng, 6)}</a></td>'
        )
        cells.append(cell)
        size += len(cell)
    return '<table width="100%" cellpadding="0" cellspacing="0"><tr>' + "".join(cells) + (
        "</tr></table>"
    )


def make_mail(index: int, rcpt_to: str, company_domain: str, rng: random.Random,
              signer: Signer) -> Mail:
    """A unique, DKIM-signed multipart marketing message of 5-20 KB for `rcpt_to`."""
    target = rng.randint(5_000, 20_000)
    sender = company_domain if index % 4 else THIRD_PARTY
    mail_from = f"bounce-{index}@mail.{sender}"
    boundary = f"=_bench_{index}"
    sent = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(seconds=index)
    headers = [
        f'From: "News" <news@{sender}>',
        f"To: <{rcpt_to}>",
        f"Subject: {_prose(rng, 7).capitalize()} #{index}",
        f"Date: {format_datetime(sent)}",
        f"Message-ID: <bench.{index}@mail.{sender}>",
        f"List-Unsubscribe: <https://{sender}/unsubscribe/{index}>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
    ]
    text = textwrap.fill(_prose(rng, max(40, target // 40)), 76)
    html = _html_line(rng, max(1_500, target - len(text) - 1_400))
    lines = [
        *headers, "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit", "",
        *text.splitlines(), "",
        f"--{boundary}",
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit", "",
        f"<!DOCTYPE html><html><body><!-- message {index} -->",
        html,
        "</body></html>", "",
        f"--{boundary}--", "",
    ]
    return Mail(mail_from, rcpt_to, signer.sign("\r\n".join(lines).encode(), sender))


@dataclass(frozen=True, slots=True)
class Load:
    """What every run sends: a warm-up and a measured batch for each connection."""

    warmups: list[list[Mail]]
    batches: list[list[Mail]]

    @property
    def total(self) -> int:
        return sum(len(b) for b in self.warmups) + sum(len(b) for b in self.batches)

    @classmethod
    def make(cls, warmup: int, measured: int, connections: int,
             aliases: Sequence[tuple[str, str]], signer: Signer) -> Load:
        """Unique messages dealt round-robin to the connections, to the aliases in turn."""
        rng = random.Random(2024)

        def deal(start: int, count: int) -> list[list[Mail]]:
            batches: list[list[Mail]] = [[] for _ in range(connections)]
            for index in range(start, start + count):
                address, company_domain = aliases[index % len(aliases)]
                batches[index % connections].append(
                    make_mail(index, address, company_domain, rng, signer))
            return batches

        return cls(deal(0, warmup), deal(warmup, measured))


# --- the client ---------------------------------------------------------------------------

def _send_all(client: smtplib.SMTP, mails: Sequence[Mail]) -> None:
    for mail in mails:
        refused = client.sendmail(mail.mail_from, [mail.rcpt_to], mail.data)
        if refused:
            raise BenchmarkFailed(f"recipient refused: {refused}")


def _sender(port: int, warmup: Sequence[Mail], batch: Sequence[Mail],
            ready: threading.Barrier, errors: list[BaseException]) -> None:
    try:
        with smtplib.SMTP(HOST, port, local_hostname="client.bench.example",
                          timeout=SOCKET_TIMEOUT) as client:
            client.ehlo()
            _send_all(client, warmup)
            ready.wait()
            _send_all(client, batch)
    except threading.BrokenBarrierError:
        pass  # another sender failed first; its error is the one reported
    except (smtplib.SMTPException, OSError, BenchmarkFailed) as error:
        errors.append(error)
        ready.abort()


def _children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(c) for c in (task / "children").read_text().split()]
    return children


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process and its children (canary's store process),
    where /proc tells it."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(child) or 0.0 for child in _children(pid))


@dataclass(frozen=True, slots=True)
class Timing:
    messages: int
    seconds: float
    server_cpu: float | None
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def drive(port: int, server_pid: int, load: Load) -> Timing:
    """Send the warm-up on every connection, then time the measured batches."""
    errors: list[BaseException] = []
    ready = threading.Barrier(len(load.batches) + 1, timeout=SOCKET_TIMEOUT)
    threads = [
        threading.Thread(target=_sender, args=(port, warmup, batch, ready, errors),
                         name=f"sender-{n}")
        for n, (warmup, batch) in enumerate(zip(load.warmups, load.batches, strict=True))
    ]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        ready.wait()
    started = time.perf_counter()
    cpu_before = _cpu_seconds(server_pid)
    client_before = time.process_time()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    cpu_after = _cpu_seconds(server_pid)
    if errors:
        raise BenchmarkFailed(f"the client failed: {errors[0]!r}")
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Timing(sum(len(b) for b in load.batches), seconds, cpu, client_cpu)


# --- the servers --------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchmarkFailed(f"server exited with {process.returncode}:\n{_tail(log)}")
        try:
            with smtplib.SMTP(HOST, port, timeout=2) as client:
                client.noop()
            return
        except (OSError, smtplib.SMTPException):
            time.sleep(0.1)
    raise BenchmarkFailed(f"server not ready on port {port} after {START_TIMEOUT:.0f} s")


@contextlib.contextmanager
def server(argv: Sequence[str], port: int, log: Path, stop: signal.Signals,
           expect_status: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server, yield it once it answers, then stop it with `stop` and wait."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    clean = False
    try:
        _wait_ready(process, port, log)
        try:
            yield process
        except BenchmarkFailed as error:
            raise BenchmarkFailed(f"{error}\nserver log:\n{_tail(log)}") from None
        clean = True
    finally:
        if process.poll() is None:
            process.send_signal(stop)
        try:
            status = process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            if clean:
                raise BenchmarkFailed(
                    f"{argv[0]} did not stop within {STOP_TIMEOUT:.0f} s") from None
        else:
            if clean and status != expect_status:
                raise BenchmarkFailed(
                    f"server exited with {status}, not {expect_status}:\n{_tail(log)}")


def canary_command() -> Path:
    script = Path(sys.executable).parent / "canary"
    if script.exists():
        return script
    found = shutil.which("canary")
    if found is None:
        raise BenchmarkFailed("no `canary` script next to this Python; pip install -e . first")
    return Path(found)


def make_home(canary: Path, home: Path) -> list[tuple[str, str]]:
    """`canary init` and `canary issue`; return (alias address, company domain) pairs."""
    def run(*args: str) -> str:
        done = subprocess.run([str(canary), *args, "--home", str(home)], capture_output=True,
                              text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise BenchmarkFailed(f"canary {args[0]} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    run("init", "--domain", CANARY_DOMAIN)
    return [(run("issue", name, "--domain", domain), domain) for name, domain in COMPANIES]


def _query_count(database: Path, sql: str) -> int:
    """One count from the database, read through a read-only connection."""
    with contextlib.closing(
        sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=30)
    ) as connection:
        return int(connection.execute(sql).fetchone()[0])


def count_messages(database: Path) -> int:
    return _query_count(database, "SELECT count(*) FROM message")


def count_analysed(database: Path) -> int:
    return _query_count(database, "SELECT count(*) FROM message WHERE analysed_at IS NOT NULL")


def analysis_catch_up(database: Path, expected: int) -> str:
    """How long after the last 250 analysis had looked at every message, up to a limit."""
    began = time.monotonic()
    analysed = count_analysed(database)
    note = f", analysed {analysed}/{expected} at the end"
    while analysed < expected and time.monotonic() - began < ANALYSIS_WAIT:
        time.sleep(0.1)
        analysed = count_analysed(database)
    waited = time.monotonic() - began
    if analysed < expected:
        return f"{note}, {analysed} {waited:.0f} s later"
    return f"{note}, all {waited:.1f} s later"


# --- the runs -----------------------------------------------------------------------------

@dataclass
class Bench:
    load: Load
    template: Path
    work: Path
    canary: Path
    dns: str
    runs: int = 0

    def log(self, kind: str) -> Path:
        self.runs += 1
        return self.work / f"{kind}-{self.runs}.log"


@dataclass(frozen=True, slots=True)
class Outcome:
    timing: Timing
    note: str = ""


def run_sink(bench: Bench) -> Outcome:
    port = free_port()
    argv = [sys.executable, "-c", SINK_MAIN, "-n", "-l", f"{HOST}:{port}",
            "-c", "aiosmtpd.handlers.Sink", "-u", "-s", str(MAX_SIZE)]
    # The aiosmtpd CLI handles SIGINT only, and exits 0 on it.
    with server(argv, port, bench.log("sink"), signal.SIGINT, 0) as process:
        return Outcome(drive(port, process.pid, bench.load))


def run_canary(bench: Bench) -> Outcome:
    log = bench.log("canary")
    home = bench.work / f"home-{bench.runs}"
    shutil.copytree(bench.template, home)
    database = home / "canary.db"
    port = free_port()
    argv = [str(bench.canary), "serve", "--home", str(home), "--port", str(port),
            "--dns", bench.dns]
    expected = bench.load.total
    with server(argv, port, log, signal.SIGTERM, 0) as process:
        timing = drive(port, process.pid, bench.load)
        while_serving = count_messages(database)
        analysis = analysis_catch_up(database, expected)
    after_stop = count_messages(database)
    if (while_serving, after_stop) != (expected, expected):
        raise BenchmarkFailed(
            f"message table holds {while_serving} rows while serving and {after_stop} after "
            f"stopping; {expected} were accepted")
    shutil.rmtree(home)
    return Outcome(timing, analysis)


def _report(kind: str, round_no: int, outcome: Outcome) -> None:
    timing = outcome.timing
    per_message = 1000 / timing.messages
    cpu = ("" if timing.server_cpu is None else
           f"  cpu ms/msg: server {per_message * timing.server_cpu:.2f}"
           f" ({100 * timing.server_cpu / timing.seconds:.0f}% of a core),")
    print(f"  round {round_no} {kind:<6} {timing.messages} msgs in {timing.seconds:6.2f} s"
          f" = {timing.rate:7.1f} msg/s{cpu} client {per_message * timing.client_cpu:.2f}"
          f"{outcome.note}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000,
                        help="measured messages per run, over all connections")
    parser.add_argument("--connections", type=int, default=8,
                        help="concurrent SMTP connections, one thread each")
    parser.add_argument("--warmup", type=int, default=80,
                        help="messages sent before timing starts, per run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs of each server, in alternating order; the best is reported")
    parser.add_argument("--budget", type=float, default=100.0,
                        help="seconds after which no further round is started")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.connections < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--messages, --connections and --rounds must be positive")

    began = time.monotonic()
    best: dict[str, Outcome] = {}
    slowest_round = 0.0
    signer = Signer.generate()
    try:
        with (tempfile.TemporaryDirectory(prefix="canary-bench-") as scratch,
              ZoneServer(sender_zones(signer)) as (dns_host, dns_port)):
            work = Path(scratch)
            canary = canary_command()
            template = work / "template"
            aliases = make_home(canary, template)
            load = Load.make(args.warmup, args.messages, args.connections, aliases, signer)
            bench = Bench(load, template, work, canary, f"{dns_host}:{dns_port}")
            print(f"{args.messages} messages (+{args.warmup} warm-up) per run over "
                  f"{args.connections} connections to {len(aliases)} aliases; "
                  f"set up in {time.monotonic() - began:.0f} s", flush=True)
            for round_no in range(1, args.rounds + 1):
                elapsed = time.monotonic() - began
                if round_no > 1 and elapsed + slowest_round > args.budget:
                    print(f"  (stopping after {round_no - 1} round(s): --budget "
                          f"{args.budget:.0f} s)")
                    break
                round_began = time.monotonic()
                # Alternate the order, so neither server always runs on a warmer machine.
                kinds = ("sink", "canary") if round_no % 2 else ("canary", "sink")
                for kind in kinds:
                    outcome = run_sink(bench) if kind == "sink" else run_canary(bench)
                    _report(kind, round_no, outcome)
                    if kind not in best or outcome.timing.rate > best[kind].timing.rate:
                        best[kind] = outcome
                slowest_round = max(slowest_round, time.monotonic() - round_began)
    except BenchmarkFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1

    sink, canary_rate = best["sink"].timing.rate, best["canary"].timing.rate
    ratio = canary_rate / sink
    verdict = "" if ratio >= TARGET_RATIO else "  BELOW TARGET"
    print(f"sink: {sink:.0f} msg/s  canary: {canary_rate:.0f} msg/s  "
          f"ratio: {ratio:.2f} (target >= {TARGET_RATIO:.2f}){verdict}")
    print(f"every canary run stored all {args.warmup + args.messages} messages "
          f"(checked while serving and after SIGTERM); total {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
