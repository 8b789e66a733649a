"""Delivery end to end: the real listener, real SQLite, a real Dovecot (LMTP, IMAP, Maildir).

Mail goes over real SMTP (with the relay's XFORWARD, as Postfix in front of
Canary sends it) to the real listener; its worker process analyses the mail
against a loopback DNS server serving the companies' SPF, DKIM and DMARC
records and delivers it to the destinations configured, here a private
Dovecot the harness in `tests/servers/dovecot.py` runs. The assertions are
what the person sees: the bytes in the mailbox (fetched over IMAP), the
labels, the Subject, and the `canary` commands' output.
"""

from __future__ import annotations

import email.header
import json
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dkim
import pytest
from commands import Canary
from conftest import CANARY_DOMAIN, RunningListener, issue, start_listener
from factories import make_message
from mailflow import rows, sql, wait_for
from servers.dovecot import Dovecot, strip_lmtp_trace
from signing import DkimKey, crlf, rsa_key

from canary.delivery import (
    DEFAULT_ACTIONS,
    Action,
    DeliveryConfig,
    DeliveryPolicy,
    parse_destination,
)
from canary.relation import Relation
from data.database import Store
from data.home import Home
from data.models import DeliveryJob, Message
from smtp_listener.delivery import Deliverer
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones

ACME_IP, ACME_HELO = "198.51.100.10", "mail.acme.example"
DEALS_IP, DEALS_HELO = "203.0.113.25", "mta1.dealblaster.example"
FORGER_IP, FORGER_HELO = "203.0.113.66", "vps66.hosting.example"
LABELS = ("authentication-results", "x-canary-alias", "x-canary-company", "x-canary-relation",
          "x-canary-sender", "x-canary-verdict", "x-canary-id")
"""Canary's label block, in the order it is prepended."""


# --- the world: DNS, keys, the alias -----------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[str, DkimKey]:
    return {"acme": rsa_key("acme.example", "s1"),
            "dealblaster": rsa_key("dealblaster.example", "k2024")}


@pytest.fixture
def world(zones: Zones, keys: dict[str, DkimKey]) -> Zones:
    """Acme signs and publishes p=reject; DealBlaster, a marketer, signs as itself."""
    zones.add_txt("acme.example", f"v=spf1 ip4:{ACME_IP} -all")
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject")
    keys["acme"].publish(zones)
    zones.add_txt("dealblaster.example", f"v=spf1 ip4:{DEALS_IP} -all")
    zones.add_txt("_dmarc.dealblaster.example", "v=DMARC1; p=none")
    keys["dealblaster"].publish(zones)
    return zones


@pytest.fixture
def acme(home: Home, store: Store) -> str:
    return issue(home, store, "Acme", "acme.example").address


Listen = Callable[..., RunningListener]


def configure(home: Home, *urls: str) -> None:
    """`canary init --force --domain … --deliver URL…`: where the home delivers, from now on."""
    result = Canary(home.path)("init", "--force", "--domain", CANARY_DOMAIN,
                               *(part for url in urls for part in ("--deliver", url)))
    assert result.exit_code == 0, result.output
    for url in urls:
        assert f"Delivers to: {parse_destination(url).key}" in result.stdout, result.stdout


@pytest.fixture
def listen(world: Zones, home: Home, store: Store, resolver: Resolver
           ) -> Iterator[Listen]:
    """Configure the destinations as the person does (`canary init --force --deliver URL`),
    then start the real listener with them; every listener started is stopped after."""
    started: list[RunningListener] = []

    def start(*urls: str, **options: Any) -> RunningListener:
        configure(home, *urls)
        running = start_listener(home, store, resolver,
                                 delivery=DeliveryConfig(urls=urls, **options))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def send(running: RunningListener, rcpt: str | list[str], raw: bytes, *, mail_from: str,
         client: str, helo: str) -> None:
    """One transaction as the person's relay makes it (XFORWARD of the real client); the
    listener must accept it with 250."""
    with smtplib.SMTP(running.host, running.port, local_hostname="relay.user.example",
                      timeout=10) as smtp:
        smtp.ehlo()
        code, text = smtp.docmd("XFORWARD", f"ADDR={client} HELO={helo}")
        assert code == 250, text
        code, text = smtp.mail(mail_from, [] if mail_from.isascii() else ["SMTPUTF8"])
        assert code == 250, text
        for one in [rcpt] if isinstance(rcpt, str) else rcpt:
            code, text = smtp.rcpt(one)
            assert code == 250, text
        code, text = smtp.data(raw)
        assert code == 250, text


def from_acme(keys: dict[str, DkimKey], subject: str = "Spring sale",
              headers: dict[str, str] | None = None) -> bytes:
    """Acme's own newsletter, DKIM-signed by Acme, CRLF line ends as transmitted."""
    return keys["acme"].sign(make_message(sender='"Acme" <news@acme.example>', subject=subject,
                                          headers=headers))


def send_from_acme(running: RunningListener, alias: str, raw: bytes) -> None:
    send(running, alias, raw, mail_from="bounce@acme.example", client=ACME_IP, helo=ACME_HELO)


