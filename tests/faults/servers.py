"""`canary serve` as a subprocess for the fault tests: start, watch, mail, signal, stop.

Import it as `from faults.servers import ...` (tests/ is on sys.path, and
tests/faults is a namespace package). `from servers import ...` does NOT work:
`servers` is already the package tests/servers (Dovecot, PostgreSQL), which
conftest loads as a pytest plugin.

`serving(home, logs, *options, dns=...)` runs `canary serve` in a process group
of its own (as systemd runs it) on a free loopback port, waits until it answers
the SMTP banner, and kills the whole group afterwards, orphans included. A
`Serve` finds its children (`store_pids`, `worker_pids`: told apart by their
signal dispositions: the store process ignores SIGTERM, the worker catches it),
reads its stderr log (the children inherit it), sends mail (`send`, one SMTP
transaction with every reply) and stops with a signal (`stop`). `stored` reads
what the home's SQLite database holds, read-only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, TypeVar

CANARY = shutil.which("canary") or str(Path(sys.executable).with_name("canary"))
HOST = "127.0.0.1"
HELO = "mx.sender.example"
SENDER = "bounces@acme.example"
START_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
DATABASE_NAME = "canary.db"

T = TypeVar("T")


# --- small things ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def clean_env(dns: str | None = None) -> dict[str, str]:
    """The environment for `canary`: none of the tester's Canary settings; CANARY_DNS if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    if dns is not None:
        env["CANARY_DNS"] = dns
    env["PYTHONUNBUFFERED"] = "1"
    return env


