"""Real faults under `canary serve`: full disks, silent DNS, locks, killed and frozen processes.

Each test runs the installed `canary serve` as a subprocess in a process
group of its own (`faults.servers`), breaks something for real (a small
tmpfs filled up, a DNS server that never answers, a write lock held by
another process, SIGKILL / SIGSTOP / SIGTERM to the processes) and checks
three things: the SMTP replies, that every message answered 250 is in the
database (read-only, by Message-ID), and that the processes stayed up or came
back.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_DOMAIN, issue
from faults.servers import (
    Outcome,
    Serve,
    SilentDns,
    alive,
    assert_all_stored,
    message_id_of,
    message_rows,
    poll,
    process_info,
    serving,
    start_serve,
    stored,
)
from mailflow import mail
from signing import DkimKey, crlf, ed25519_key

from data.home import init_home
from smtp_listener.testing.zone_server import Zones

DISK_SIZE_MB = 40
LISTENER_LOGGERS = ("canary.listener", "canary.writer")
"""What the listener's own process and its store process log as."""
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")


# --- fixtures and helpers -----------------------------------------------------------------------


def make_home(path: Path) -> tuple[Path, str]:
    """An initialised Canary home at `path` and the alias issued to Acme."""
    home = init_home(path, [CANARY_DOMAIN])
    store = home.store()
    try:
        return home.path, issue(home, store, "Acme", "acme.example").address
    finally:
        store.dispose()


@pytest.fixture
def acme(tmp_path: Path) -> tuple[Path, str]:
    return make_home(tmp_path / "home")


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    """Where serve's logs go: never on the disk a test fills up."""
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 40 MB tmpfs mounted for the test, unmounted afterwards."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("mount/umount are not installed")
    target = tmp_path / "disk"
    target.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE_MB}m,mode=0700", "tmpfs", str(target)],
        capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True,
                          check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True, check=False)


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free on `disk`."""
    filler = disk / "filler"
    size = shutil.disk_usage(disk).free - leave
    assert size > 0, f"less than {leave} bytes free already"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb") as handle:
        while size > 0:
            size -= handle.write(chunk[:min(size, len(chunk))])
        handle.flush()
        os.fsync(handle.fileno())
    return filler


def incompressible(size: int) -> str:
    """`size` bytes of base64 text made of random bytes: zlib cannot shrink it much."""
    text = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    return "\n".join(text[i:i + 76] for i in range(0, len(text), 76)) + "\n"


@dataclass
class Sent:
    raw: bytes
    outcome: Outcome
    started: float
    """time.monotonic() when the transaction began."""

    @property
    def finished(self) -> float:
        return self.started + self.outcome.seconds


@dataclass
class Load:
    """Senders in threads, each one transaction after another (a new connection each) until
    `stop()`: every outcome is kept with its message."""

    serve: Serve
    alias: str
    senders: int = 4
    pause: float = 0.0
    sent: list[Sent] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        for number in range(self.senders):
            thread = threading.Thread(target=self._run, args=(number,), daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def _run(self, number: int) -> None:
        count = 0
        while not self._stopping.is_set():
            count += 1
            raw = mail(to=self.alias, subject=f"load {number}-{count}")
            started = time.monotonic()
            outcome = self.serve.send(self.alias, raw)
            with self._lock:
                self.sent.append(Sent(raw, outcome, started))
            if self.pause or not outcome.stored:  # a sender retries, but not in a busy loop
                self._stopping.wait(self.pause or 0.05)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=90)
            assert not thread.is_alive(), "a sender is still waiting for a reply"

    def snapshot(self) -> list[Sent]:
        with self._lock:
            return list(self.sent)

    def accepted(self) -> list[bytes]:
        return [s.raw for s in self.snapshot() if s.outcome.stored]

    def accepted_after(self, moment: float) -> int:
        return sum(1 for s in self.snapshot() if s.outcome.stored and s.started >= moment)

    def codes(self) -> set[tuple[str, int]]:
        return {(s.outcome.stage, s.outcome.code) for s in self.snapshot()}


def tracebacks(log: str) -> list[tuple[str, str]]:
    """For each traceback in `log`: the log line that printed it and the exception's line."""
    lines = log.splitlines()
    found = []
    for index, line in enumerate(lines):
        if not line.startswith("Traceback (most recent call last):"):
            continue
        intro = next((earlier for earlier in reversed(lines[:index])
                      if LOG_LINE.match(earlier)), "")
        last = next((later for later in lines[index + 1:] if later and not later.startswith(
            (" ", "\t", "Traceback", "The above exception", "During handling"))), "")
        found.append((intro, last))
    return found


