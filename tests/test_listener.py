"""The SMTP listener as a sending server sees it: RCPT and DATA replies, and what is stored.

Every test talks to the real listener over loopback with `smtplib.SMTP` and
reads the real SQLite database afterwards.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from conftest import CANARY_DOMAIN, RunningListener, issue, start_listener
from mailflow import HELO, SENDER, connect, deliver, mail, rows, sql, stored_raw, wait_for
from sqlmodel import select

from canary.aliases import alias_local_part, alias_tag
from data.database import Store, sqlite_url
from data.home import Home
from data.models import Alias, Message, Probe, RawMessage

pytestmark = pytest.mark.usefixtures("listener_loop")

SMALL_LIMIT = 4096


@pytest.fixture
def acme(home: Home, store: Store) -> str:
    """Acme's alias address; Acme sends from acme.example."""
    return issue(home, store, "Acme", "acme.example").address


@pytest.fixture
def small_listener(home: Home, store: Store) -> Iterator[RunningListener]:
    running = start_listener(home, store, max_size=SMALL_LIMIT)
    yield running
    running.stop()


# --- RCPT -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "someone@elsewhere.example",
        f"acme.k7f3qd4m@sub.{CANARY_DOMAIN}",
        "postmaster@example.org",
        f"someone@{CANARY_DOMAIN}.evil.example",
    ],
    ids=["other-domain", "subdomain", "parent-domain", "lookalike"],
)
def test_rcpt_to_a_foreign_domain_is_refused_as_relaying(
    listener: RunningListener, acme: str, address: str
) -> None:
    with connect(listener) as client:
        client.ehlo()
        client.mail(SENDER)
        code, text = client.rcpt(address)
        assert (code, text[:5]) == (550, b"5.7.1")
        # Nothing was accepted, so there is nothing to relay.
        assert client.docmd("DATA")[0] == 503


@pytest.mark.parametrize(
    "kind", ["unknown-local-part", "wrong-tag", "valid-tag-never-issued"]
)
def test_rcpt_to_an_unissued_address_on_the_canary_domain_is_550_and_a_probe(
    listener: RunningListener, home: Home, store: Store, acme: str, kind: str
) -> None:
    real_tag = alias_tag(home.secret(), "acme")
    wrong_tag = ("b" if real_tag[0] == "a" else "a") + real_tag[1:]
    local = {
        "unknown-local-part": "Info",
        "wrong-tag": f"acme.{wrong_tag}",
        "valid-tag-never-issued": alias_local_part(home.secret(), "globex"),
    }[kind]
    address = f"{local}@{CANARY_DOMAIN}"
    before = datetime.now(UTC)

    rcpt_replies, data_reply = deliver(listener, [address], mail())

    assert [(code, text[:5]) for code, text in rcpt_replies] == [(550, b"5.1.1")]
    assert data_reply is None
    probes = wait_for(
        lambda: [p for p in rows(store, Probe) if p["address"] == address.lower()],
        f"a Probe row for {address}",
    )
    (probe,) = probes
    assert probe["peer_ip"] == "127.0.0.1"
    assert probe["mail_from"] == SENDER
    assert before <= probe["received_at"] <= datetime.now(UTC)
    assert rows(store, Message) == []


def test_rcpt_to_an_issued_alias_is_accepted(listener: RunningListener, acme: str) -> None:
    with connect(listener) as client:
        client.ehlo()
        client.mail(SENDER)
        code, text = client.rcpt(acme)
    assert (code, text[:5]) == (250, b"2.1.5")


@pytest.mark.parametrize("variant", ["plus-detail", "upper-case"])
def test_alias_variants_reach_the_alias(
    listener: RunningListener, store: Store, acme: str, variant: str
) -> None:
    local, _, domain = acme.partition("@")
    address = {
        "plus-detail": f"{local}+newsletter@{domain}",
        "upper-case": acme.upper(),
    }[variant]

    rcpt_replies, data_reply = deliver(listener, [address], mail())

    assert rcpt_replies[0][0] == 250
    assert data_reply is not None and data_reply[0] == 250
    (message,) = rows(store, Message)
    (alias,) = [a for a in rows(store, Alias) if a["id"] == message["alias_id"]]
    assert alias["address"] == acme
    assert message["rcpt_to"] == address


