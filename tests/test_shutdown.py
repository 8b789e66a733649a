"""`canary serve` as a process: signals, the CLI alongside it, idle clients and its log.

These tests run the installed `canary` script, send it real signals and
talk to it with `smtplib` over loopback; the idle-timeout tests use the
in-process listener with a one-second timeout.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_DOMAIN, issue, start_listener
from mailflow import SENDER, mail, stored_raw, wait_for
from sqlmodel import select as sql_select

from data.database import Store
from data.home import Home, init_home
from data.models import Message
from smtp_listener.limits import ClientLimits

CANARY = shutil.which("canary") or str(Path(sys.executable).with_name("canary"))
START_TIMEOUT = 20.0
EXIT_TIMEOUT = 30.0


@pytest.fixture
def cli_env(dns_server: str) -> dict[str, str]:
    """The environment for `canary`: none of the tester's Canary settings, DNS on loopback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    env["CANARY_DNS"] = dns_server
    return env


def canary(*args: str, home: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CANARY, *args, "--home", str(home)], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    stderr_path: Path
    stdout_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=EXIT_TIMEOUT)


@contextmanager
def serving(home: Path, logs: Path, env: dict[str, str]) -> Iterator[Server]:
    """`canary serve` on a free port, once it accepts connections; killed if still running."""
    port = free_port()
    stderr_path, stdout_path = logs / f"serve-{port}.err", logs / f"serve-{port}.out"
    with stderr_path.open("wb") as err, stdout_path.open("wb") as out:
        process = subprocess.Popen(
            [CANARY, "serve", "--home", str(home), "--port", str(port)],
            stdout=out, stderr=err, env=env,
        )
    server = Server(process, port, stderr_path, stdout_path)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while refuses_connections(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"canary serve did not start (exit {process.poll()}):\n{server.stderr}")
            time.sleep(0.05)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=EXIT_TIMEOUT)


def stored_messages(home: Path) -> tuple[Store, list[dict[str, Any]]]:
    store = Home(home).store()
    with store.reading() as session:
        return store, [m.model_dump() for m in session.exec(sql_select(Message)).all()]


@pytest.fixture
def served_home(tmp_path: Path) -> tuple[Path, str]:
    """A Canary home made in-process (faster than `canary init`) and Acme's alias."""
    home = init_home(tmp_path / "home", [CANARY_DOMAIN])
    store = home.store()
    try:
        alias = issue(home, store, "Acme", "acme.example").address
    finally:
        store.dispose()
    return home.path, alias


# --- signals --------------------------------------------------------------------------------


