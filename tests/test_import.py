"""Years of evidence at once: `canary discover`, `adopt` and `import`, end to end.

A person who traced leaks by hand has a catch-all domain (`shop@me.example`
per shop) and plus/minus addresses (`me+shop@mailbox.example`), and an export
of their mailbox. These tests drive the `canary` command on a real home and
database, with mailboxes written the way providers write them (CRLF line ends,
Gmail-style label headers, the provider's Received and Authentication-Results
on top), Maildirs, and a real Dovecot over IMAPS. Analysis asks only the
test's loopback DNS server.
"""

from __future__ import annotations

import contextlib
import csv
import json
import mailbox
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from commands import Canary, assert_one_sentence, assert_usage_error, installed_canary
from conftest import CANARY_DOMAIN
from mailflow import rows, wait_for
from servers.dovecot import Dovecot, quote
from signing import DkimKey, rsa_key
from sqlmodel import col, select
from typer.testing import Result

import smtp_listener.importer as importer
from data.database import Store
from data.home import open_home
from data.mailstore import raw_message
from data.models import ImportSource, Message
from smtp_listener.testing.zone_server import Zones

CATCH_ALL = "me.example"
MAILBOX = "me@mailbox.example"
PROVIDER = "mx.provider.example"
BASE = datetime(2021, 3, 1, 9, 30, tzinfo=UTC)
GMAIL_FROM_LINE = b"From 1692722839261563925@xxx Wed Aug 23 16:47:19 +0000 2023\r\n"
"""The separator line of a Google Takeout mbox (which has CRLF line ends throughout)."""

MEGAMART = "megamart@me.example"
SHOES = "me+shoes@mailbox.example"
TRAVEL = "me-travel@mailbox.example"

ADOPTED_TOML = """\
# The addresses this person gave out before Canary.
[[alias]]
address = "megamart@me.example"
company = "MegaMart"
domains = ["megamart.example"]
issued = 2021-02-01

[[alias]]
address = "ME+Shoes@mailbox.example"
company = "Shoe Shop"
domains = ["shoeshop.example"]
issued = 2021-03-05

[[alias]]
address = "me-travel@mailbox.example"
company = "TravelCo"
domains = "travelco.example"
issued = 2021-03-10T08:00:00Z
"""


# --- mail as providers store it -------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    """One message of a mailbox export and what Canary should make of it."""

    raw: bytes
    to: str
    sender: str
    received: datetime
    """When the provider received it: its topmost Received, else the Date header."""
    estimated: bool = False
    """Only a Date header (no Received) says when."""
    message_id: str = ""
    peer_ip: str | None = None


def sender_copy(number: int, to: str, sender: str, sent: datetime, *,
                subject: str | None = None, body: Sequence[str] = ()) -> bytes:
    """A marketing message as the sender's mail system wrote it (CRLF)."""
    label = sender.split(".")[0].title()
    lines = [
        f'From: "{label} News" <news@{sender}>',
        f"To: <{to}>",
        f"Subject: {subject or f'{label}: offers of the week #{number}'}",
        f"Date: {format_datetime(sent)}",
        f"Message-ID: <{number}.{sent:%Y%m%d%H%M}@mail.{sender}>",
        f"List-Unsubscribe: <mailto:unsubscribe-{number}@mail.{sender}>",
        "MIME-Version: 1.0",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit",
        "",
        *(body or [f"Dear customer, {label} has new offers for you (Grüße aus Köln).",
                   "Free delivery on orders over 20 EUR this weekend only.", "",
                   f"Unsubscribe: https://{sender}/u/{number}"]),
    ]
    return "\r\n".join(lines).encode() + b"\r\n"


def provider_copy(number: int, raw: bytes, to: str, sender: str, received: datetime | None, *,
                  delivered_to: str | None = None, results: Sequence[str] = ()) -> bytes:
    """`raw` as the person's provider stored it: labels, envelope and trace headers on top.

    Without `received` the provider wrote no Received header (only Date says when).
    """
    trace = [
        f"X-GM-THRID: {1692722839261563925 + number}",
        "X-Gmail-Labels: Archived,Category Promotions,Opened",
        f"Delivered-To: {delivered_to or to}",
    ]
    if received is not None:
        trace += [
            f"Received: from mail.{sender} (mail.{sender} [198.51.100.{number % 250 + 1}])\r\n"
            f"        by {PROVIDER} with ESMTPS id {number:08X}\r\n"
            f"        for <{to}>;\r\n"
            f"        {format_datetime(received)}",
        ]
    trace += [f"Authentication-Results: {result}" for result in results]
    trace.append(f"Return-Path: <bounce-{number}@mail.{sender}>")
    if received is not None:  # the sender's own hop, earlier: not the provider's receipt
        trace.append(f"Received: from localhost (localhost [127.0.0.1]) by mail.{sender} "
                     f"with ESMTP; {format_datetime(received - timedelta(minutes=2))}")
    return "\r\n".join(trace).encode() + b"\r\n" + raw


def make_mail(number: int, to: str, sender: str, received: datetime, *,
              estimated: bool = False, delivered_to: str | None = None,
              results: Sequence[str] = (), signer: DkimKey | None = None,
              body: Sequence[str] = ()) -> Mail:
    sent = received - timedelta(minutes=4)  # the sender's Date: never the receipt time
    if estimated:
        sent = received
    raw = sender_copy(number, to, sender, sent, body=body)
    if signer is not None:
        raw = signer.sign(raw)
    stored = provider_copy(number, raw, to, sender, None if estimated else received,
                           delivered_to=delivered_to, results=results)
    message_id = re.search(rb"^Message-ID: <([^>]+)>", raw, re.MULTILINE)
    assert message_id is not None
    return Mail(stored, to, sender, received, estimated, message_id.group(1).decode(),
                None if estimated else f"198.51.100.{number % 250 + 1}")


def evidence() -> list[Mail]:
    """Two years of a person's mail: catch-all, plus and minus addresses, and others' mail."""
    plan = [
        (MEGAMART, "megamart.example", 0),
        (SHOES, "shoeshop.example", 10),
        (MEGAMART, "megamart.example", 30),
        ("friend@elsewhere.example", "newsletter.example", 35),  # not one of the person's
        (TRAVEL, "travelco.example", 40),
        (MEGAMART, "megamart.example", 60),
        (SHOES, "dealblaster.example", 100),
        (TRAVEL, "travelco.example", 150),
        (SHOES, "dealblaster.example", 200),
        ("colleague@work.example", "newsletter.example", 250),  # not one of the person's
        (MEGAMART, "megamart.example", 400),
    ]
    mails = [make_mail(n, to, sender, BASE + timedelta(days=day))
             for n, (to, sender, day) in enumerate(plan)]
    mails.insert(6, make_mail(90, MEGAMART, "megamart.example", BASE + timedelta(days=90),
                              estimated=True))
    return mails


