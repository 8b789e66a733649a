"""A burst of mail: the listener answers first, analysis follows.

While senders queue for the store process, analysis waits (it took the CPU and SQLite's
write lock from them), but never longer than its limit, and never when asked to settle.
Deliveries reach the store process as they arrive, each answered once it is committed.
"""

from __future__ import annotations

import asyncio
import smtplib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from conftest import RunningListener, issue, start_listener
from factories import make_message
from mailflow import deliver, rows, store_mail, wait_for

from data.database import Store
from data.home import Home
from data.mailstore import Delivery, issued_alias
from data.models import Message
from smtp_listener.analysis import AnalysisSettings, Analyst, Backlog
from smtp_listener.limits import Pace
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones
from smtp_listener.writer import DeliveryWriter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _backlog() -> tuple[Backlog, Clock]:
    """A backlog that waits 0.1 s after the last queued commit, 2 s at most, and 20 ms after
    a lone commit, on a clock the test moves."""
    clock = Clock()
    return Backlog(pause=0.1, longest=2.0, first_look=0.02, clock=clock), clock


def test_a_lone_commit_is_looked_at_almost_at_once() -> None:
    backlog, clock = _backlog()
    assert backlog.deferral() == 0, "nothing committed: nothing to wait for"
    backlog.committed(queued=False)
    assert backlog.deferral() == pytest.approx(0.02)
    clock.now += 0.02
    assert backlog.deferral() == 0


def test_analysis_waits_while_senders_queue_and_never_longer_than_the_limit() -> None:
    backlog, clock = _backlog()
    backlog.committed(queued=True)
    assert backlog.deferral() == pytest.approx(0.1)
    for _ in range(19):  # senders keep queueing: 1.9 s
        clock.now += 0.1
        backlog.committed(queued=True)
        assert backlog.deferral() > 0, "the burst goes on"
    clock.now += 0.05
    assert backlog.deferral() == pytest.approx(0.05), "2 s after the oldest commit, at most"
    clock.now += 0.05
    backlog.committed(queued=True)
    assert backlog.deferral() == pytest.approx(0, abs=1e-9), (
        "the oldest mail has waited 2 s: analysis goes on anyway")


def test_a_pause_in_the_burst_ends_the_wait() -> None:
    backlog, clock = _backlog()
    backlog.committed(queued=True)
    clock.now += 0.05
    backlog.committed(queued=False)  # the last sender in the queue
    assert backlog.deferral() == pytest.approx(0.05)
    clock.now += 0.05
    assert backlog.deferral() == 0


def test_a_pass_that_did_not_get_through_keeps_the_mail_as_old_as_it_was() -> None:
    backlog, clock = _backlog()
    backlog.committed(queued=True)
    clock.now += 2.0
    started = backlog.pass_started()
    clock.now += 0.5
    backlog.committed(queued=True)  # during the pass
    backlog.pass_ended(started, caught_up=False)
    assert backlog.deferral() == 0, "the mail the pass left is 2.5 s old: no more waiting"
    assert backlog.lag() == pytest.approx(2.5)

    started = backlog.pass_started()
    backlog.committed(queued=True)
    backlog.pass_ended(started, caught_up=True)
    assert backlog.lag() == 0, "caught up: only the mail committed during the pass is left"
    assert backlog.deferral() == pytest.approx(0.1)

    clock.now += 0.1
    started = backlog.pass_started()
    backlog.pass_ended(started, caught_up=True)
    assert backlog.lag() == 0 and backlog.deferral() == 0, "nothing left"


def test_while_analysis_is_behind_a_new_transaction_waits_for_it_at_most_a_while() -> None:
    async def waits(pace: Pace, catch_up_after: float | None) -> float:
        if catch_up_after is not None:
            asyncio.get_running_loop().call_later(catch_up_after, pace.report, False)
        started = time.monotonic()
        await pace.wait()
        return time.monotonic() - started

    pace = Pace(delay=0.3)
    assert asyncio.run(waits(pace, None)) < 0.1, "keeping up: no wait"
    pace.report(True)
    assert pace.behind
    assert asyncio.run(waits(pace, None)) >= 0.25, "behind: waits, up to the delay"
    assert pace.behind, "and goes on: the mail is never refused for it"
    slow = Pace(delay=30.0)
    slow.report(True)
    assert asyncio.run(waits(slow, 0.1)) < 20, "analysis caught up: it goes on at once"
    assert not slow.behind


@pytest.fixture
def acme(home: Home, store: Store) -> str:
    return issue(home, store, "Acme", "acme.example").address


def _analyst(store: Store, dns: str, backlog: Backlog) -> Analyst:
    """A started analyst, past its first pass (which looks for mail at once)."""
    settings = AnalysisSettings(Resolver.from_setting(dns, timeout=0.5, lifetime=1.0))
    analyst = Analyst(store, settings, lambda: datetime.now(UTC), backlog=backlog)
    analyst.start()
    assert analyst.settle(timeout=20)
    return analyst


@pytest.fixture
def burst() -> Iterator[tuple[threading.Event, list[Analyst]]]:
    """Tells an analyst of queued commits every 10 ms until the event is set."""
    stop = threading.Event()
    analysts: list[Analyst] = []

    def commits() -> None:
        while not stop.wait(0.01):
            for analyst in analysts:
                analyst.notify(queued=True)

    sender = threading.Thread(target=commits, daemon=True)
    sender.start()
    yield stop, analysts
    stop.set()
    sender.join()


def _analysed(store: Store) -> bool:
    return all(m["relation"] is not None for m in rows(store, Message))