def from_dealblaster(keys: dict[str, DkimKey], subject: str = "Deals picked for you") -> bytes:
    return keys["dealblaster"].sign(make_message(
        sender='"DealBlaster" <offers@dealblaster.example>', subject=subject))


def send_from_dealblaster(running: RunningListener, alias: str | list[str], raw: bytes
                          ) -> None:
    send(running, alias, raw, mail_from="bounce@dealblaster.example", client=DEALS_IP,
         helo=DEALS_HELO)


def forged_acme(subject: str = "Your account is locked") -> bytes:
    """Claims to be Acme, unsigned, from a host Acme's SPF does not list: fails p=reject."""
    return crlf(make_message(sender='"Acme Security" <security@acme.example>', subject=subject))


def send_forged(running: RunningListener, alias: str, raw: bytes) -> None:
    send(running, alias, raw, mail_from="security@acme.example", client=FORGER_IP,
         helo=FORGER_HELO)


# --- reading what arrived ----------------------------------------------------------------------


def split_labels(message: bytes) -> tuple[list[tuple[str, str]], bytes]:
    """Canary's label fields at the top of `message` (name, unfolded value), and the rest.

    Only Canary's own fields count as labels: an Authentication-Results of Canary's
    authserv-id and X-Canary-*; the first other field starts the rest.
    """
    labels: list[tuple[str, str]] = []
    rest = message
    while True:
        end = rest.index(b"\r\n") + 2
        while rest[end:end + 1] in (b" ", b"\t"):
            end = rest.index(b"\r\n", end) + 2
        field = rest[:end].decode("utf-8", "surrogateescape")
        name, _, value = field.partition(":")
        value = " ".join(value.split())
        ours = name.lower().startswith("x-canary-") or (
            name.lower() == "authentication-results"
            and value.split(";")[0].strip() == CANARY_DOMAIN)
        if not ours:
            return labels, rest
        labels.append((name.lower(), value))
        rest = rest[end:]


def labelled(message: bytes, received: bytes) -> dict[str, str]:
    """The labels, after checking they are Canary's seven fields, in order, on top of exactly
    the bytes `received`."""
    labels, rest = split_labels(message)
    assert [name for name, _ in labels] == list(LABELS), labels
    assert rest == received, "the bytes after the labels differ from the bytes received"
    return dict(labels)


def header(message: bytes, name: str) -> list[str]:
    """Every value of the header field `name`, unfolded and RFC 2047-decoded."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    values = []
    for field in head.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n"):
        found, _, value = field.partition(":")
        if found.strip().lower() == name.lower():
            words = email.header.decode_header(value.strip())
            values.append("".join(w.decode(c or "ascii") if isinstance(w, bytes) else w
                                  for w, c in words))
    return values


def dkim_verifies(message: bytes, key: DkimKey) -> bool:
    """dkimpy's verdict on the message's signature, with the key record served from here."""
    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes:
        asked = name.decode() if isinstance(name, bytes) else name
        return key.record.encode() if asked.rstrip(".") == key.record_name else b""

    return bool(dkim.verify(message, dnsfunc=dnsfunc))


def inbox(dovecot: Dovecot, count: int, folder: str = "INBOX", timeout: float = 10.0
          ) -> list[bytes]:
    """The folder's messages once there are `count` of them (fails on more, or on a timeout)."""
    deadline = time.monotonic() + timeout
    while len(found := dovecot.fetch_all(folder)) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{len(found)} message(s) in {folder} after {timeout:.0f} s, "
                        f"expected {count}")
        time.sleep(0.05)
    assert len(found) == count, f"{len(found)} messages in {folder}, expected {count}"
    return found


def lmtp_url(dovecot: Dovecot, recipient: str | None = None) -> str:
    return f"lmtp:{dovecot.host}:{dovecot.lmtp_port}?recipient={recipient or dovecot.user}"


def jobs(store: Store) -> list[dict[str, Any]]:
    return sorted(rows(store, DeliveryJob), key=lambda job: job["id"])


def messages(store: Store) -> list[dict[str, Any]]:
    return sorted(rows(store, Message), key=lambda message: message["id"])


# --- 1. LMTP --------------------------------------------------------------------------------


