"""Delivery throughput and latency: does delivery keep up with `canary serve`'s ingest?

`canary serve` answers 250 once a message is committed to SQLite; its worker
process then analyses the message and delivers it to the destinations of
canary.toml's `[delivery]` section, off the reply path. This measures, in one
run, two configurations, each on a fresh home made by `canary init --deliver`
and `canary issue`, with `canary serve` in its own subprocess:

- maildir: `maildir:/ABS/PATH`, a Maildir in the run's scratch directory
  (Canary writes tmp/, fsyncs, renames into new/ and fsyncs new/);
- lmtp: `lmtp:127.0.0.1:PORT?recipient=alice`, a private Dovecot started by
  the test harness `tests/servers/dovecot.py` (as `nobody` when run as root,
  under /tmp). That harness configures `mail_fsync = never`, so Dovecot's own
  writes are cheaper than a production Dovecot's.

The mail is the company's own: every message comes from the company's domain
with an aligned DKIM signature, SPF and DMARC answered by a DNS server on
loopback (`ZoneServer`), to an alias issued with `--domain` of that company.
So Canary classifies it `first_party` and delivers it untagged: its bytes after
Canary's `X-Canary-*` labels are the bytes sent. Every message carries a unique
token in its Message-ID, which is how it is found in the mailbox.

Several threads, each with one persistent `smtplib` connection, first send a
short warm-up; once that is in the mailbox they send the measured batch, and
each thread notes the moment `sendmail` returned (the client had its 250) for
every message. A thread polls the mailbox's `new/` (Canary's Maildir, or
Dovecot's) every few milliseconds and notes when each token first appears.
From these two streams of events, for the measured batch:

- ingest rate: messages acknowledged per second, from the first 250 to the last;
- delivery rate: messages that arrived in the mailbox per second, from the
  first arrival to the last;
- their ratio, delivery/ingest. Both are measured over their own stream, so a
  delivery that keeps up (constant latency) gives 1.0, one that falls behind
  (growing backlog) less. Target >= 1.0, within measurement noise; the backlog
  when the last 250 went out and the time it took to drain say the same thing
  in absolute terms;
- latency from each 250 to the message being in the mailbox: median, 99th
  percentile and maximum (conservative by up to one poll interval). Target:
  median under 2 s when DNS answers.

By default the client sends as fast as the server answers, which measures
ingest at saturation: if delivery is slower, the backlog, and with it the
latency, grows for as long as the batch lasts. `--rate` paces the measured
batch instead, to see the latency at a load delivery can sustain. From
canary.db (the server's clock) it also prints how fast analysis went and how
the latency splits into received->analysed and analysed->delivery attempt,
which says which stage of the worker is behind.

Afterwards, with the server stopped, every file in the mailbox's new/ and cur/
is read again: each acknowledged message must be there exactly once, with the
bytes that were sent after Canary's labels (Dovecot stores LF line ends), and
the delivery queue must show every job delivered. A lost, duplicated, altered
or unexpected message, a refused one, a failed delivery or a non-zero exit of
`canary serve` makes this script exit 1.

    python benchmarks/delivery.py [--messages 1000] [--connections 4] [--rate MSG_PER_S]
                                  [--destination maildir|lmtp]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import re
import secrets
import signal
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ingest import (
    COMPANIES,
    HOST,
    SOCKET_TIMEOUT,
    BenchmarkFailed,
    Mail,
    Signer,
    _cpu_seconds,
    canary_command,
    free_port,
    newsletter,
    sender_zones,
    server,
)

from smtp_listener.testing.zone_server import ZoneServer

CANARY_DOMAIN = "bench.example"
LMTP_USER = "alice"
TESTS = Path(__file__).resolve().parent.parent / "tests"
"""Where `servers.dovecot` (the Dovecot harness of the tests) lives."""
POLL_SECONDS = 0.01
"""How often the mailbox's new/ is listed: the latency figures' resolution."""
HEAD_BYTES = 8192
"""Read from a new file to find its Message-ID; Canary's labels and the DKIM signature come
first."""
WARMUP_WAIT = 60.0
STALL_TIMEOUT = 30.0
"""Waiting for acknowledged mail gives up when nothing new arrived for this long."""
QUEUE_WAIT = 30.0
TARGET_RATIO = 1.0
TARGET_MEDIAN = 2.0
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*<(dlv\.[^@>\s]+)@", re.IGNORECASE | re.MULTILINE)
_RELATION = re.compile(rb"^X-Canary-Relation:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def rate_of(times: Sequence[float]) -> float:
    """Events per second, from the first event to the last."""
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else math.inf


def percentile(ordered: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# --- the mail -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Sent:
    token: str
    mail: Mail


def make_mail(token: str, index: int, rcpt_to: str, company_domain: str, rng: random.Random,
              signer: Signer) -> Sent:
    """A unique 5-20 KB newsletter of the company itself, DKIM-signed by its domain."""
    data = newsletter(index, rcpt_to, company_domain, f"<{token}@mail.{company_domain}>",
                      token, rng)
    return Sent(token, Mail(f"bounce-{index}@mail.{company_domain}", rcpt_to,
                            signer.sign(data, company_domain)))


@dataclass(frozen=True, slots=True)
class Load:
    """A warm-up and a measured batch for each connection, every message with its token."""

    warmups: list[list[Sent]]
    batches: list[list[Sent]]

    @property
    def warmup(self) -> list[Sent]:
        return [s for batch in self.warmups for s in batch]

    @property
    def measured(self) -> list[Sent]:
        return [s for batch in self.batches for s in batch]

    @property
    def by_token(self) -> dict[str, Sent]:
        return {s.token: s for s in self.warmup + self.measured}

    @classmethod
    def make(cls, tag: str, warmup: int, measured: int, connections: int,
             aliases: Sequence[tuple[str, str]], signer: Signer) -> Load:
        """Unique messages dealt round-robin to the connections, to the aliases in turn."""
        rng = random.Random(2024)
        nonce = secrets.token_hex(4)

        def deal(start: int, count: int) -> list[list[Sent]]:
            batches: list[list[Sent]] = [[] for _ in range(connections)]
            for index in range(start, start + count):
                address, company_domain = aliases[index % len(aliases)]
                token = f"dlv.{tag}.{nonce}.{index:06d}"
                batches[index % connections].append(
                    make_mail(token, index, address, company_domain, rng, signer))
            return batches

        return cls(deal(0, warmup), deal(warmup, measured))


# --- the mailbox ----------------------------------------------------------------------------

def _token(head: bytes) -> str | None:
    end = head.find(b"\n\n")
    if end < 0:
        end = head.find(b"\r\n\r\n")
    found = _MESSAGE_ID.search(head if end < 0 else head[:end])
    return found.group(1).decode() if found else None


class Mailbox:
    """Watches a Maildir's new/ from a thread: when each token first appeared there."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = maildir
        self.seen: dict[str, float] = {}
        """Token -> time.monotonic() of the listing that first showed it."""
        self.unreadable: list[str] = []
        self._names: set[str] = set()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="mailbox", daemon=True)

    def __enter__(self) -> Mailbox:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def scan(self) -> None:
        now = time.monotonic()
        try:
            entries = [e.name for e in os.scandir(self.maildir / "new")]
        except FileNotFoundError:
            return  # Canary makes the Maildir on its first delivery
        fresh = [name for name in entries if name not in self._names]
        for name in fresh:
            self._names.add(name)
            try:
                with (self.maildir / "new" / name).open("rb") as handle:
                    token = _token(handle.read(HEAD_BYTES))
            except OSError:
                token = None  # the final check reads every file again
            if token is None:
                self.unreadable.append(name)
            else:
                self.seen.setdefault(token, now)
        if fresh:
            with self._changed:
                self._changed.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self._stop.wait(POLL_SECONDS)

    def wait_for(self, tokens: Sequence[str], stall: float,
                 give_up: Callable[[], bool] = lambda: False) -> bool:
        """True once every token has been seen; False when nothing new arrived for `stall`
        seconds, or when `give_up` says so."""
        arrived, last_change = len(self.seen), time.monotonic()
        with self._changed:
            while not all(token in self.seen for token in tokens):
                if len(self.seen) != arrived:
                    arrived, last_change = len(self.seen), time.monotonic()
                if time.monotonic() - last_change > stall or give_up():
                    return False
                self._changed.wait(0.5)
        return True