def to_aliases(mails: Sequence[Mail]) -> list[Mail]:
    return [m for m in mails if m.to in (MEGAMART, SHOES, TRAVEL)]


def write_provider_mbox(path: Path, raws: Sequence[bytes]) -> Path:
    """An mbox as a provider exports it: CRLF line ends throughout, a blank line after each
    message."""
    with path.open("wb") as out:
        for raw in raws:
            assert b"\nFrom " not in raw
            out.write(GMAIL_FROM_LINE + raw + b"\r\n")
    return path


def write_lf_mbox(path: Path, raws: Sequence[bytes]) -> Path:
    """An mbox as Python's `mailbox` (and Thunderbird, mutt…) write it: LF separators."""
    box = mailbox.mbox(path)
    try:
        for raw in raws:
            box.add(raw)
        box.flush()
    finally:
        box.close()
    return path


def write_maildir(path: Path, raws: Sequence[bytes], *, start: int = 0) -> Path:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for number, raw in enumerate(raws, start):
        where = "cur" if number % 2 else "new"
        name = f"{1600000000 + number}.M{number}P1.archive" + (":2,S" if where == "cur" else "")
        (path / where / name).write_bytes(raw)
    return path


# --- a person with a Canary home -----------------------------------------------------------


@dataclass
class Person:
    canary: Canary
    store: Store
    database: Path
    dns: str
    tmp: Path
    zones: Zones

    def __call__(self, *args: str, **options: Any) -> Result:
        return self.canary(*args, **options)

    def import_json(self, source: str | Path, *options: str) -> dict[str, Any]:
        """`canary import SOURCE --json`, analysis asking the loopback DNS server."""
        document: dict[str, Any] = self.canary.json("import", str(source), "--dns", self.dns,
                                                    *options)
        return document

    def adopt_evidence(self) -> None:
        mapping = self.tmp / "adopted.toml"
        mapping.write_text(ADOPTED_TOML, encoding="utf-8")
        result = self("adopt", "--from", str(mapping))
        assert result.exit_code == 0, result.output
        assert result.stdout == "Adopted 3 addresses.\n"

    def messages(self) -> list[dict[str, Any]]:
        return sorted(rows(self.store, Message), key=lambda r: r["id"])

    def stored(self) -> list[tuple[dict[str, Any], bytes]]:
        """Every stored message row with its raw bytes, as the database gives them back."""
        with self.store.reading() as session:
            return [(row.model_dump(), raw_message(session, row.sha256))
                    for row in session.exec(select(Message).order_by(col(Message.id)))]

    def by_message_id(self) -> dict[str, tuple[dict[str, Any], bytes]]:
        """Every stored message row with its raw bytes, by Message-ID."""
        found: dict[str, tuple[dict[str, Any], bytes]] = {}
        for row, raw in self.stored():
            match = re.search(rb"^Message-ID: <([^>]+)>", raw, re.MULTILINE)
            assert match is not None, raw[:300]
            key = match.group(1).decode()
            assert key not in found, f"{key} stored twice"
            found[key] = (row, raw)
        return found

    def count(self) -> int:
        """Messages committed, read the way another process would (plain sqlite3)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True,
                                                timeout=10)) as db:
            (number,) = db.execute("SELECT count(*) FROM message").fetchone()
        return int(number)

    def show(self, company: str) -> dict[str, Any]:
        document: dict[str, Any] = self.canary.json("show", company, "--limit", "1000")
        return document

    def verdict(self, company: str) -> str:
        report = self.canary.json("report")
        [found] = [c for c in report["companies"] if c["name"] == company]
        return str(found["verdict"])


@pytest.fixture
def person(tmp_path: Path, dns_server: str, zones: Zones) -> Iterator[Person]:
    """A home made with `canary init --catch-all me.example --sub-address me@…/+-`."""
    canary = Canary(tmp_path / "home")
    result = canary("init", "--domain", CANARY_DOMAIN, "--catch-all", CATCH_ALL,
                    "--sub-address", f"{MAILBOX}/+-")
    assert result.exit_code == 0, result.output
    home = open_home(tmp_path / "home")
    store = home.store()
    yield Person(canary, store, home.database_path, dns_server, tmp_path, zones)
    store.dispose()


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- 1. discover ---------------------------------------------------------------------------


def test_discover_lists_the_persons_addresses_with_counts_dates_and_senders(
        person: Person) -> None:
    mbox = write_provider_mbox(person.tmp / "takeout.mbox", [m.raw for m in evidence()])

    table = person("discover", str(mbox))
    assert table.exit_code == 0, table.output
    for address in (MEGAMART, SHOES, TRAVEL):
        assert address in table.stdout
    assert "2021-03-01" in table.stdout and "2022-04-05" in table.stdout  # first and last
    assert "elsewhere.example" not in table.stdout and "work.example" not in table.stdout

    document = person.canary.json("discover", str(mbox))
    assert document["problems"] == 0
    found = {a["address"]: a for a in document["addresses"]}
    assert list(found) == [MEGAMART, SHOES, TRAVEL]  # most mail first
    assert {a: (f["messages"], iso(f["first"]), iso(f["last"]), f["first_sender"],
                [(s["organisation"], s["messages"]) for s in f["senders"]], f["adopted"])
            for a, f in found.items()} == {
        MEGAMART: (5, BASE, BASE + timedelta(days=400), "megamart.example",
                   [("megamart.example", 5)], False),
        SHOES: (3, BASE + timedelta(days=10), BASE + timedelta(days=200), "shoeshop.example",
                [("dealblaster.example", 2), ("shoeshop.example", 1)], False),
        TRAVEL: (2, BASE + timedelta(days=40), BASE + timedelta(days=150), "travelco.example",
                 [("travelco.example", 2)], False),
    }


def test_discover_writes_a_mapping_to_fill_in_and_adopt_reads_it(person: Person) -> None:
    mbox = write_provider_mbox(person.tmp / "takeout.mbox", [m.raw for m in evidence()])
    mapping = person.tmp / "map.csv"

    result = person("discover", str(mbox), "--mapping", str(mapping))
    assert result.exit_code == 0, result.output
    assert f"Wrote {mapping}" in result.stderr
    blank = read_csv(mapping)
    assert [(r["address"], r["company"], r["issued"]) for r in blank] == [
        (MEGAMART, "", "2021-03-01"), (SHOES, "", "2021-03-11"), (TRAVEL, "", "2021-04-10")]
    refused = person("adopt", "--from", str(mapping))
    assert refused.exit_code == 1
    assert "fill in the company column" in refused.stderr

    result = person("discover", str(mbox), "--mapping", str(mapping), "--guess")
    assert result.exit_code == 0, result.output
    guessed = read_csv(mapping)
    assert [(r["address"], r["company"], r["domains"], r["issued"]) for r in guessed] == [
        (MEGAMART, "megamart.example", "megamart.example", "2021-03-01"),
        (SHOES, "shoeshop.example", "shoeshop.example", "2021-03-11"),
        (TRAVEL, "travelco.example", "travelco.example", "2021-04-10"),
    ]

    adopted = person("adopt", "--from", str(mapping))
    assert adopted.exit_code == 0, adopted.output
    assert adopted.stdout == "Adopted 3 addresses.\n"
    listing = person.canary.json("aliases")["aliases"]
    assert sorted((a["address"], a["company"], a["issued_at"], a["domains"]) for a in listing) == [
        (SHOES, "shoeshop.example", "2021-03-11T00:00:00Z", ["shoeshop.example"]),
        (TRAVEL, "travelco.example", "2021-04-10T00:00:00Z", ["travelco.example"]),
        (MEGAMART, "megamart.example", "2021-03-01T00:00:00Z", ["megamart.example"]),
    ]
    again = person("adopt", "--from", str(mapping))
    assert again.stdout == "Adopted 0 addresses; 3 already were.\n"

    rediscovered = person.canary.json("discover", str(mbox))
    assert all(a["adopted"] for a in rediscovered["addresses"])
    person("discover", str(mbox), "--mapping", str(mapping), "--guess")
    assert read_csv(mapping) == []  # nothing left to map


def test_adopt_from_a_toml_mapping(person: Person) -> None:
    person.adopt_evidence()
    listing = {a["address"]: a for a in person.canary.json("aliases")["aliases"]}
    assert {a: (x["company"], x["issued_at"], x["domains"]) for a, x in listing.items()} == {
        MEGAMART: ("MegaMart", "2021-02-01T00:00:00Z", ["megamart.example"]),
        SHOES: ("Shoe Shop", "2021-03-05T00:00:00Z", ["shoeshop.example"]),
        TRAVEL: ("TravelCo", "2021-03-10T08:00:00Z", ["travelco.example"]),
    }


def test_discover_ignores_addresses_that_are_not_the_persons(person: Person) -> None:
    others = [
        make_mail(1, "friend@elsewhere.example", "newsletter.example", BASE),
        make_mail(2, "me+shop@other-mailbox.example", "shop.example", BASE),
        make_mail(3, "shop@sub.me.example", "shop.example", BASE),
        make_mail(4, "meshop@mailbox.example", "shop.example", BASE),
    ]
    mbox = write_provider_mbox(person.tmp / "others.mbox", [m.raw for m in others])
    document = person.canary.json("discover", str(mbox))
    assert document == {"schema_version": 1, "problems": 0, "addresses": []}
    result = person("discover", str(mbox))
    assert result.exit_code == 0
    assert "None of your addresses appears in it" in result.stderr


def test_discover_does_not_offer_the_persons_own_mailbox(person: Person) -> None:
    # Catch-all mail forwarded to the person's mailbox: the provider's Delivered-To is the
    # mailbox, the To the shop's address. Nobody wrote to me@mailbox.example itself.
    forwarded = [
        make_mail(n, to, sender, BASE + timedelta(days=n), delivered_to=MAILBOX)
        for n, (to, sender) in enumerate([
            ("megamart@me.example", "megamart.example"),
            ("shoes@me.example", "shoeshop.example"),
            ("travel@me.example", "travelco.example"),
        ])
    ]
    mbox = write_provider_mbox(person.tmp / "forwarded.mbox", [m.raw for m in forwarded])
    mapping = person.tmp / "map.csv"
    person("discover", str(mbox), "--mapping", str(mapping), "--guess")
    guessed = {r["address"]: r["company"] for r in read_csv(mapping)}
    assert guessed == {"megamart@me.example": "megamart.example",
                       "shoes@me.example": "shoeshop.example",
                       "travel@me.example": "travelco.example"}


# --- 2. import of an mbox -------------------------------------------------------------------


def test_import_stores_mail_to_aliases_with_the_providers_receipt(person: Person) -> None:
    person.adopt_evidence()
    mails = evidence()
    mbox = write_provider_mbox(person.tmp / "takeout.mbox", [m.raw for m in mails])

    document = person.import_json(mbox)
    assert document == {
        "schema_version": 1, "source": str(mbox), "read": 12, "stored": 10, "skipped": 2,
        "duplicates": 0, "problems": 0, "problem_list": [], "analysed": 10, "stopped": False,
    }
    stored = person.by_message_id()
    assert set(stored) == {m.message_id for m in to_aliases(mails)}
    for mail in to_aliases(mails):
        row, raw = stored[mail.message_id]
        assert row["rcpt_to"] == mail.to
        assert row["received_at"] == mail.received  # the provider's receipt, not Date
        assert row["receipt_estimated"] is mail.estimated
        assert row["peer_ip"] == (mail.peer_ip or "unknown")
        assert row["helo"] == (None if mail.estimated else f"mail.{mail.sender}")
        assert row["mail_from"].startswith("bounce-") and row["mail_from"].endswith(mail.sender)
        assert row["import_id"] is not None and row["analysed_at"] is not None
        assert raw == mail.raw
    [estimated] = [r for r, _ in stored.values() if r["receipt_estimated"]]
    assert estimated["received_at"] == BASE + timedelta(days=90)
    [source] = rows(person.store, ImportSource)
    assert (source["source"], source["read"], source["stored"], source["skipped"]) == (
        str(mbox), 12, 10, 2)
    assert source["finished_at"] is not None

    # The same export again: nothing is stored twice.
    again = person.import_json(mbox)
    assert (again["read"], again["stored"], again["duplicates"], again["skipped"]) == (
        12, 0, 10, 2)
    assert len(person.messages()) == 10
    [source] = rows(person.store, ImportSource)
    assert (source["read"], source["stored"], source["duplicates"], source["skipped"]) == (
        24, 10, 10, 4)

    listing = {a["address"]: a["messages"] for a in person.canary.json("aliases")["aliases"]}
    assert listing == {MEGAMART: 5, SHOES: 3, TRAVEL: 2}


def test_import_without_analysis_and_in_words(person: Person) -> None:
    person.adopt_evidence()
    mbox = write_provider_mbox(person.tmp / "takeout.mbox", [m.raw for m in evidence()])
    result = person("import", str(mbox), "--no-analyse", "--dns", person.dns)
    assert result.exit_code == 0, result.output
    assert result.stdout == (f"Imported from {mbox}: 12 read, 10 stored, 2 to no alias, "
                             "0 already stored, 0 problems.\n")
    assert all(r["analysed_at"] is None for r in person.messages())
    analysed = person.canary.json("analyse", "--dns", person.dns)
    assert analysed["analysed"] == 10


@pytest.mark.parametrize("style", [
    "lf",
    "crlf",
])
def test_import_stores_each_message_exactly_as_in_the_mbox(person: Person, style: str) -> None:
    person.adopt_evidence()
    mails = evidence()
    path = person.tmp / f"{style}.mbox"
    if style == "crlf":
        write_provider_mbox(path, [m.raw for m in mails])
    else:
        write_lf_mbox(path, [m.raw for m in mails])
    assert person.import_json(path, "--no-analyse")["stored"] == 10
    stored = person.by_message_id()
    for mail in to_aliases(mails):
        assert stored[mail.message_id][1] == mail.raw


@pytest.mark.parametrize("style", [
    "lf",
    "crlf",
])
def test_an_overlapping_maildir_stores_nothing_twice(person: Person, style: str) -> None:
    person.adopt_evidence()
    mails = evidence()
    path = person.tmp / "takeout.mbox"
    (write_provider_mbox if style == "crlf" else write_lf_mbox)(path, [m.raw for m in mails[:8]])
    first = person.import_json(path, "--no-analyse")
    assert first["stored"] == len(to_aliases(mails[:8]))

    maildir = write_maildir(person.tmp / "Maildir", [m.raw for m in mails[4:]])
    second = person.import_json(maildir, "--no-analyse")
    assert second["read"] == 8
    assert second["duplicates"] == len(to_aliases(mails[4:8]))
    assert second["stored"] == len(to_aliases(mails[8:]))
    assert len(person.messages()) == len(to_aliases(mails))


def test_a_message_to_two_aliases_is_stored_once_for_each(person: Person) -> None:
    person.adopt_evidence()
    raw = provider_copy(1, sender_copy(1, MEGAMART, "dealblaster.example", BASE).replace(
        b"To: <megamart@me.example>", b"To: <megamart@me.example>\r\nCc: Me <ME+Shoes@Mailbox."
        b"Example>"), MEGAMART, "dealblaster.example", BASE)
    document = person.import_json(write_lf_mbox(person.tmp / "two.mbox", [raw]), "--no-analyse")
    assert (document["read"], document["stored"]) == (1, 1)
    assert sorted(r["rcpt_to"] for r in person.messages()) == [SHOES, MEGAMART]
    assert len({r["sha256"] for r in person.messages()}) == 1


def test_the_same_message_twice_in_one_export_is_counted_as_a_duplicate(
        person: Person) -> None:
    person.adopt_evidence()
    mail = make_mail(1, MEGAMART, "megamart.example", BASE)
    document = person.import_json(write_lf_mbox(person.tmp / "twice.mbox", [mail.raw] * 2),
                                  "--no-analyse")
    assert len(person.messages()) == 1
    assert (document["read"], document["stored"], document["duplicates"]) == (2, 1, 1)


# --- 3. Maildir ----------------------------------------------------------------------------


def test_import_a_maildir(person: Person) -> None:
    person.adopt_evidence()
    mails = evidence()
    maildir = write_maildir(person.tmp / "Maildir", [m.raw for m in mails])
    (maildir / "tmp" / "half-written").write_bytes(b"From: x\r\n")  # never read

    document = person.import_json(maildir)
    assert (document["read"], document["stored"], document["skipped"], document["problems"],
            document["analysed"]) == (12, 10, 2, 0, 10)
    stored = person.by_message_id()
    for mail in to_aliases(mails):
        row, raw = stored[mail.message_id]
        assert raw == mail.raw
        assert (row["received_at"], row["receipt_estimated"]) == (mail.received, mail.estimated)
    assert person.import_json(maildir)["duplicates"] == 10
    assert len(person.messages()) == 10


def test_a_source_that_is_not_there_is_one_sentence(person: Person) -> None:
    missing = person("import", str(person.tmp / "nothing.mbox"), "--dns", person.dns)
    assert_one_sentence(missing, "does not exist")
    (person.tmp / "plain-dir").mkdir()
    not_maildir = person("import", str(person.tmp / "plain-dir"), "--dns", person.dns)
    assert_one_sentence(not_maildir, "no Maildir")
    smtp = person("import", "smtp://127.0.0.1:25?recipient=me@mailbox.example", "--dns",
                  person.dns)
    assert smtp.exit_code == 1 and "imap://" in smtp.stderr


# --- 4. IMAP from a real Dovecot ------------------------------------------------------------


def imap_url(server: Dovecot, folder: str, password_file: Path) -> str:
    return (f"imaps://{server.user}@{server.host}:{server.imaps_port}/{folder}"
            f"?password_file={password_file}&cafile={server.cert_path}")


def password_file(server: Dovecot, directory: Path) -> Path:
    path = directory / "imap-password"
    path.write_text(server.password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def append(server: Dovecot, folder: str, raws: Sequence[bytes], *,
           flags: Sequence[str | None] = (), dates: Sequence[datetime | None] = ()) -> None:
    with server.imap() as client:
        for index, raw in enumerate(raws):
            flag = flags[index] if index < len(flags) else None
            when = dates[index] if index < len(dates) else None
            status, data = client.append(quote(folder), flag, when, raw)
            assert status == "OK", data


def folder_flags(server: Dovecot, folder: str) -> dict[int, set[str]]:
    """Each message's flags, by UID, read without changing them."""
    with server.imap() as client:
        status, _ = client.select(quote(folder), readonly=True)
        assert status == "OK"
        status, data = client.uid("FETCH", "1:*", "(FLAGS)")
        assert status == "OK", data
    found: dict[int, set[str]] = {}
    for item in data:
        text = item.decode() if isinstance(item, bytes) else ""
        uid = re.search(r"UID (\d+)", text)
        flags = re.search(r"FLAGS \(([^)]*)\)", text)
        if uid and flags:
            found[int(uid.group(1))] = set(flags.group(1).split()) - {r"\Recent"}
    return found