def assert_clean_exit(serve: Serve, code: int, *, tolerated: str | None = None) -> None:
    """Exit 0 and no traceback in the log; with `tolerated`, tracebacks ending in that
    exception line are let through, if the worker (not the listener or the store process)
    printed them."""
    assert code == 0, serve.stderr
    unexpected = [
        (intro, last) for intro, last in tracebacks(serve.stderr)
        if not (tolerated and last == tolerated
                and not any(f" {name} " in intro for name in LISTENER_LOGGERS))
    ]
    assert not unexpected, serve.stderr
    assert "AttributeError" not in serve.stderr, serve.stderr


# --- 1. the disk nearly full --------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.slow
def test_nearly_full_disk_gets_452_at_mail_from_until_there_is_room(
    small_disk: Path, logs: Path, dns_server: str
) -> None:
    home, alias = make_home(small_disk / "home")
    accepted: list[bytes] = []
    with serving(home, logs, "--min-free-mb", "10", dns=dns_server) as serve:
        store_pid = serve.store_pid()
        before = mail(to=alias, subject="before the disk filled up")
        assert serve.send(alias, before).stored
        accepted.append(before)

        filler = fill(small_disk, leave=5 * 1024 * 1024)
        filled = time.monotonic()

        def refused() -> Outcome | None:
            raw = mail(to=alias, subject="while the disk fills up")
            started = time.monotonic()
            outcome = serve.send(alias, raw)
            if outcome.stored:  # the free space is checked once a second at most
                assert started - filled < 1.5, f"accepted {started - filled:.1f} s after the fill"
                accepted.append(raw)
            return outcome if outcome.code == 452 else None

        first = poll(refused, "MAIL FROM to get 452", timeout=10, interval=0.1)
        assert (first.stage, first.status) == ("MAIL", "4.3.1"), first
        for number in range(3):
            outcome = serve.send(alias, mail(to=alias, subject=f"disk full {number}"))
            assert (outcome.stage, outcome.code, outcome.status) == ("MAIL", 452, "4.3.1")
        assert serve.up()

        filler.unlink()
        freed = time.monotonic()

        def taken() -> bool:
            raw = mail(to=alias, subject="room again")
            started = time.monotonic()
            outcome = serve.send(alias, raw)
            if outcome.stored:
                accepted.append(raw)
                return True
            assert (outcome.stage, outcome.code) == ("MAIL", 452), outcome
            assert started - freed < 1.5, f"refused {started - freed:.1f} s after the room came"
            return False

        poll(taken, "mail to be accepted once there is room", timeout=10, interval=0.1)
        assert time.monotonic() - freed < 5, "still refused long after the disk had room"
        for number in range(3):
            raw = mail(to=alias, subject=f"after {number}")
            assert serve.send(alias, raw).stored
            accepted.append(raw)
        assert serve.up() and serve.store_pid() == store_pid
        assert "nearly full" in serve.stderr and "room on the disk again" in serve.stderr
        assert_clean_exit(serve, serve.stop())
    assert_all_stored(home / "canary.db", accepted)


# --- 2. the disk completely full ----------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.slow
def test_full_disk_answers_451_after_data_and_the_resent_message_is_stored_once(
    small_disk: Path, logs: Path, dns_server: str
) -> None:
    home, alias = make_home(small_disk / "home")
    accepted: list[bytes] = []
    big = mail(to=alias, subject="two megabytes", body=incompressible(2 * 1024 * 1024))
    with serving(home, logs, "--min-free-mb", "0", dns=dns_server) as serve:
        small = mail(to=alias, subject="while there is room")
        assert serve.send(alias, small).stored
        accepted.append(small)

        # MAIL FROM wants 1 % of the disk free even with --min-free-mb 0 (limits.DiskSpace):
        # leave a little more than that, far less than the big message needs.
        floor = shutil.disk_usage(small_disk).total // 100
        filler = fill(small_disk, leave=floor + 300 * 1024)
        time.sleep(1.1)  # the free space is checked once a second at most
        outcome = serve.send(alias, big)
        assert (outcome.stage, outcome.code, outcome.status) == ("DATA", 451, "4.3.0"), outcome
        assert outcome.seconds < 20, outcome
        assert serve.up()
        serve.store_pid()  # the store process stayed up, or a new one runs
        assert stored(serve.database)[message_id_of(big)] == 0

        filler.unlink()
        time.sleep(1.1)

        def resent() -> bool:
            outcome = serve.send(alias, big)
            assert outcome.code in (250, 451), outcome
            return outcome.stored

        poll(resent, "the resent message to be accepted", timeout=20, interval=0.5)
        accepted.append(big)
        later = mail(to=alias, subject="later")
        assert serve.send(alias, later).stored
        accepted.append(later)
        assert serve.up()
        serve.store_pid()
        assert_clean_exit(serve, serve.stop())
    counts = assert_all_stored(home / "canary.db", accepted)
    assert counts[message_id_of(big)] == 1