def test_alias_issued_while_the_listener_runs_is_accepted_at_once(
    listener: RunningListener, home: Home, store: Store
) -> None:
    address = f"{alias_local_part(home.secret(), 'initech')}@{CANARY_DOMAIN}"
    refused, _ = deliver(listener, [address], mail())
    assert refused[0][0] == 550  # not issued yet: a probe

    issued = issue(home, store, "Initech", "initech.example")
    assert issued.address == address

    accepted, data_reply = deliver(listener, [address], mail())
    assert accepted[0][0] == 250
    assert data_reply is not None and data_reply[0] == 250
    assert [m["rcpt_to"] for m in rows(store, Message)] == [address]


def test_foreign_recipient_is_refused_while_the_alias_still_gets_the_message(
    listener: RunningListener, store: Store, acme: str
) -> None:
    raw = mail()
    with connect(listener) as client:
        refused = client.sendmail(SENDER, ["victim@elsewhere.example", acme], raw)
    assert {rcpt: (code, text[:5]) for rcpt, (code, text) in refused.items()} == {
        "victim@elsewhere.example": (550, b"5.7.1")
    }
    (message,) = rows(store, Message)
    assert message["rcpt_to"] == acme
    assert stored_raw(store, message["sha256"]) == raw


# --- size -----------------------------------------------------------------------------------


def test_ehlo_advertises_the_size_limit(small_listener: RunningListener) -> None:
    with connect(small_listener) as client:
        client.ehlo()
        assert client.esmtp_features["size"] == str(SMALL_LIMIT)


def test_mail_from_with_a_declared_size_over_the_limit_is_552(
    small_listener: RunningListener, acme: str
) -> None:
    with connect(small_listener) as client:
        client.ehlo()
        code, _ = client.mail(SENDER, [f"SIZE={SMALL_LIMIT + 1}"])
        assert code == 552
        # A size within the limit is fine on the same connection.
        assert client.mail(SENDER, [f"SIZE={SMALL_LIMIT}"])[0] == 250


def test_message_of_exactly_the_size_limit_is_accepted(
    small_listener: RunningListener, store: Store, acme: str
) -> None:
    head = mail(body="")
    raw = head + b"x" * (SMALL_LIMIT - len(head) - 2) + b"\r\n"
    assert len(raw) == SMALL_LIMIT

    _, data_reply = deliver(small_listener, [acme], raw)

    assert data_reply is not None and data_reply[0] == 250
    (message,) = rows(store, Message)
    assert stored_raw(store, message["sha256"]) == raw