def test_the_listeners_analyst_gives_way_to_a_burst_at_most_for_its_limit(
    store: Store, acme: str, empty_dns: str, burst: tuple[threading.Event, list[Analyst]],
) -> None:
    analyst = _analyst(store, empty_dns, Backlog(pause=30.0, longest=1.5))
    try:
        store_mail(store, acme, make_message(sender="news@acme.example", to=acme))
        analyst.notify(queued=True)
        started = time.monotonic()
        burst[1].append(analyst)
        time.sleep(0.5)
        assert not _analysed(store), "analysis waits while senders queue"
        wait_for(lambda: _analysed(store), "analysis once the mail had waited 1.5 s")
        assert time.monotonic() - started >= 1.4
        assert not burst[0].is_set(), "the burst was still going on"
    finally:
        analyst.stop()


def test_the_listeners_analyst_starts_when_the_burst_pauses(
    store: Store, acme: str, empty_dns: str, burst: tuple[threading.Event, list[Analyst]],
) -> None:
    analyst = _analyst(store, empty_dns, Backlog(pause=0.2, longest=600.0))
    try:
        store_mail(store, acme, make_message(sender="news@acme.example", to=acme))
        analyst.notify(queued=True)
        burst[1].append(analyst)
        time.sleep(0.5)
        assert not _analysed(store)
        burst[0].set()
        wait_for(lambda: _analysed(store), "analysis after the burst paused")
    finally:
        analyst.stop()


def test_mail_to_an_idle_listener_and_a_request_to_settle_never_wait_for_a_burst(
    store: Store, acme: str, empty_dns: str,
) -> None:
    analyst = _analyst(store, empty_dns, Backlog(pause=600.0, longest=600.0))
    try:
        store_mail(store, acme, make_message(sender="news@acme.example", to=acme))
        analyst.notify(queued=False)
        wait_for(lambda: _analysed(store), "analysis of a lone message")

        store_mail(store, acme, make_message(sender="news@acme.example", to=acme,
                                             subject="in a burst"))
        analyst.notify(queued=True)
        assert analyst.settle(timeout=20), "settle does not wait for the burst to pass"
        assert len(rows(store, Message)) == 2 and _analysed(store)
    finally:
        analyst.stop()


def test_deliveries_handed_over_together_are_each_answered_once_committed_and_tell_of_a_queue(
    store: Store, acme: str,
) -> None:
    with store.reading() as session:
        issued = issued_alias(session, acme)
    assert issued is not None

    def delivery(n: int) -> Delivery:
        return Delivery(raw=make_message(to=acme, subject=f"message {n}"),
                        recipients=((issued.alias_id, acme),), mail_from="news@acme.example",
                        peer_ip="192.0.2.25", helo="mx.acme.example", tls=False,
                        received_at=datetime.now(UTC))

    async def hand_over(deliveries: list[Delivery], together: bool) -> list[bool]:
        told: list[bool] = []
        writer = DeliveryWriter(store, on_commit=told.append)
        await writer.start()
        try:
            if together:
                await asyncio.gather(*(writer.store(d) for d in deliveries))
            else:
                for d in deliveries:
                    await writer.store(d)
                    assert d.sha256 in {m["sha256"] for m in rows(store, Message)}, (
                        "committed before it is answered")
        finally:
            await writer.close()
        return told

    one_by_one = asyncio.run(hand_over([delivery(n) for n in range(5)], together=False))
    assert one_by_one == [False] * 5, "nobody queued behind a lone sender"

    together = asyncio.run(hand_over([delivery(n) for n in range(5, 45)], together=True))
    assert len(together) == 40 and any(together), "the others queued behind the first commits"
    assert len({m["sha256"] for m in rows(store, Message)}) == 45


@pytest.mark.slow
def test_while_analysis_waits_on_a_silent_dns_server_new_mail_waits_a_second_and_is_taken(
    home: Home, store: Store, acme: str, zones: Zones, dns_server: str,
) -> None:
    """Analysis of the first message waits 5 s on DNS that never answers: from 2 s on it is
    behind, and the listener says so to the next sender by a pause at MAIL FROM (at most a
    second), never by a refusal."""
    zones.add_timeout("acme.example")
    running = start_listener(home, store, Resolver.from_setting(dns_server, timeout=5.0,
                                                                lifetime=5.0))
    try:
        _, reply = deliver(running, [acme], make_message(sender="news@acme.example", to=acme))
        assert reply is not None and reply[0] == 250
        time.sleep(3.0)  # the mail has waited 3 s for analysis
        with smtplib.SMTP(running.host, running.port, timeout=30) as client:
            client.ehlo("mx.acme.example")
            started = time.monotonic()
            code, _ = client.mail("bounce@acme.example")
            waited = time.monotonic() - started
            assert code == 250 and waited >= 0.5, f"MAIL FROM answered after {waited:.2f} s"
            assert client.rcpt(acme)[0] == 250
            assert client.data(make_message(sender="news@acme.example", to=acme,
                                            subject="second"))[0] == 250
        assert len(rows(store, Message)) == 2
    finally:
        running.stop()


def test_mail_to_an_idle_listener_is_analysed_before_the_analysts_idle_pause_unasked(
    listener: RunningListener, store: Store, acme: str,
) -> None:
    """The listener tells the worker of each commit (at most every 10 ms): without that,
    the analyst would only look again after its idle pause of 2 s."""
    _, reply = deliver(listener, [acme], make_message(sender="news@acme.example", to=acme))
    assert reply is not None and reply[0] == 250
    answered = time.monotonic()
    wait_for(lambda: _analysed(store), "analysis of the message")
    assert time.monotonic() - answered < 1.5