def test_lmtp_delivers_the_received_bytes_once_labelled_and_still_signed(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey],
    store: Store,
) -> None:
    # Over TCP and over the Unix socket: two destinations, one copy through each.
    dovecot = clean_dovecot
    running = listen(lmtp_url(dovecot), f"lmtp:{dovecot.lmtp_socket}?recipient={dovecot.user}")
    raw = from_acme(keys)

    send_from_acme(running, acme, raw)
    running.settle()

    arrived = inbox(dovecot, 2)
    # Dovecot's Received names the client's address over TCP only.
    assert sorted(b"([127.0.0.1])" in lmtp_received(m) for m in arrived) == [
        False, True]
    (message,) = messages(store)
    for fetched in arrived:
        delivered = strip_lmtp_trace(fetched)
        labels = labelled(delivered, raw)
        assert labels["x-canary-alias"] == acme
        assert labels["x-canary-company"] == "Acme"
        assert labels["x-canary-relation"] == "first_party"
        assert labels["x-canary-sender"] == "acme.example"
        assert labels["x-canary-verdict"] == "clean"
        assert labels["x-canary-id"] == message["sha256"]
        assert labels["authentication-results"] == (
            f"{CANARY_DOMAIN}; spf=pass smtp.mailfrom=acme.example; "
            "dkim=pass header.d=acme.example; dmarc=pass policy.policy=reject")
        assert header(delivered, "Subject") == ["Spring sale"], "expected mail is not tagged"
        assert dkim_verifies(fetched, keys["acme"]), "Acme's signature no longer verifies"
        # The envelope Dovecot saw is the original one, to the configured mailbox.
        assert fetched.startswith(b"Return-Path: <bounce@acme.example>\r\n"
                                  + f"Delivered-To: {dovecot.user}\r\n".encode())
    assert [(j["state"], j["action"], j["attempts"]) for j in jobs(store)] == [
        ("delivered", "deliver", 1)] * 2


def lmtp_received(message: bytes) -> bytes:
    """Dovecot's Received field (the third it prepends)."""
    rest = message
    for _ in range(3):
        end = rest.index(b"\r\n") + 2
        while rest[end:end + 1] in (b" ", b"\t"):
            end = rest.index(b"\r\n", end) + 2
        field, rest = rest[:end], rest[end:]
    assert field.startswith(b"Received: "), field
    return field


def reset_jobs(home: Home) -> None:
    """Put every delivered job back to pending, as a crash between the destination's
    acceptance and Canary's record of it would leave it."""
    sql(home, "UPDATE deliveryjob SET state = 'pending', next_attempt_at = NULL, "
              "claimed_until = NULL, delivered_at = NULL WHERE state = 'delivered'")


def deliver_again(store: Store, *urls: str) -> int:
    """One delivery pass, in this process, as a deliverer restarted after a crash makes it;
    return how many deliveries it counted as done."""
    deliverer = Deliverer(store, DeliveryConfig(urls=urls), CANARY_DOMAIN,
                          lambda: datetime.now(UTC))
    done = deliverer.run_once()
    assert (done.held, done.retrying, done.failed) == (0, 0, 0), done
    return done.delivered


# --- 2. IMAP APPEND --------------------------------------------------------------------------


def test_imap_append_stores_labels_and_the_received_bytes_once(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], store: Store,
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dovecot = clean_dovecot
    # IMAP to INBOX with the password in an environment variable; IMAPS, verified against
    # the harness's self-signed certificate, to a folder of its own, with the password in a
    # file only its owner reads.
    monkeypatch.setenv("CANARY_TEST_IMAP_PASSWORD", dovecot.password)
    secret = tmp_path / "imap-password"
    secret.write_text(dovecot.password + "\n")
    secret.chmod(0o600)
    dovecot.create_folder("Canary")
    urls = (f"imap://{dovecot.user}@{dovecot.host}:{dovecot.imap_port}/INBOX"
            "?password_env=CANARY_TEST_IMAP_PASSWORD",
            f"imaps://{dovecot.user}@{dovecot.host}:{dovecot.imaps_port}/Canary"
            f"?password_file={secret}&cafile={dovecot.cert_path}")
    running = listen(*urls)
    raw = from_acme(keys)

    send_from_acme(running, acme, raw)
    running.settle()

    appended = {folder: inbox(dovecot, 1, folder) for folder in ("INBOX", "Canary")}
    for (one,) in appended.values():
        labels = labelled(one, raw)
        assert (labels["x-canary-relation"], labels["x-canary-alias"]) == ("first_party", acme)
        assert dkim_verifies(one, keys["acme"])
    running.stop()

    # A crash after the APPEND but before Canary recorded it: the next pass finds the
    # message by its X-Canary-Id and does not append it again.
    reset_jobs(home)
    assert deliver_again(store, *urls) == 2
    for folder, before in appended.items():
        assert dovecot.fetch_all(folder) == before
    assert [(j["state"], j["attempts"]) for j in jobs(store)] == [("delivered", 2)] * 2


# --- 3. Maildir ------------------------------------------------------------------------------


def test_maildir_delivery_is_read_by_dovecot_and_by_any_maildir_reader_once(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], store: Store,
    home: Home, tmp_path: Path,
) -> None:
    dovecot = clean_dovecot
    own = tmp_path / "Mail" / "Canary"  # does not exist yet: Canary makes it
    urls = (f"maildir:{dovecot.maildir}", f"maildir:{own}")
    running = listen(*urls)
    raw = from_acme(keys)

    send_from_acme(running, acme, raw)
    running.settle()

    (written,) = (dovecot.maildir / "new").iterdir()
    assert labelled(written.read_bytes(), raw)["x-canary-relation"] == "first_party"
    # Canary runs as the mailbox's owner in real life; here the test runs as root and
    # Dovecot as `nobody`, so the file is handed to Dovecot's user first.
    dovecot.account.own(written)
    (fetched,) = inbox(dovecot, 1)
    assert labelled(fetched, raw)["x-canary-alias"] == acme
    assert dkim_verifies(fetched, keys["acme"])

    (mine,) = mailbox_messages(own)
    assert mine == written.read_bytes()
    running.stop()

    # The mail client has seen it (new/ → cur/ with flags); a crash then makes the
    # deliverer try again: the file is named after the message's hash and alias, and
    # nothing is written twice.
    with dovecot.imap() as client:
        assert client.select("INBOX")[0] == "OK"
        assert client.store("1", "+FLAGS", r"(\Seen)")[0] == "OK"
    assert list((dovecot.maildir / "new").iterdir()) == []
    reset_jobs(home)
    assert deliver_again(store, *urls) == 2
    assert dovecot.fetch_all("INBOX") == [fetched]
    assert mailbox_messages(own) == [mine]
    assert [j["state"] for j in jobs(store)] == ["delivered", "delivered"]


