"""Ingest throughput: `canary serve` against a bare aiosmtpd `Sink`, in one run.

The same client load and the same message set go to two servers (three with
`--postgres`), each in its own subprocess on loopback:

- sink: aiosmtpd's own CLI with `aiosmtpd.handlers.Sink`, which accepts
  and drops everything. The CLI has no line-limit option and aiosmtpd's
  default of 1,001 bytes would answer a long HTML line with 500, so the
  line limit is raised exactly as `CanarySMTP` raises it before the CLI's
  `main` runs. Nothing else differs from `python -m aiosmtpd -n -c ...Sink`.
- canary: `canary serve` on a fresh home made by `canary init` and
  `canary issue`, on its event loop (uvloop where installed): SQLite WAL,
  `synchronous=FULL`, group commit, 250 only after the commit, and the
  analyst thread running as in production. Its
  SPF, DKIM and DMARC lookups go to a small DNS server on loopback
  (`cli.zone_server`) that serves the senders' records, never to the
  system resolver.
- asyncio (only with `--asyncio`): `canary serve` as above, on asyncio's own
  event loop (`CANARY_EVENT_LOOP=asyncio`) instead of uvloop, to show what
  the loop is worth.
- postgres (only with `--postgres`): `canary serve` as above, on a home made
  by `canary init --db URL` whose database is a fresh one on a throw-away
  PostgreSQL cluster, started with the tests' harness `tests/servers/postgres.py`
  (as the `postgres` user when run as root, under /tmp; `fsync` and
  `synchronous_commit` on). Every run gets its own `CREATE DATABASE`. The home
  has the SQLite template's secret, so `canary issue` gives the same aliases.
  Its CPU figures give the cluster's processes apart from Canary's.

Several threads, each with one persistent `smtplib` connection, send unique
5-20 KB marketing messages (DKIM-signed, with a long HTML line) to the
issued aliases. After a short warm-up the wall time of the measured batch is
taken. Runs alternate (sink, canary, canary, sink, ...; sink, canary, postgres,
postgres, canary, sink, ... with `--postgres`) and the best of each is kept,
because the client and the servers share a small, noisy machine. The figure
that matters is the ratio canary/sink (and pg/sqlite, pg/sink), not the
absolute rate.

After every canary run the database (SQLite or PostgreSQL) is opened
read-only and must hold exactly one `message` row per message sent, both
while the server still runs (each 250 came after a commit) and after it has
stopped on SIGTERM.
A lost message, a refused one or a non-zero exit makes this script exit 1.
Each canary run also says how far analysis had got when the last 250 went
out and how long it then took to catch up (not part of the timed figure).

    python benchmarks/ingest.py [--messages 2000] [--connections 8] [--rounds 3] [--asyncio]
                                [--postgres]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Protocol, TypeVar

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
TARGET_RATIO = 1.0
"""Issue 11: durable storage at the speed of a listener that stores nothing."""
START_TIMEOUT = 20.0
STOP_TIMEOUT = 45.0
SOCKET_TIMEOUT = 60.0
ANALYSIS_WAIT = 20.0
"""How long a canary run waits, after the measured batch, for analysis to catch up."""
TESTS = Path(__file__).resolve().parent.parent / "tests"
"""Where `servers.postgres` (the PostgreSQL harness of the tests) lives."""

T = TypeVar("T")

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


def newsletter(index: int, rcpt_to: str, sender: str, message_id: str, marker: str,
               rng: random.Random) -> bytes:
    """A multipart newsletter of 5-20 KB from `sender`, unsigned, with a long HTML line;
    `marker` goes into an HTML comment, so that no two messages are the same."""
    target = rng.randint(5_000, 20_000)
    boundary = f"=_bench_{index}"
    sent = datetime(2024, 5, 1, tzinfo=UTC) + timedelta(seconds=index)
    headers = [
        f'From: "News" <news@{sender}>',
        f"To: <{rcpt_to}>",
        f"Subject: {_prose(rng, 7).capitalize()} #{index}",
        f"Date: {format_datetime(sent)}",
        f"Message-ID: {message_id}",
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
        f"<!DOCTYPE html><html><body><!-- {marker} -->",
        html,
        "</body></html>", "",
        f"--{boundary}--", "",
    ]
    return "\r\n".join(lines).encode()


def make_mail(index: int, rcpt_to: str, company_domain: str, rng: random.Random,
              signer: Signer) -> Mail:
    """A unique, DKIM-signed multipart marketing message of 5-20 KB for `rcpt_to`."""
    sender = company_domain if index % 4 else THIRD_PARTY
    data = newsletter(index, rcpt_to, sender, f"<bench.{index}@mail.{sender}>",
                      f"message {index}", rng)
    return Mail(f"bounce-{index}@mail.{sender}", rcpt_to, signer.sign(data, sender))


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
    database_cpu: float | None = None
    """The PostgreSQL cluster's processes, when the server uses one."""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def _cpu_delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def drive(port: int, server_pid: int, load: Load, database_pid: int | None = None) -> Timing:
    """Send the warm-up on every connection, then time the measured batches.

    `database_pid` is a PostgreSQL postmaster whose CPU time (with its children's) is
    taken over the same interval."""
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
    database_before = None if database_pid is None else _cpu_seconds(database_pid)
    client_before = time.process_time()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    client_cpu = time.process_time() - client_before
    cpu_after = _cpu_seconds(server_pid)
    database_after = None if database_pid is None else _cpu_seconds(database_pid)
    if errors:
        raise BenchmarkFailed(f"the client failed: {errors[0]!r}")
    return Timing(sum(len(b) for b in load.batches), seconds,
                  _cpu_delta(cpu_before, cpu_after), client_cpu,
                  _cpu_delta(database_before, database_after))


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
           expect_status: int, env: dict[str, str] | None = None,
           ) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server, yield it once it answers, then stop it with `stop` and wait."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env=env)
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