def test_sigterm_during_a_transaction_finishes_it_and_exits_0(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    home = tmp_path / "home"
    created = canary("init", "--domain", CANARY_DOMAIN, home=home, env=cli_env)
    assert created.returncode == 0, created.stderr
    issued = canary("issue", "Acme", "--domain", "acme.example", home=home, env=cli_env)
    assert issued.returncode == 0, issued.stderr
    alias = issued.stdout.strip()
    assert alias.startswith("acme.") and alias.endswith(f"@{CANARY_DOMAIN}")
    raw = mail(body="Half of this is sent before SIGTERM, half after.\n" * 40)
    assert b"\r\n." not in raw  # sent as is below, so nothing needs dot-stuffing
    head, tail = raw[: len(raw) // 2], raw[len(raw) // 2:]

    with serving(home, tmp_path, cli_env) as server:
        client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        try:
            client.ehlo()
            assert client.mail(SENDER)[0] == 250
            assert client.rcpt(alias)[0] == 250
            assert client.docmd("DATA")[0] == 354
            client.send(head)

            server.process.send_signal(signal.SIGTERM)
            wait_for(lambda: refuses_connections(server.port), "the listener to stop accepting")
            client.send(tail + b".\r\n")

            code, text = client.getreply()
            assert (code, text[:5]) == (250, b"2.0.0")
            code, text = client.getreply()
            assert (code, text[:5]) == (421, b"4.3.2")
        finally:
            client.close()
        assert server.process.wait(timeout=EXIT_TIMEOUT) == 0, server.stderr
        assert refuses_connections(server.port)
        assert "Traceback" not in server.stderr

    store, messages = stored_messages(home)
    try:
        (message,) = messages
        assert message["rcpt_to"] == alias
        assert stored_raw(store, str(message["sha256"])) == raw
    finally:
        store.dispose()


def test_sigint_exits_0(
    served_home: tuple[Path, str], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    home, alias = served_home
    with serving(home, tmp_path, cli_env) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            assert client.sendmail(SENDER, [alias], mail()) == {}
        assert server.stop(signal.SIGINT) == 0, server.stderr
        assert refuses_connections(server.port)
        assert "Traceback" not in server.stderr
        assert "KeyboardInterrupt" not in server.stderr


# --- the CLI next to a running listener -----------------------------------------------------


def test_cli_commands_succeed_while_the_listener_takes_mail(
    served_home: tuple[Path, str], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    home, alias = served_home
    commands = {
        "issue": ["issue", "Globex", "--domain", "globex.example"],
        "report": ["report", "--json"],
        "trust": ["trust", "Acme", "partner.example"],
    }
    with serving(home, tmp_path, cli_env) as server:
        sent: list[bytes] = []
        failures: list[BaseException] = []
        cli_done = threading.Event()

        def stream() -> None:
            """Deliver one message after another until the CLI commands are done."""
            try:
                with smtplib.SMTP("127.0.0.1", server.port, timeout=30) as client:
                    while not cli_done.is_set() or len(sent) < 3:
                        raw = mail(subject=f"stream {len(sent)}")
                        refused = client.sendmail(SENDER, [alias], raw)
                        assert refused == {}, refused
                        sent.append(raw)
            except BaseException as error:  # reported by the test below
                failures.append(error)

        streamer = threading.Thread(target=stream)
        streamer.start()
        try:
            processes = {
                name: subprocess.Popen(
                    [CANARY, *args, "--home", str(home)], stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True, env=cli_env,
                )
                for name, args in commands.items()
            }
            results = {name: (p.communicate(timeout=60), p.returncode)
                        for name, p in processes.items()}
        finally:
            cli_done.set()
            streamer.join(timeout=60)

        assert failures == []
        for name, ((_, stderr), returncode) in results.items():
            assert returncode == 0, f"canary {name}: {stderr}"
            assert "locked" not in stderr.lower(), f"canary {name}: {stderr}"
        (report_out, _), _ = results["report"]
        assert "Acme" in [c["name"] for c in json.loads(report_out)["companies"]]
        (trust_out, _), _ = results["trust"]
        assert "partner.example" in trust_out

        new_alias = results["issue"][0][0].strip()
        assert new_alias.endswith(f"@{CANARY_DOMAIN}")
        late = mail(subject="to the alias issued a moment ago")
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            assert client.sendmail(SENDER, [new_alias], late) == {}
        assert server.stop() == 0, server.stderr

    store, messages = stored_messages(home)
    store.dispose()
    assert sorted(m["rcpt_to"] for m in messages) == sorted([alias] * len(sent) + [new_alias])


# --- idle connections -----------------------------------------------------------------------


def test_idle_client_is_disconnected(home: Home, store: Store) -> None:
    running = start_listener(home, store, idle_timeout=1)
    try:
        with smtplib.SMTP(running.host, running.port, timeout=10) as client:
            client.ehlo()
            assert client.sock is not None
            started = time.monotonic()
            readable, _, _ = select.select([client.sock], [], [], 10)
            waited = time.monotonic() - started
            assert readable, "the idle connection was still open after 10 s"
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
        assert waited >= 0.5  # closed by the timeout, not at once
    finally:
        running.stop()


def test_slow_but_active_data_is_not_cut_by_the_idle_timeout(home: Home, store: Store) -> None:
    alias = issue(home, store, "Acme", "acme.example").address
    raw = mail(body="".join(f"line {n} of a message on a slow link\n" for n in range(10)))
    lines = raw.splitlines(keepends=True)
    gap = 2.5 / len(lines)  # one line every gap seconds: 2.5 s of DATA, never 1 s idle
    # The DATA deadline (idle timeout + size at the minimum rate) is not what this tests.
    running = start_listener(home, store, idle_timeout=1, limits=ClientLimits(min_data_rate=50))
    try:
        with smtplib.SMTP(running.host, running.port, timeout=10) as client:
            client.ehlo()
            client.mail(SENDER)
            client.rcpt(alias)
            assert client.docmd("DATA")[0] == 354
            started = time.monotonic()
            try:
                for line in lines:
                    client.send(line)
                    time.sleep(gap)  # pacing the upload, not an assertion
                client.send(b".\r\n")
                code, _ = client.getreply()
            except smtplib.SMTPServerDisconnected:
                pytest.fail(f"cut off after {time.monotonic() - started:.1f} s of DATA although "
                            f"a line arrived every {gap:.2f} s")
            assert code == 250
        with store.reading() as session:
            (sha,) = session.exec(sql_select(Message.sha256)).all()
        assert stored_raw(store, sha) == raw
    finally:
        running.stop()


# --- the log --------------------------------------------------------------------------------

LOG_LINE = re.compile(
    r"peer=(?P<peer>\S+) from=<(?P<sender>[^>]*)> rcpt=<(?P<rcpt>[^>]*)> .*"
    r"result=(?P<result>\d{3} \d\.\d\.\d)"
)


def test_log_has_one_line_per_transaction_and_never_a_body(
    served_home: tuple[Path, str], tmp_path: Path, cli_env: dict[str, str]
) -> None:
    home, alias = served_home
    marker = f"body-marker-{uuid.uuid4().hex}"
    probe = f"admin@{CANARY_DOMAIN}"
    with serving(home, tmp_path, cli_env) as server:
        with smtplib.SMTP("127.0.0.1", server.port, timeout=10) as client:
            for subject in ("first", "second"):
                raw = mail(subject=subject, body=f"Private text {marker}\n")
                assert client.sendmail("news@acme.example", [alias], raw) == {}
            client.mail("scanner@spam.example")
            assert client.rcpt(probe)[0] == 550
            client.rset()
            client.mail("relay@spam.example")
            assert client.rcpt("victim@elsewhere.example")[0] == 550
        assert server.stop() == 0, server.stderr
        log, out = server.stderr, server.stdout

    assert marker not in log and marker not in out
    lines = [line for line in log.splitlines() if "result=" in line]
    entries = [m.groupdict() if (m := LOG_LINE.search(line)) else line for line in lines]
    assert entries == [
        {"peer": "127.0.0.1", "sender": "news@acme.example", "rcpt": alias, "result": "250 2.0.0"},
        {"peer": "127.0.0.1", "sender": "news@acme.example", "rcpt": alias, "result": "250 2.0.0"},
        {"peer": "127.0.0.1", "sender": "scanner@spam.example", "rcpt": probe,
         "result": "550 5.1.1"},
        {"peer": "127.0.0.1", "sender": "relay@spam.example", "rcpt": "victim@elsewhere.example",
         "result": "550 5.7.1"},
    ], log