@dataclass
class Audit:
    """Every message file in the mailbox, read after the run."""

    count: Counter[str] = field(default_factory=Counter)
    altered: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    relations: Counter[str] = field(default_factory=Counter)
    files: int = 0
    leftovers: int = 0
    """Files still in tmp/: a delivery interrupted half-way."""


def audit(maildir: Path, sent: dict[str, Sent], lf_on_disk: bool) -> Audit:
    found = Audit()
    for sub in ("new", "cur"):
        directory = maildir / sub
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            found.files += 1
            content = path.read_bytes()
            token = _token(content)
            if token is None or token not in sent:
                found.unknown.append(path.name)
                continue
            found.count[token] += 1
            relation = _RELATION.search(content[:content.find(b"Message-ID:")])
            found.relations[relation.group(1).decode() if relation else "(none)"] += 1
            expected = sent[token].mail.data
            if lf_on_disk:
                expected = expected.replace(b"\r\n", b"\n")
            if not content.endswith(expected):
                found.altered.append(token)
    if (maildir / "tmp").is_dir():
        found.leftovers = sum(1 for _ in (maildir / "tmp").iterdir())
    return found


# --- the client -----------------------------------------------------------------------------

def _send_all(client: smtplib.SMTP, batch: Sequence[Sent], acks: dict[str, float],
              interval: float = 0.0, offset: float = 0.0) -> None:
    """Send one after the other, or one every `interval` seconds from `offset` on."""
    start = time.monotonic() + offset
    for number, sent in enumerate(batch):
        if interval:
            time.sleep(max(0.0, start + number * interval - time.monotonic()))
        refused = client.sendmail(sent.mail.mail_from, [sent.mail.rcpt_to], sent.mail.data)
        acks[sent.token] = time.monotonic()
        if refused:
            raise BenchmarkFailed(f"recipient refused: {refused}")