def poll(check: Callable[[], T | None], what: str, timeout: float = 10.0,
         interval: float = 0.05) -> T:
    """Poll until `check()` returns something truthy; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}; "
                                 f"last saw {value!r}")
        time.sleep(interval)


def message_id_of(raw: bytes) -> str:
    """The Message-ID header of a raw message ('' if none)."""
    return str(BytesHeaderParser().parsebytes(raw).get("Message-ID", "")).strip()


# --- processes --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    """R, S, D, T (stopped), Z (zombie)..."""
    cmdline: str
    ignored: int
    """The SigIgn mask from /proc/PID/status."""
    caught: int
    """The SigCgt mask."""

    def ignores(self, signum: int) -> bool:
        return bool(self.ignored & (1 << (signum - 1)))

    def catches(self, signum: int) -> bool:
        return bool(self.caught & (1 << (signum - 1)))

    @property
    def spawned(self) -> bool:
        """A multiprocessing child started with the spawn method (store process, worker)."""
        return "spawn_main" in self.cmdline

    @property
    def is_store(self) -> bool:
        return self.spawned and self.ignores(signal.SIGTERM)

    @property
    def is_worker(self) -> bool:
        return self.spawned and self.catches(signal.SIGTERM)


def process_info(pid: int) -> ProcessInfo | None:
    """What /proc says about `pid`; None if it is gone (reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    masks = {}
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigIgn", "SigCgt"):
            masks[key] = int(value.strip(), 16)
    return ProcessInfo(pid, int(fields[1]), int(fields[2]), fields[0], cmdline,
                       masks.get("SigIgn", 0), masks.get("SigCgt", 0))


def group_members(pgid: int) -> list[ProcessInfo]:
    """Every process (zombies included) in process group `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = process_info(int(entry.name))
            if info is not None and info.pgid == pgid:
                members.append(info)
    return sorted(members, key=lambda p: p.pid)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a stopped one is alive)."""
    info = process_info(pid)
    return info is not None and info.state != "Z"


def running(pid: int) -> bool:
    """Alive and not stopped (SIGSTOP) either."""
    info = process_info(pid)
    return info is not None and info.state not in ("Z", "T", "t", "X")


# --- mail -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one SMTP transaction ended."""

    stage: str
    """Where it ended: "connect", "MAIL", "RCPT", "DATA" (the final reply), or "lost" when
    the connection broke or timed out (code 0)."""
    code: int
    text: str
    seconds: float
    """From connecting to the last reply."""

    @property
    def stored(self) -> bool:
        """Answered 250 after DATA: Canary has promised to keep it."""
        return self.stage == "DATA" and self.code == 250

    @property
    def status(self) -> str:
        """The enhanced status code, e.g. 4.3.0 ('' if none)."""
        head = self.text.split(" ", 1)[0]
        return head if head[:1].isdigit() and head.count(".") == 2 else ""


def send(port: int, rcpt: str, raw: bytes, *, sender: str = SENDER, timeout: float = 60.0,
         host: str = HOST) -> Outcome:
    """One SMTP transaction with smtplib; never raises for SMTP trouble, says where it ended."""
    started = time.monotonic()

    def outcome(stage: str, code: int, text: bytes | str) -> Outcome:
        words = text.decode(errors="replace") if isinstance(text, bytes) else text
        return Outcome(stage, code, words, time.monotonic() - started)

    try:
        client = smtplib.SMTP(host, port, local_hostname=HELO, timeout=timeout)
    except (OSError, smtplib.SMTPException) as error:
        return outcome("connect", 0, repr(error))
    try:
        client.ehlo()
        code, text = client.mail(sender)
        if code != 250:
            return outcome("MAIL", code, text)
        code, text = client.rcpt(rcpt)
        if code != 250:
            return outcome("RCPT", code, text)
        try:
            code, text = client.data(raw)
        except smtplib.SMTPDataError as error:
            return outcome("DATA", error.smtp_code, error.smtp_error)
        return outcome("DATA", code, text)
    except (OSError, smtplib.SMTPException) as error:
        return outcome("lost", 0, repr(error))
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()
        client.close()


def banner(port: int, timeout: float = 5.0, host: str = HOST) -> int | None:
    """The code of the SMTP greeting, or None if nothing answers."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            data = b""
            while not data.endswith(b"\n"):
                piece = sock.recv(1024)
                if not piece:
                    break
                data += piece
            with contextlib.suppress(OSError):
                sock.sendall(b"QUIT\r\n")
    except OSError:
        return None
    return int(data[:3]) if data[:3].isdigit() else None


# --- the serve process ------------------------------------------------------------------------


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    port: int
    home: Path
    stderr_path: Path
    stdout_path: Path
    host: str = HOST

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pgid(self) -> int:
        """Its own process group (started in a session of its own)."""
        return self.process.pid

    @property
    def stderr(self) -> str:
        """Its log so far, with whatever its children wrote (they inherit its stderr)."""
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def database(self) -> Path:
        return self.home / DATABASE_NAME

    def up(self) -> bool:
        """The serve process itself is running."""
        return self.process.poll() is None

    def children(self) -> list[ProcessInfo]:
        """Its process group without itself: store process(es), worker, resource tracker,
        zombies and orphans included."""
        return [p for p in group_members(self.pgid) if p.pid != self.pid]

    def store_pids(self) -> list[int]:
        """Store processes alive now (stopped ones included, zombies not)."""
        return [p.pid for p in self.children() if p.is_store and p.state != "Z"]

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self.children() if p.is_worker and p.state != "Z"]

    def store_pid(self, *, other_than: int | None = None, timeout: float = 20.0) -> int:
        """The running (not stopped) store process, waiting for one other than `other_than`."""
        def found() -> int | None:
            pids = [pid for pid in self.store_pids() if pid != other_than and running(pid)]
            return pids[0] if len(pids) == 1 else None
        return poll(found, "a running store process" + (
            f" other than {other_than}" if other_than else ""), timeout)

    def worker_pid(self, timeout: float = 20.0) -> int:
        def found() -> int | None:
            pids = self.worker_pids()
            return pids[0] if len(pids) == 1 else None
        return poll(found, "the worker process", timeout)

    def answers(self) -> bool:
        return banner(self.port, host=self.host) == 220

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"canary serve did not start (exit {self.process.poll()})"
                                     f":\n{self.stderr}")
            time.sleep(0.1)

    def send(self, rcpt: str, raw: bytes, **options: Any) -> Outcome:
        return send(self.port, rcpt, raw, host=self.host, **options)

    def send_signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def signal_group(self, signum: int) -> None:
        """What systemd does: the signal to every process of the group."""
        os.killpg(self.pgid, signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = EXIT_TIMEOUT, *,
             group: bool = False) -> int:
        """Send `signum` (to the whole group if `group`) and return the exit code."""
        if self.process.poll() is None:
            if group:
                self.signal_group(signum)
            else:
                self.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL to the whole group (orphans too) and reap the serve process."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=EXIT_TIMEOUT)
        # Orphans (reparented) leave the group only when they die.
        with contextlib.suppress(AssertionError):
            poll(lambda: not [p for p in group_members(self.pgid) if p.state != "Z"],
                 "the process group to die", timeout=10)


def start_serve(home: Path, logs: Path, *options: str, dns: str | None,
                env: dict[str, str] | None = None, port: int | None = None,
                wait: bool = True) -> Serve:
    """`canary serve --home HOME --port PORT [--dns DNS] OPTIONS...` in a new session.

    Logs go to files in `logs` (stderr: serve-PORT-N.err). Unless `wait` is False,
    returns once it answers the SMTP banner.
    """
    port = port or free_port()
    logs.mkdir(parents=True, exist_ok=True)
    number = sum(1 for _ in logs.glob(f"serve-{port}-*.err"))
    stderr_path = logs / f"serve-{port}-{number}.err"
    stdout_path = logs / f"serve-{port}-{number}.out"
    command = [CANARY, "serve", "--home", str(home), "--port", str(port), "--host", HOST]
    if dns is not None:
        command += ["--dns", dns]
    command += list(options)
    with stderr_path.open("wb") as err, stdout_path.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                   env=env if env is not None else clean_env(),
                                   start_new_session=True)
    serve = Serve(process, port, home, stderr_path, stdout_path)
    if wait:
        try:
            serve.wait_ready()
        except BaseException:
            serve.kill()
            raise
    return serve


@contextmanager
def serving(home: Path, logs: Path, *options: str, dns: str | None,
            env: dict[str, str] | None = None, port: int | None = None) -> Iterator[Serve]:
    """`start_serve`, and the whole process group killed afterwards if still there."""
    serve = start_serve(home, logs, *options, dns=dns, env=env, port=port)
    try:
        yield serve
    finally:
        serve.kill()


# --- DNS that never answers ---------------------------------------------------------------------


class SilentDns:
    """A UDP (and TCP) socket on loopback that reads DNS queries and never answers.

    `with SilentDns() as server: ... --dns server.address`; `queries` counts
    what arrived.
    """

    def __init__(self, host: str = HOST) -> None:
        self._host = host
        self.queries = 0
        self.port = 0
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._held: list[socket.socket] = []

    @property
    def address(self) -> str:
        return f"{self._host}:{self.port}"

    def start(self) -> str:
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self._host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket()
            try:
                tcp.bind((self._host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            break
        else:
            raise OSError("no free port for the silent DNS server")
        udp.settimeout(0.1)
        tcp.settimeout(0.1)
        self._udp, self._tcp, self.port = udp, tcp, port
        self._thread = threading.Thread(target=self._run, name="silent-dns", daemon=True)
        self._thread.start()
        return self.address

    def _run(self) -> None:
        assert self._udp is not None and self._tcp is not None
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError, BlockingIOError):
                self._udp.recvfrom(4096)
                self.queries += 1
            with contextlib.suppress(TimeoutError, BlockingIOError):
                connection, _ = self._tcp.accept()
                self._held.append(connection)  # accepted, never answered

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in [self._udp, self._tcp, *self._held]:
            if sock is not None:
                sock.close()

    def __enter__(self) -> SilentDns:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- what the database holds --------------------------------------------------------------------


def read_only(database: Path) -> sqlite3.Connection:
    """A read-only connection to the SQLite database (never takes a write lock)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    connection.row_factory = sqlite3.Row
    return connection


def message_rows(database: Path) -> list[dict[str, Any]]:
    """Every row of table `message`, with the Message-ID read from the stored raw message."""
    with closing(read_only(database)) as db:
        rows = db.execute(
            "SELECT message.*, messageevidence.authentication, messageevidence.dns_answers, "
            "rawmessage.content AS raw_content FROM message "
            "JOIN rawmessage ON rawmessage.sha256 = message.sha256 "
            "LEFT JOIN messageevidence ON messageevidence.message_id = message.id "
            "ORDER BY message.id"
        ).fetchall()
    result = []
    for row in rows:
        values = dict(row)
        raw = zlib.decompress(values.pop("raw_content"))
        values["header_message_id"] = message_id_of(raw)
        result.append(values)
    return result


def stored(database: Path) -> Counter[str]:
    """How many `message` rows each Message-ID has."""
    return Counter(row["header_message_id"] for row in message_rows(database))


def assert_all_stored(database: Path, accepted: list[bytes]) -> Counter[str]:
    """Each message answered 250 is in the database exactly once (per recipient)."""
    counts = stored(database)
    missing = [message_id_of(raw) for raw in accepted if counts[message_id_of(raw)] == 0]
    assert not missing, f"answered 250 but not stored: {missing}"
    doubled = {mid: n for mid, n in counts.items() if n > 1}
    assert not doubled, f"stored more than once: {doubled}"
    return counts
