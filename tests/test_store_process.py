"""The store process: if it dies, senders get 451 and retry, and nothing is lost."""

from __future__ import annotations

import os
import signal

from conftest import RunningListener, issue
from factories import make_message
from test_listener import deliver, rows

from data.database import Store
from data.home import Home
from data.models import Message


def store_process_pid(running: RunningListener) -> int:
    """The pid of the listener's store process, from the writer that started it."""
    writer = running.thread._listener._writer  # the one way to name that process here
    assert writer._process is not None and writer._process.pid is not None
    return writer._process.pid


def test_a_killed_store_process_costs_a_retry_never_a_message(
    listener: RunningListener, home: Home, store: Store
) -> None:
    acme = issue(home, store, "Acme", "acme.example").address
    _, first = deliver(listener, [acme], make_message(to=acme, subject="before"))
    assert first is not None and first[0] == 250

    os.kill(store_process_pid(listener), signal.SIGKILL)

    during = make_message(to=acme, subject="while the store process was gone")
    _, reply = deliver(listener, [acme], during)
    assert reply is not None
    if reply[0] != 250:  # the group that found the process dead is answered 451...
        assert reply[0] == 451 and reply[1].startswith(b"4.3.0"), reply
        _, reply = deliver(listener, [acme], during)  # ...and the sender's retry is stored
        assert reply is not None and reply[0] == 250, reply
    stored = {m["sha256"] for m in rows(store, Message)}
    assert len(stored) == 2, "one row for each message answered 250, none lost or doubled"