def uid_validity(server: Dovecot, folder: str) -> int:
    with server.imap() as client:
        status, data = client.status(quote(folder), "(UIDVALIDITY)")
        assert status == "OK", data
    match = re.search(rb"UIDVALIDITY (\d+)", data[0])
    assert match is not None
    return int(match.group(1))


def test_imap_import_peeks_resumes_and_takes_only_new_mail(person: Person,
                                                           clean_dovecot: Dovecot) -> None:
    server = clean_dovecot
    person.adopt_evidence()
    server.create_folder("Archive")
    mails = evidence()
    first, later = mails[:6], mails[6:]
    append(server, "Archive", [m.raw for m in first], flags=[None, r"(\Flagged)"])
    before = folder_flags(server, "Archive")
    assert before[2] == {r"\Flagged"} and not any(r"\Seen" in f for f in before.values())
    url = imap_url(server, "Archive", password_file(server, person.tmp))

    document = person.import_json(url)
    assert document["source"] == (f"imaps://{server.user}@{server.host}:{server.imaps_port}"
                                  "/Archive")  # no password, no file names
    assert (document["read"], document["stored"], document["skipped"], document["problems"],
            document["analysed"]) == (6, 5, 1, 0, 5)
    stored = person.by_message_id()
    for mail in to_aliases(first):
        row, raw = stored[mail.message_id]
        assert raw == mail.raw  # APPENDed bytes, fetched unchanged
        assert (row["received_at"], row["receipt_estimated"]) == (mail.received, False)
    assert folder_flags(server, "Archive") == before  # BODY.PEEK[]: nothing marked \Seen

    rerun = person.import_json(url)
    assert (rerun["read"], rerun["stored"], rerun["duplicates"]) == (0, 0, 0)  # resumed

    append(server, "Archive", [m.raw for m in later])
    more = person.import_json(url)
    assert (more["read"], more["stored"], more["skipped"], more["duplicates"]) == (
        6, 5, 1, 0)
    assert len(person.messages()) == 10
    [source] = rows(person.store, ImportSource)
    assert source["resume"] == f"{uid_validity(server, 'Archive')}:12"
    assert (source["read"], source["stored"], source["skipped"]) == (12, 10, 2)
    assert not any(r"\Seen" in f for f in folder_flags(server, "Archive").values())


