"""The store process: if it dies, senders get 451 and retry, and nothing is lost."""

from __future__ import annotations

import os
import signal
from datetime import UTC, datetime

from conftest import RunningListener, issue, start_listener
from factories import make_message
from mailflow import deliver, rows, wait_for

from data.database import Store
from data.home import Home
from data.mailstore import Delivery, issued_alias, store_deliveries
from data.models import Message


def store_process_pid(running: RunningListener) -> int:
    """The pid of the listener's store process, from the writer that started it."""
    pid = running.thread.listener.store_process_id
    assert pid is not None, "the store process is not running"
    return pid


def test_a_killed_store_process_costs_a_retry_never_a_message(
    listener: RunningListener, home: Home, store: Store
) -> None:
    acme = issue(home, store, "Acme", "acme.example").address
    _, first = deliver(listener, [acme], make_message(to=acme, subject="before"))
    assert first is not None and first[0] == 250

    os.kill(store_process_pid(listener), signal.SIGKILL)

    during = make_message(to=acme, subject="while the store process was gone")
    replies: list[int] = []

    def delivered() -> bool:
        # A sender retries after a 451; here, at once, until a new store process is up.
        _, reply = deliver(listener, [acme], during)
        assert reply is not None
        replies.append(reply[0])
        return reply[0] == 250

    wait_for(delivered, "a new store process to accept the retry", timeout=20)
    assert set(replies) <= {451, 250}, replies
    stored = {m["sha256"] for m in rows(store, Message)}
    assert len(stored) == 2, "one row for each message answered 250, none lost or doubled"


def test_mail_stored_while_no_analysis_ran_is_analysed_when_the_listener_restarts(
    home: Home, store: Store
) -> None:
    """A listener stopped between the 250 and analysis leaves the message pending; the next
    listener picks it up."""
    acme = issue(home, store, "Acme", "acme.example").address
    with store.writing() as session:  # what the store process commits before the 250
        issued = issued_alias(session, acme)
        assert issued is not None
        store_deliveries(session, [Delivery(
            raw=make_message(to=acme, sender="news@acme.example"),
            recipients=((issued.alias_id, acme),), mail_from="bounce@acme.example",
            peer_ip="192.0.2.1", helo="mx.acme.example", tls=False,
            received_at=datetime.now(UTC),
        )])
    (pending,) = rows(store, Message)
    assert pending["analysed_at"] is None and pending["relation"] is None

    running = start_listener(home, store)
    try:
        (message,) = wait_for(
            lambda: [m for m in rows(store, Message) if m["analysed_at"] is not None],
            "the restarted listener to analyse the waiting message",
        )
    finally:
        running.stop()
    assert message["relation"] == "first_party"
    assert message["sender_org"] == "acme.example"
