"""Alerts with real parts: a real HTTP server and a real SMTP server on loopback receive them.

Apprise's `json://` posts to an HTTP server the test starts (its body's `message`
is Canary's versioned payload, checked against `canary/schemas/alert.schema.json`);
`mailto://` hands them to an aiosmtpd server. Mail is stored and analysed against a
loopback DNS server with real DKIM signatures, or sent over SMTP to the real
listener. Clocks are plain functions the test sets, so an hour of rate limit or a
retry's pause passes at once. Nothing is mocked but the internet: no test reaches it.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import socket
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message as EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from commands import Canary, assert_one_sentence, assert_usage_error, assert_valid
from conftest import CANARY_DOMAIN, issue, start_listener
from factories import make_message
from mailflow import analyse, deliver, store_mail
from signing import DkimKey, ed25519_key
from sqlmodel import select

from canary.alerts import AlertsConfig, Channel, EventKind, Severity
from data.alerts import AlertEventRecord, AlertSendRecord, recorded_events
from data.database import Store
from data.home import Home, init_home
from data.mailstore import ProbeAttempt, record_probes
from data.registry import issue_alias, opt_out
from smtp_listener.alerts import Alerter, AlertSettings, notify
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones

PASSWORD = "hunter2-webhook-pw"
TOKEN = "tok3n-5ecret-path"
MARKETER = "dealblaster.example"


# --- real servers on loopback -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Webhook:
    """An HTTP server on a fixed loopback port that keeps every JSON body POSTed to it."""

    port: int = field(default_factory=free_port)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        """With a password and a secret path: neither may ever be printed."""
        return f"json://canary:{PASSWORD}@127.0.0.1:{self.port}/hooks/{TOKEN}"

    def alerts(self) -> list[dict[str, Any]]:
        """Canary's payloads, each checked against its schema."""
        payloads = []
        for body in self.bodies:
            assert set(body) >= {"version", "title", "message", "type"}, body
            document = json.loads(body["message"])
            assert_valid(document, "alert")
            assert body["title"] == document["title"]
            payloads.append(document)
        return payloads


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.start()
    yield hook
    hook.stop()


@dataclass
class Inbox:
    """An SMTP server (aiosmtpd) on loopback that keeps every message it is given."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?to=me@example.org&from=canary@example.org"
                "&mode=insecure")


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


class Clock:
    """The alerter's clock, set by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def channel(url: str, *events: str, severity: Severity = Severity.LOW) -> Channel:
    return Channel(url, events or ("all",), severity)


def alerter(store: Store, config: AlertsConfig, clock: Clock | None = None, **settings: Any
            ) -> Alerter:
    return Alerter(store, AlertSettings(config, watch_analysis=False, **settings),
                   clock or Clock())


@pytest.fixture
def marketer_key(zones: Zones) -> DkimKey:
    key = ed25519_key(MARKETER)
    key.publish(zones)
    return key


def marketing(key: DkimKey, to: str, subject: str = "You have been selected") -> bytes:
    """A DKIM-signed offer from the marketer: an authenticated third party."""
    return key.sign(make_message(sender=f'"Deal Blaster" <offers@{MARKETER}>', to=to,
                                 subject=subject, body="Act now. Private body text.\n"))


def spam(n: int, to: str) -> bytes:
    """Unauthenticated mail from a different organisation each time."""
    return make_message(sender=f"winner@prize{n}.example", to=to, subject=f"Prize {n}")


def kinds(store: Store) -> list[str]:
    return [e.kind.value for e in _events(store)]


def _events(store: Store) -> list[Any]:
    with store.reading() as session:
        return recorded_events(session)


# --- the whole path: SMTP in, one alert out -----------------------------------------------