def test_imap_internaldate_stands_in_for_a_missing_received(person: Person,
                                                            clean_dovecot: Dovecot) -> None:
    person.adopt_evidence()
    mail = make_mail(7, MEGAMART, "megamart.example", BASE, estimated=True)
    arrived = BASE + timedelta(hours=5)
    append(clean_dovecot, "INBOX", [mail.raw], dates=[arrived])
    url = imap_url(clean_dovecot, "INBOX", password_file(clean_dovecot, person.tmp))
    assert person.import_json(url, "--no-analyse")["stored"] == 1
    [row] = person.messages()
    assert (row["received_at"], row["receipt_estimated"]) == (arrived, False)


def test_imap_refusals_are_one_sentence(person: Person, clean_dovecot: Dovecot) -> None:
    server = clean_dovecot
    good = password_file(server, person.tmp)
    missing = person("import", imap_url(server, "NoSuchFolder", good), "--dns", person.dns)
    assert_one_sentence(missing, "no folder")

    wrong = person.tmp / "wrong-password"
    wrong.write_text("not the password\n")
    wrong.chmod(0o600)
    refused = person("import", imap_url(server, "INBOX", wrong), "--dns", person.dns)
    assert_one_sentence(refused, "login was refused")

    good.chmod(0o644)
    readable = person("import", imap_url(server, "INBOX", good), "--dns", person.dns)
    assert_one_sentence(readable, "chmod 600")
    for result in (missing, refused, readable):
        assert server.password not in result.output