@dataclass(frozen=True, slots=True)
class Pace:
    """When a sender sends its measured messages: `interval` apart, from `offset` on."""

    interval: float = 0.0
    offset: float = 0.0


def _sender(port: int, warmup: Sequence[Sent], batch: Sequence[Sent], pace: Pace,
            warmed: threading.Barrier, go: threading.Event, cancelled: threading.Event,
            acks: dict[str, float], errors: list[BaseException]) -> None:
    try:
        with smtplib.SMTP(HOST, port, local_hostname="client.bench.example",
                          timeout=SOCKET_TIMEOUT) as client:
            client.ehlo()
            _send_all(client, warmup, acks)
            warmed.wait()
            go.wait()
            if not cancelled.is_set():
                _send_all(client, batch, acks, pace.interval, pace.offset)
    except threading.BrokenBarrierError:
        pass  # another sender failed first; its error is the one reported
    except (smtplib.SMTPException, OSError, BenchmarkFailed) as error:
        errors.append(error)
        warmed.abort()


@dataclass(frozen=True, slots=True)
class Measured:
    """The two streams of events of the measured batch, in time.monotonic() seconds."""

    acks: list[float]
    arrivals: list[float]
    latencies: list[float]
    """Arrival minus 250, per message, sorted."""
    server_cpu: float | None
    """CPU seconds of `canary serve` and its processes, from the end of the warm-up to the
    last arrival."""

    @property
    def ingest_rate(self) -> float:
        return rate_of(self.acks)

    @property
    def delivery_rate(self) -> float:
        return rate_of(self.arrivals)

    @property
    def ratio(self) -> float:
        return self.delivery_rate / self.ingest_rate

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 0.99)

    @property
    def backlog(self) -> int:
        """Messages acknowledged but not yet in the mailbox when the last 250 went out."""
        last = max(self.acks)
        return sum(1 for arrival in self.arrivals if arrival > last)

    @property
    def drain(self) -> float:
        """Seconds from the last 250 to the last arrival."""
        return max(0.0, max(self.arrivals) - max(self.acks))

    @property
    def cpu_ms(self) -> float | None:
        return None if self.server_cpu is None else 1000 * self.server_cpu / len(self.acks)