def test_mail_from_a_third_party_over_smtp_makes_exactly_one_alert(
    home: Home, store: Store, resolver: Resolver, marketer_key: DkimKey, webhook: Webhook,
    capfd: pytest.CaptureFixture[str],
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),))
    running = start_listener(home, store, resolver, alerts=config)
    try:
        for subject in ("You have been selected", "Second chance", "Last chance"):
            _, reply = deliver(running, [address], marketing(marketer_key, address, subject),
                               mail_from=f"bounce@{MARKETER}")
            assert reply is not None and reply[0] == 250
            running.settle()
    finally:
        running.stop()

    (alert,) = webhook.alerts()
    assert (alert["digest"], alert["total"]) == (False, 1)
    (event,) = alert["alerts"]
    assert event["kind"] == "new_sender" and event["severity"] == "high"
    assert (event["company"], event["alias"], event["sender"]) == ("MegaMart", address, MARKETER)
    assert (event["relation"], event["verdict"]) == ("third_party", "shared")
    assert event["authenticated_by"] == {"method": "dkim", "domain": MARKETER}
    assert event["days_since_issued"] == 0 and event["subject"] is None
    for needed in (address, "MegaMart", MARKETER, "shared", "More: canary show MegaMart"):
        assert needed in alert["text"], needed
    assert "Private body text" not in json.dumps(webhook.bodies)
    assert "You have been selected" not in json.dumps(webhook.bodies), "subjects are off"
    logs = capfd.readouterr()
    assert PASSWORD not in logs.out + logs.err and TOKEN not in logs.out + logs.err


def test_canary_serve_sends_alerts_from_its_config(
    home: Home, store: Store, resolver: Resolver, marketer_key: DkimKey, webhook: Webhook,
) -> None:
    canary = Canary(home.path)
    assert canary("alerts", "add", webhook.url, "--events", "leaks").exit_code == 0
    address = issue(home, store, "MegaMart", "megamart.example").address
    running = start_listener(home, store, resolver, alerts=home.config().alerts)
    try:
        deliver(running, [address], marketing(marketer_key, address),
                mail_from=f"bounce@{MARKETER}")
        running.settle()
    finally:
        running.stop()
    assert [a["alerts"][0]["kind"] for a in webhook.alerts()] == ["new_sender"]
    listed = canary.json("alerts", "list", schema="alerts")
    assert listed["channels"][0]["status"] == "ok"


def test_a_running_listener_follows_alerts_add_and_remove(
    home: Home, store: Store, resolver: Resolver, marketer_key: DkimKey, webhook: Webhook,
) -> None:
    """`canary alerts add` and `remove` take effect in a running `canary serve`: no restart."""
    canary = Canary(home.path)
    first = issue(home, store, "MegaMart", "megamart.example").address
    second = issue(home, store, "ShopCo", "shopco.example").address
    running = start_listener(home, store, resolver, alerts=home.config().alerts,
                             alerts_home=home.path)
    try:
        added = canary("alerts", "add", webhook.url, "--events", "leaks")
        assert added.exit_code == 0, added.output
        channel_id = added.stdout.split()[0]
        deliver(running, [first], marketing(marketer_key, first), mail_from=f"bounce@{MARKETER}")
        running.settle()
        assert [a["alerts"][0]["company"] for a in webhook.alerts()] == ["MegaMart"]

        assert canary("alerts", "remove", channel_id).exit_code == 0
        deliver(running, [second], marketing(marketer_key, second),
                mail_from=f"bounce@{MARKETER}")
        running.settle()
        assert "new_sender" in kinds(store)
    finally:
        running.stop()
    assert [a["alerts"][0]["company"] for a in webhook.alerts()] == ["MegaMart"]
    assert canary.json("alerts", "list", schema="alerts")["channels"] == []


@pytest.mark.parametrize(("breaking", "said"), [
    (lambda text: text + "[alerts\n", "not valid TOML"),
    (lambda text: re.sub(r"(?m)^domains = .*$", 'domains = ["not a domain!"]', text),
     "is not a valid domain name"),
], ids=["toml", "domain"])
def test_a_config_broken_while_running_keeps_the_alert_settings_in_force(
    home: Home, store: Store, webhook: Webhook, caplog: pytest.LogCaptureFixture,
    breaking: Callable[[str], str], said: str,
) -> None:
    assert Canary(home.path)("alerts", "add", webhook.url).exit_code == 0
    config = home.config().alerts
    running = alerter(store, config, home=home.path)
    running.run_once()
    home.config_path.write_text(breaking(home.config_path.read_text()))
    with caplog.at_level(logging.WARNING, logger="canary.alerts"):
        running.run_once()
    assert running.config == config
    (record,) = [r for r in caplog.records if r.name == "canary.alerts"]
    assert "not taken up" in record.getMessage() and said in record.getMessage()