def make_home(canary: Path, home: Path, db: str | None = None) -> list[tuple[str, str]]:
    """`canary init` (on database URL `db` if given, else SQLite in the home) and
    `canary issue`; return (alias address, company domain) pairs."""
    def run(*args: str) -> str:
        done = subprocess.run([str(canary), *args, "--home", str(home)], capture_output=True,
                              text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise BenchmarkFailed(f"canary {args[0]} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    run("init", "--domain", CANARY_DOMAIN, *(["--db", db] if db is not None else []))
    return [(run("issue", name, "--domain", domain), domain) for name, domain in COMPANIES]


Count = Callable[[str], int]
"""Runs one `SELECT count(*) ...` on a run's database, read-only, and returns the count."""


def sqlite_count(database: Path) -> Count:
    def count(sql: str) -> int:
        with contextlib.closing(
            sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=30)
        ) as connection:
            return int(connection.execute(sql).fetchone()[0])

    return count


def postgres_count(conninfo: str) -> Count:
    def count(sql: str) -> int:
        import psycopg  # an optional dependency (.[postgres]), needed with --postgres only

        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10,
                                 options="-c default_transaction_read_only=on") as connection:
                row = connection.execute(sql).fetchone()
        except psycopg.Error as error:
            raise BenchmarkFailed(f"counting on PostgreSQL failed: {error}") from None
        if row is None:
            raise BenchmarkFailed(f"no row from {sql!r}")
        return int(row[0])

    return count


def count_messages(count: Count) -> int:
    return count("SELECT count(*) FROM message")


def count_analysed(count: Count) -> int:
    return count("SELECT count(*) FROM message WHERE analysed_at IS NOT NULL")


def analysis_catch_up(count: Count, expected: int) -> str:
    """How long after the last 250 analysis had looked at every message, up to a limit."""
    began = time.monotonic()
    analysed = count_analysed(count)
    note = f", analysed {analysed}/{expected} at the end"
    while analysed < expected and time.monotonic() - began < ANALYSIS_WAIT:
        time.sleep(0.1)
        analysed = count_analysed(count)
    waited = time.monotonic() - began
    if analysed < expected:
        return f"{note}, {analysed} {waited:.0f} s later"
    return f"{note}, all {waited:.1f} s later"


# --- PostgreSQL ---------------------------------------------------------------------------