def drive(port: int, server_pid: int, load: Load, mailbox: Mailbox, alive: Callable[[], bool],
          rate: float | None = None) -> Measured:
    """Warm up until the warm-up is in the mailbox, then send and follow the measured batch:
    as fast as the server answers, or `rate` messages a second over all connections."""
    connections = len(load.batches)
    paces = [Pace() if rate is None else Pace(connections / rate, n / rate)
             for n in range(connections)]
    acks: dict[str, float] = {}
    errors: list[BaseException] = []
    warmed = threading.Barrier(connections + 1, timeout=WARMUP_WAIT + SOCKET_TIMEOUT)
    go, cancelled = threading.Event(), threading.Event()
    threads = [
        threading.Thread(target=_sender,
                         args=(port, warmup, batch, pace, warmed, go, cancelled, acks, errors),
                         name=f"sender-{n}")
        for n, (warmup, batch, pace) in enumerate(
            zip(load.warmups, load.batches, paces, strict=True))
    ]
    for thread in threads:
        thread.start()
    cpu_before, started = None, False
    try:
        with contextlib.suppress(threading.BrokenBarrierError):
            warmed.wait()  # broken: a sender failed, and says why below
            warmup = [s.token for s in load.warmup]
            if not mailbox.wait_for(warmup, WARMUP_WAIT, give_up=lambda: not alive()):
                missing = sum(1 for token in warmup if token not in mailbox.seen)
                raise BenchmarkFailed(f"{missing} of {len(warmup)} warm-up messages were not "
                                      f"delivered; none arrived for {WARMUP_WAIT:.0f} s")
            cpu_before = _cpu_seconds(server_pid)
            started = True
    except BaseException:
        cancelled.set()
        raise
    finally:
        go.set()
        for thread in threads:
            thread.join()
    if errors:
        raise BenchmarkFailed(f"the client failed: {errors[0]!r}")
    if not started:
        raise BenchmarkFailed("the senders did not finish the warm-up")
    measured = [s.token for s in load.measured]
    if not mailbox.wait_for(measured, STALL_TIMEOUT, give_up=lambda: not alive()):
        missing = sum(1 for token in measured if token not in mailbox.seen)
        raise BenchmarkFailed(f"{missing} of {len(measured)} acknowledged messages were not "
                              f"delivered; none arrived for {STALL_TIMEOUT:.0f} s")
    cpu_after = _cpu_seconds(server_pid)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Measured(
        acks=[acks[token] for token in measured],
        arrivals=[mailbox.seen[token] for token in measured],
        latencies=sorted(mailbox.seen[token] - acks[token] for token in measured),
        server_cpu=cpu,
    )


# --- the home and its queue -----------------------------------------------------------------