def test_two_saves_in_one_tick_of_a_coarse_clock_are_both_taken_up(
    home: Home, store: Store,
) -> None:
    """A file system that keeps whole seconds gives two quick saves the same mtime, and
    URLs of one length give them the same size: the running alerter still sees the second."""
    first, second = channel("https://alerts.example/aaaa"), channel("https://alerts.example/bbbb")
    home.save_alerts(AlertsConfig(channels=(first,)))
    running = alerter(store, home.config().alerts, home=home.path)
    running.run_once()
    before = home.config_path.stat()
    home.save_alerts(AlertsConfig(channels=(second,)))
    os.utime(home.config_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert home.config_path.stat().st_size == before.st_size
    running.run_once()
    assert running.config.channels == (second,)
    # Saves replace the file whole: never a moment with half of it, still its owner's alone.
    assert stat.S_IMODE(home.config_path.stat().st_mode) == 0o600
    assert not [p.name for p in home.path.iterdir() if p.name.startswith(".")]


# --- no flooding ------------------------------------------------------------------------------


def test_an_import_of_old_mail_makes_one_summary_alert(
    home: Home, store: Store, dns_server: str, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    home.save_alerts(AlertsConfig(channels=(channel(webhook.url),)))
    canary = Canary(home.path)
    long_ago = datetime.now(UTC) - timedelta(days=400)
    for n in range(40):
        store_mail(store, address, spam(n, address), long_ago + timedelta(days=n))
    assert analyse(store, dns_server) == 40
    run = canary("alerts", "run")
    assert run.exit_code == 0, run.output
    assert "Sent 1 message (40 alerts, 1 digest)" in run.stdout
    (digest,) = webhook.alerts()
    assert digest["digest"] is True and digest["total"] == 40
    assert len({a["sender"] for a in digest["alerts"]}) == 25, "the first 25 of 40"
    assert digest["text"].startswith("40 alerts at once: 40 new senders")
    # Nothing is sent twice.
    assert canary("alerts", "run").exit_code == 0
    assert len(webhook.bodies) == 1


def test_old_mail_waits_while_analysis_still_has_mail_to_do(
    home: Home, store: Store, dns_server: str, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),))
    long_ago = datetime.now(UTC) - timedelta(days=400)
    store_mail(store, address, spam(1, address), long_ago)
    analyse(store, dns_server)
    store_mail(store, address, spam(2, address), long_ago + timedelta(days=1))
    clock = Clock()
    assert alerter(store, config, clock).run_once().sent == 0, "the import is not analysed"
    analyse(store, dns_server)
    done = alerter(store, config, clock).run_once()
    assert (done.sent, done.alerts, done.digests) == (1, 2, 1)


def test_many_alerts_at_once_become_one_digest(
    home: Home, store: Store, dns_server: str, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),), digest_after=5)
    for n in range(8):
        store_mail(store, address, spam(n, address))
    analyse(store, dns_server)
    done = alerter(store, config).run_once()
    assert (done.events, done.sent, done.digests) == (8, 1, 1)
    (digest,) = webhook.alerts()
    assert digest["total"] == 8


def test_a_few_alerts_go_one_by_one(home: Home, store: Store, dns_server: str,
                                    webhook: Webhook) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),), digest_after=5)
    for n in range(3):
        store_mail(store, address, spam(n, address))
    analyse(store, dns_server)
    assert alerter(store, config).run_once().sent == 3
    assert [a["total"] for a in webhook.alerts()] == [1, 1, 1]
    assert {a["alerts"][0]["sender"] for a in webhook.alerts()} == {
        "prize0.example", "prize1.example", "prize2.example"}


def test_the_rate_limit_holds_alerts_back_and_then_sends_one_digest(
    home: Home, store: Store, dns_server: str, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),), rate_limit_per_hour=2)
    clock = Clock()
    sent = []
    for n in range(5):
        store_mail(store, address, spam(n, address))
        analyse(store, dns_server)
        sent.append(alerter(store, config, clock).run_once().sent)
        clock.advance(minutes=5)
    assert sent == [1, 1, 0, 0, 0], "two an hour"
    assert len(webhook.bodies) == 2
    clock.advance(hours=1)
    done = alerter(store, config, clock).run_once()
    assert (done.sent, done.alerts, done.digests) == (1, 3, 1)
    assert [a["total"] for a in webhook.alerts()] == [1, 1, 3]


