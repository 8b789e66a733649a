"""`canary serve` killed with SIGKILL under load: mail answered 250 is delivered, once.

Each test runs the installed `canary` script on a home made with `canary init
--deliver maildir:…`, in a process group of its own (listener, store process,
worker), and kills the whole group with SIGKILL while several threads send
distinct messages over loopback SMTP, or while the worker is delivering. A
restarted `canary serve` on the same home must then deliver every message that
got a 250, each one exactly once: Maildir delivery names the file after the
message's SHA-256 and looks for it first, so a crash between the file and the
job's record must not make a second copy.

A killed worker leaves the jobs it had claimed leased for `CLAIM_FOR` (five
minutes). The first test expires those leases by hand while nothing runs, as
if the five minutes had passed, to check loss and duplication now; the second
test checks that a restart does not need that, and is expected to fail until
the product releases a dead worker's claims (see its reason).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
from commands import installed_canary
from conftest import CANARY_DOMAIN
from sqlalchemy import func, update
from sqlmodel import col, select

from data.database import Store
from data.home import Home
from data.models import DeliveryJob, Message
from smtp_listener.delivery import PARALLEL, _alive
from smtp_listener.testing.zone_server import Zones, ZoneServer

pytestmark = pytest.mark.slow

SENDER = "bounces@acme.example"
HELO = "mx.acme.example"
START_TIMEOUT = 30.0
SETTLE_TIMEOUT = 60.0
PROMPTLY = 15.0
"""Seconds a restarted (and ready) listener may take to deliver what a killed one left; a few
hundred messages take it about five."""
TOKEN = re.compile(rb"^Message-ID: <([0-9a-f]{32})@acme\.example>\r?$",
                   re.MULTILINE | re.IGNORECASE)


# --- the home, the listener process and the queue ----------------------------------------------


@pytest.fixture
def acme_dns() -> Iterator[str]:
    """Loopback DNS publishing acme.example's SPF (loopback may send), so analysis settles."""
    zones = Zones()
    zones.add_txt("acme.example", "v=spf1 ip4:127.0.0.1 -all")
    with ZoneServer(zones) as (host, port):
        yield f"{host}:{port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def live_members(group: int) -> list[int]:
    """Processes of the group that are not yet dead (a zombie runs nothing: it counts as dead)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] not in ("Z", "X"):
                members.append(int(stat.parent.name))
    return members


@dataclass
class Serving:
    """One `canary serve` process, leader of its own process group."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def kill(self) -> None:
        """SIGKILL the whole group (listener, store process, worker); return once all are dead."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        if not Path("/proc/self/stat").exists():
            time.sleep(1.0)  # no /proc to look at: give the children time to die
            return
        deadline = time.monotonic() + 30
        while left := live_members(self.process.pid):
            if time.monotonic() > deadline:
                pytest.fail(f"processes {left} of the killed listener's group are still alive")
            time.sleep(0.02)


@dataclass
class Site:
    """A Canary home delivering to a Maildir, and the `canary` commands run on it."""

    root: Path
    dns: str
    canary: str
    env: dict[str, str]
    servers: list[Serving] = field(default_factory=list)
    kills: int = 0

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def maildir(self) -> Path:
        return self.root / "Maildir"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.canary, *args, "--home", str(self.home)],
                              capture_output=True, text=True, timeout=120, env=self.env,
                              check=False)
        if done.returncode != 0:
            pytest.fail(f"canary {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def serve(self) -> Serving:
        """`canary serve` on a free port in a new process group, once it accepts connections."""
        port = free_port()
        log = self.root / f"serve-{len(self.servers)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [self.canary, "serve", "--home", str(self.home), "--port", str(port),
                 "--dns", self.dns],
                stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        serving = Serving(process, port, log)
        self.servers.append(serving)
        deadline = time.monotonic() + START_TIMEOUT
        while not accepts_connections(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"canary serve did not start (exit {process.poll()}):\n"
                            f"{log.read_text(errors='replace')}")
            time.sleep(0.05)
        return serving

    def kill(self, serving: Serving) -> None:
        serving.kill()
        self.kills += 1

    def stop_all(self) -> None:
        for serving in self.servers:
            if serving.process.poll() is None:
                serving.kill()

    def logs(self) -> str:
        return "".join(s.log.read_text(errors="replace") for s in self.servers)


@pytest.fixture
def site(tmp_path: Path, acme_dns: str) -> Iterator[Site]:
    """`canary init --deliver maildir:…` and nothing else of the tester's Canary settings."""
    canary = installed_canary()
    if canary is None:
        pytest.skip("the canary script is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    env["CANARY_DNS"] = acme_dns
    made = Site(tmp_path, acme_dns, canary, env)
    made.run("init", "--domain", CANARY_DOMAIN, "--deliver", f"maildir:{made.maildir}")
    try:
        yield made
    finally:
        made.stop_all()


@pytest.fixture
def store(site: Site) -> Iterator[Store]:
    opened = Home(site.home).store()
    yield opened
    opened.dispose()


def issue_acme(site: Site) -> str:
    alias = site.run("issue", "Acme", "--domain", "acme.example").stdout.strip()
    if not alias.endswith(f"@{CANARY_DOMAIN}"):
        pytest.fail(f"canary issue printed {alias!r}")
    return alias


def stored_shas(store: Store) -> set[str]:
    with store.reading() as session:
        return set(session.exec(select(Message.sha256)).all())


def job_states(store: Store) -> Counter[str]:
    with store.reading() as session:
        rows = session.exec(select(DeliveryJob.state, func.count())
                            .group_by(DeliveryJob.state)).all()
    return Counter({state: count for state, count in rows})


def claimed_jobs(store: Store) -> list[tuple[int, datetime]]:
    """(id, lease end) of the pending jobs a deliverer holds a lease on, now."""
    with store.reading() as session:
        rows = session.exec(select(DeliveryJob.id, DeliveryJob.claimed_until).where(
            DeliveryJob.state == "pending",
            col(DeliveryJob.claimed_until) > datetime.now(UTC))).all()
    return [(job, until) for job, until in rows if job is not None and until is not None]


def expire_leases(store: Store) -> None:
    """As if `CLAIM_FOR` had passed since the kill: the dead worker's claims end (nothing runs)."""
    with store.writing() as session:
        session.connection().execute(
            update(DeliveryJob).where(col(DeliveryJob.state) == "pending",
                                      col(DeliveryJob.claimed_until).is_not(None))
            .values(claimed_until=None))


def forget_records(store: Store, count: int) -> int:
    """Undo the records of the last `count` deliveries (their files stay in new/).

    This is what a crash between a file's rename into new/ and its job's commit leaves:
    the job pending, not yet attempted, without an action, its (expired) lease aside. A
    SIGKILL lands in that window only now and then; this makes every run cross it.
    """
    with store.writing() as session:
        jobs = session.exec(select(DeliveryJob).where(DeliveryJob.state == "delivered")
                            .order_by(col(DeliveryJob.id).desc()).limit(count)).all()
        for job in jobs:
            job.state, job.action, job.attempts = "pending", None, job.attempts - 1
            job.delivered_at = job.claimed_until = None
            session.add(job)
        return len(jobs)


# --- sending from several threads --------------------------------------------------------------


def message(alias: str, token: str) -> bytes:
    head = {
        "From": '"Acme News" <news@acme.example>',
        "To": alias,
        "Subject": f"Load test {token}",
        "Date": format_datetime(datetime.now(UTC)),
        "Message-ID": f"<{token}@acme.example>",
        "MIME-Version": "1.0",
        "Content-Type": "text/plain",
    }
    lines = [*(f"{name}: {value}" for name, value in head.items()), "",
             f"Message {token}.", "Sent while the listener may be killed at any moment."]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


class Load:
    """Distinct messages sent over loopback from several threads; which ones got a 250."""

    def __init__(self, port: int, alias: str, count: int, threads: int = 8) -> None:
        self.port, self.alias = port, alias
        self.tokens = [uuid.uuid4().hex for _ in range(count)]
        self.raws = {token: message(alias, token) for token in self.tokens}
        self.acked: set[str] = set()
        self.failures: list[str] = []
        self._progress = threading.Condition()
        self._threads = [threading.Thread(target=self._send, args=(self.tokens[n::threads],),
                                          daemon=True) for n in range(threads)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def join(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.1))
            if thread.is_alive():
                pytest.fail(f"a sending thread was still running after {timeout:.0f} s")

    def all_acked(self) -> None:
        """Every message got its 250 (a listener left running must accept them all)."""
        self.join()
        if self.acked != set(self.tokens):
            pytest.fail(f"{len(self.tokens) - len(self.acked)} of {len(self.tokens)} messages "
                        f"were not answered 250: {self.failures[:3]}")

    def wait_acked(self, count: int, timeout: float = 30.0) -> None:
        with self._progress:
            self._progress.wait_for(
                lambda: len(self.acked) >= count or not self.sending, timeout)
            if len(self.acked) < count:
                pytest.fail(f"only {len(self.acked)} of {count} messages were answered 250: "
                            f"{self.failures[:3]}")

    @property
    def sending(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _send(self, tokens: list[str]) -> None:
        """One session per thread; the first error (the listener is gone) ends the thread."""
        try:
            with smtplib.SMTP("127.0.0.1", self.port, local_hostname=HELO, timeout=30) as client:
                for token in tokens:
                    # One recipient: sendmail returns only when DATA was answered 250.
                    client.sendmail(SENDER, [self.alias], self.raws[token])
                    with self._progress:
                        self.acked.add(token)
                        self._progress.notify_all()
        except (smtplib.SMTPException, OSError) as error:
            with self._progress:
                self.failures.append(f"{type(error).__name__}: {error}")
        finally:
            with self._progress:
                self._progress.notify_all()


def sha_to_token(loads: list[Load]) -> dict[str, str]:
    """The SHA-256 each sent message is stored under (the listener keeps the bytes as sent)."""
    return {hashlib.sha256(raw).hexdigest(): token
            for load in loads for token, raw in load.raws.items()}


# --- what the Maildir holds -------------------------------------------------------------------


def tokens_in(path: Path) -> list[str]:
    return [found.decode() for found in TOKEN.findall(path.read_bytes())]


def delivered_count(site: Site) -> int:
    return sum(len(os.listdir(site.maildir / sub)) for sub in ("new", "cur")
               if (site.maildir / sub).is_dir())


def delivered_copies(site: Site) -> dict[str, list[str]]:
    """File names in new/ and cur/ by the message's token."""
    copies: dict[str, list[str]] = {}
    for sub in ("new", "cur"):
        folder = site.maildir / sub
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            found = tokens_in(path)
            assert len(found) == 1, f"{sub}/{path.name} has {len(found)} test Message-IDs"
            copies.setdefault(found[0], []).append(f"{sub}/{path.name}")
    return copies


def stored_tokens(store: Store, tokens: dict[str, str]) -> set[str]:
    shas = stored_shas(store)
    unknown = shas - tokens.keys()
    assert not unknown, f"stored messages the test never sent: {sorted(unknown)[:3]}"
    return {tokens[sha] for sha in shas}


def wait_until_delivered(site: Site, store: Store, tokens: dict[str, str], timeout: float
                         ) -> tuple[set[str], dict[str, list[str]], Counter[str]]:
    """Until every stored message has a job, none is pending and all are in the Maildir.

    Returns what was stored, what the Maildir holds and the jobs' states then, or at the
    deadline: the caller's assertions say what is missing.
    """
    deadline = time.monotonic() + timeout
    while True:
        stored, states = stored_tokens(store, tokens), job_states(store)
        late = time.monotonic() > deadline
        if late or (states["pending"] == 0 and sum(states.values()) == len(stored)
                    and delivered_count(site) >= len(stored)):
            copies = delivered_copies(site)
            if late or stored <= copies.keys():
                return stored, copies, states
        time.sleep(0.1)


def assert_delivered_exactly_once(site: Site, store: Store, loads: list[Load]) -> None:
    """Every message answered 250 (and every other one stored) is in the Maildir once."""
    tokens = sha_to_token(loads)
    acked = set().union(*(load.acked for load in loads))
    stored, copies, states = wait_until_delivered(site, store, tokens, SETTLE_TIMEOUT)

    lost = acked - stored
    assert not lost, f"{len(lost)} messages answered 250 are not in the database"
    strangers = copies.keys() - tokens.values()
    assert not strangers, f"the Maildir holds messages never sent: {sorted(strangers)[:3]}"
    tripled = {token: names for token, names in copies.items() if len(names) > 2}
    assert not tripled, f"delivered more than twice (outside the documented window): {tripled}"
    doubled = {token: names for token, names in copies.items() if len(names) > 1}
    assert not doubled, (f"{len(doubled)} messages were delivered twice to the (idempotent) "
                         f"Maildir, e.g. {next(iter(doubled.items()))}")
    missing = acked - copies.keys()
    assert not missing, (f"{len(missing)} of {len(acked)} messages answered 250 are not in the "
                         f"Maildir {SETTLE_TIMEOUT:.0f} s after the restart; jobs: {dict(states)}")
    assert copies.keys() == stored, "every stored message, answered 250 or not, is delivered"
    assert dict(states) == {"delivered": len(stored)}, states

    # The person's view of the queue says the same.
    listing = json.loads(site.run("deliveries", "--json").stdout)["deliveries"]
    assert Counter(job["state"] for job in listing) == {"delivered": len(stored)}
    subjects = Counter(job["subject"] for job in listing)
    assert subjects == {f"Load test {token}": 1 for token in stored}

    # A file a killed worker left in tmp/ is never the only copy of a message. The worker
    # delivers up to PARALLEL messages at once, so one kill may leave that many behind.
    left = sorted((site.maildir / "tmp").iterdir())
    assert len(left) <= site.kills * PARALLEL, (
        f"more files in tmp/ than kills x parallel deliveries: {[p.name for p in left]}")
    for path in left:  # a file cut short by the kill may hold no Message-ID at all
        only = [token for token in tokens_in(path) if token not in copies]
        assert not only, f"tmp/{path.name} is the only copy of message {only}"


def kill_while_delivering(site: Site, store: Store, serving: Serving, total: int,
                          before: int, timeout: float = 30.0) -> list[tuple[int, datetime]]:
    """Kill the group once this worker has delivered a few messages, not all, and holds claims.

    `before` is how many were in the Maildir when it started. Returns the jobs still claimed
    (pending, leased) once everything is dead.
    """
    deadline = time.monotonic() + timeout
    while True:
        delivered = delivered_count(site)
        if before + 10 <= delivered < total and claimed_jobs(store):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"no moment to kill the worker while delivering in {timeout:.0f} s: "
                        f"{delivered} of {total} delivered, jobs {dict(job_states(store))}")
        time.sleep(0.01)
    site.kill(serving)
    return claimed_jobs(store)


# --- the tests ---------------------------------------------------------------------------------


def test_kill_9_under_load_loses_and_doubles_nothing(site: Site, store: Store) -> None:
    alias = issue_acme(site)

    # 1. Killed while eight threads send 400 messages, after the 150th reply 250.
    serving = site.serve()
    during_sending = Load(serving.port, alias, 400).start()
    during_sending.wait_acked(150)
    site.kill(serving)
    during_sending.join()
    if len(during_sending.acked) == len(during_sending.tokens) or not during_sending.failures:
        pytest.fail("the kill came after the sending")
    expire_leases(store)

    # 2. Restarted, sent 200 more (all answered 250), killed while delivering them.
    before = delivered_count(site)
    serving = site.serve()
    after_sending = Load(serving.port, alias, 200).start()
    after_sending.all_acked()
    kill_while_delivering(site, store, serving, len(stored_shas(store)), before)
    expire_leases(store)
    assert forget_records(store, 5) == 5

    # 3. Restarted once more: everything answered 250 is delivered, exactly once.
    site.serve()
    assert_delivered_exactly_once(site, store, [during_sending, after_sending])
    assert "Traceback" not in site.logs()


class StillClaimed(AssertionError):
    """Mail answered 250 that a restarted listener did not deliver in time."""


def test_a_restarted_listener_redelivers_promptly_what_a_killed_one_had_claimed(
    site: Site, store: Store
) -> None:
    alias = issue_acme(site)
    loads: list[Load] = []
    held: list[tuple[int, datetime]] = []
    for _ in range(3):  # a kill between two batches leaves no claim: try again
        before = delivered_count(site)
        serving = site.serve()
        load = Load(serving.port, alias, 300).start()
        load.all_acked()
        loads.append(load)
        held = kill_while_delivering(site, store, serving, len(stored_shas(store)), before)
        if held:
            break
    if not held:
        pytest.fail("three kills while delivering caught no claimed job")

    site.serve()
    restarted = time.monotonic()
    acked = set().union(*(load.acked for load in loads))
    _, copies, states = wait_until_delivered(site, store, sha_to_token(loads), PROMPTLY)
    missing = acked - copies.keys()
    if missing:
        raise StillClaimed(
            f"{len(missing)} messages answered 250 were still undelivered "
            f"{time.monotonic() - restarted:.0f} s after the restart (jobs: {dict(states)}); the "
            f"killed worker had claimed {len(held)} jobs until {held[0][1]:%H:%M:%S} UTC")
    assert_delivered_exactly_once(site, store, loads)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_a_killed_deliverer_not_yet_reaped_holds_no_claim() -> None:
    """A restarted listener takes up the jobs of a deliverer that was killed. Where nothing
    reaps the killed process (a container's first process may not), it stays a zombie: it
    runs nothing, so its claims are free."""
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert _alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while _alive(child.pid):  # a zombie now: killed, not waited for
            assert time.monotonic() < deadline, "a killed, unreaped process counts as alive"
            time.sleep(0.01)
        assert child.poll() is not None  # it was a zombie until reaped here
    finally:
        child.kill()
        child.wait()
    assert not _alive(child.pid)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_a_killed_listener_leaves_no_semaphores_behind(site: Site) -> None:
    """`kill -9` of the whole group also kills the tracker that removes `multiprocessing`
    semaphores: the listener and its worker use none, so nothing is left in /dev/shm."""
    before = set(os.listdir("/dev/shm"))
    serving = site.serve()
    site.kill(serving)
    assert {name for name in set(os.listdir("/dev/shm")) - before
            if name.startswith("sem.")} == set()