class Cluster(Protocol):
    """What this script uses of the harness's `PostgresCluster`."""

    port: int
    bindir: Path | None

    def create_database(self, name: str) -> str: ...

    def drop_database(self, name: str) -> None: ...

    def conninfo(self, name: str = "postgres") -> str: ...

    def postmaster_pid(self) -> int | None: ...


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Cluster]:
    """A throw-away cluster from the tests' harness; stopped and removed on exit, whatever
    happened meanwhile."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    # Imported by name, so mypy does not go looking for tests/ (not on its path).
    try:
        harness = importlib.import_module("servers.postgres")
    except ImportError as error:  # the harness needs pytest, a test dependency
        raise BenchmarkFailed(f"cannot load tests/servers/postgres.py: {error}") from None
    if harness.postgres_bindir() is None:
        raise BenchmarkFailed("PostgreSQL is not installed (apt-get install postgresql); "
                              "or leave out --postgres")
    try:
        importlib.import_module("psycopg")
    except ImportError:
        raise BenchmarkFailed("psycopg is not installed (pip install -e '.[postgres]'); "
                              "or leave out --postgres") from None
    # Under root the harness runs the server as `postgres`, which must traverse the
    # directory: mkdtemp's is 0700, hence the chmod (the fixture does the same).
    tmp = Path(tempfile.mkdtemp(prefix="canary-bench-pg-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        tmp.chmod(0o755)
        try:
            cluster = stack.enter_context(harness.running_postgres(tmp))
        except RuntimeError as error:
            raise BenchmarkFailed(f"PostgreSQL did not start: {error}") from None
        yield cluster


def _on_postgres(what: str, action: Callable[[], T]) -> T:
    import psycopg

    try:
        return action()
    except (psycopg.Error, RuntimeError) as error:
        raise BenchmarkFailed(f"{what} failed: {error}") from None


# --- the runs -----------------------------------------------------------------------------

@dataclass
class Bench:
    load: Load
    template: Path
    work: Path
    canary: Path
    dns: str
    aliases: list[tuple[str, str]] = field(default_factory=list)
    postgres: Cluster | None = None
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


def _serve_checked(bench: Bench, home: Path, log: Path, count: Count,
                   db: str | None = None, database_pid: int | None = None,
                   env: dict[str, str] | None = None) -> Outcome:
    """`canary serve` on `home`; the load, then exactly one stored row per accepted message,
    while serving and after SIGTERM."""
    port = free_port()
    argv = [str(bench.canary), "serve", "--home", str(home), "--port", str(port),
            "--dns", bench.dns, *(["--db", db] if db is not None else [])]
    expected = bench.load.total
    with server(argv, port, log, signal.SIGTERM, 0, env) as process:
        timing = drive(port, process.pid, bench.load, database_pid)
        while_serving = count_messages(count)
        analysis = analysis_catch_up(count, expected)
    after_stop = count_messages(count)
    if (while_serving, after_stop) != (expected, expected):
        raise BenchmarkFailed(
            f"message table holds {while_serving} rows while serving and {after_stop} after "
            f"stopping; {expected} were accepted")
    return Outcome(timing, analysis)


def run_canary(bench: Bench, kind: str = "canary", env: dict[str, str] | None = None
               ) -> Outcome:
    log = bench.log(kind)
    home = bench.work / f"home-{bench.runs}"
    shutil.copytree(bench.template, home)
    outcome = _serve_checked(bench, home, log, sqlite_count(home / "canary.db"), env=env)
    shutil.rmtree(home)
    return outcome


def run_asyncio(bench: Bench) -> Outcome:
    """`canary serve` as above, on asyncio's own event loop instead of uvloop."""
    return run_canary(bench, "asyncio", {**os.environ, "CANARY_EVENT_LOOP": "asyncio"})


def run_postgres(bench: Bench) -> Outcome:
    """`canary serve` on a home whose database is a new one on the cluster; the home has the
    template's secret, so the same aliases."""
    cluster = bench.postgres
    if cluster is None:
        raise BenchmarkFailed("no PostgreSQL cluster")
    log = bench.log("postgres")
    home = bench.work / f"home-{bench.runs}"
    name = f"bench_{bench.runs}"
    url = _on_postgres(f"CREATE DATABASE {name}", lambda: cluster.create_database(name))
    home.mkdir(mode=0o700)
    shutil.copy2(bench.template / "secret", home / "secret")
    aliases = make_home(bench.canary, home, db=url)
    if aliases != bench.aliases:
        raise BenchmarkFailed(f"the PostgreSQL home issued {aliases}, not the SQLite "
                              f"template's {bench.aliases}")
    outcome = _serve_checked(bench, home, log, postgres_count(cluster.conninfo(name)), db=url,
                             database_pid=cluster.postmaster_pid())
    _on_postgres(f"DROP DATABASE {name}", lambda: cluster.drop_database(name))
    shutil.rmtree(home)
    return outcome


RUNS: dict[str, Callable[[Bench], Outcome]] = {
    "sink": run_sink, "canary": run_canary, "asyncio": run_asyncio, "postgres": run_postgres}


