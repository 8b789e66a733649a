"""Hostile and broken input over real SMTP: refused or stored, never a crash.

Spammers and scanners send garbage commands, malformed addresses, raw 8-bit
envelopes and messages no parser likes. Each must get a definite reply, and
whatever is answered 250 must be stored byte for byte and analysed without
holding up the next message. Helpers are shared with `test_listener.py`.
"""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import CANARY_DOMAIN, RunningListener, issue, start_listener
from mailflow import SENDER, connect, deliver, mail, rows, store_mail, stored_raw, wait_for

from canary.message import HEADER_TEXT_MAX
from data.analyses import save_temporary_failure
from data.database import Store
from data.home import Home, init_home
from data.models import Message, Probe


@pytest.fixture
def acme(home: Home, store: Store) -> str:
    return issue(home, store, "Acme", "acme.example").address


def send_line(client: smtplib.SMTP, line: bytes) -> tuple[int, bytes]:
    """Send one command line exactly as given, bytes and all, and read the reply."""
    client.send(line + b"\r\n")
    code, text = client.getreply()
    return code, text


def stuffed(raw: bytes) -> bytes:
    """The DATA payload for `raw`: dot-stuffed and terminated, as smtplib sends it."""
    lines = raw.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + b".\r\n"


def analysed(store: Store, count: int) -> list[dict[str, Any]]:
    messages = rows(store, Message)
    done = [m for m in messages if m["analysed_at"]]
    return sorted(done, key=lambda m: m["id"]) if len(done) == count else []


# --- commands -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"XYZZY", 500),
        (b"\x00\xff\xfe\x80\x1b[2J garbage", 500),
        (b"NOOP " + b"x" * 100_000, 500),
        (f"RCPT TO:<sales@{CANARY_DOMAIN}>".encode(), 503),
        (b"DATA", 503),
    ],
    ids=["unknown-verb", "binary", "100kb-line", "rcpt-before-mail", "data-before-mail"],
)
def test_garbage_command_gets_5xx_and_the_server_keeps_serving(
    listener: RunningListener, store: Store, acme: str, line: bytes, code: int
) -> None:
    with connect(listener) as client:
        client.ehlo()
        assert send_line(client, line)[0] == code
        assert client.noop()[0] == 250  # the same connection still works

    _, data_reply = deliver(listener, [acme], mail())

    assert data_reply is not None and data_reply[0] == 250
    assert len(rows(store, Message)) == 1


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("MAIL FROM:<>", (250, b"2.1.0")),
        ("MAIL FROM:<@@>", (553, b"5.1.3")),
        ("MAIL FROM:<a@b@c>", (553, b"5.1.3")),
        ("MAIL FROM:news@acme.example", (250, b"2.1.0")),
        ("RCPT TO:<>", (550, b"5.7.1")),
        ("RCPT TO:<@@>", (553, b"5.1.3")),
        ("RCPT TO:<a@b@c>", (553, b"5.1.3")),
        ("RCPT TO:{alias}", (250, b"2.1.5")),
        ("MAIL FROM:<", (553, b"5.1.3")),
        ("RCPT TO:<", (553, b"5.1.3")),
        ("MAIL FROM:0@[", (553, b"5.1.3")),
    ],
    ids=["mail-null", "mail-at-at", "mail-two-ats", "mail-no-brackets",
         "rcpt-null", "rcpt-at-at", "rcpt-two-ats", "rcpt-no-brackets",
         "mail-lone-bracket", "rcpt-lone-bracket", "mail-open-literal"],
)
def test_invalid_address_gets_a_definite_reply_and_never_crashes(
    listener: RunningListener, store: Store, acme: str, line: str, reply: tuple[int, bytes]
) -> None:
    with connect(listener) as client:
        client.ehlo()
        if line.startswith("RCPT"):
            assert client.mail(SENDER)[0] == 250
        code, text = send_line(client, line.format(alias=acme).encode())
        assert (code, text[: len(reply[1])]) == reply
        assert client.rset()[0] == 250
        assert client.sendmail(SENDER, [acme], mail()) == {}
    assert len(rows(store, Message)) == 1


def test_null_sender_bounce_is_delivered(
    listener: RunningListener, store: Store, acme: str
) -> None:
    raw = mail(sender="MAILER-DAEMON@mx.elsewhere.example", subject="Undelivered Mail")
    with connect(listener) as client:
        client.ehlo()
        assert send_line(client, b"MAIL FROM:<>")[0] == 250
        assert client.rcpt(acme)[0] == 250
        assert client.data(raw)[0] == 250
    (message,) = rows(store, Message)
    assert stored_raw(store, message["sha256"]) == raw


# --- 8-bit and international envelopes ------------------------------------------------------