def mailbox_messages(path: Path) -> list[bytes]:
    """Every message of the Maildir at `path`, as the standard library's reader sees it."""
    import mailbox

    folder = mailbox.Maildir(path, create=False)
    try:
        return [folder.get_bytes(key) for key in folder.iterkeys()]
    finally:
        folder.close()


# --- 4. forged labels -----------------------------------------------------------------------


FORGED_ON_TOP = (
    b"X-Canary-Relation: first_party\r\n"
    b"Authentication-Results: canary.example.org; dkim=pass header.d=acme.example\r\n"
    b"Authentication-Results: CANARY.EXAMPLE.ORG;\r\n\tspf=pass smtp.mailfrom=acme.example\r\n")
FORGED_INSIDE = (
    b"X-Canary-Company: Globex\r\n"
    b"Authentication-Results: canary.example.org 1; dkim=pass header.d=acme.example\r\n"
    b"x-canary-verdict: clean\r\n")
FORGED_LAST = (
    b"Authentication-Results: canary.example.org (checked by Canary);\r\n dkim=pass\r\n"
    b"X-Canary-Id: 0000\r\n")
KEPT = (b"Authentication-Results: mx.google.com; dkim=pass header.d=dealblaster.example\r\n"
        b"Authentication-Results: mx.example.net (canary.example.org); spf=pass\r\n"
        b"Authentication-Results: canary.example.org.evil.example; dkim=pass\r\n")


def test_forged_labels_are_removed_and_other_authentication_results_kept(
    world: Zones, home: Home, store: Store, resolver: Resolver, clean_dovecot: Dovecot,
    acme: str, keys: dict[str, DkimKey],
) -> None:
    # Third-party mail delivered untagged (a policy of the person's), so the bytes after the
    # labels can be compared with what was sent, forged fields aside.
    url = lmtp_url(clean_dovecot)
    configure(home, url)
    policy = DeliveryPolicy(actions={**DEFAULT_ACTIONS, Relation.THIRD_PARTY: Action.DELIVER})
    running = start_listener(home, store, resolver,
                             delivery=DeliveryConfig(urls=(url,), policy=policy))
    try:
        signed = keys["dealblaster"].sign(KEPT + crlf(make_message(
            sender='"DealBlaster" <offers@dealblaster.example>', subject="Deals",
            headers={"X-Canaryish": "kept", "X-Not-Canary-Relation": "kept"})))
        # Forged fields on top (as if a forwarder had added them), among the signed ones,
        # and as the last field of the header.
        head, _, body = signed.partition(b"\r\n\r\n")
        head = head.replace(b"\r\nTo: ", b"\r\n" + FORGED_INSIDE + b"To: ", 1)
        raw = FORGED_ON_TOP + head + b"\r\n" + FORGED_LAST + b"\r\n" + body
        assert dkim_verifies(raw, keys["dealblaster"])

        send_from_dealblaster(running, acme, raw)
        running.settle()
    finally:
        running.stop()

    (fetched,) = inbox(clean_dovecot, 1)
    delivered = strip_lmtp_trace(fetched)
    labels = labelled(delivered, signed)  # exactly the sent bytes without the forged fields
    assert labels["x-canary-relation"] == "third_party"
    assert header(delivered, "X-Canary-Relation") == ["third_party"]
    assert header(delivered, "X-Canary-Company") == ["Acme"]
    assert header(delivered, "X-Canary-Verdict") == ["shared"]
    (message,) = messages(store)
    assert header(delivered, "X-Canary-Id") == [message["sha256"]]
    assert header(delivered, "Authentication-Results") == [
        f"{CANARY_DOMAIN}; spf=pass smtp.mailfrom=dealblaster.example; "
        "dkim=pass header.d=dealblaster.example; dmarc=pass policy.policy=none",
        "mx.google.com; dkim=pass header.d=dealblaster.example",
        "mx.example.net (canary.example.org); spf=pass",
        "canary.example.org.evil.example; dkim=pass"]
    assert header(delivered, "X-Canaryish") == ["kept"]
    assert header(delivered, "X-Not-Canary-Relation") == ["kept"]
    assert dkim_verifies(fetched, keys["dealblaster"])