def test_the_same_fact_is_one_event_however_often_it_is_seen(
    home: Home, store: Store, dns_server: str, marketer_key: DkimKey, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),))
    clock = Clock()
    for day in range(4):
        store_mail(store, address, marketing(marketer_key, address, f"Offer {day}"))
        analyse(store, dns_server)
        alerter(store, config, clock).run_once()
        clock.advance(hours=2)
    assert kinds(store) == ["new_sender"]
    assert len(webhook.bodies) == 1


# --- retries, failures, restarts ----------------------------------------------------------


def test_an_alert_is_retried_after_the_server_was_down_and_sent_once(
    home: Home, store: Store, dns_server: str, marketer_key: DkimKey, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    home.save_alerts(AlertsConfig(channels=(channel(webhook.url),)))
    canary = Canary(home.path)
    webhook.stop()
    store_mail(store, address, marketing(marketer_key, address))
    analyse(store, dns_server)

    down = canary("alerts", "run")
    assert down.exit_code == 0 and "to retry 1" in down.stdout
    assert "127.0.0.1" in down.stderr
    listed = canary.json("alerts", "list", schema="alerts")
    (state,) = listed["channels"]
    assert (state["status"], state["pending"]) == ("failing", 1)
    assert state["last_error"] and "127.0.0.1" in state["last_error"]

    # A restart later (a new alerter, as after `canary serve` starts again), the server is up.
    webhook.start()
    clock = Clock()
    clock.advance(minutes=2)
    done = alerter(store, home.config().alerts, clock).run_once()
    assert (done.sent, done.retrying) == (1, 0)
    clock.advance(hours=3)
    assert alerter(store, home.config().alerts, clock).run_once().sent == 0
    assert [a["alerts"][0]["kind"] for a in webhook.alerts()] == ["new_sender"]
    assert canary.json("alerts", "list", schema="alerts")["channels"][0]["status"] == "ok"
    for result in canary.results:
        assert PASSWORD not in result.output and TOKEN not in result.output


def test_a_channel_failing_for_days_is_in_the_report_and_given_up_on(
    home: Home, store: Store, dns_server: str, marketer_key: DkimKey, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),), retry_for=timedelta(days=3))
    home.save_alerts(config)
    webhook.status = 500
    store_mail(store, address, marketing(marketer_key, address))
    analyse(store, dns_server)
    clock = Clock()
    start = clock.now
    while clock.now - start < timedelta(days=4):
        alerter(store, config, clock).run_once()
        clock.advance(hours=1)
    assert len(webhook.bodies) >= 3, "retried"
    with store.reading() as session:
        (send,) = session.exec(select(AlertSendRecord)).all()
        assert send.state == "failed" and send.attempts == len(webhook.bodies)
    canary = Canary(home.path)
    report = canary("report")
    assert report.exit_code == 0
    text = " ".join(report.stdout.split())
    assert "Alert channel" in text and "failing since" in text and "canary alerts list" in text
    assert PASSWORD not in report.stdout and TOKEN not in report.stdout
    (state,) = canary.json("alerts", "list", schema="alerts")["channels"]
    assert state["failed"] == 1 and state["status"] == "failing"


def test_a_channel_added_later_gets_only_what_happens_from_then_on(
    home: Home, store: Store, dns_server: str, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    store_mail(store, address, spam(1, address))
    analyse(store, dns_server)
    assert alerter(store, AlertsConfig()).run_once().events == 1
    canary = Canary(home.path)
    assert canary("alerts", "add", webhook.url, "--min-severity", "low").exit_code == 0
    store_mail(store, address, spam(2, address))
    analyse(store, dns_server)
    assert canary("alerts", "run").exit_code == 0
    assert [a["alerts"][0]["sender"] for a in webhook.alerts()] == ["prize2.example"]


# --- channels: e-mail, filters, the test alert --------------------------------------------


def test_an_alert_by_mail_reaches_an_smtp_server(
    home: Home, store: Store, dns_server: str, marketer_key: DkimKey, inbox: Inbox,
) -> None:
    canary = Canary(home.path)
    added = canary("alerts", "add", inbox.url())
    assert added.exit_code == 0, added.output
    tested = canary("alerts", "test")
    assert tested.exit_code == 0, tested.output
    assert tested.stdout.strip().endswith(" ok")
    assert inbox.messages[0]["Subject"] == "Canary: Test alert"

    address = issue(home, store, "MegaMart", "megamart.example").address
    store_mail(store, address, marketing(marketer_key, address))
    analyse(store, dns_server)
    assert canary("alerts", "run").exit_code == 0
    alert = inbox.messages[-1]
    assert alert["Subject"] == f"Canary: MegaMart: new sender {MARKETER}"
    text = alert.get_payload(decode=True).decode()
    assert address in text and "Verdict: shared" in text and "canary show MegaMart" in text
    assert "Private body text" not in text


def test_each_channel_gets_only_the_events_and_severity_it_asked_for(
    home: Home, store: Store, dns_server: str, marketer_key: DkimKey, webhook: Webhook,
    inbox: Inbox,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url, "leaks", severity=Severity.HIGH),
                                    channel(inbox.url(), "health")))
    store_mail(store, address, spam(1, address))
    store_mail(store, address, marketing(marketer_key, address))
    analyse(store, dns_server)
    assert alerter(store, config).run_once().sent == 1
    assert [a["alerts"][0]["sender"] for a in webhook.alerts()] == [MARKETER]
    assert inbox.messages == []