def test_smtputf8_sender_is_stored_and_idn_foreign_domain_is_refused(
    listener: RunningListener, store: Store, acme: str
) -> None:
    local = acme.partition("@")[0]
    raw = (
        "From: Jörg <jörg@例え.jp>\r\nTo: undisclosed-recipients:;\r\n"
        "Subject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo!\r\n"
    ).encode()
    with connect(listener) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        assert client.mail("jörg@例え.jp", ["SMTPUTF8"])[0] == 250
        code, text = client.rcpt(f"{local}@bücher.example")
        assert (code, text[:5]) == (550, b"5.7.1")
        assert client.rcpt(acme)[0] == 250
        assert client.data(raw)[0] == 250

    (message,) = wait_for(lambda: analysed(store, 1), "the message to be analysed")
    assert message["mail_from"] == "jörg@例え.jp"
    assert stored_raw(store, message["sha256"]) == raw
    assert message["relation"] == "unverified"


@pytest.mark.parametrize("where", ["helo", "mail-from", "rcpt-detail"])
def test_non_utf8_bytes_in_the_envelope_do_not_cost_the_message(
    listener: RunningListener, store: Store, acme: str, where: str
) -> None:
    local, _, domain = acme.partition("@")
    helo = b"EHLO mx.\xff.example" if where == "helo" else b"EHLO mx.sender.example"
    mail_from = (
        b"MAIL FROM:<b\xe9atrice@sender.example>" if where == "mail-from"
        else b"MAIL FROM:<news@sender.example>"
    )
    rcpt = (
        f"RCPT TO:<{local}+caf".encode() + b"\xe9" + f"@{domain}>".encode()
        if where == "rcpt-detail" else f"RCPT TO:<{acme}>".encode()
    )
    raw = mail(subject=f"8-bit {where}")

    with connect(listener) as client:
        replies = [send_line(client, line)[0] for line in (helo, mail_from, rcpt, b"DATA")]
        assert replies == [250, 250, 250, 354]
        client.send(stuffed(raw))
        code, text = client.getreply()

    # A 4xx here would be repeated on every retry until the sender gives up and
    # bounces: the message must be either stored or refused for good.
    assert (code, text[:5]) == (250, b"2.0.0")
    (message,) = rows(store, Message)
    assert stored_raw(store, message["sha256"]) == raw
    # The readable part of the 8-bit field is kept, whatever becomes of the odd byte.
    field, kept = {
        "helo": ("helo", "mx."),
        "mail-from": ("mail_from", "b"),
        "rcpt-detail": ("rcpt_to", f"{local}+caf"),
    }[where]
    assert message[field].startswith(kept), message[field]
    assert message["peer_ip"] == "127.0.0.1"


def test_probe_with_non_utf8_bytes_is_recorded(listener: RunningListener, store: Store) -> None:
    with connect(listener) as client:
        client.ehlo()
        client.mail(SENDER)
        code, text = send_line(client, f"RCPT TO:<d\xe9mo@{CANARY_DOMAIN}>".encode("latin-1"))
        assert (code, text[:5]) == (550, b"5.1.1")
    refused, _ = deliver(listener, [f"sales@{CANARY_DOMAIN}"], mail())
    assert refused[0][0] == 550

    wait_for(lambda: [p for p in rows(store, Probe) if p["address"].startswith("sales@")],
             "the plain probe to be recorded")
    addresses = sorted(p["address"] for p in rows(store, Probe))
    assert len(addresses) == 2, addresses
    assert addresses[0].startswith("d") and addresses[0].endswith(f"mo@{CANARY_DOMAIN}")


# --- hostile messages -----------------------------------------------------------------------

ACME_FROM = b"From: Acme News <news@acme.example>\r\n"
COMMON = b"To: customer@canary.example.org\r\nMessage-ID: <hostile@acme.example>\r\n"