# --- 5. labels and the policy: expected, unexpected, spoofed (held, released, dropped) -------


def without_subject_tag(message: bytes, subject: bytes) -> bytes:
    """The message with its (possibly folded) Subject field put back to `subject`."""
    start = message.index(b"\r\nSubject: ") + 2
    end = message.index(b"\r\n", start) + 2
    while message[end:end + 1] in (b" ", b"\t"):
        end = message.index(b"\r\n", end) + 2
    return message[:start] + b"Subject: " + subject + b"\r\n" + message[end:]


@pytest.mark.slow
def test_expected_mail_is_delivered_unexpected_tagged_and_spoofed_held_until_released(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], store: Store,
    home: Home,
) -> None:
    canary = Canary(home.path)
    url = lmtp_url(clean_dovecot)
    hold_spoofed = DeliveryPolicy(actions={**DEFAULT_ACTIONS, Relation.SPOOFED: Action.HOLD})
    running = listen(url, policy=hold_spoofed)
    own, marketer = from_acme(keys), from_dealblaster(keys)
    forged = [forged_acme("Your account is locked"), forged_acme("Confirm your card")]

    send_from_acme(running, acme, own)
    send_from_dealblaster(running, acme, marketer)
    for raw in forged:
        send_forged(running, acme, raw)
    running.settle()

    delivered = {labelled_id(m): strip_lmtp_trace(m) for m in inbox(clean_dovecot, 2)}
    by_sha = {m["sha256"]: m for m in messages(store)}
    assert sorted(by_sha[sha]["relation"] for sha in delivered) == ["first_party", "third_party"]
    for sha, message in delivered.items():
        relation = by_sha[sha]["relation"]
        if relation == "first_party":
            labels = labelled(message, own)
            assert header(message, "Subject") == ["Spring sale"]
            assert labels["x-canary-sender"] == "acme.example"
        else:
            fields, rest = split_labels(message)
            assert dict(fields)["x-canary-relation"] == "third_party"
            assert dict(fields)["x-canary-sender"] == "dealblaster.example"
            assert header(message, "Subject") == [
                "[Canary: Acme \u2192 dealblaster.example] Deals picked for you"]
            # Encoded as RFC 2047 (the arrow is not ASCII); nothing else changed.
            assert b"\r\nSubject: =?utf-8?" in rest and rest.isascii()
            assert without_subject_tag(rest, b"Deals picked for you") == marketer
            # The tag changes a signed field: as the README says, the signature breaks.
            assert not dkim_verifies(message, keys["dealblaster"])
            assert dkim_verifies(without_subject_tag(rest, b"Deals picked for you"),
                                 keys["dealblaster"])

    # The spoofed ones are held: listed with their IDs, delivered nowhere.
    document = canary.json("held", schema="held")
    assert [(h["relation"], h["subject"], h["company"], h["alias"], h["destinations"])
            for h in document["held"]] == [
        ("spoofed", "Your account is locked", "Acme", acme, [parse_destination(url).key]),
        ("spoofed", "Confirm your card", "Acme", acme, [parse_destination(url).key])]
    released, dropped = (h["id"] for h in document["held"])
    running.stop()

    result = canary("release", str(released))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Released 1 message: {released}."
    result = canary("drop", str(dropped))
    assert result.exit_code == 0, result.output
    assert f"Dropped 1 message from delivery: {dropped}" in result.stdout
    assert canary.json("deliver", schema="deliver") == {
        "schema_version": 1, "delivered": 1, "held": 0, "retrying": 0, "failed": 0,
        "errors": []}

    everything = inbox(clean_dovecot, 3)
    (released_message,) = [strip_lmtp_trace(m) for m in everything
                           if labelled_id(m) == by_id(store, released)["sha256"]]
    labels = labelled(released_message, forged[0])  # released as `deliver`: not tagged
    assert labels["x-canary-relation"] == "spoofed"
    assert "dmarc=fail" in labels["authentication-results"]
    assert not any(labelled_id(m) == by_id(store, dropped)["sha256"] for m in everything)

    states = {d["id"]: (d["state"], d["attempts"])
              for d in canary.json("deliveries", schema="deliveries")["deliveries"]}
    assert states[released] == ("delivered", 1)
    assert states[dropped] == ("dropped", 0)
    assert sorted(states.values()) == sorted([("delivered", 1)] * 3 + [("dropped", 0)])
    assert canary.json("held", schema="held")["held"] == []
    # Dropped from delivery, not from the evidence.
    timeline = canary.json("show", "Acme", schema="show")["timeline"]
    assert [(t["relation"], t["subject"]) for t in timeline
            if t["sha256"] == by_id(store, dropped)["sha256"]] == [
        ("spoofed", "Confirm your card")]
    # Once dropped, it cannot be released.
    result = canary("release", str(dropped))
    assert result.exit_code == 1 and "Nothing held matches" in result.stderr
    assert len(clean_dovecot.fetch_all()) == 3


def labelled_id(message: bytes) -> str:
    (value,) = header(message, "X-Canary-Id")
    return str(value)