def make_home(canary: Path, home: Path, destination: str) -> list[tuple[str, str]]:
    """`canary init --deliver` and `canary issue --domain`; (alias, company domain) pairs."""
    def run(*args: str) -> str:
        done = subprocess.run([str(canary), *args, "--home", str(home)], capture_output=True,
                              text=True, check=False, timeout=60)
        if done.returncode != 0:
            raise BenchmarkFailed(f"canary {args[0]} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    run("init", "--domain", CANARY_DOMAIN, "--deliver", destination)
    return [(run("issue", name, "--domain", domain), domain) for name, domain in COMPANIES]


def _query(database: Path, sql: str) -> list[tuple[object, ...]]:
    with contextlib.closing(
        sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=30)
    ) as connection:
        return list(connection.execute(sql).fetchall())


def job_states(database: Path) -> Counter[str]:
    rows = _query(database, "SELECT state, count(*) FROM deliveryjob GROUP BY state")
    return Counter({str(state): int(str(count)) for state, count in rows})


def job_errors(database: Path, limit: int = 3) -> list[str]:
    rows = _query(database, "SELECT DISTINCT last_error FROM deliveryjob "
                            f"WHERE last_error IS NOT NULL LIMIT {limit}")
    return [str(row[0]) for row in rows]


def message_count(database: Path) -> int:
    return int(str(_query(database, "SELECT count(*) FROM message")[0][0]))


def wait_for_queue(database: Path, expected: int) -> None:
    """Until `expected` jobs are recorded delivered, at most `QUEUE_WAIT` seconds."""
    deadline = time.monotonic() + QUEUE_WAIT
    while job_states(database)["delivered"] < expected and time.monotonic() < deadline:
        time.sleep(0.1)


@dataclass(frozen=True, slots=True)
class Stages:
    """Where the latency went, by the server's own clock (canary.db), for the measured batch."""

    analysed: list[float]
    """When each message's analysis was saved, in seconds since the epoch."""
    to_analysed: list[float]
    """Received (just before the commit and the 250) to analysed, sorted."""
    to_delivering: list[float]
    """Analysed to the start of its delivery attempt (the job's `delivered_at`), sorted."""

    @property
    def analysis_rate(self) -> float:
        return rate_of(self.analysed)


def _seconds(text: object) -> float:
    return datetime.fromisoformat(str(text)).replace(tzinfo=UTC).timestamp()


def stages(database: Path, tokens: set[str]) -> Stages:
    rows = _query(database, "SELECT m.message_id, m.received_at, m.analysed_at, j.delivered_at "
                            "FROM message m JOIN deliveryjob j ON j.message_id = m.id")
    times = [(_seconds(received), _seconds(analysed), _seconds(delivering))
             for message_id, received, analysed, delivering in rows
             if str(message_id).strip("<>").split("@")[0] in tokens]
    return Stages([a for _, a, _ in times], sorted(a - r for r, a, _ in times),
                  sorted(d - a for _, a, d in times))


# --- one configuration ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    """A destination: its name in the output, its URL, and the Maildir it ends up in."""

    name: str
    url: str
    maildir: Path
    lf_on_disk: bool
    """Dovecot stores messages with LF line ends."""


@dataclass(frozen=True, slots=True)
class Result:
    target: Target
    measured: Measured
    audit: Audit
    total: int
    stages: Stages


def run_target(target: Target, work: Path, canary: Path, dns: str, args: argparse.Namespace,
               signer: Signer) -> Result:
    home = work / f"home-{target.name}"
    aliases = make_home(canary, home, target.url)
    load = Load.make(target.name[0], args.warmup, args.messages, args.connections, aliases,
                     signer)
    sent = load.by_token
    database = home / "canary.db"
    port = free_port()
    argv = [str(canary), "serve", "--home", str(home), "--port", str(port), "--dns", dns]
    with (server(argv, port, work / f"canary-{target.name}.log", signal.SIGTERM, 0) as process,
          Mailbox(target.maildir) as mailbox):
        measured = drive(port, process.pid, load, mailbox, lambda: process.poll() is None,
                         args.rate)
        wait_for_queue(database, len(sent))
        time.sleep(0.5)  # a duplicate delivery would have time to show up
        mailbox.scan()
    stored = message_count(database)
    states = job_states(database)
    if stored != len(sent):
        raise BenchmarkFailed(f"{target.name}: the message table holds {stored} rows; "
                              f"{len(sent)} were acknowledged")
    if states["delivered"] != len(sent) or set(states) != {"delivered"}:
        detail = "; ".join(job_errors(database))
        raise BenchmarkFailed(f"{target.name}: delivery jobs {dict(states)} for {len(sent)} "
                              f"messages{': ' + detail if detail else ''}")
    return Result(target, measured, audit(target.maildir, sent, target.lf_on_disk), len(sent),
                  stages(database, {s.token for s in load.measured}))


