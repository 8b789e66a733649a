"""Hostile clients against the real listener: what one client may cost, and that it is bounded.

Each test attacks the listener the way a scanner, a spammer or a broken
client does (endless command lines, connection floods, error and probe
floods, trickled DATA, thousands of DKIM signatures, descriptor exhaustion,
fuzzed mail) and checks three things: the replies are the documented ones,
nothing answered 250 is lost, and the listener still takes mail afterwards.

Per-client limits do not apply to relays allowed to XFORWARD (127.0.0.1 by
default), so the per-client attacks come from other loopback addresses
(127.0.0.2, 127.0.0.3).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import random
import resource
import select
import shutil
import smtplib
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import signing
from conftest import CANARY_DOMAIN, RunningListener, issue, start_listener
from factories import make_message
from faults.servers import serving
from mailflow import HELO, SENDER, connect, crlf, mail, rows, stored_raw, wait_for
from signing import rsa_key
from sqlmodel import select as sql_select

from data.database import Store
from data.home import Home, init_home
from data.models import Message, RawMessage
from smtp_listener.authenticate import MAX_DKIM_SIGNATURES
from smtp_listener.limits import ClientLimits
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones

EXEMPT = "127.0.0.1"
"""An XFORWARD peer by default: no per-client limits."""
CLIENT_A = "127.0.0.2"
CLIENT_B = "127.0.0.3"
CLIENT_C = "127.0.0.4"


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture
def acme(home: Home, store: Store) -> str:
    return issue(home, store, "Acme", "acme.example").address


def count(home: Home, table: str = "message") -> int:
    """Rows in one table of the home's SQLite database, read from a connection of its own."""
    with closing(sqlite3.connect(home.database_path, timeout=30)) as db:
        (number,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(number)


def read_reply(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """One (possibly multi-line) SMTP reply; b'' if the server closed first."""
    sock.settimeout(timeout)
    data = b""
    while True:
        lines = data.split(b"\r\n")
        complete = lines[:-1]
        if complete and len(complete[-1]) >= 4 and complete[-1][3:4] == b" ":
            return data
        piece = sock.recv(4096)
        if not piece:
            return data
        data += piece


def open_client(host: str, port: int, source: str, timeout: float = 10.0
                ) -> tuple[socket.socket, bytes]:
    """A raw connection from `source` and its greeting line."""
    sock = socket.create_connection((host, port), timeout=timeout, source_address=(source, 0))
    try:
        return sock, read_reply(sock, timeout)
    except BaseException:
        sock.close()
        raise


def closed_by_server(sock: socket.socket, timeout: float = 5.0) -> bool:
    """The server closed the connection: reading gives end of file (or a reset)."""
    sock.settimeout(timeout)
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


def smtp_from(running: RunningListener, source: str) -> smtplib.SMTP:
    return smtplib.SMTP(running.host, running.port, local_hostname=HELO, timeout=10,
                        source_address=(source, 0))


def assert_takes_mail(host: str, port: int, alias: str, source: str = EXEMPT) -> bytes:
    """A fresh connection gets the 220 greeting and a message is answered 250."""
    raw = mail(subject=f"after the attack {uuid.uuid4().hex}")
    with smtplib.SMTP(host, port, local_hostname=HELO, timeout=15,
                      source_address=(source, 0)) as client:
        code, _ = client.ehlo()
        assert code == 250
        assert client.mail(SENDER)[0] == 250
        assert client.rcpt(alias)[0] == 250
        code, text = client.data(raw)
        assert code == 250, text
    return raw


@contextlib.contextmanager
def listening(home: Home, store: Store, **settings: object) -> Iterator[RunningListener]:
    running = start_listener(home, store, **settings)
    try:
        yield running
    finally:
        running.stop()


# --- 1. long lines --------------------------------------------------------------------------

FLOOD_CONNECTIONS = 8
FLOOD_BYTES = 24 * 1024 * 1024
LONG_DATA_LINE = 2 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    """The resident set size of process `pid` (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class PeakSampler:
    """Samples a process's RSS in a thread until stopped; `peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = rss_bytes(pid)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, rss_bytes(self._pid))
            time.sleep(0.005)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()


def endless_command_line(host: str, port: int) -> bytes:
    """`MAIL FROM:<aaaa…` without a line end for FLOOD_BYTES, then the line end: the reply."""
    sock, greeting = open_client(host, port, EXEMPT, timeout=60)
    with sock:
        assert greeting.startswith(b"220"), greeting
        sock.sendall(b"MAIL FROM:<")
        chunk = b"a" * (1024 * 1024)
        try:
            for _ in range(FLOOD_BYTES // len(chunk)):
                sock.sendall(chunk)
            sock.sendall(b">\r\n")
            return read_reply(sock, timeout=60)
        except (ConnectionResetError, BrokenPipeError):
            return b"disconnected"


@pytest.mark.faults
@pytest.mark.slow
def test_endless_command_lines_cost_kilobytes_and_long_data_lines_are_kept(
    home: Home, store: Store, acme: str, tmp_path: Path, empty_dns: str
) -> None:
    long_line = (
        b"From: Acme News <news@acme.example>\r\nTo: " + acme.encode() + b"\r\n"
        b"Subject: one long line\r\nMessage-ID: <long-line@acme.example>\r\n\r\n"
        + bytes(ord("a") + n % 26 for n in range(LONG_DATA_LINE)) + b"\r\n"
    )
    with serving(home.path, tmp_path / "logs", dns=empty_dns) as server:
        before = rss_bytes(server.pid)
        with PeakSampler(server.pid) as sampler:
            started = time.monotonic()
            replies: list[bytes] = [b""] * FLOOD_CONNECTIONS

            def flood(n: int) -> None:
                replies[n] = endless_command_line(server.host, server.port)

            threads = [threading.Thread(target=flood, args=(n,))
                       for n in range(FLOOD_CONNECTIONS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            seconds = time.monotonic() - started
        growth = sampler.peak - before
        print(f"\nRSS of canary serve: {before / 2**20:.1f} MiB before, peak "
              f"{sampler.peak / 2**20:.1f} MiB while {FLOOD_CONNECTIONS} clients sent "
              f"{FLOOD_BYTES / 2**20:.0f} MiB command lines ({seconds:.1f} s): "
              f"+{growth / 2**20:.1f} MiB")
        assert all(reply.startswith(b"500") or reply == b"disconnected" for reply in replies), \
            replies
        assert growth < 40 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB"

        normal = assert_takes_mail(server.host, server.port, acme)
        with smtplib.SMTP(server.host, server.port, local_hostname=HELO, timeout=60) as client:
            assert client.sendmail(SENDER, [acme], long_line) == {}
        assert server.up()
    assert count(home) == 2
    for raw in (normal, long_line):
        assert stored_raw(store, hashlib.sha256(raw).hexdigest()) == raw


# --- 2. connections -------------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.usefixtures("listener_loop")
def test_connections_are_limited_per_client_and_in_all(
    home: Home, store: Store, acme: str
) -> None:
    limits = ClientLimits(max_connections=20, max_connections_per_client=8)
    held: dict[str, list[socket.socket]] = {EXEMPT: [], CLIENT_A: [], CLIENT_B: [], CLIENT_C: []}

    def attempt(source: str) -> bytes:
        """Connect from `source`: a greeted connection is kept open, a refused one closed."""
        sock, greeting = open_client(running.host, running.port, source)
        if greeting.startswith(b"220"):
            held[source].append(sock)
        else:
            assert closed_by_server(sock), "a refused connection was left open"
            sock.close()
        return greeting[:9]

    def close(source: str, how_many: int) -> None:
        for sock in held[source][:how_many]:
            sock.close()
        del held[source][:how_many]

    with listening(home, store, limits=limits) as running:
        try:
            # The relay (an XFORWARD peer) is not limited per client: 10 > 8.
            assert [attempt(EXEMPT)[:3] for _ in range(10)] == [b"220"] * 10
            # Another client gets 8, the 9th is refused at once.
            assert [attempt(CLIENT_A)[:3] for _ in range(8)] == [b"220"] * 8
            assert attempt(CLIENT_A) == b"421 4.7.0"
            # A third client still gets in, until the total of 20...
            assert [attempt(CLIENT_B)[:3] for _ in range(2)] == [b"220"] * 2
            # ...beyond which everyone is refused, the relay too.
            assert attempt(CLIENT_B) == b"421 4.7.0"
            assert attempt(CLIENT_C) == b"421 4.7.0"
            assert attempt(EXEMPT) == b"421 4.7.0"
            assert running.thread.listener.clients.refused == 4

            # Closing some lets new ones in: the server counts them down as they close.
            close(CLIENT_A, 3)
            for source in (CLIENT_C, CLIENT_A, EXEMPT):  # CLIENT_A: 6 of its 8 again
                wait_for(lambda source=source: attempt(source).startswith(b"220"),
                         "a slot freed by closed connections", timeout=10)
            assert attempt(CLIENT_B) == b"421 4.7.0"  # 20 again

            # A held connection still works.
            sock = held[CLIENT_A][0]
            sock.sendall(b"NOOP\r\n")
            assert read_reply(sock).startswith(b"250")
        finally:
            for source in list(held):
                close(source, len(held[source]))
        raw = wait_for(lambda: assert_takes_mail(running.host, running.port, acme),
                       "a connection slot after all closed", timeout=10)
    assert count(home) == 1
    assert raw


# --- 3. errors ------------------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.usefixtures("listener_loop")
def test_error_flood_gets_421_and_the_session_is_closed(
    home: Home, store: Store, acme: str
) -> None:
    limits = ClientLimits(error_limit=20, probe_limit=1000)
    with listening(home, store, limits=limits) as running:
        replies: list[bytes] = []
        with smtp_from(running, CLIENT_A) as client:
            client.ehlo()
            assert client.mail(SENDER)[0] == 250
            for n in range(30):
                try:
                    code, text = client.rcpt(f"guess{n}@{CANARY_DOMAIN}")
                except smtplib.SMTPServerDisconnected:
                    break
                replies.append(f"{code} ".encode() + text[:5])
                if code == 421:
                    break
                if len(replies) == 20:
                    # The 20th error is answered, then 421 follows at once and the server
                    # closes: read it without sending more (a write to a closed socket can
                    # reset the connection before the 421 is read).
                    code, text = client.getreply()
                    replies.append(f"{code} ".encode() + text[:5])
                    break
            assert client.sock is not None
            assert closed_by_server(client.sock)
            client.close()
        assert replies == [b"550 5.1.1"] * 20 + [b"421 4.7.0"], replies
        assert_takes_mail(running.host, running.port, acme, source=CLIENT_A)
    assert count(home) == 1


# --- 4. probes ------------------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.usefixtures("listener_loop")
def test_probe_flood_gets_450_and_is_not_written(home: Home, store: Store, acme: str) -> None:
    limits = ClientLimits(probe_limit=10, error_limit=20)
    codes: list[list[str]] = []
    with listening(home, store, limits=limits) as running:
        for session in range(3):  # 4 unknown recipients per session: under the error limit
            with smtp_from(running, CLIENT_A) as client:
                client.ehlo()
                assert client.mail(SENDER)[0] == 250
                replies = []
                for n in range(4):
                    code, text = client.rcpt(f"probe{session}-{n}@{CANARY_DOMAIN}")
                    replies.append(f"{code} {text[:5].decode()}")
                code, _ = client.rcpt(acme)
                replies.append(str(code))
                assert client.data(mail(subject=f"among probes {session}"))[0] == 250
                codes.append(replies)
        raw = assert_takes_mail(running.host, running.port, acme, source=CLIENT_A)
        assert raw
    # The listener is stopped: every probe it queued is committed.
    assert codes == [
        ["550 5.1.1"] * 4 + ["250"],
        ["550 5.1.1"] * 4 + ["250"],
        ["550 5.1.1"] * 2 + ["450 4.7.1"] * 2 + ["250"],
    ], codes
    assert count(home, "probe") == 10
    assert count(home) == 4


# --- 5. slow DATA ---------------------------------------------------------------------------


@pytest.mark.faults
@pytest.mark.slow
def test_trickled_data_is_cut_with_421_and_fast_clients_are_unaffected(
    home: Home, store: Store, acme: str
) -> None:
    idle, rate = 2.0, 100
    limits = ClientLimits(min_data_rate=rate)
    with listening(home, store, idle_timeout=idle, limits=limits) as running:
        fast_replies: list[int] = []
        stop_fast = threading.Event()

        def fast() -> None:
            while not stop_fast.is_set():
                raw = mail(subject=f"fast {len(fast_replies)}")
                try:
                    with smtp_from(running, CLIENT_B) as client:
                        refused = client.sendmail(SENDER, [acme], raw)
                        fast_replies.append(250 if refused == {} else 0)
                except (OSError, smtplib.SMTPException):
                    fast_replies.append(0)
                time.sleep(0.2)

        sock, greeting = open_client(running.host, running.port, CLIENT_A)
        fast_thread = threading.Thread(target=fast)
        try:
            assert greeting.startswith(b"220")
            for line in (f"EHLO {HELO}", f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{acme}>", "DATA"):
                sock.sendall(line.encode() + b"\r\n")
                assert read_reply(sock)[:1] in (b"2", b"3")
            fast_thread.start()
            started = time.monotonic()
            sent = 0
            reply = b""
            payload = mail(subject="trickled", body="x" * 200)
            while time.monotonic() - started < 20:
                readable, _, _ = select.select([sock], [], [], 0.5)
                if readable:
                    reply = read_reply(sock)
                    break
                sock.sendall(payload[sent:sent + 1])
                sent += 1
            elapsed = time.monotonic() - started
            assert reply.startswith(b"421 4.4.2"), (reply, elapsed)
            assert closed_by_server(sock)
        finally:
            sock.close()
            stop_fast.set()
            if fast_thread.is_alive():
                fast_thread.join(timeout=30)
        print(f"\ntrickled DATA cut after {elapsed:.1f} s and {sent} bytes; "
              f"{len(fast_replies)} fast messages meanwhile")
        # Cut about idle + bytes/rate after DATA: a byte every 0.5 s, never 2 s idle.
        assert idle <= elapsed <= idle + sent / rate + 1.5, (elapsed, sent)
        assert fast_replies and set(fast_replies) == {250}, fast_replies
        assert_takes_mail(running.host, running.port, acme, source=CLIENT_A)
    assert count(home) == len(fast_replies) + 1  # nothing of the trickled message


# --- 6. DKIM signatures ---------------------------------------------------------------------

SIGNATURES = 2000


@pytest.mark.faults
@pytest.mark.slow
def test_two_thousand_dkim_signatures_cost_ten_verifications(
    home: Home, store: Store, acme: str, zones: Zones, resolver: Resolver
) -> None:
    key = rsa_key("acme.example", "s1")
    key.publish(zones)
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=none")
    body = signing.crlf(make_message(to=acme, subject="signed two thousand times"))
    real = key.signature(body)
    assert b" s=s1;" in real
    # The real signature, then copies of it and variants naming keys nobody published.
    copies = [real if n % 2 else real.replace(b" s=s1;", f" s=v{n};".encode())
              for n in range(1, SIGNATURES)]
    raw = real + b"".join(copies) + body
    assert raw.count(b"DKIM-Signature:") == SIGNATURES

    running = start_listener(home, store, resolver)
    try:
        with connect(running) as client:
            assert client.sendmail(SENDER, [acme], raw) == {}
        started = time.monotonic()
        assert running.thread.settle(30), "analysis did not finish within 30 s"
        heavy_seconds = time.monotonic() - started

        normal = mail(subject="right after the heavy one")
        with connect(running) as client:
            assert client.sendmail(SENDER, [acme], normal) == {}
        started = time.monotonic()
        assert running.thread.settle(10), "the next message waited"
        normal_seconds = time.monotonic() - started
        assert running.thread.listener.worker_process_id is not None
    finally:
        running.stop()
    print(f"\n{SIGNATURES} signatures ({len(raw) / 2**20:.1f} MiB) analysed in "
          f"{heavy_seconds:.1f} s; the next message in {normal_seconds:.1f} s")

    heavy, following = sorted(rows(store, Message), key=lambda m: m["id"])
    assert stored_raw(store, heavy["sha256"]) == raw
    assert heavy["analysed_at"] is not None and following["analysed_at"] is not None
    dkim = json.loads(heavy["authentication"])["dkim"]
    assert len(dkim) == SIGNATURES
    checked, unchecked = dkim[:MAX_DKIM_SIGNATURES], dkim[MAX_DKIM_SIGNATURES:]
    # The copies of the real signature pass; the variants name keys nobody published.
    assert [(d["selector"], d["result"]) for d in checked] == [
        ("s1", "pass") if n == 0 or n % 2 else (f"v{n}", "fail")
        for n in range(MAX_DKIM_SIGNATURES)
    ], checked
    assert checked[0] == {"result": "pass", "domain": "acme.example", "selector": "s1",
                          "algorithm": "rsa-sha256", "reason": ""}
    assert all(d["result"] == "none" and d["reason"].startswith("not checked")
               for d in unchecked), [d for d in unchecked if d["result"] != "none"][:3]
    assert heavy["auth_domain"] == "acme.example", heavy["reason"]
    assert following["problem"] is None


# --- 7. file descriptors --------------------------------------------------------------------

DESCRIPTOR_HEADROOM = 24
"""Descriptors left to the serve process beyond what it holds once started."""


def open_descriptors(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


@dataclass
class DescriptorRun:
    limit: int
    """RLIMIT_NOFILE of the serve process."""
    greeted: int
    """Connections greeted before the rest waited."""
    recovered: float
    """Seconds from the clients closing to a new connection's greeting."""
    log_while_out: str
    log: str


def exhaust_descriptors(home: Home, logs: Path, dns: str, alias: str) -> DescriptorRun:
    """`canary serve` with few descriptors: connect until connections wait unanswered, stay
    out of descriptors a few seconds, close them all, then deliver a message."""
    held: list[socket.socket] = []
    with serving(home.path, logs, "--max-connections", "1000",
                 "--max-connections-per-client", "1000", dns=dns) as server:
        # What preexec_fn=setrlimit would do, set once it has started (its children, the
        # store process and the worker, keep theirs): the accepting process runs short.
        limit = open_descriptors(server.pid) + DESCRIPTOR_HEADROOM
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (limit, limit))
        greeted = unanswered = 0
        try:
            while unanswered < 3 and len(held) < 400:
                sock = socket.create_connection((server.host, server.port), timeout=5)
                held.append(sock)
                try:
                    greeting = read_reply(sock, timeout=3.0)  # a busy machine is slow
                except TimeoutError:
                    unanswered += 1  # accepted by the kernel, not by the listener
                    continue
                assert greeting.startswith(b"220"), greeting
                greeted += 1
            # Descriptors it held at start but closed since (the readiness probe) leave it a
            # couple more than the headroom.
            assert unanswered == 3 and greeted <= DESCRIPTOR_HEADROOM + 4, greeted
            time.sleep(2.5)  # asyncio tries to accept again every second meanwhile
            log_while_out = server.stderr
        finally:
            for sock in held:
                sock.close()
        started = time.monotonic()
        wait_for(lambda: server.answers(), "the 220 greeting once descriptors are free",
                 timeout=10)
        recovered = time.monotonic() - started
        assert_takes_mail(server.host, server.port, alias)
        assert server.up()
        return DescriptorRun(limit, greeted, recovered, log_while_out, server.stderr)


@pytest.mark.faults
@pytest.mark.slow
def test_running_out_of_descriptors_is_logged_without_tracebacks_and_passes(
    home: Home, store: Store, acme: str, tmp_path: Path, empty_dns: str
) -> None:
    run = exhaust_descriptors(home, tmp_path / "logs", empty_dns, acme)
    print(f"\n{run.greeted} connections greeted with {run.limit} descriptors; greeting again "
          f"{run.recovered:.1f} s after the clients closed")
    # Once per episode, not once per accept attempt (every second while out).
    assert 1 <= run.log_while_out.count("out of file descriptors") <= 2, run.log_while_out
    assert run.log.count("out of file descriptors") <= 2, run.log
    assert "file descriptors are free again" in run.log.rpartition("out of file descriptors")[2]
    assert "Traceback" not in run.log, run.log
    assert "socket.accept() out of system resource" not in run.log, run.log
    assert run.recovered < 5
    assert count(home) == 1


@pytest.mark.faults
@pytest.mark.slow
def test_one_descriptor_shortage_is_one_episode(
    home: Home, store: Store, acme: str, tmp_path: Path, empty_dns: str
) -> None:
    run = exhaust_descriptors(home, tmp_path / "logs", empty_dns, acme)
    assert run.log_while_out.count("out of file descriptors") == 1, run.log_while_out
    assert "free again" not in run.log_while_out, run.log_while_out
    assert run.log.count("free again") == 1, run.log


# --- 8. fuzz --------------------------------------------------------------------------------

FUZZ_MESSAGES = 5000
FUZZ_CONNECTIONS = 8
FUZZ_SEED = 20_261_201


def _seed_messages(alias: str) -> list[bytes]:
    """Realistic mail to mutate: plain, multipart, nested, encoded, list mail, a bounce."""
    to = alias.encode()
    head = (b"From: Acme News <news@acme.example>\r\nTo: " + to + b"\r\n"
            b"Date: Mon, 1 Dec 2025 10:00:00 +0000\r\n")
    return [
        mail(to=alias, subject="plain", body="Hello there.\nSecond line.\n.\n..dots\n"),
        head + b"Subject: alternative\r\nMessage-ID: <alt@acme.example>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n"
        b"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSale!\r\n"
        b"--b1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Sale!</p>\r\n--b1--\r\n",
        head + b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= nested\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=outer\r\n\r\npreamble\r\n--outer\r\n"
        b"Content-Type: multipart/related; boundary=inner\r\n\r\n--inner\r\n"
        b"Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"<b>Caf=C3=A9</b> =\r\nsoft break\r\n--inner\r\nContent-Type: image/png\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUgAAAAEAAAAB\r\n"
        b"--inner--\r\n--outer\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\n"
        b"Content-Disposition: attachment; filename=\"a.pdf\"\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--outer--\r\nepilogue\r\n",
        b"Return-Path: <bounce-123@mailer.esp.example>\r\n"
        b"Received: from mx.esp.example (mx.esp.example [192.0.2.7])\r\n\tby mx.canary.example"
        b" with ESMTPS id abc; Mon, 1 Dec 2025 10:00:00 +0000\r\n"
        b"Authentication-Results: mx.canary.example; spf=pass smtp.mailfrom=esp.example;\r\n"
        b"\tdkim=pass header.d=acme.example\r\n"
        b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=acme.example; s=s1;\r\n"
        b"\th=from:to:subject; bh=AAAA; b=BBBB\r\n"
        b"List-Unsubscribe: <mailto:unsub@esp.example>, <https://esp.example/u/1>\r\n"
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nPrecedence: bulk\r\n"
        + head + b"Subject: Weekly deals\r\nMessage-ID: <list@esp.example>\r\n\r\n"
        b"Deals of the week.\r\n",
        b"From: Acme N\xe9ws <news@acme.example>\r\nTo: " + to + b"\r\n"
        b"Subject: Caf\xe9 \xff\xfe latin-1\r\nContent-Type: text/plain; charset=latin-1\r\n"
        b"\r\nPrix r\xe9duits.\r\n",
        b"From: MAILER-DAEMON@mx.elsewhere.example\r\nTo: " + to + b"\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=r\r\n\r\n"
        b"--r\r\n\r\nSorry.\r\n--r\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Final-Recipient: rfc822; x@y.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--r\r\nContent-Type: message/rfc822\r\n\r\n" + head
        + b"Subject: inner\r\n\r\ninner body\r\n--r--\r\n",
        mail(to=alias, subject="reply", headers={"In-Reply-To": "<x@acme.example>",
                                                 "Reply-To": "Sales <sales@acme.example>"}),
    ]


class Mutator:
    """Seeded mutations of raw mail: bytes, headers, MIME structure, line ends, sizes."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def __call__(self, raw: bytes) -> bytes:
        for _ in range(self.random.randint(1, 4)):
            raw = self.random.choice(self._mutations)(self, raw)
        return raw

    def _offset(self, raw: bytes) -> int:
        return self.random.randrange(len(raw) + 1)

    def flip(self, raw: bytes) -> bytes:
        data = bytearray(raw)
        for _ in range(self.random.randint(1, 8)):
            if data:
                data[self.random.randrange(len(data))] ^= 1 << self.random.randrange(8)
        return bytes(data)

    def insert(self, raw: bytes) -> bytes:
        junk = self.random.choice([b"\x00", b"\r", b"\n", b"\r\n.\r\n", b".", b"\xff\xfe",
                                   b"\xc3(", b"=?utf-8?b?", b"--", b"\r\n\r\n", b":",
                                   bytes(self.random.randrange(256) for _ in range(16))])
        at = self._offset(raw)
        return raw[:at] + junk + raw[at:]

    def delete(self, raw: bytes) -> bytes:
        at = self._offset(raw)
        return raw[:at] + raw[at + self.random.randint(1, 64):]

    def truncate(self, raw: bytes) -> bytes:
        return raw[:self._offset(raw)]

    def _header_lines(self, raw: bytes) -> tuple[list[bytes], bytes]:
        head, separator, body = raw.partition(b"\r\n\r\n")
        return head.split(b"\r\n"), separator + body

    def duplicate_header(self, raw: bytes) -> bytes:
        lines, rest = self._header_lines(raw)
        line = self.random.choice(lines)
        lines.insert(self.random.randrange(len(lines) + 1), line)
        return b"\r\n".join(lines) + rest

    def drop_header(self, raw: bytes) -> bytes:
        lines, rest = self._header_lines(raw)
        if self.random.random() < 0.5:
            kept = [line for line in lines if not line.lower().startswith(b"from:")]
        else:
            kept = lines[:]
            del kept[self.random.randrange(len(kept))]
        return b"\r\n".join(kept) + rest

    def break_boundary(self, raw: bytes) -> bytes:
        choice = self.random.randrange(3)
        if choice == 0:
            return raw.replace(b"--", b"-", 1)
        if choice == 1:
            return raw.replace(b'boundary="', b'boundary="x', 1).replace(b"boundary=", b"boundary")
        return raw.rsplit(b"--\r\n", 1)[0]

    def line_ends(self, raw: bytes) -> bytes:
        bare = self.random.choice([b"\n", b"\r", b"\n\r"])
        if self.random.random() < 0.5:
            return raw.replace(b"\r\n", bare)
        at = self._offset(raw)
        return raw[:at] + raw[at:].replace(b"\r\n", bare, self.random.randint(1, 5))

    def overlong_header(self, raw: bytes) -> bytes:
        size = self.random.choice([1000, 1000, 10_000, 10_000, 100_000])
        header = self.random.choice([
            b"Subject: " + b"S" * size,
            b"X-Long: " + b"\r\n\t".join([b"folded"] * (size // 8)),
            b"To: " + b", ".join([b"<u%d@canary.example.org>" % n for n in range(size // 30)]),
            b"From: " + b"\xe9" * size + b" <news@acme.example>",
        ])
        return header + b"\r\n" + raw

    def nest(self, raw: bytes) -> bytes:
        depth = self.random.choice([2, 10, 60])
        opened = b"".join(b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n"
                          % (n, n) for n in range(depth))
        closed = b"".join(b"\r\n--n%d--\r\n" % n for n in reversed(range(depth)))
        return b"From: news@acme.example\r\nMIME-Version: 1.0\r\n" + opened + raw + closed

    def dots(self, raw: bytes) -> bytes:
        at = self._offset(raw)
        return raw[:at] + self.random.choice([b"\r\n.\r\n", b"\r\n..\r\n", b"\r\n.x"]) + raw[at:]

    def long_line(self, raw: bytes) -> bytes:
        at = self._offset(raw)
        size = self.random.choices([998, 5_000, 70_000, 300_000], weights=[4, 4, 2, 1])[0]
        return raw[:at] + b"L" * size + raw[at:]

    def empty(self, raw: bytes) -> bytes:
        return self.random.choice([b"", b"\r\n", b"\r\n\r\n", b"Subject: only\r\n"])

    _mutations = (flip, flip, insert, insert, delete, truncate, duplicate_header, drop_header,
                  break_boundary, line_ends, overlong_header, nest, dots, long_line, empty)


def data_payload(raw: bytes) -> tuple[bytes, bytes]:
    """What the server must store for `raw` (it ends with CRLF) and the DATA payload sent:
    dot-stuffed after every CRLF, as RFC 5321 4.5.2 says (not after bare LF, as smtplib
    does), and terminated."""
    if not raw.endswith(b"\r\n"):
        raw += b"\r\n"
    lines = raw.split(b"\r\n")
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return raw, stuffed + b".\r\n"


@dataclass
class FuzzRun:
    replies: dict[str, int] = field(default_factory=dict)
    """sha256 of what the server must store → the final reply to DATA (0: connection lost)."""
    lost: int = 0
    failures: list[BaseException] = field(default_factory=list)


@pytest.fixture
def memory_home(tmp_path: Path) -> Iterator[tuple[Home, Store]]:
    """A home on tmpfs when there is one: 5,000 messages are 10,000 commits, and each
    `synchronous=FULL` commit waits for the disk (2 ms here) while this test is about what
    the listener does with the bytes, not about the disk."""
    shm = Path("/dev/shm")
    parent = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path
    home = init_home(parent / "home", [CANARY_DOMAIN])
    store = home.store()
    try:
        yield home, store
    finally:
        store.dispose()
        if parent != tmp_path:
            shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.faults
@pytest.mark.slow
def test_fuzzed_mail_is_stored_exactly_and_every_message_is_accounted_for(
    memory_home: tuple[Home, Store]
) -> None:
    home, store = memory_home
    acme = issue(home, store, "Acme", "acme.example").address
    seeds = [crlf(raw) for raw in _seed_messages(acme)]
    mutate = Mutator(FUZZ_SEED)
    distinct: dict[bytes, None] = {}  # what the server stores for each, all different
    while len(distinct) < FUZZ_MESSAGES:
        raw = mutate(seeds[len(distinct) % len(seeds)])
        distinct.setdefault(data_payload(raw)[0], None)
    messages = list(distinct)
    run = FuzzRun()
    lock = threading.Lock()

    def sender(share: list[bytes]) -> None:
        client: smtplib.SMTP | None = None
        try:
            for raw in share:
                expected, payload = data_payload(raw)
                digest = hashlib.sha256(expected).hexdigest()
                for _attempt in range(3):
                    try:
                        if client is None:
                            client = connect(running)
                            client.ehlo()
                        assert client.mail(SENDER)[0] == 250
                        assert client.rcpt(acme)[0] == 250
                        assert client.docmd("DATA")[0] == 354
                        client.send(payload)
                        code, _ = client.getreply()
                        break
                    except (OSError, smtplib.SMTPServerDisconnected):
                        code = 0
                        with lock:
                            run.lost += 1
                        if client is not None:
                            client.close()
                        client = None
                with lock:
                    run.replies[digest] = code
        except BaseException as error:  # reported by the test
            run.failures.append(error)
        finally:
            if client is not None:
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    client.quit()
                client.close()

    running = start_listener(home, store)
    try:
        started = time.monotonic()
        threads = [threading.Thread(target=sender, args=(messages[n::FUZZ_CONNECTIONS],))
                   for n in range(FUZZ_CONNECTIONS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        send_seconds = time.monotonic() - started
        assert run.failures == [], run.failures[:3]

        started = time.monotonic()

        def settled() -> bool:
            running.thread.settle(30)
            return count(home, "message WHERE analysed_at IS NULL AND set_aside_at IS NULL "
                               "AND problem IS NULL AND temperror IS NULL") == 0

        wait_for(settled, "analysis of the fuzzed mail", timeout=240)
        settle_seconds = time.monotonic() - started

        worker = running.thread.listener.worker_process_id
        assert worker is not None and Path(f"/proc/{worker}").exists()
        after = assert_takes_mail(running.host, running.port, acme)
        assert running.thread.settle(20)
    finally:
        running.stop()

    assert len(run.replies) == FUZZ_MESSAGES
    codes = collections.Counter(run.replies.values())
    print(f"\n{len(messages)} distinct fuzzed messages sent in "
          f"{send_seconds:.1f} s, replies {dict(codes)}, {run.lost} connections lost; "
          f"analysed in {settle_seconds:.1f} s")
    assert set(codes) == {250}, codes

    stored = {m["sha256"]: m for m in rows(store, Message)}
    accepted = {digest for digest, code in run.replies.items() if code == 250}
    after_digest = hashlib.sha256(after).hexdigest()
    assert accepted | {after_digest} <= set(stored), "answered 250 but not stored"
    assert set(stored) <= set(run.replies) | {after_digest}, "stored what nobody sent"
    with store.reading() as session:
        for raw_row in session.exec(sql_select(RawMessage)).all():
            content = zlib.decompress(raw_row.content)
            assert hashlib.sha256(content).hexdigest() == raw_row.sha256
            assert len(content) == raw_row.size
    stuck = [m for m in stored.values()
             if m["analysed_at"] is None and m["set_aside_at"] is None
             and not m["problem"] and not m["temperror"]]
    assert stuck == [], f"{len(stuck)} messages silently stuck, e.g. {stuck[0]['sha256']}"
    unsettled = collections.Counter(
        "set aside" if m["set_aside_at"] else "problem" if m["problem"] else "temperror"
        for m in stored.values() if m["analysed_at"] is None)
    assert stored[after_digest]["analysed_at"] is not None
    print(f"not analysed: {dict(unsettled)}")