def test_the_test_alert_reports_each_channel_and_never_its_secret(
    home: Home, webhook: Webhook,
) -> None:
    canary = Canary(home.path)
    down = f"json://canary:{PASSWORD}@127.0.0.1:{free_port()}/hooks/{TOKEN}"
    for url in (webhook.url, down):
        assert canary("alerts", "add", url).exit_code == 0
    result = canary("alerts", "test")
    assert result.exit_code == 1
    good, bad = result.stdout.strip().splitlines()
    assert good.endswith(" ok") and "failed: " in bad and "Connection" in bad
    assert "1 of 2 alert channels" in result.stderr
    (test,) = webhook.alerts()
    assert test["alerts"][0]["kind"] == "test"
    for output in [r.output for r in canary.results]:
        assert PASSWORD not in output and TOKEN not in output


def test_apprise_says_nothing_in_canarys_log(home: Home, store: Store, dns_server: str,
                                             marketer_key: DkimKey) -> None:
    log = io.StringIO()
    handler = logging.StreamHandler(log)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # as verbose as anyone could make `canary serve`
    try:
        down = Channel(f"json://canary:{PASSWORD}@127.0.0.1:{free_port()}/hooks/{TOKEN}")
        sent = notify(down, "Canary: Test alert", "text", Severity.HIGH)
        address = issue(home, store, "MegaMart", "megamart.example").address
        store_mail(store, address, marketing(marketer_key, address))
        analyse(store, dns_server)
        alerter(store, AlertsConfig(channels=(down,))).run_once()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert not sent.ok and sent.error and "Connection" in sent.error
    text = log.getvalue()
    assert "not sent, will retry" in text, "Canary says what went wrong"
    assert PASSWORD not in text and TOKEN not in text
    assert "Socket Exception" not in text, "Apprise's own log stays out"


# --- the commands -----------------------------------------------------------------------------


def test_add_list_remove_keep_the_url_in_the_private_config_only(home: Home,
                                                                   store: Store) -> None:
    canary = Canary(home.path)
    url = f"ntfys://ntfy.sh/canary-{TOKEN}"
    added = canary("alerts", "add", url, "--events", "leaks,health", "--min-severity", "high")
    assert added.exit_code == 0, added.output
    channel_id, shown = added.stdout.split()
    assert shown == "ntfys://ntfy.sh/ca…"
    assert (home.path / "canary.toml").stat().st_mode & 0o077 == 0
    config = home.config().alerts
    assert config.channels[0].url == url
    assert config.channels[0].events == ("leaks", "health")
    listed = canary("alerts", "list")
    assert channel_id in listed.stdout and "leaks, health" in listed.stdout
    document = canary.json("alerts", "list", schema="alerts")
    assert document["channels"][0]["min_severity"] == "high"
    assert_one_sentence(canary("alerts", "add", url), channel_id, "already")
    # init --force keeps the channels.
    assert canary("init", "--force", "--domain", CANARY_DOMAIN).exit_code == 0
    assert home.config().alerts.channels[0].url == url
    removed = canary("alerts", "remove", channel_id)
    assert removed.exit_code == 0 and "ntfys://ntfy.sh/ca…" in removed.stdout
    assert home.config().alerts.channels == ()
    assert_one_sentence(canary("alerts", "remove", channel_id), channel_id, "alerts list")
    for output in [r.output for r in canary.results]:
        assert TOKEN not in output