def check(result: Result) -> list[str]:
    """What is wrong with the mailbox after the run: lost, duplicated, altered, unexpected."""
    found, name = result.audit, result.target.name
    problems = []
    lost = result.total - len(found.count)
    duplicated = sum(n - 1 for n in found.count.values() if n > 1)
    if lost:
        problems.append(f"{name}: {lost} acknowledged message(s) are not in the mailbox")
    if duplicated:
        problems.append(f"{name}: {duplicated} duplicate(s) in the mailbox")
    if found.altered:
        relations = ", ".join(f"{k} {v}" for k, v in sorted(found.relations.items()))
        problems.append(f"{name}: {len(found.altered)} message(s) differ from what was sent "
                        f"after Canary's labels, e.g. {found.altered[0]} (relations: "
                        f"{relations}; only first_party mail is delivered untouched)")
    if found.unknown:
        problems.append(f"{name}: {len(found.unknown)} file(s) that were not sent, "
                        f"e.g. {found.unknown[0]}")
    return problems


@contextlib.contextmanager
def dovecot_lmtp() -> Iterator[tuple[str, Path]]:
    """A private Dovecot from the tests' harness: (LMTP destination URL, its INBOX Maildir)."""
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from servers.dovecot import INSTALL, dovecot_binary, running_dovecot

    if dovecot_binary() is None:
        raise BenchmarkFailed(f"Dovecot is not installed ({INSTALL}); or pass "
                              "--destination maildir")
    with running_dovecot(user=LMTP_USER) as dovecot:
        yield (f"lmtp:{dovecot.host}:{dovecot.lmtp_port}?recipient={LMTP_USER}",
               dovecot.maildir)


# --- the report -----------------------------------------------------------------------------