def test_a_rebuilt_imap_folder_is_read_again_and_nothing_is_stored_twice(
        person: Person, clean_dovecot: Dovecot) -> None:
    server = clean_dovecot
    person.adopt_evidence()
    mails = evidence()
    server.create_folder("Archive")
    append(server, "Archive", [m.raw for m in mails[:6]])
    url = imap_url(server, "Archive", password_file(server, person.tmp))
    assert person.import_json(url, "--no-analyse")["stored"] == 5
    validity = uid_validity(server, "Archive")

    time.sleep(1.1)  # Dovecot's UIDVALIDITY counts seconds
    with server.imap() as client:
        assert client.delete(quote("Archive"))[0] == "OK"
    server.create_folder("Archive")  # the same name, a new folder: UIDs start again at 1
    append(server, "Archive", [m.raw for m in mails])
    assert uid_validity(server, "Archive") != validity
    rebuilt = person.import_json(url, "--no-analyse")
    assert (rebuilt["read"], rebuilt["stored"], rebuilt["duplicates"], rebuilt["skipped"]) == (
        12, 5, 5, 2)
    assert len(person.messages()) == 10


class InBackground:
    """Runs a call in a thread (an import), so the test's own thread can stop and start
    Dovecot: the harness ties Dovecot's life to the thread that started it."""

    def __init__(self, call: Callable[[], dict[str, Any]]) -> None:
        self._call = call
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._call()
        except BaseException as error:
            self._error = error

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout: float) -> dict[str, Any]:
        self._thread.join(timeout)
        assert self.done, f"the import did not end within {timeout} s"
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def stop_after_progress(server: Dovecot, person: Person, running: InBackground) -> int:
    """Stop Dovecot once the import has committed some mail; how many messages it had."""
    wait_for(lambda: running.done or person.count() > 0, "the import to store something",
             timeout=60)
    server.stop()
    assert not running.done, "the import finished before Dovecot was stopped"
    return person.count()


def big_folder(server: Dovecot, folder: str, count: int) -> list[Mail]:
    """A folder of `count` messages, half of them to an alias, written into its Maildir."""
    server.create_folder(folder)
    padding = ["Our full catalogue follows. " * 3] * 30
    mails = [make_mail(n, MEGAMART if n % 2 else "friend@elsewhere.example", "dealblaster.example",
                       BASE + timedelta(minutes=n), body=padding) for n in range(count)]
    for mail in mails:
        server.deliver_to_maildir(mail.raw, folder)
    return mails


@pytest.mark.slow
def test_imap_import_reconnects_when_the_server_restarts(person: Person,
                                                         clean_dovecot: Dovecot) -> None:
    server = clean_dovecot
    person.adopt_evidence()
    mails = big_folder(server, "Big", 3000)
    url = imap_url(server, "Big", password_file(server, person.tmp))

    running = InBackground(lambda: person.import_json(url, "--no-analyse"))
    try:
        at_stop = stop_after_progress(server, person, running)
        time.sleep(1.0)
    finally:
        server.start()
    document = running.result(60)
    assert at_stop < 1500, "the import had nearly finished before Dovecot was stopped"
    assert server.running
    assert (document["read"], document["stored"], document["skipped"], document["problems"],
            document["duplicates"]) == (3000, 1500, 1500, 0, 0)
    assert set(person.by_message_id()) == {m.message_id for m in mails if m.to == MEGAMART}
    assert person.import_json(url, "--no-analyse")["read"] == 0