@pytest.mark.parametrize("shape", ["many-lines", "one-long-line"])
def test_data_over_the_size_limit_is_552_and_not_stored(
    small_listener: RunningListener, store: Store, acme: str, shape: str
) -> None:
    raw = {
        "many-lines": mail(body="line of a long newsletter\n" * (SMALL_LIMIT // 10)),
        # Three times the limit on one line, as sent raw (the factory would wrap it).
        "one-long-line": mail(body="") + b"x" * (3 * SMALL_LIMIT) + b"\r\n",
    }[shape]
    assert len(raw) > SMALL_LIMIT

    _, data_reply = deliver(small_listener, [acme], raw)

    assert data_reply is not None
    assert data_reply[0] == 552, data_reply
    assert rows(store, Message) == []
    assert rows(store, RawMessage) == []


# --- DATA -----------------------------------------------------------------------------------


def test_data_and_envelope_are_committed_before_250(
    listener: RunningListener, home: Home, store: Store, acme: str
) -> None:
    # A leading dot is stuffed by the client and must be unstuffed before storing.
    raw = mail(subject="Spring sale", body="Hello.\n.signature line starts with a dot\n..\n")
    assert b"\r\n.signature" in raw and b"\r\n..\r\n" in raw
    before = datetime.now(UTC)

    _, data_reply = deliver(listener, [acme], raw, mail_from="bounce-42@acme.example")
    assert data_reply is not None
    assert (data_reply[0], data_reply[1][:5]) == (250, b"2.0.0")
    answered = datetime.now(UTC)

    # A new store, with connections of its own, must see the commit at once.
    fresh = Store(sqlite_url(home.database_path))
    try:
        with fresh.reading() as session:
            (message,) = [m.model_dump() for m in session.exec(select(Message)).all()]
            (raw_row,) = [r.model_dump() for r in session.exec(select(RawMessage)).all()]
    finally:
        fresh.dispose()
    assert zlib.decompress(raw_row["content"]) == raw
    assert raw_row["sha256"] == message["sha256"] == hashlib.sha256(raw).hexdigest()
    assert raw_row["size"] == len(raw)
    assert message["mail_from"] == "bounce-42@acme.example"
    assert message["rcpt_to"] == acme
    assert message["peer_ip"] == "127.0.0.1"
    assert message["helo"] == HELO
    assert message["tls"] is False
    received = message["received_at"]
    assert received.tzinfo is not None and received.utcoffset().total_seconds() == 0
    assert before <= received <= answered


def test_store_failure_is_451_and_the_retry_is_accepted(
    listener: RunningListener, home: Home, store: Store, acme: str
) -> None:
    raw = mail(subject="Retry me")
    # A real failure of the database, installed from another connection.
    sql(home, "CREATE TRIGGER refuse_mail BEFORE INSERT ON message "
              "BEGIN SELECT RAISE(ABORT, 'disk says no'); END")

    _, failed = deliver(listener, [acme], raw)
    assert failed is not None
    assert (failed[0], failed[1][:5]) == (451, b"4.3.0")
    assert rows(store, Message) == []
    assert rows(store, RawMessage) == []

    sql(home, "DROP TRIGGER refuse_mail")

    _, retried = deliver(listener, [acme], raw)
    assert retried is not None and retried[0] == 250
    (message,) = rows(store, Message)
    assert stored_raw(store, message["sha256"]) == raw


def test_database_failure_at_rcpt_is_451_not_500(
    listener: RunningListener, home: Home, store: Store, acme: str
) -> None:
    sql(home, "ALTER TABLE alias RENAME TO alias_moved_away")
    with connect(listener) as client:
        client.ehlo()
        client.mail(SENDER)
        code, text = client.rcpt(acme)
        assert (code, text[:5]) == (451, b"4.3.0")

        sql(home, "ALTER TABLE alias_moved_away RENAME TO alias")
        # The same connection goes on once the database is back.
        assert client.rcpt(acme)[0] == 250
        assert client.data(mail())[0] == 250
    assert len(rows(store, Message)) == 1


def test_unexpected_exception_is_451_not_500(
    listener: RunningListener, store: Store, acme: str
) -> None:
    # `SIZE=²` passes aiosmtpd's `str.isdigit()` check and then fails `int()`:
    # a real ValueError raised inside the server's own code by a real input.
    with connect(listener) as client:
        client.ehlo()
        client.send("MAIL FROM:<news@acme.example> SIZE=\u00b2\r\n".encode())
        code, text = client.getreply()
        assert (code, text[:5]) == (451, b"4.3.0")
        # The connection survives the bug and delivers.
        assert client.sendmail(SENDER, [acme], mail(subject="same connection")) == {}
    _, data_reply = deliver(listener, [acme], mail(subject="fresh connection"))
    assert data_reply is not None and data_reply[0] == 250
    assert len(rows(store, Message)) == 2


def test_same_message_delivered_twice_is_stored_once(
    listener: RunningListener, store: Store, acme: str
) -> None:
    raw = mail(subject="Delivered twice")

    replies = [deliver(listener, [acme], raw)[1] for _ in range(2)]

    assert [r[0] for r in replies if r] == [250, 250]
    assert len(rows(store, Message)) == 1
    assert [r["sha256"] for r in rows(store, RawMessage)] == [hashlib.sha256(raw).hexdigest()]


@pytest.mark.parametrize("transactions", ["one-transaction", "two-transactions"])
def test_same_bytes_to_two_aliases_is_two_messages_and_one_raw(
    listener: RunningListener, home: Home, store: Store, acme: str, transactions: str
) -> None:
    globex = issue(home, store, "Globex", "globex.example").address
    raw = mail(subject="Same bytes")

    if transactions == "one-transaction":
        replies = [deliver(listener, [acme, globex], raw)[1]]
    else:
        replies = [deliver(listener, [acme], raw)[1], deliver(listener, [globex], raw)[1]]

    assert all(r is not None and r[0] == 250 for r in replies)
    assert sorted(m["rcpt_to"] for m in rows(store, Message)) == sorted([acme, globex])
    assert len(rows(store, RawMessage)) == 1
    assert stored_raw(store, hashlib.sha256(raw).hexdigest()) == raw


def test_line_of_50000_bytes_is_accepted_and_stored_intact(
    listener: RunningListener, store: Store, acme: str
) -> None:
    line = ("<td>" + "offer " * 10_000)[:50_000]
    raw = mail(headers={"Content-Transfer-Encoding": "8bit"}, body="")
    raw += line.encode() + b"\r\n"
    assert len(line) == 50_000

    _, data_reply = deliver(listener, [acme], raw)

    assert data_reply is not None and data_reply[0] == 250
    (message,) = rows(store, Message)
    assert stored_raw(store, message["sha256"]) == raw


# --- analysis -------------------------------------------------------------------------------


def _analysed(store: Store) -> list[dict[str, Any]]:
    messages = rows(store, Message)
    return messages if messages and all(m["analysed_at"] for m in messages) else []


@pytest.mark.parametrize(
    ("sender", "relation"),
    [
        ('"Acme News" <news@mail.acme.example>', "first_party"),
        ('"Deals" <offers@marketer.example>', "unverified"),
    ],
    ids=["company-domain", "unrelated-domain"],
)
def test_analysis_runs_after_250(
    listener: RunningListener, store: Store, acme: str, sender: str, relation: str
) -> None:
    _, data_reply = deliver(listener, [acme], mail(sender=sender))
    assert data_reply is not None and data_reply[0] == 250

    (message,) = wait_for(lambda: _analysed(store), "the message to be analysed")

    assert message["relation"] == relation
    assert message["from_address"] == sender.partition("<")[2].rstrip(">")
    assert message["analysed_at"] >= message["received_at"]


def test_settling_after_a_settle_that_timed_out_waits_for_the_new_mail(
    listener: RunningListener, store: Store, acme: str,
) -> None:
    """Settles that time out leave the next one working: it waits for the mail so far (the
    late answers to the earlier ones are skipped, not taken for its own)."""
    for n in range(3):
        _, data_reply = deliver(listener, [acme], mail(subject=f"Offer {n}"))
        assert data_reply is not None and data_reply[0] == 250
        listener.thread.settle(timeout=0.0001)  # gives up at once, the worker still settles
    _, data_reply = deliver(listener, [acme], mail(subject="The last offer"))
    assert data_reply is not None and data_reply[0] == 250
    assert listener.thread.settle(timeout=30)
    messages = rows(store, Message)
    assert len(messages) == 4 and all(m["analysed_at"] for m in messages)


def test_probes_are_not_analysed(
    listener: RunningListener, store: Store, acme: str
) -> None:
    probe_address = f"sales@{CANARY_DOMAIN}"
    refused, _ = deliver(listener, [probe_address], mail())
    assert refused[0][0] == 550
    _, data_reply = deliver(listener, [acme], mail(subject="real"))
    assert data_reply is not None and data_reply[0] == 250

    (message,) = wait_for(lambda: _analysed(store), "the real message to be analysed")
    # The probe left a trace, but no message to analyse.
    assert message["rcpt_to"] == acme
    assert [p["address"] for p in rows(store, Probe)] == [probe_address]


def test_each_test_here_runs_on_the_event_loop_it_names(listener_loop: str) -> None:
    """The tests of this module run once on uvloop (where installed) and once on asyncio's
    own loop: the listener's `new_event_loop` gives the one asked for."""
    import importlib.util

    from smtp_listener.server import new_event_loop

    loop = new_event_loop()
    try:
        on_uvloop = listener_loop == "default" and importlib.util.find_spec("uvloop") is not None
        assert type(loop).__module__.split(".")[0] == ("uvloop" if on_uvloop else "asyncio")
    finally:
        loop.close()