def by_id(store: Store, message_id: int) -> dict[str, Any]:
    (found,) = [m for m in messages(store) if m["id"] == message_id]
    return found


# --- 6. the destination is down ---------------------------------------------------------------


def deliveries_json(home: Home) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = Canary(home.path).json("deliveries",
                                                         schema="deliveries")["deliveries"]
    return found


@pytest.mark.slow
def test_mail_for_a_stopped_dovecot_is_accepted_retried_and_arrives_once_it_is_back(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], home: Home,
) -> None:
    dovecot = clean_dovecot
    running = listen(lmtp_url(dovecot), first_retry=timedelta(seconds=0.5))
    raw = from_acme(keys)
    dovecot.stop()
    try:
        send_from_acme(running, acme, raw)  # asserts the 250
        (waiting,) = wait_for(
            lambda: [d for d in deliveries_json(home) if d["attempts"] >= 1],
            "a first failed delivery attempt")
        assert waiting["state"] == "pending"
        assert "Connection refused" in waiting["last_error"], waiting["last_error"]
        assert waiting["delivered_at"] is None
    finally:
        dovecot.start()

    # Canary is not restarted: its retry finds Dovecot again.
    (fetched,) = inbox(dovecot, 1, timeout=15)
    assert labelled(strip_lmtp_trace(fetched), raw)["x-canary-relation"] == "first_party"
    (done,) = wait_for(lambda: [d for d in deliveries_json(home) if d["state"] == "delivered"],
                       "the delivery to be recorded")
    assert done["attempts"] >= 2 and done["last_error"] is None
    running.settle()
    assert len(dovecot.fetch_all()) == 1


# --- 7. permanent failures -------------------------------------------------------------------


def test_permanent_failures_fail_at_once_with_the_reason(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], home: Home,
    tmp_path: Path,
) -> None:
    dovecot = clean_dovecot
    private, readable = tmp_path / "password", tmp_path / "shared-password"
    for path, mode in ((private, 0o600), (readable, 0o644)):
        path.write_text(dovecot.password)
        path.chmod(mode)
    urls = (lmtp_url(dovecot, "bob"),
            f"imap://{dovecot.user}@{dovecot.host}:{dovecot.imap_port}/Missing"
            f"?password_file={private}",
            f"imap://{dovecot.user}@{dovecot.host}:{dovecot.imap_port}/INBOX"
            f"?password_file={readable}")
    running = listen(*urls, first_retry=timedelta(seconds=0.2))
    send_from_acme(running, acme, from_acme(keys))
    running.settle()

    failed = Canary(home.path).json("deliveries", "--failed", schema="deliveries")["deliveries"]
    errors = {d["destination"]: d["last_error"] for d in failed}
    keys_ = [parse_destination(url).key for url in urls]
    assert sorted(errors) == sorted(keys_)
    assert all(d["state"] == "failed" and d["attempts"] == 1 for d in failed), failed
    assert "RCPT TO <bob>: 550" in errors[keys_[0]] and "doesn't exist" in errors[keys_[0]]
    assert "there is no folder 'Missing'" in errors[keys_[1]]
    assert f"{readable} can be read by others; chmod 600 it" in errors[keys_[2]]
    assert dovecot.password not in json.dumps(failed)

    text = Canary(home.path)("deliveries", "--failed", env={"COLUMNS": "400"})
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("Failed deliveries")
    assert all(error in text.stdout for error in errors.values()), text.stdout
    # Nothing is retried, and nothing arrived anywhere.
    result = Canary(home.path)("deliver")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Delivered 0 messages; held 0, to retry 0, failed 0."
    assert dovecot.fetch_all() == []
    # The report says so, and where to look.
    report = Canary(home.path)("report")
    assert report.exit_code == 0, report.output
    assert "3 deliveries failed for good: see canary deliveries --failed." in report.stdout
    assert Canary(home.path).json("report")["deliveries"] == {"failed": 3, "held": 0}