@pytest.mark.slow
def test_imap_import_that_keeps_failing_is_a_problem_and_a_rerun_goes_on(
        person: Person, clean_dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch) -> None:
    server = clean_dovecot
    person.adopt_evidence()
    mails = big_folder(server, "Big", 3000)
    url = imap_url(server, "Big", password_file(server, person.tmp))
    monkeypatch.setattr(importer, "IMAP_RECONNECTS", 1)  # give up after one retry (2 s)

    running = InBackground(lambda: person.import_json(url, "--no-analyse"))
    try:
        at_stop = stop_after_progress(server, person, running)
        first = running.result(60)
    finally:
        server.start()
    assert at_stop < 1500, "the import had nearly finished before Dovecot was stopped"
    assert first["problems"] == 1
    [problem] = first["problem_list"]
    assert problem["position"].startswith(f"imaps://{server.user}@") and "after UID" in (
        problem["position"])
    assert "run the import again to go on" in problem["problem"]
    assert 0 < first["stored"] < 1500

    second = person.import_json(url, "--no-analyse")
    assert (second["problems"], second["duplicates"]) == (0, 0)
    assert first["read"] - 1 + second["read"] == 3000  # every message read once
    assert first["stored"] + second["stored"] == 1500
    assert set(person.by_message_id()) == {m.message_id for m in mails if m.to == MEGAMART}


# --- 5. Ctrl-C -------------------------------------------------------------------------------


def test_ctrl_c_keeps_what_was_stored_and_a_rerun_completes(person: Person) -> None:
    script = installed_canary()
    assert script is not None, "the canary script is not installed"
    person.adopt_evidence()
    count = 5000
    raws = [provider_copy(n, sender_copy(n, (MEGAMART, SHOES, "x@elsewhere.example")[n % 3],
                                         "dealblaster.example", BASE + timedelta(minutes=n)),
                          (MEGAMART, SHOES, "x@elsewhere.example")[n % 3], "dealblaster.example",
                          BASE + timedelta(minutes=n))
            for n in range(count)]
    aliased = sum(1 for n in range(count) if n % 3 != 2)
    mbox = write_provider_mbox(person.tmp / "big.mbox", raws)

    process = subprocess.Popen(
        [script, "--home", str(person.canary.home), "import", str(mbox), "--no-analyse",
         "--dns", person.dns], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: process.poll() is not None or person.count() > 0,
                 "the import to store something", timeout=60)
        assert process.poll() is None, "the import ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, err.decode()
    assert "Stopped; run the same import again to go on." in err.decode()
    assert "Traceback" not in err.decode()
    said = re.search(rb"(\d+) read, (\d+) stored", out)
    assert said is not None, out
    kept = person.count()
    assert 0 < kept < aliased
    assert kept == int(said.group(2))  # what it said it stored is there

    rerun = person.import_json(mbox, "--no-analyse")
    assert rerun["read"] == count and not rerun["stopped"]
    assert rerun["duplicates"] == kept
    assert rerun["stored"] == aliased - kept
    assert person.count() == aliased
    [source] = rows(person.store, ImportSource)
    assert source["stored"] == aliased and source["finished_at"] is not None


# --- 6. bad input ---------------------------------------------------------------------------


def test_bad_input_is_counted_with_its_position_and_the_rest_is_imported(
        person: Person) -> None:
    person.adopt_evidence()
    good = make_mail(1, MEGAMART, "megamart.example", BASE)
    latin1 = provider_copy(2, (
        b"From: =?iso-8859-1?q?Caf=E9?= \xc9picerie <news@dealblaster.example>\r\n"
        b"To: megamart@me.example\r\nSubject: Pr\xe9sent\xe9 pour vous \xa4\xff\r\n"
        b"Date: Mon, 1 Mar 2021 09:30:00 +0000\r\nMessage-ID: <latin1@dealblaster.example>\r\n"
        b"\r\nD\xe9j\xe0 vu.\r\n"), MEGAMART, "dealblaster.example", BASE)
    nul = provider_copy(3, (
        b"From: News <news@dealblaster.example>\r\nTo: megamart@me.example\r\n"
        b"Subject: nul\x00here\r\nDate: Mon, 1 Mar 2021 09:30:00 +0000\r\n"
        b"Message-ID: <nul@dealblaster.example>\r\n\r\nbody \x00\x00 with NULs\r\n"),
        MEGAMART, "dealblaster.example", BASE)
    from_line = provider_copy(4, (
        b"From: News <news@dealblaster.example>\r\nTo: megamart@me.example\r\n"
        b"Subject: From-line\r\nDate: Mon, 1 Mar 2021 09:30:00 +0000\r\n"
        b"Message-ID: <fromline@dealblaster.example>\r\n\r\nDear customer,\r\n"
        b"From our shop to your door: free delivery.\r\nSee you soon.\r\n"),
        MEGAMART, "dealblaster.example", BASE)
    huge = make_mail(5, MEGAMART, "megamart.example", BASE,
                     body=["x" * 998] * 300)  # about 300 KB, over --max-size 100000
    after = make_mail(6, SHOES, "shoeshop.example", BASE)
    truncated = make_mail(7, TRAVEL, "travelco.example", BASE).raw[:-25]  # cut mid-body

    # Written by hand: mailbox.mbox would quote the "From " line in the body.
    mbox = person.tmp / "damaged.mbox"
    mbox.write_bytes(b"".join(GMAIL_FROM_LINE + raw + b"\r\n" for raw in (
        good.raw, latin1, nul, from_line, huge.raw, after.raw)) + GMAIL_FROM_LINE + truncated)

    result = person("import", str(mbox), "--max-size", "100000", "--dns", person.dns)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    said = " ".join(result.stderr.split())  # the console wraps long lines
    assert f"Problem at message 5 of {mbox}: not a message" in said
    assert f"Problem at message 6 of {mbox}: over the size limit of 100000 bytes" in said
    [source] = rows(person.store, ImportSource)
    # The body's "From " line splits message 4 in two: its tail is no message.
    assert (source["read"], source["stored"], source["problems"], source["skipped"]) == (
        8, 6, 2, 0)
    assert f"{source['read']} read, 6 stored" in result.stdout

    raws = [raw for _, raw in person.stored()]
    assert any(r.startswith(latin1) for r in raws)
    assert any(r.startswith(nul) for r in raws)  # NUL bytes kept as received
    assert any(r.startswith(truncated) for r in raws)  # what there is of it
    assert any(r.startswith(from_line.split(b"From our shop")[0]) for r in raws)
    assert not any(b"x" * 998 in r for r in raws)
    analysed = person.messages()
    assert all(r["analysed_at"] is not None for r in analysed)
    assert any(r["problem"] and "NUL" in r["problem"] for r in analysed)