# --- 3. DNS that never answers ------------------------------------------------------------------


def signed_ten_times(alias: str) -> tuple[bytes, list[DkimKey]]:
    """A message with 10 DKIM signatures, each of another domain and selector."""
    keys = [ed25519_key(f"signer{n}.example", f"sel{n}") for n in range(10)]
    raw = crlf(mail(to=alias, subject="ten signatures"))
    for key in keys:
        raw = key.sign(raw)
    return raw, keys


def row_of(database: Path, raw: bytes) -> dict[str, Any]:
    (row,) = [r for r in message_rows(database) if r["header_message_id"] == message_id_of(raw)]
    return row


@pytest.mark.faults
@pytest.mark.slow
def test_silent_dns_costs_each_message_bounded_time_and_does_not_hold_shutdown(
    acme: tuple[Path, str], logs: Path, zones: Zones, dns_server: str
) -> None:
    home, alias = acme
    database = home / "canary.db"
    signed, keys = signed_ten_times(alias)
    plain = mail(to=alias, subject="plain")
    late = mail(to=alias, sender="news@globex.example", subject="analysed at SIGTERM")
    with SilentDns() as silent:
        with serving(home, logs, dns=silent.address) as serve:
            assert serve.send(alias, signed).stored
            assert serve.send(alias, plain).stored
            sent = time.monotonic()

            first = poll(lambda: row_of(database, signed)["temperror"] and
                         row_of(database, signed), "the signed message's temperror", timeout=40)
            first_after = time.monotonic() - sent
            second = poll(lambda: row_of(database, plain)["temperror"] and
                          row_of(database, plain), "the plain message's temperror", timeout=20)
            second_after = time.monotonic() - sent
            assert first_after < 35, f"the first message took {first_after:.0f} s"
            assert second_after < 45, f"the second message waited {second_after:.0f} s"
            for row in (first, second):
                assert row["analysed_at"] is None
                assert row["retry_at"] is not None and row["attempts"] == 1, row
            assert silent.queries > 0

            # A third message, from a domain not asked yet: SIGTERM while its SPF question
            # waits on the silent server.
            asked = silent.queries
            assert serve.send(alias, late, sender="bounces@globex.example").stored
            poll(lambda: silent.queries > asked, "the worker to ask about the third message")
            time.sleep(0.3)
            stopping = time.monotonic()
            code = serve.stop(timeout=30)
            took = time.monotonic() - stopping
            assert_clean_exit(serve, code)
            # The worker is waiting on DNS: it gets 2 s, then is killed (slack for a busy host).
            assert took < 7, f"serve took {took:.1f} s to stop"
            poll(lambda: all(p.state == "Z" for p in serve.children()),
                 "the store process and worker to end")
    assert_all_stored(database, [signed, plain, late])
    assert row_of(database, late)["analysed_at"] is None  # interrupted: still pending

    # The retry is due a minute after each temporary failure; move that moment to the past
    # rather than wait for it.
    with closing(sqlite3.connect(database)) as db, db:
        db.execute("UPDATE message SET retry_at = '2000-01-01 00:00:00.000000' "
                   "WHERE retry_at IS NOT NULL AND analysed_at IS NULL")
    for key in keys:
        key.publish(zones)
    with serving(home, logs, dns=dns_server) as serve:
        def analysed() -> list[dict[str, Any]] | None:
            rows = message_rows(database)
            return rows if all(r["analysed_at"] for r in rows) else None

        rows = poll(analysed, "every message to be analysed with a working DNS", timeout=30)
        assert len(rows) == 3
        for row in rows:
            assert row["temperror"] is None, row
        authentication = json.loads(str(row_of(database, signed)["authentication"]))
        assert [(d["domain"], d["result"]) for d in authentication["dkim"]] == [
            (key.domain, "pass") for key in reversed(keys)], authentication
        assert_clean_exit(serve, serve.stop())
    assert_all_stored(database, [signed, plain, late])