def test_a_url_can_come_from_stdin_out_of_the_shells_history(home: Home) -> None:
    canary = Canary(home.path)
    result = canary("alerts", "add", "-", input=f"gotify://push.example.org/{TOKEN}\n")
    assert result.exit_code == 0, result.output
    assert home.config().alerts.channels[0].url == f"gotify://push.example.org/{TOKEN}"


@pytest.mark.parametrize(("argv", "mentions"), [
    (["alerts", "add", "not a url"], ("Apprise URL",)),
    (["alerts", "add", f"nosuchservice://x/{TOKEN}"], ("nosuchservice://", "Apprise")),
    (["alerts", "test"], ("canary alerts add",)),
    (["alerts", "remove", "deadbeef"], ("deadbeef",)),
])
def test_alert_commands_say_what_is_wrong_in_one_sentence(home: Home, argv: list[str],
                                                          mentions: tuple[str, ...]) -> None:
    canary = Canary(home.path)
    result = canary(*argv)
    assert_one_sentence(result, *mentions)
    assert TOKEN not in result.output


def test_an_unknown_event_or_severity_is_a_usage_error(home: Home) -> None:
    canary = Canary(home.path)
    assert_usage_error(canary("alerts", "add", "ntfy://x/y", "--events", "leak"), "--events")
    assert_usage_error(canary("alerts", "add", "ntfy://x/y", "--min-severity", "urgent"))


def test_alert_commands_before_init_say_to_run_canary_init(tmp_path: Path) -> None:
    fresh = Canary(tmp_path / "none")
    for argv in (["alerts", "add", "ntfy://x/y"], ["alerts", "test"], ["alerts", "run"],
                 ["alerts", "remove", "abcd1234"]):
        assert_one_sentence(fresh(*argv), "canary init")
    assert not fresh.home.exists()


def test_a_bad_alerts_section_is_one_sentence(home: Home) -> None:
    with home.config_path.open("a") as config:
        config.write('\n[alerts]\nrate_limit_per_hour = "lots"\n')
    assert_one_sentence(Canary(home.path)("alerts", "list"), "rate_limit_per_hour")


# --- the events ---------------------------------------------------------------------------------