def report(results: Sequence[Result], connections: int, rate: float | None) -> list[str]:
    """Print the tables and the verdicts; return the problems found in the mailboxes."""
    pace = "" if rate is None else f", paced at {rate:g} msg/s"
    print()
    print(f"{'destination':<12} {'ingest':>9} {'delivery':>9} {'ratio':>6} {'median':>8} "
          f"{'p99':>8} {'max':>8} {'backlog':>8} {'drain':>7} {'cpu':>7}")
    print(f"{'':<12} {'msg/s':>9} {'msg/s':>9} {'':>6} {'s':>8} {'s':>8} {'s':>8} "
          f"{'at 250':>8} {'s':>7} {'ms/msg':>7}")
    for result in results:
        m = result.measured
        cpu = "-" if m.cpu_ms is None else f"{m.cpu_ms:.1f}"
        print(f"{result.target.name:<12} {m.ingest_rate:9.1f} {m.delivery_rate:9.1f} "
              f"{m.ratio:6.2f} {m.median:8.3f} {m.p99:8.3f} {max(m.latencies):8.3f} "
              f"{m.backlog:8d} {m.drain:7.2f} {cpu:>7}")
    print()
    print("where the latency went, by canary's clock (canary.db), measured batch:")
    print(f"{'destination':<12} {'analysis':>9} {'received->analysed s':>21} "
          f"{'analysed->delivering s':>23}")
    print(f"{'':<12} {'msg/s':>9} {'median':>10} {'p99':>10} {'median':>11} {'p99':>11}")
    for result in results:
        st = result.stages
        print(f"{result.target.name:<12} {st.analysis_rate:9.1f} "
              f"{statistics.median(st.to_analysed):10.3f} {percentile(st.to_analysed, 0.99):10.3f} "
              f"{statistics.median(st.to_delivering):11.3f} "
              f"{percentile(st.to_delivering, 0.99):11.3f}")
    print()
    problems = []
    for result in results:
        m = result.measured
        ratio_note = "" if m.ratio >= TARGET_RATIO else "  BELOW TARGET"
        median_note = "" if m.median < TARGET_MEDIAN else "  ABOVE TARGET"
        print(f"{result.target.name}: delivery/ingest {m.ratio:.2f} (target >= "
              f"{TARGET_RATIO:.2f}){ratio_note}; median latency {m.median:.3f} s "
              f"(target < {TARGET_MEDIAN:.0f} s){median_note}")
        found = check(result)
        relations = ", ".join(f"{k} {v}" for k, v in sorted(result.audit.relations.items()))
        if not found:
            print(f"  all {result.total} acknowledged messages ({result.total - len(m.acks)} "
                  f"warm-up) delivered exactly once, intact; X-Canary-Relation: {relations}")
        if result.audit.leftovers:
            print(f"  {result.audit.leftovers} file(s) left in tmp/")
        problems += found
    print(f"{connections} connections{pace}; latency from the client's 250 to the file in new/, "
          f"polled every {1000 * POLL_SECONDS:.0f} ms")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000,
                        help="measured messages per destination, over all connections")
    parser.add_argument("--connections", type=int, default=4,
                        help="concurrent SMTP connections, one thread each")
    parser.add_argument("--warmup", type=int, default=40,
                        help="messages sent, and delivered, before the measured batch")
    parser.add_argument("--rate", type=float, default=None,
                        help="send the measured batch at this many messages a second over all "
                             "connections (default: as fast as the server answers)")
    parser.add_argument("--destination", action="append", choices=("maildir", "lmtp"),
                        help="measure only this destination (repeatable; default: both)")
    args = parser.parse_args(argv)
    if args.messages < 2 or args.connections < 1 or args.warmup < 0 or (
            args.rate is not None and args.rate <= 0):
        parser.error("--messages must be at least 2, --connections and --rate positive")
    chosen = args.destination or ["maildir", "lmtp"]

    began = time.monotonic()
    signer = Signer.generate()
    results: list[Result] = []
    try:
        with (tempfile.TemporaryDirectory(prefix="canary-bench-") as scratch,
              ZoneServer(sender_zones(signer)) as (dns_host, dns_port),
              contextlib.ExitStack() as stack):
            work = Path(scratch)
            canary = canary_command()
            dns = f"{dns_host}:{dns_port}"
            targets = []
            if "maildir" in chosen:
                maildir = work / "Maildir"
                targets.append(Target("maildir", f"maildir:{maildir}", maildir, False))
            if "lmtp" in chosen:
                url, dovecot_maildir = stack.enter_context(dovecot_lmtp())
                targets.append(Target("lmtp", url, dovecot_maildir, True))
            print(f"{args.messages} messages (+{args.warmup} warm-up) per destination over "
                  f"{args.connections} connections to {len(COMPANIES)} aliases", flush=True)
            for target in targets:
                started = time.monotonic()
                result = run_target(target, work, canary, dns, args, signer)
                results.append(result)
                m = result.measured
                print(f"  {target.name:<8} {target.url}: ingest {m.ingest_rate:.1f} msg/s, "
                      f"delivery {m.delivery_rate:.1f} msg/s, latency median {m.median:.3f} s "
                      f"p99 {m.p99:.3f} s ({time.monotonic() - started:.0f} s)", flush=True)
    except BenchmarkFailed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1

    problems = report(results, args.connections, args.rate)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    print(f"total {time.monotonic() - began:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