class Trap:
    """A TCP port on loopback that records every connection made to it (and answers like an
    SMTP or LMTP server would start to, so a client would go on to send)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((host, port))
        self.socket.listen(16)
        self.socket.settimeout(0.1)
        self.host, self.port = self.socket.getsockname()[:2]
        self.connections: list[tuple[str, int]] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        # It does see a connection (else a test relying on it could not fail).
        socket.create_connection((self.host, self.port), timeout=5).close()
        wait_for(lambda: self.connections, f"the trap on port {self.port} to see a probe")
        self.connections.clear()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, peer = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(peer)
            with connection:
                connection.sendall(b"220 trap.test ESMTP\r\n")

    def close(self) -> None:
        self._stopping.set()
        self._thread.join()
        self.socket.close()


def test_a_failed_delivery_sends_nothing_back_to_the_sender(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], home: Home,
    world: Zones,
) -> None:
    # The sender's domain has an MX on loopback, where a bounce would go.
    world.add("dealblaster.example", "MX", "10 mx.dealblaster.example.")
    world.add("mx.dealblaster.example", "A", "127.0.0.1")
    try:
        mx = Trap("127.0.0.1", 25)
    except OSError as error:
        pytest.skip(f"cannot listen on 127.0.0.1:25 to catch a bounce ({error})")
    try:
        running = listen(lmtp_url(clean_dovecot, "bob"))
        send_from_dealblaster(running, acme, from_dealblaster(keys))
        running.settle()
        (failed,) = deliveries_json(home)
        assert failed["state"] == "failed"
        running.stop()
    finally:
        mx.close()
    assert mx.connections == []
    assert clean_dovecot.fetch_all() == []


# --- 8. only configured destinations -----------------------------------------------------------


def test_no_message_content_or_envelope_chooses_a_destination(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], home: Home,
    store: Store, tmp_path: Path,
) -> None:
    trap = Trap()
    elsewhere = tmp_path / "elsewhere"
    try:
        at = f"{trap.host}:{trap.port}"
        running = listen(lmtp_url(clean_dovecot))
        asks = {
            "X-Deliver-To": f"lmtp:{at}?recipient=alice",
            "X-Canary-Destination": f"smtp://{at}?recipient=alice@example.org",
            "Delivered-To": f"alice@[{trap.host}]",
            "Reply-To": f"alice@[{trap.host}]",
            "Disposition-Notification-To": f"<alice@[{trap.host}]>",
            "Return-Receipt-To": f"alice@[{trap.host}]",
            "Errors-To": f"alice@[{trap.host}]",
            "X-Maildir": f"maildir:{elsewhere}",
        }
        sent = [
            from_acme(keys, subject=f"Deliver to imap://alice@{at}/INBOX", headers=asks),
            crlf(make_message(sender=f"<postmaster@[{trap.host}]>",
                              subject=f"Undeliverable: lmtp:{at}", headers=asks)),
        ]
        send_from_acme(running, acme, sent[0])
        send(running, acme, sent[1], mail_from=f"bounce@[{trap.host}]", client=trap.host,
             helo=f"[{trap.host}]")
        running.settle()
        arrived = inbox(clean_dovecot, 2)
        running.stop()
    finally:
        trap.close()

    # Acme's own mail as sent, the unverified one tagged; the forged X-Canary-Destination
    # is a label's name: removed, like any X-Canary-* field.
    forged = f"X-Canary-Destination: {asks['X-Canary-Destination']}\r\n".encode()
    expected = [raw.replace(forged, b"") for raw in sent]
    rests = sorted((rest for _, rest in map(split_labels, map(strip_lmtp_trace, arrived))),
                   key=lambda rest: b"Undeliverable" in rest)
    assert rests[0] == expected[0]
    assert without_subject_tag(rests[1], f"Undeliverable: lmtp:{at}".encode()) == expected[1]
    assert [d["state"] for d in deliveries_json(home)] == ["delivered", "delivered"]
    assert trap.connections == []
    assert not elsewhere.exists()


# --- 9. retired aliases ----------------------------------------------------------------------


def test_mail_to_an_alias_retired_with_reply_accept_is_recorded_and_held(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], home: Home,
    store: Store,
) -> None:
    canary = Canary(home.path)
    result = canary("retire", "Acme", "--reply", "accept")
    assert result.exit_code == 0, result.output
    running = listen(lmtp_url(clean_dovecot))
    raw = from_acme(keys)

    send_from_acme(running, acme, raw)
    running.settle()

    (message,) = messages(store)
    assert (message["rcpt_to"], message["relation"]) == (acme, "first_party")
    (held,) = canary.json("held", schema="held")["held"]
    assert (held["id"], held["alias"], held["relation"]) == (message["id"], acme, "first_party")
    (job,) = deliveries_json(home)
    assert (job["state"], job["attempts"]) == ("held", 0)
    assert clean_dovecot.fetch_all() == []
    report = canary("report")
    assert "1 message held by the delivery policy: see canary held." in report.stdout


# --- the same bytes to two aliases; an internationalised sender ---------------------------------


def test_the_same_bytes_to_two_aliases_are_two_deliveries_everywhere(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], home: Home,
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A list bought from both companies: one transaction, one set of bytes, two aliases.
    globex = issue(home, store, "Globex", "globex.example").address
    dovecot = clean_dovecot
    monkeypatch.setenv("CANARY_TEST_IMAP_PASSWORD", dovecot.password)
    own = tmp_path / "Maildir"
    urls = (f"imap://{dovecot.user}@{dovecot.host}:{dovecot.imap_port}/INBOX"
            "?password_env=CANARY_TEST_IMAP_PASSWORD", f"maildir:{own}")
    running = listen(*urls)
    raw = from_dealblaster(keys)

    send_from_dealblaster(running, [acme, globex], raw)
    running.settle()

    for found in (inbox(dovecot, 2), mailbox_messages(own)):
        assert sorted((header(m, "X-Canary-Alias")[0], header(m, "X-Canary-Company")[0])
                      for m in found) == sorted([(acme, "Acme"), (globex, "Globex")])
        for message in found:
            company = header(message, "X-Canary-Company")[0]
            _, rest = split_labels(message)
            assert without_subject_tag(rest, b"Deals picked for you") == raw
            assert header(message, "Subject") == [
                f"[Canary: {company} \u2192 dealblaster.example] Deals picked for you"]
    assert [d["state"] for d in deliveries_json(home)] == ["delivered"] * 4


INTERNATIONAL = (
    "From: J\u00f6rg <j\u00f6rg@b\u00fccher.example>\r\n"
    "To: acme@canary.example.org\r\n"
    "Subject: Gr\u00fc\u00dfe\r\n"
    "Message-ID: <smtputf8-1@b\u00fccher.example>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Gr\u00fc\u00dfe aus K\u00f6ln.\r\n").encode()


def test_mail_from_an_internationalised_address_is_delivered_and_holds_up_nothing(
    listen: Listen, clean_dovecot: Dovecot, acme: str, keys: dict[str, DkimKey], home: Home,
) -> None:
    # Dovecot's LMTP has no SMTPUTF8: the message goes in with the null sender.
    running = listen(lmtp_url(clean_dovecot))
    own = from_acme(keys)

    send(running, acme, INTERNATIONAL, mail_from="j\u00f6rg@b\u00fccher.example",
         client=FORGER_IP, helo=FORGER_HELO)
    send_from_acme(running, acme, own)
    running.settle()

    arrived = inbox(clean_dovecot, 2)
    (international,) = [m for m in arrived if b"K\xc3\xb6ln" in m]
    assert international.startswith(b"Return-Path: <>\r\n")
    _, rest = split_labels(strip_lmtp_trace(international))
    assert without_subject_tag(rest, "Gr\u00fc\u00dfe".encode()) == INTERNATIONAL
    (first_party,) = [m for m in arrived if m is not international]
    assert labelled(strip_lmtp_trace(first_party), own)["x-canary-relation"] == "first_party"
    assert [d["state"] for d in deliveries_json(home)] == ["delivered", "delivered"]


# --- a destination added by hand --------------------------------------------------------------


def test_mail_accepted_right_after_the_listener_starts_is_delivered(
    world: Zones, home: Home, store: Store, resolver: Resolver, clean_dovecot: Dovecot,
    acme: str, keys: dict[str, DkimKey],
) -> None:
    # canary.toml edited by hand (no `canary init --deliver`), then `canary serve`.
    running = start_listener(home, store, resolver,
                             delivery=DeliveryConfig(urls=(lmtp_url(clean_dovecot),)))
    try:
        send_from_acme(running, acme, from_acme(keys))
        running.settle()
    finally:
        running.stop()
    assert [d["state"] for d in deliveries_json(home)] == ["delivered"]
    assert len(clean_dovecot.fetch_all()) == 1


# --- 10. SMTP to the person's own server ---------------------------------------------------------


class Receiver:
    """A mail server on loopback (aiosmtpd), as the person's own: it keeps what it accepts and
    answers RCPT with each of `replies` in turn, then 250."""

    def __init__(self, *replies: str) -> None:
        from aiosmtpd.controller import Controller

        self.replies = list(replies)
        self.received: list[tuple[str, list[str], bytes]] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        if self.replies:
            return self.replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos),
                              envelope.original_content))
        return "250 2.0.0 queued"

    def close(self) -> None:
        self.controller.stop()


def test_smtp_delivers_to_the_persons_server_with_the_original_sender_and_retries_a_4xx(
    listen: Listen, acme: str, keys: dict[str, DkimKey], home: Home,
) -> None:
    receiver = Receiver("452 4.2.2 mailbox full, try later")
    try:
        running = listen(f"smtp://127.0.0.1:{receiver.port}?recipient=alice@example.org",
                         first_retry=timedelta(seconds=0.3))
        raw = from_acme(keys)
        send_from_acme(running, acme, raw)
        (done,) = wait_for(
            lambda: [d for d in deliveries_json(home) if d["state"] == "delivered"],
            "the retried delivery to be recorded")
        running.settle()
    finally:
        receiver.close()

    # One copy, after one refusal: to the configured recipient, from the original sender,
    # the received bytes under Canary's labels.
    ((mail_from, recipients, message),) = receiver.received
    assert (mail_from, recipients) == ("bounce@acme.example", ["alice@example.org"])
    labels = labelled(crlf(message), raw)
    assert labels["x-canary-relation"] == "first_party" and labels["x-canary-alias"] == acme
    assert dkim_verifies(crlf(message), keys["acme"])
    assert done["attempts"] == 2 and done["last_error"] is None


def test_smtp_delivery_refused_for_good_fails_with_the_servers_reply(
    listen: Listen, acme: str, keys: dict[str, DkimKey], home: Home,
) -> None:
    receiver = Receiver("550 5.1.1 no such user")
    try:
        running = listen(f"smtp://127.0.0.1:{receiver.port}?recipient=nobody@example.org")
        send_from_acme(running, acme, from_acme(keys))
        running.settle()
    finally:
        receiver.close()
    (failed,) = deliveries_json(home)
    assert failed["state"] == "failed" and failed["attempts"] == 1
    assert "RCPT TO <nobody@example.org>: 550 5.1.1 no such user" in failed["last_error"]
    assert receiver.received == []