def test_a_known_sender_authenticating_later_changes_the_verdict(
    home: Home, store: Store, zones: Zones, dns_server: str, webhook: Webhook,
) -> None:
    zones.add_txt(MARKETER, "v=spf1 ip4:192.0.2.99 -all")
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),))
    offer = make_message(sender=f"offers@{MARKETER}", to=address, subject="Offer")
    store_mail(store, address, offer, mail_from=f"bounce@{MARKETER}", peer_ip="192.0.2.25")
    analyse(store, dns_server)
    alerter(store, config).run_once()
    again = make_message(sender=f"offers@{MARKETER}", to=address, subject="Offer again")
    store_mail(store, address, again, mail_from=f"bounce@{MARKETER}", peer_ip="192.0.2.99")
    analyse(store, dns_server)
    alerter(store, config).run_once()
    first, second = (a["alerts"][0] for a in webhook.alerts())
    assert (first["kind"], first["relation"], first["verdict"]) == (
        "new_sender", "unverified", "leaked")
    assert (second["kind"], second["verdict"], second["previous_verdict"]) == (
        "verdict_changed", "shared", "leaked")
    assert second["severity"] == "high" and "SPF" in (second["detail"] or "")


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Home, Store]]:
    """A home on SQLite, then the same on a real PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else None
    home = init_home(tmp_path / "home", [CANARY_DOMAIN], database_url=url)
    store = home.store()
    yield home, store
    store.dispose()


def test_a_sender_on_two_companies_aliases_is_a_broker(
    any_store: tuple[Home, Store], dns_server: str, marketer_key: DkimKey, webhook: Webhook,
) -> None:
    home, store = any_store
    config = AlertsConfig(channels=(channel(webhook.url),))
    for name in ("MegaMart", "Fretwork Guitars"):
        address = issue(home, store, name, f"{name.split()[0].lower()}.example").address
        store_mail(store, address, marketing(marketer_key, address))
        analyse(store, dns_server)
        alerter(store, config).run_once()
    assert kinds(store) == ["new_sender", "new_sender", "broker"]
    sent = [a["alerts"][0] for a in webhook.alerts()]
    assert [a["kind"] for a in sent] == ["new_sender", "new_sender", "broker"]
    broker = sent[-1]
    assert broker["sender"] == MARKETER
    assert broker["companies"] == ["Fretwork Guitars", "MegaMart"]


def test_marketing_after_an_opt_out_is_one_alert_when_first_found(
    home: Home, store: Store, zones: Zones, dns_server: str, webhook: Webhook,
) -> None:
    key = ed25519_key("megamart.example")
    key.publish(zones)
    now = datetime.now(UTC)
    with store.writing() as session:
        address = issue_alias(session, secret=home.secret(), name="MegaMart",
                              alias_domain=CANARY_DOMAIN, domains=["megamart.example"],
                              note=None, new=False, now=now - timedelta(days=60),
                              marketing=True).address
        opt_out(session, "MegaMart", now - timedelta(days=40))
    config = AlertsConfig(channels=(channel(webhook.url, "consent"),))
    for days in (35, 20, 10):
        store_mail(store, address, key.sign(make_message(
            sender="deals@megamart.example", to=address, subject=f"Deals {days}",
            headers={"List-Unsubscribe": "<mailto:u@megamart.example>"})),
            now - timedelta(days=days))
        analyse(store, dns_server)
        alerter(store, config).run_once()
    (alert,) = webhook.alerts()
    event = alert["alerts"][0]
    assert (event["kind"], event["company"], event["verdict"]) == (
        "after_optout", "MegaMart", "clean")
    assert "after the opt-out" in alert["text"]


def test_a_burst_of_probes_is_one_low_alert_an_hour(
    home: Home, store: Store, webhook: Webhook,
) -> None:
    config = AlertsConfig(channels=(channel(webhook.url, "probes", severity=Severity.LOW),),
                          probes_per_hour=5)
    clock = Clock()
    with store.writing() as session:
        record_probes(session, [ProbeAttempt(clock.now - timedelta(minutes=n), "192.0.2.7",
                                             f"guess{n}@{CANARY_DOMAIN}", None)
                                for n in range(6)])
    assert alerter(store, config, clock).run_once().sent == 1
    clock.advance(minutes=10)
    assert alerter(store, config, clock).run_once().sent == 0
    (alert,) = webhook.alerts()
    assert (alert["alerts"][0]["kind"], alert["alerts"][0]["severity"]) == ("probes", "low")
    assert alert["alerts"][0]["count"] == 6


def test_a_medium_channel_is_not_told_of_probes(home: Home, store: Store,
                                                webhook: Webhook) -> None:
    config = AlertsConfig(channels=(channel(webhook.url, severity=Severity.MEDIUM),),
                          probes_per_hour=1)
    clock = Clock()
    with store.writing() as session:
        record_probes(session, [ProbeAttempt(clock.now, "192.0.2.7", "x@" + CANARY_DOMAIN,
                                             None)])
    assert alerter(store, config, clock).run_once().events == 1
    assert webhook.bodies == []


def test_mail_waiting_for_analysis_too_long_is_a_health_alert(
    home: Home, store: Store, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    store_mail(store, address, spam(1, address))
    config = AlertsConfig(channels=(channel(webhook.url, "health"),),
                          analysis_stuck_after=timedelta(hours=1))
    clock = Clock()
    watching = Alerter(store, AlertSettings(config), clock)
    assert watching.run_once().events == 0
    clock.advance(minutes=61)
    assert watching.run_once().sent == 1
    clock.advance(minutes=30)
    assert watching.run_once().sent == 0, "one alert for one episode"
    (alert,) = webhook.alerts()
    assert alert["alerts"][0]["kind"] == "analysis_stuck"
    assert "1 message waiting for analysis" in alert["text"]


def test_a_nearly_full_disk_is_a_health_alert(home: Home, store: Store,
                                              webhook: Webhook) -> None:
    free = shutil.disk_usage(home.path).free
    config = AlertsConfig(channels=(channel(webhook.url, "health"),))
    # The listener would refuse mail below two thirds of what is free now: close enough.
    done = alerter(store, config, min_free_bytes=int(free / 1.5), min_free_ratio=0.0).run_once()
    assert done.sent == 1
    (alert,) = webhook.alerts()
    assert alert["alerts"][0]["kind"] == "disk_low" and "452" in alert["text"]
    plenty = alerter(store, config, min_free_bytes=1, min_free_ratio=0.0).run_once()
    assert plenty.events == 0


def test_deliveries_that_fail_for_good_are_a_health_alert(
    home: Home, store: Store, dns_server: str, webhook: Webhook, tmp_path: Path,
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the Maildir should be")
    canary = Canary(home.path)
    assert canary("init", "--force", "--domain", CANARY_DOMAIN, "--deliver",
                  f"maildir:{blocked}").exit_code == 0
    assert canary("alerts", "add", webhook.url, "--events", "health").exit_code == 0
    address = issue(home, store, "MegaMart", "megamart.example").address
    store_mail(store, address, spam(1, address))
    analyse(store, dns_server)
    canary("deliver")
    failed = canary.json("deliveries", "--failed", schema="deliveries")["deliveries"]
    if not failed:
        pytest.skip("this platform lets a Maildir be made under a file")
    assert canary("alerts", "run").exit_code == 0
    (alert,) = webhook.alerts()
    assert alert["alerts"][0]["kind"] == "delivery_failed"
    assert "canary deliveries --failed" in alert["text"]


def test_a_database_that_cannot_be_written_is_told_past_the_queue(
    postgres_url: str, postgres_cluster: Any, tmp_path: Path, webhook: Webhook,
) -> None:
    home = init_home(tmp_path / "home", [CANARY_DOMAIN], database_url=postgres_url)
    config = AlertsConfig(channels=(channel(webhook.url, "health"),))
    name = postgres_url.rsplit("/", 1)[1]
    with postgres_cluster.admin() as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    store = home.store()
    try:
        clock = Clock()
        watching = alerter(store, config, clock, unwritable_after=timedelta(minutes=1))
        watching.run_once()
        assert webhook.bodies == [], "not at the first failure"
        clock.advance(minutes=2)
        watching.run_once()
        clock.advance(minutes=2)
        watching.run_once()
    finally:
        store.dispose()
        with postgres_cluster.admin() as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')
    (alert,) = webhook.alerts()
    assert alert["alerts"][0]["kind"] == "database_unwritable"
    assert "read-only" in alert["text"]


# --- subjects, upgrades, the demo -----------------------------------------------------------


def test_subjects_are_shown_only_when_enabled(
    home: Home, store: Store, dns_server: str, marketer_key: DkimKey, webhook: Webhook,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    config = AlertsConfig(channels=(channel(webhook.url),), subjects=True)
    store_mail(store, address, marketing(marketer_key, address, "Exclusive: 90% off"))
    analyse(store, dns_server)
    alerter(store, config).run_once()
    (alert,) = webhook.alerts()
    assert alert["alerts"][0]["subject"] == "Exclusive: 90% off"
    assert "Subject: Exclusive: 90% off" in alert["text"]


def test_an_upgraded_home_is_not_alerted_about_what_it_knew(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    old = tmp_path / "old"
    old.mkdir(mode=0o700)
    (old / "canary.toml").write_text('domains = ["aliases.example.net"]\n')
    (old / "secret").write_bytes(b"s" * 32)
    with closing(sqlite3.connect(old / "canary.db")) as db:
        db.executescript((Path(__file__).parent / "data" / "home-0.1.0.sql").read_text())
    canary = Canary(old)
    assert canary("upgrade").exit_code == 0
    assert canary.json("report")["companies"][0]["verdict"] == "shared"
    run = canary("alerts", "run")
    assert run.exit_code == 0 and "Recorded 0 new events" in run.stdout


def test_the_demo_prints_the_alerts_it_would_have_sent(tmp_path: Path) -> None:
    result = Canary(tmp_path / "unused")("demo", home_option=False)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Alerts Canary would have sent" in text
    assert f"Canary: MegaMart: new sender {MARKETER}" in text
    assert "canary alerts add" in text


def test_alert_queue_rows_hold_no_message_body(
    home: Home, store: Store, dns_server: str, marketer_key: DkimKey,
) -> None:
    address = issue(home, store, "MegaMart", "megamart.example").address
    store_mail(store, address, marketing(marketer_key, address))
    analyse(store, dns_server)
    alerter(store, AlertsConfig()).run_once()
    with store.reading() as session:
        (row,) = session.exec(select(AlertEventRecord)).all()
        assert row.kind == EventKind.NEW_SENDER.value
        assert "Private body text" not in row.details