@pytest.mark.slow
def test_a_200_mb_message_is_a_counted_problem(person: Person) -> None:
    person.adopt_evidence()
    before = make_mail(1, MEGAMART, "megamart.example", BASE)
    after = make_mail(3, SHOES, "shoeshop.example", BASE)
    mbox = person.tmp / "huge.mbox"
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0\r\n"
    with mbox.open("wb") as out:
        out.write(GMAIL_FROM_LINE + before.raw + b"\r\n" + GMAIL_FROM_LINE)
        out.write(provider_copy(2, sender_copy(2, MEGAMART, "megamart.example", BASE,
                                               body=["Your photos are attached."]),
                                MEGAMART, "megamart.example", BASE))
        chunk = line * 10_000
        while out.tell() < 200 * 1024 * 1024:
            out.write(chunk)
        out.write(b"\r\n" + GMAIL_FROM_LINE + after.raw + b"\r\n")
    assert mbox.stat().st_size > 200 * 1024 * 1024

    started = time.monotonic()
    document = person.import_json(mbox, "--no-analyse")
    elapsed = time.monotonic() - started
    assert (document["read"], document["stored"], document["problems"]) == (3, 2, 1)
    [problem] = document["problem_list"]
    assert problem == {"position": f"message 2 of {mbox}",
                       "problem": "over the size limit of 26214400 bytes: skipped"}
    assert set(person.by_message_id()) == {before.message_id, after.message_id}
    assert elapsed < 60, f"a 200 MB message took {elapsed:.0f} s to skip"


# --- 7. authentication of old mail ----------------------------------------------------------

DEALBLASTER_RESULTS = (f"{PROVIDER};\r\n       dkim=pass header.d=dealblaster.example "
                       "header.s=s2019 header.b=AbCdEf12;\r\n"
                       "       dmarc=pass (p=NONE sp=NONE dis=NONE) "
                       "header.from=dealblaster.example")


@dataclass(frozen=True)
class Case:
    results: tuple[str, ...]
    options: tuple[str, ...]
    publish: bool
    relation: str
    verdict: str
    witness: str | None


