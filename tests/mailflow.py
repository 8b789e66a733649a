"""Helpers for tests that send mail and read what Canary stored.

Mail goes over real SMTP (`smtplib`) to the real listener, or straight into
the store the way the listener's store process writes it; rows are read back
from the real database. Every test module imports these from here.
"""

from __future__ import annotations

import smtplib
import sqlite3
import time
import zlib
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from conftest import RunningListener
from factories import make_message
from sqlmodel import SQLModel, select

from data.database import Store
from data.home import Home
from data.mailstore import Delivery, issued_alias, store_deliveries
from data.models import Message, MessageEvidence, RawMessage
from smtp_listener.analysis import AnalysisSettings, analyse_all
from smtp_listener.resolver import Resolver

HELO = "mx.sender.example"
SENDER = "bounces@acme.example"

T = TypeVar("T")


def crlf(raw: bytes) -> bytes:
    """SMTP line endings, as a real sending server transmits them."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def mail(**fields: Any) -> bytes:
    return crlf(make_message(**fields))


def connect(running: RunningListener) -> smtplib.SMTP:
    return smtplib.SMTP(running.host, running.port, local_hostname=HELO, timeout=10)


def deliver(
    running: RunningListener, rcpts: list[str], raw: bytes, *, mail_from: str = SENDER
) -> tuple[list[tuple[int, bytes]], tuple[int, bytes] | None]:
    """One transaction: the reply to each RCPT and the final reply to DATA (None if not sent)."""
    with connect(running) as client:
        client.ehlo()
        code, text = client.mail(mail_from)
        assert code == 250, text
        rcpt_replies = [client.rcpt(r) for r in rcpts]
        if not any(code == 250 for code, _ in rcpt_replies):
            return rcpt_replies, None
        return rcpt_replies, client.data(raw)


def store_mail(store: Store, address: str, raw: bytes, received_at: datetime | None = None, *,
               mail_from: str = "bounce@mailer.example", peer_ip: str = "192.0.2.25",
               helo: str = "mx.mailer.example") -> None:
    """Store a message for an alias the way the listener's store process does (no SMTP)."""
    with store.writing() as session:
        issued = issued_alias(session, address)
        assert issued is not None, f"{address} is not issued"
        store_deliveries(session, [Delivery(
            raw=raw, recipients=((issued.alias_id, address),), mail_from=mail_from,
            peer_ip=peer_ip, helo=helo, tls=False,
            received_at=received_at or datetime.now(UTC),
        )])


def analyse(store: Store, dns: str, clock: Callable[[], datetime] | None = None) -> int:
    """Analyse every due message as `canary analyse` does, asking the DNS server `dns`."""
    resolver = Resolver.from_setting(dns, timeout=0.5, lifetime=1.0)
    return analyse_all(store, AnalysisSettings(resolver), clock or (lambda: datetime.now(UTC)))


def rows(store: Store, model: type[SQLModel]) -> list[dict[str, Any]]:
    """Every row of one table, read in a session of its own; a message's row comes with
    what analysis checked (`authentication`, `dns_answers`: None before), kept beside it."""
    with store.reading() as session:
        found = [row.model_dump() for row in session.exec(select(model)).all()]
        if model is Message:
            evidence = {e.message_id: e for e in session.exec(select(MessageEvidence))}
            for row in found:
                recorded = evidence.get(row["id"])
                row["authentication"] = recorded.authentication if recorded else None
                row["dns_answers"] = recorded.dns_answers if recorded else None
        return found


def stored_raw(store: Store, sha256: str) -> bytes:
    (raw,) = [r for r in rows(store, RawMessage) if r["sha256"] == sha256]
    return zlib.decompress(raw["content"])


def sql(home: Home, statement: str) -> None:
    """Run one statement on the database from a connection of its own, as an admin would."""
    with closing(sqlite3.connect(home.database_path)) as db, db:
        db.execute(statement)


def wait_for(check: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Poll until `check()` returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}; last saw {value!r}")
        time.sleep(0.05)