def _report(kind: str, round_no: int, outcome: Outcome, width: int = 6) -> None:
    timing = outcome.timing
    per_message = 1000 / timing.messages
    database = ("" if timing.database_cpu is None else
                f" + postgres {per_message * timing.database_cpu:.2f}"
                f" ({100 * timing.database_cpu / timing.seconds:.0f}%)")
    cpu = ("" if timing.server_cpu is None else
           f"  cpu ms/msg: server {per_message * timing.server_cpu:.2f}"
           f" ({100 * timing.server_cpu / timing.seconds:.0f}% of a core){database},")
    print(f"  round {round_no} {kind:<{width}} {timing.messages} msgs in {timing.seconds:6.2f} s"
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
    parser.add_argument("--asyncio", action="store_true",
                        help="also run canary on asyncio's own event loop (it runs on uvloop "
                        "where installed), to compare the two")
    parser.add_argument("--postgres", action="store_true",
                        help="also run canary on a throw-away PostgreSQL cluster, each run on "
                        "a fresh database (needs Debian's postgresql and psycopg)")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.connections < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--messages, --connections and --rounds must be positive")

    began = time.monotonic()
    best: dict[str, Outcome] = {}
    slowest_round = 0.0
    signer = Signer.generate()
    try:
        with (tempfile.TemporaryDirectory(prefix="canary-bench-") as scratch,
              ZoneServer(sender_zones(signer)) as (dns_host, dns_port),
              contextlib.ExitStack() as stack):
            # The cluster is stopped and removed when `stack` closes, also on failure.
            cluster = stack.enter_context(postgres_cluster()) if args.postgres else None
            work = Path(scratch)
            canary = canary_command()
            template = work / "template"
            aliases = make_home(canary, template)
            load = Load.make(args.warmup, args.messages, args.connections, aliases, signer)
            bench = Bench(load, template, work, canary, f"{dns_host}:{dns_port}", aliases,
                          cluster)
            on_postgres = ("" if cluster is None else
                           f"; PostgreSQL {cluster.bindir.parent.name if cluster.bindir else '?'}"
                           f" on port {cluster.port}")
            print(f"{args.messages} messages (+{args.warmup} warm-up) per run over "
                  f"{args.connections} connections to {len(aliases)} aliases; "
                  f"set up in {time.monotonic() - began:.0f} s{on_postgres}", flush=True)
            kinds = ("sink", "canary", *(["asyncio"] if args.asyncio else []),
                     *(["postgres"] if args.postgres else []))
            width = max(len(kind) for kind in kinds)
            for round_no in range(1, args.rounds + 1):
                elapsed = time.monotonic() - began
                if round_no > 1 and elapsed + slowest_round > args.budget:
                    print(f"  (stopping after {round_no - 1} round(s): --budget "
                          f"{args.budget:.0f} s)")
                    break
                round_began = time.monotonic()
                # Alternate the order, so no server always runs on a warmer machine.
                for kind in kinds if round_no % 2 else kinds[::-1]:
                    outcome = RUNS[kind](bench)
                    _report(kind, round_no, outcome, width)
                    if kind not in best or outcome.timing.rate > best[kind].timing.rate:
                        best[kind] = outcome
                slowest_round = max(slowest_round, time.monotonic() - round_began)
    except BenchmarkFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1

    sink, canary_rate = best["sink"].timing.rate, best["canary"].timing.rate
    ratio = canary_rate / sink
    verdict = "" if ratio >= TARGET_RATIO else "  BELOW TARGET"
    pg_rate = best["postgres"].timing.rate if "postgres" in best else None
    postgres = "" if pg_rate is None else f"postgres: {pg_rate:.0f} msg/s  "
    print(f"sink: {sink:.0f} msg/s  canary: {canary_rate:.0f} msg/s  {postgres}"
          f"ratio: {ratio:.2f} (target >= {TARGET_RATIO:.2f}){verdict}")
    if "asyncio" in best:
        print(f"uvloop/asyncio: {canary_rate / best['asyncio'].timing.rate:.2f}  "
              f"asyncio/sink: {best['asyncio'].timing.rate / sink:.2f}  (best of rounds)")
    if pg_rate is not None:
        print(f"pg/sqlite: {pg_rate / canary_rate:.2f}  pg/sink: {pg_rate / sink:.2f}  "
              "(best of rounds; no target)")
    both = " (SQLite and PostgreSQL)" if pg_rate is not None else ""
    print(f"every canary run{both} stored all {args.warmup + args.messages} messages "
          f"(checked while serving and after SIGTERM); total {time.monotonic() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