# --- 4. the database locked by another process --------------------------------------------------

LOCK_HOLDER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
db.close()
print("released", flush=True)
"""
LOCK_SECONDS = 45.0


@pytest.mark.faults
@pytest.mark.slow
def test_a_database_locked_elsewhere_gets_451_in_seconds_and_the_store_process_survives(
    acme: tuple[Path, str], logs: Path, dns_server: str
) -> None:
    home, alias = acme
    with serving(home, logs, dns=dns_server) as serve:
        store_pid = serve.store_pid()
        before = mail(to=alias, subject="before the lock")
        assert serve.send(alias, before).stored

        with subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(serve.database), str(LOCK_SECONDS)],
            stdout=subprocess.PIPE, text=True,
        ) as holder:
            try:
                assert holder.stdout is not None
                assert holder.stdout.readline().strip() == "locked"
                locked = time.monotonic()
                load = Load(serve, alias, senders=3).start()
                try:
                    holder.wait(timeout=LOCK_SECONDS + 30)
                    released = time.monotonic()
                    assert holder.stdout.read().strip() == "released"
                    poll(lambda: load.accepted_after(released),
                         "mail to be accepted after the lock", timeout=20)
                finally:
                    load.stop()
            finally:
                if holder.poll() is None:
                    holder.kill()
        # The lock was surely held from `locked` until a moment before `locked + LOCK_SECONDS`.
        during = [s for s in load.sent
                  if s.started >= locked and s.finished < locked + LOCK_SECONDS - 1]
        assert len(during) >= 6, "too few transactions while the database was locked"
        assert all(s.outcome.code == 451 for s in during), [s.outcome for s in during]
        for item in load.sent:
            assert item.outcome.seconds < 20, item.outcome
            assert item.outcome.stage == "DATA" and item.outcome.code in (250, 451), item.outcome
            if item.outcome.code == 451:
                assert item.outcome.status == "4.3.0", item.outcome
        assert serve.up() and serve.store_pid() == store_pid, "the store process was replaced"
        after = mail(to=alias, subject="after the lock")
        assert serve.send(alias, after).stored
        assert serve.store_pid() == store_pid
        # Reported, not fixed here: the worker's background passes (analysis, alerts) log a
        # traceback when the lock outlasts their busy timeout: data/database.py's BEGIN
        # IMMEDIATE raises the driver's sqlite3.OperationalError, which their
        # `except SQLAlchemyError` misses.
        assert_clean_exit(serve, serve.stop(),
                          tolerated="sqlite3.OperationalError: database is locked")
    assert_all_stored(home / "canary.db", [before, *load.accepted(), after])


# --- 5. the store process killed ----------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.slow
def test_a_store_process_killed_under_load_costs_retries_never_a_message(
    acme: tuple[Path, str], logs: Path, dns_server: str
) -> None:
    home, alias = acme
    with serving(home, logs, dns=dns_server) as serve:
        old = serve.store_pid()
        load = Load(serve, alias, senders=4).start()
        try:
            poll(lambda: len(load.accepted()) >= 10, "mail to flow before the kill", timeout=20)
            os.kill(old, signal.SIGKILL)
            new = serve.store_pid(other_than=old, timeout=20)
            replaced = time.monotonic()
            poll(lambda: load.accepted_after(replaced) >= 10,
                 "mail to be accepted by the new store process", timeout=20)
        finally:
            load.stop()
        assert new != old and not alive(old)
        codes = load.codes()
        assert codes <= {("DATA", 250), ("DATA", 451)}, codes
        assert ("DATA", 451) in codes, "no sender saw the store process die"
        assert max(s.outcome.seconds for s in load.sent) < 20
        assert serve.up() and serve.store_pid() == new
        assert_clean_exit(serve, serve.stop())
    assert_all_stored(home / "canary.db", load.accepted())


# --- 6. the store process frozen ----------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.slow
def test_a_frozen_store_process_is_replaced_and_never_commits_afterwards(
    acme: tuple[Path, str], logs: Path, dns_server: str
) -> None:
    home, alias = acme
    database = home / "canary.db"
    with serving(home, logs, dns=dns_server) as serve:
        old = serve.store_pid()
        load = Load(serve, alias, senders=3).start()
        try:
            poll(lambda: len(load.accepted()) >= 10, "mail to flow before the freeze", timeout=20)
            os.kill(old, signal.SIGSTOP)
            frozen = time.monotonic()
            new = serve.store_pid(other_than=old, timeout=30)
            replaced = time.monotonic()
            assert replaced - frozen < 22, f"replaced only after {replaced - frozen:.0f} s"
            poll(lambda: load.accepted_after(replaced) >= 5,
                 "mail to be accepted by the new store process", timeout=15)
            assert time.monotonic() - frozen < 30
        finally:
            load.stop()
        old_state = process_info(old)
        if old_state is not None and old_state.state != "Z":
            # Still there (stopped) when it should have been killed: wake it, and see below
            # that it commits nothing.
            time.sleep(max(0.0, frozen + 30 - time.monotonic()))
            os.kill(old, signal.SIGCONT)
        counted = stored(database)
        time.sleep(2)
        assert stored(database) == counted, "rows appeared after the senders stopped"
        assert not alive(old), f"the frozen store process is still there: {process_info(old)}"

        codes = load.codes()
        assert codes <= {("DATA", 250), ("DATA", 451)}, codes
        assert ("DATA", 451) in codes, "no sender was answered while the store process hung"
        slowest = max(s.outcome.seconds for s in load.sent)
        assert slowest < 20, f"a sender waited {slowest:.0f} s for its reply"
        assert serve.up() and serve.store_pid() == new
        assert_clean_exit(serve, serve.stop())
    assert_all_stored(database, load.accepted())


# --- 7. SIGTERM to the whole process group ------------------------------------------------------


@pytest.mark.faults
@pytest.mark.slow
def test_sigterm_to_the_process_group_exits_0_and_keeps_every_accepted_message(
    acme: tuple[Path, str], logs: Path, dns_server: str
) -> None:
    home, alias = acme
    with serving(home, logs, dns=dns_server) as serve:
        load = Load(serve, alias, senders=4).start()
        poll(lambda: len(load.accepted()) >= 10, "mail to flow", timeout=20)

        # One transaction half-way through DATA when systemd's SIGTERM arrives.
        halfway = mail(to=alias, subject="half before SIGTERM, half after",
                       body="Some of this is sent before SIGTERM.\n" * 40)
        head, tail = halfway[: len(halfway) // 2], halfway[len(halfway) // 2:]
        client = smtplib.SMTP(serve.host, serve.port, timeout=30)
        try:
            client.ehlo()
            assert client.mail("bounces@acme.example")[0] == 250
            assert client.rcpt(alias)[0] == 250
            assert client.docmd("DATA")[0] == 354
            client.send(head)
            serve.signal_group(signal.SIGTERM)
            time.sleep(0.2)
            client.send(tail + b".\r\n")
            code, text = client.getreply()
        finally:
            client.close()
        exit_code = serve.process.wait(timeout=30)
        load.stop()
        assert (code, text[:5]) == (250, b"2.0.0"), text
        assert_clean_exit(serve, exit_code)
        poll(lambda: all(p.state == "Z" for p in serve.children()),
             "the store process and worker to end")
        for item in load.sent:
            assert item.outcome.code in (250, 421, 451, 0), item.outcome
    assert_all_stored(home / "canary.db", [*load.accepted(), halfway])


# --- 8. an orphaned store process ---------------------------------------------------------------


@pytest.mark.faults
def test_a_store_process_whose_listener_was_killed_ends_by_itself(
    acme: tuple[Path, str], logs: Path, dns_server: str
) -> None:
    home, alias = acme
    accepted = [mail(to=alias, subject=f"before the kill {n}") for n in range(3)]
    with serving(home, logs, dns=dns_server) as serve:
        for raw in accepted:
            assert serve.send(alias, raw).stored
        store_pid, worker_pid = serve.store_pid(), serve.worker_pid()
        os.kill(serve.pid, signal.SIGKILL)
        assert serve.process.wait(timeout=10) == -signal.SIGKILL
        poll(lambda: not alive(store_pid), "the orphaned store process to end", timeout=15)
        poll(lambda: not alive(worker_pid), "the orphaned worker to end", timeout=15)
        time.sleep(0.2)
        assert "Traceback" not in serve.stderr, serve.stderr
    assert_all_stored(home / "canary.db", accepted)

    # It comes back: a new listener on the same home takes mail.
    serve = start_serve(home, logs, dns=dns_server)
    try:
        again = mail(to=alias, subject="after the restart")
        assert serve.send(alias, again).stored
        assert_clean_exit(serve, serve.stop())
    finally:
        serve.kill()
    assert_all_stored(home / "canary.db", [*accepted, again])