HOSTILE = {
    "non-utf8-headers": (
        b"From: Acme N\xe9ws \xff <news@acme.example>\r\n" + COMMON
        + b"Subject: Caf\xe9 \xfe\xff deals\r\n\r\nPrix r\xe9duits.\r\n",
        None, {"first_party"},
    ),
    "nul-bytes": (
        ACME_FROM + COMMON + b"Subject: zero\x00day\r\n\r\nbody\x00\x00 text\r\n",
        "message contains NUL bytes", {"first_party"},
    ),
    "no-from": (
        COMMON + b"Subject: who sent this?\r\n\r\nbody\r\n",
        "no From header", {"unverified"},
    ),
    "two-from": (
        ACME_FROM + b"From: offers@marketer.example\r\n" + COMMON
        + b"Subject: which one?\r\n\r\nbody\r\n",
        # Never the company's own: a second From is a DMARC evasion trick.
        "2 From headers", {"unverified", "spoofed"},
    ),
    # Charsets that decode into lone surrogates, which no database can store.
    "surrogate-charsets": (
        b"From: =?unicode-escape?q?\\udfff?= <news@acme.example>\r\n" + COMMON
        + b"Subject: =?utf-7?q?+2AA-?= x =?unicode-escape?q?\\ud800?=\r\n"
        + b"List-Unsubscribe: =?unicode-escape?q?\\ud800?= <https://acme.example/u>\r\n"
        + b"\r\nbody\r\n",
        None, {"first_party"},
    ),
    # An old autoresponder mark with 8-bit bytes: its raw value is quoted in the reason.
    "8-bit-autoreply-mark": (
        b"From: Out of office <someone@elsewhere.example>\r\n" + COMMON
        + b"X-Autoreply: yes \xff\xfe\r\nSubject: away\r\n\r\nbody\r\n",
        None, {"backscatter"},
    ),
    "200kb-header": (
        ACME_FROM + COMMON + b"Subject: " + b"A" * 200_000 + b"\r\n\r\nbody\r\n",
        None, {"first_party"},
    ),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_message_is_stored_exactly_marked_and_does_not_stop_analysis(
    listener: RunningListener, store: Store, acme: str, kind: str
) -> None:
    raw, problem, relations = HOSTILE[kind]
    normal = mail(subject="the next message")

    with connect(listener) as client:
        assert client.sendmail(SENDER, [acme], raw) == {}
        assert client.sendmail(SENDER, [acme], normal) == {}

    hostile_row, normal_row = wait_for(lambda: analysed(store, 2), "both messages analysed")
    assert stored_raw(store, hostile_row["sha256"]) == raw
    assert hostile_row["relation"] in relations, hostile_row["reason"]
    if problem is not None:
        assert problem in (hostile_row["problem"] or ""), hostile_row["problem"]
    if kind == "200kb-header":
        assert hostile_row["subject"] == "A" * HEADER_TEXT_MAX
    if kind == "non-utf8-headers":
        assert hostile_row["from_address"] == "news@acme.example"
        assert hostile_row["subject"].startswith("Caf")
    assert stored_raw(store, normal_row["sha256"]) == normal
    assert (normal_row["relation"], normal_row["problem"]) == ("first_party", None)


# --- NUL on PostgreSQL, whose text columns cannot hold it -----------------------------------


def test_nul_in_the_envelope_costs_no_mail_on_postgresql(tmp_path: Path,
                                                          postgres_url: str) -> None:
    """SQLite stores a NUL; PostgreSQL refuses it in text. A NUL in MAIL FROM or HELO was
    answered 451 for ever (the sender retries until it bounces), a NUL in a recipient 451
    instead of 550. Canary writes U+FFFD in its place; the message is stored byte for byte."""
    home = init_home(tmp_path / "home", [CANARY_DOMAIN], database_url=postgres_url)
    store = home.store()
    acme = issue(home, store, "Acme", "acme.example").address
    running = start_listener(home, store)
    try:
        raws = [mail(subject=f"NUL in the {where}") for where in ("helo", "mail from")]
        for raw, helo, sender in ((raws[0], b"EHLO mx.\x00.example", b"<news@acme.example>"),
                                  (raws[1], b"EHLO mx.acme.example", b"<bou\x00nce@acme.example>")):
            with connect(running) as client:
                replies = [send_line(client, line)[0]
                           for line in (helo, b"MAIL FROM:" + sender, f"RCPT TO:<{acme}>".encode(),
                                        b"DATA")]
                assert replies == [250, 250, 250, 354]
                client.send(stuffed(raw))
                assert client.getreply()[0] == 250
        with connect(running) as client:
            client.ehlo()
            client.mail(SENDER)
            local, _, domain = acme.partition("@")
            assert send_line(client, f"RCPT TO:<{local}\x00@{domain}>".encode())[0] == 550
            assert send_line(client, f"RCPT TO:<no\x00such@{domain}>".encode())[0] == 550
        helo_row, from_row = wait_for(lambda: analysed(store, 2), "both messages analysed")
        assert [stored_raw(store, r["sha256"]) for r in (helo_row, from_row)] == raws
        assert helo_row["helo"] == "mx.\ufffd.example"
        assert from_row["mail_from"] == "bou\ufffdnce@acme.example"
        assert wait_for(lambda: [p for p in rows(store, Probe) if "such@" in p["address"]],
                        "the probe recorded")[0]["address"] == f"no\ufffdsuch@{domain}"
    finally:
        running.stop()
        store.dispose()


def test_a_dns_error_quoting_a_nul_is_saved_on_postgresql(tmp_path: Path,
                                                           postgres_url: str) -> None:
    """A DKIM tag with a NUL, quoted in the DNS error of its key lookup, is saved with the
    message's temporary failure; it does not fail the save and set the message aside."""
    home = init_home(tmp_path / "home", [CANARY_DOMAIN], database_url=postgres_url)
    store = home.store()
    try:
        acme = issue(home, store, "Acme", "acme.example").address
        store_mail(store, acme, mail(subject="DKIM d= with a NUL"))
        (message,) = rows(store, Message)
        with store.writing() as session:
            save_temporary_failure(session, message["id"],
                                   "s1._domainkey.x\x00.example TXT: timed out",
                                   datetime.now(UTC) + timedelta(minutes=1))
        (message,) = rows(store, Message)
        assert message["temperror"] == "s1._domainkey.x\ufffd.example TXT: timed out"
        assert message["failures"] == 0
    finally:
        store.dispose()