CASES = {
    "trusted provider": Case((DEALBLASTER_RESULTS,), ("--trust-authserv-id", PROVIDER), False,
                             "third_party", "shared", f"as {PROVIDER} recorded at receipt"),
    "provider not trusted": Case((DEALBLASTER_RESULTS,), (), False, "unverified", "leaked",
                                 None),
    "another authserv-id": Case(
        (DEALBLASTER_RESULTS.replace(PROVIDER, "mx.other.example"),),
        ("--trust-authserv-id", PROVIDER), False, "unverified", "leaked", None),
    "trusted header not topmost": Case(
        ("mx.relay.example; dkim=none", DEALBLASTER_RESULTS),
        ("--trust-authserv-id", PROVIDER), False, "unverified", "leaked", None),
    "key still published": Case((), (), True, "third_party", "shared",
                                "verified by Canary against today's DNS"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_who_vouches_for_old_mail(person: Person, case: Case) -> None:
    key = rsa_key("dealblaster.example", "s2019")
    if case.publish:
        key.publish(person.zones)
    assert person("adopt", "MegaMart", MEGAMART, "--domain", "megamart.example",
                  "--issued", "2021-01-01").exit_code == 0
    mail = make_mail(1, MEGAMART, "dealblaster.example", BASE, results=case.results,
                     signer=key)
    mbox = write_provider_mbox(person.tmp / "old.mbox", [mail.raw])

    document = person.import_json(mbox, *case.options)
    assert (document["stored"], document["analysed"]) == (1, 1)
    [row] = person.messages()
    assert row["relation"] == case.relation, row["reason"]
    [entry] = person.show("MegaMart")["timeline"]
    assert entry["relation"] == case.relation
    if case.witness is None:
        assert "recorded at receipt" not in entry["reason"]
        assert "verified by Canary" not in entry["reason"]
        dkim = json.loads(row["authentication"])["dkim"]
        assert [(d["result"], d["reason"]) for d in dkim] == [
            ("none", "DKIM key no longer published")]  # not a forgery: just gone
    else:
        assert entry["reason"].endswith(case.witness), entry["reason"]
        assert entry["authenticated_by"] == {"method": "dkim", "domain": "dealblaster.example"}
    assert person.verdict("MegaMart") == case.verdict


def test_trusting_the_provider_on_a_rerun_applies_to_the_mail_imported_before(
        person: Person) -> None:
    key = rsa_key("dealblaster.example", "s2019")
    assert person("adopt", "MegaMart", MEGAMART, "--domain", "megamart.example").exit_code == 0
    mail = make_mail(1, MEGAMART, "dealblaster.example", BASE, results=(DEALBLASTER_RESULTS,),
                     signer=key)
    mbox = write_provider_mbox(person.tmp / "old.mbox", [mail.raw])
    person.import_json(mbox)
    assert person.verdict("MegaMart") == "leaked"

    rerun = person.import_json(mbox, "--trust-authserv-id", PROVIDER)
    assert rerun["duplicates"] == 1
    [source] = rows(person.store, ImportSource)
    assert source["trusted_authserv_id"] == PROVIDER
    person("analyse", "--dns", person.dns)
    assert person.verdict("MegaMart") == "shared"


def test_the_companys_own_old_mail_with_an_unpublished_key_is_unproven_not_spoofed(
        person: Person) -> None:
    person.zones.add_txt("_dmarc.megamart.example", "v=DMARC1; p=reject; adkim=s")
    retired = rsa_key("megamart.example", "k2019")  # rotated away: no longer published
    assert person("adopt", "MegaMart", MEGAMART, "--domain", "megamart.example").exit_code == 0
    mails = [make_mail(n, MEGAMART, "megamart.example", BASE + timedelta(days=n),
                       signer=retired) for n in range(3)]
    mbox = write_provider_mbox(person.tmp / "old.mbox", [m.raw for m in mails])

    assert person.import_json(mbox)["analysed"] == 3
    relations = {r["relation"] for r in person.messages()}
    assert relations == {"unproven"}
    timeline = person.show("MegaMart")["timeline"]
    assert all("imported mail claiming megamart.example" in e["reason"] for e in timeline)
    report = person.canary.json("report")
    [company] = report["companies"]
    assert company["counts"]["spoofed"] == 0 and company["counts"]["unproven"] == 3


def test_a_dmarc_failure_the_trusted_provider_recorded_is_spoofing(person: Person) -> None:
    person.zones.add_txt("_dmarc.megamart.example", "v=DMARC1; p=reject")
    assert person("adopt", "MegaMart", MEGAMART, "--domain", "megamart.example").exit_code == 0
    forged = make_mail(1, MEGAMART, "megamart.example", BASE, results=(
        f"{PROVIDER}; dkim=none; spf=fail smtp.mailfrom=megamart.example; "
        "dmarc=fail (p=REJECT) header.from=megamart.example",))
    mbox = write_provider_mbox(person.tmp / "forged.mbox", [forged.raw])
    assert person.import_json(mbox, "--trust-authserv-id", PROVIDER)["analysed"] == 1
    [row] = person.messages()
    assert row["relation"] == "spoofed", row["reason"]


# --- 8. dates and the life of adopted aliases -----------------------------------------------


def test_issue_at_back_dates_and_an_earlier_opt_out_is_refused(person: Person) -> None:
    address = person("issue", "Acme", "--at", "2024-01-01").stdout.strip()
    [alias] = person.canary.json("aliases")["aliases"]
    assert (alias["address"], alias["issued_at"]) == (address, "2024-01-01T00:00:00Z")

    refused = person("optout", "Acme", "--at", "2023-12-01")
    assert_one_sentence(refused, "2023-12-01", "Acme", "2024-01-01")
    assert person("optout", "Acme", "--at", "2024-02-01").exit_code == 0


def test_adopt_issued_back_dates_likewise(person: Person) -> None:
    result = person("adopt", "MegaMart", "MegaMart@ME.example", "--domain", "megamart.example",
                    "--issued", "2024-01-01", "--note", "loyalty card")
    assert (result.exit_code, result.stdout) == (0, f"{MEGAMART}\n")
    refused = person("optout", "MegaMart", "--at", "2023-12-01")
    assert_one_sentence(refused, "2023-12-01", "MegaMart", "2024-01-01")
    assert person("optout", "MegaMart", "--at", "2024-01-01").exit_code == 0

    # Adopting again with an earlier date keeps the earlier one; a later one changes nothing.
    person("adopt", MEGAMART, "--company", "MegaMart", "--issued", "2023-06-01")
    person("adopt", MEGAMART, "--company", "MegaMart", "--issued", "2025-01-01")
    [alias] = person.canary.json("aliases")["aliases"]
    assert (alias["issued_at"], alias["note"]) == ("2023-06-01T00:00:00Z", "loyalty card")


def test_adopt_refuses_an_issue_date_in_the_future(person: Person) -> None:
    result = person("adopt", "MegaMart", MEGAMART, "--issued", "2099-01-01")
    assert_usage_error(result, "future")


def test_adopted_aliases_in_aliases_reports_and_retire(person: Person) -> None:
    person.adopt_evidence()
    issued = person("issue", "Acme", "--at", "2024-01-01").stdout.strip()
    table = person("aliases")
    assert table.exit_code == 0
    for address in (MEGAMART, SHOES, TRAVEL):
        assert address in table.stdout
    local, _, domain = issued.partition("@")
    to_issued = [make_mail(60, issued, "dealblaster.example", BASE + timedelta(days=1100)),
                 make_mail(61, f"{local}+news@{domain}", "acme.example",
                           BASE + timedelta(days=1101))]  # a + tag on Canary's own alias
    mbox = write_provider_mbox(person.tmp / "takeout.mbox",
                               [m.raw for m in [*evidence(), *to_issued]])
    assert person.import_json(mbox)["stored"] == 12

    report = person.canary.json("report")
    companies = {c["name"]: c for c in report["companies"]}
    assert set(companies) == {"MegaMart", "Shoe Shop", "TravelCo", "Acme"}
    assert [a["address"] for a in companies["Shoe Shop"]["aliases"]] == [SHOES]
    assert companies["Shoe Shop"]["aliases"][0]["messages"] == 3
    assert companies["Shoe Shop"]["counts"]["total"] == 3
    assert companies["Shoe Shop"]["verdict"] == "leaked"  # dealblaster.example, unverified
    assert companies["MegaMart"]["aliases"][0]["issued_at"] == "2021-02-01T00:00:00Z"
    assert companies["Acme"]["counts"]["total"] == 2
    shown = person.show("Shoe Shop")
    assert len(shown["timeline"]) == 3 and shown["timeline_total"] == 3

    retired = person("retire", "Shoe Shop")
    assert (retired.exit_code, retired.stdout) == (
        0, f"Retired {SHOES}; mail to it is now still recorded.\n")
    listing = {a["address"]: a for a in person.canary.json("aliases")["aliases"]}
    assert listing[SHOES]["retired_at"] is not None
    assert listing[MEGAMART]["retired_at"] is None and issued in listing

    # Old mail to a retired address is still evidence: a later import keeps it.
    newer = make_mail(50, SHOES, "dealblaster.example", BASE + timedelta(days=500))
    more = person.import_json(write_lf_mbox(person.tmp / "newer.mbox", [newer.raw]))
    assert more["stored"] == 1
    assert person.canary.json("show", "Shoe Shop")["timeline_total"] == 4


def test_adopt_refusals(person: Person) -> None:
    assert_one_sentence(person("adopt", "MegaMart", "not-an-address"), "not an email address")
    assert person("adopt", "MegaMart", MEGAMART).exit_code == 0
    taken = person("adopt", "Shoe Shop", MEGAMART)
    assert_one_sentence(taken, MEGAMART, "MegaMart")
    mapping = person.tmp / "map.csv"
    mapping.write_text("address,company\nshoes@me.example,Shoe Shop\n")
    assert_usage_error(person("adopt", "Shoe Shop", "shoes@me.example", "--from", str(mapping)),
                       "not both")
    assert_usage_error(person("adopt", "MegaMart"), "canary adopt NAME ADDRESS")
    broken = person.tmp / "broken.csv"
    broken.write_text("address,company,issued\nshoes@me.example,Shoe Shop,someday\n")
    assert_one_sentence(person("adopt", "--from", str(broken)), "broken.csv line 2",
                        "'someday' is not a date")
    assert [a["address"] for a in person.canary.json("aliases")["aliases"]] == [MEGAMART]


def test_adopt_reads_a_mapping_saved_by_a_spreadsheet(person: Person) -> None:
    mapping = person.tmp / "map.csv"
    mapping.write_bytes(b"\xef\xbb\xbfaddress,company,domains,issued,note\r\n"
                        b"megamart@me.example,MegaMart,megamart.example,2021-02-01,\r\n")
    result = person("adopt", "--from", str(mapping))
    assert result.exit_code == 0, result.output
    assert [a["address"] for a in person.canary.json("aliases")["aliases"]] == [MEGAMART]
