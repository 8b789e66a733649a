"""Homes full of analysed mail, written straight through the data layer's tables.

For the report's own tests and `benchmarks/report.py`: no SMTP and no DNS,
so a million messages take minutes, not hours. The mail is varied the way
that matters to the report: many companies and aliases, senders in every
relation and kind, several ways of authenticating, messages received in the
same second, pending, set-aside and DNS-waiting mail, the company's own
marketing, consent histories with opt-outs, and flagged senders.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from canary.authentication import AuthMethod
from canary.consent import Frequency
from canary.relation import Relation
from canary.report import UNKNOWN_SENDER
from canary.senders import SenderKind
from data.database import Store
from data.tallies import rebuild

START = datetime(2025, 1, 1, tzinfo=UTC)
SENDERS = ("acme.example", "dealblaster.example", "brokerhub.example", "gmail.com",
           "mailchimp.example", "", None, UNKNOWN_SENDER, "lookalike.example")
DOMAINS_SENDING = ("acme.example", "mail.acme.example", "sendgrid.example", None)


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def _company_rows(companies: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for number in range(1, companies + 1):
        yield {"id": number, "name": f"Company {number}", "slug": f"company-{number}",
               "note": rng.choice((None, "loyalty card")), "created_at": START}


def fill_home(store: Store, *, companies: int, messages: int, seed: int = 0,
              chunk: int = 20_000, realistic: bool = False, busiest: int = 0) -> None:
    """Add `companies` companies (one or two aliases each) and `messages` analysed or
    pending messages spread over them, deterministically from `seed`.

    By default every company gets every kind of sender, to reach every corner of the
    report. `realistic` mail is mostly the company's own and its processor's, with a
    few third parties from a shared pool (brokers) and some spam, as a person's home
    grows: the shape `benchmarks/report.py` measures. The first `busiest` messages all go
    to the first company (`show` of a company with much mail).
    """
    rng = random.Random(seed)
    aliases: list[tuple[int, int, str]] = []
    with store.writer_connection() as connection, connection.begin():
        connection.execute(sa.insert(_table("company")), list(_company_rows(companies, rng)))
        alias_rows: list[dict[str, Any]] = []
        domain_rows: list[dict[str, Any]] = []
        consent_rows: list[dict[str, Any]] = []
        flag_rows: list[dict[str, Any]] = []
        for company in range(1, companies + 1):
            for second in range(rng.choice((1, 1, 2))):
                alias_id = len(alias_rows) + 1
                slug = f"company-{company}" + (f"-{second + 1}" if second else "")
                alias_rows.append({
                    "id": alias_id, "company_id": company, "slug": slug,
                    "address": f"{slug}.abcdefgh@canary.example.org",
                    "issued_at": START + timedelta(days=second), "retired_at": None,
                    "retire_reply": None, "adopted": False})
                aliases.append((alias_id, company, slug))
            domain_rows.append({"company_id": company, "domain": "acme.example",
                                "source": "declared", "added_at": START})
            if rng.random() < 0.6:
                frequency = rng.choice((Frequency.WEEKLY, Frequency.MONTHLY, Frequency.NEVER))
                consent_rows.append({"company_id": company, "since": START, "marketing": True,
                                     "frequency": frequency.value,
                                     "opted_out": False})
                if rng.random() < 0.5:
                    consent_rows.append({
                        "company_id": company, "since": START + timedelta(days=rng.randint(1, 20)),
                        "marketing": False, "frequency": Frequency.NEVER.value,
                        "opted_out": True})
            if rng.random() < 0.2:
                flag_rows.append({"company_id": company, "organisation": "gmail.com",
                                  "flagged_at": START})
        connection.execute(sa.insert(_table("alias")), alias_rows)
        connection.execute(sa.insert(_table("companydomain")), _fit(domain_rows, "companydomain"))
        if consent_rows:
            connection.execute(sa.insert(_table("consentrecord")),
                               _fit(consent_rows, "consentrecord"))
        if flag_rows:
            connection.execute(sa.insert(_table("flaggedsender")),
                               _fit(flag_rows, "flaggedsender"))

    first = [alias for alias in aliases if alias[1] == 1]
    for begin in range(0, messages, chunk):
        raws, rows = [], []
        for number in range(begin, min(begin + chunk, messages)):
            sha256 = hashlib.sha256(f"{seed}:{number}".encode()).hexdigest()
            raws.append({"sha256": sha256, "size": 1, "content": b"x"})
            alias = rng.choice(aliases if number >= busiest else first)
            row = _message(rng, number, sha256, alias)
            if realistic:
                row.update(_realistic_sender(rng, alias[1]))
            rows.append(row)
        with store.writer_connection() as connection, connection.begin():
            connection.execute(sa.insert(_table("rawmessage")), raws)
            connection.execute(sa.insert(_table("message")), rows)
    with store.writer_connection() as connection, connection.begin():
        # What analysis keeps as it goes, made at once for the whole home.
        rebuild(connection)


def _fit(rows: list[dict[str, Any]], table: str) -> list[dict[str, Any]]:
    """The rows with only the columns the table has (the schema grows, the generator less)."""
    columns = set(_table(table).c.keys())
    return [{k: v for k, v in row.items() if k in columns} for row in rows]


def _message(rng: random.Random, number: int, sha256: str,
             alias: tuple[int, int, str]) -> dict[str, Any]:
    alias_id, _company, slug = alias
    # Every six hours over 60 days: many messages share a second with another.
    received = START + timedelta(hours=6 * rng.randint(0, 4 * 60))
    state = rng.random()
    relation: Relation | None = None
    if state > 0.06:  # a third of the mail is the company's own, much of it marketing
        relation = Relation.FIRST_PARTY if rng.random() < 0.35 else rng.choice(list(Relation))
    method = rng.choice(list(AuthMethod)) if relation is not None else None
    return {
        "sha256": sha256, "alias_id": alias_id,
        "rcpt_to": f"{slug}.abcdefgh@canary.example.org", "mail_from": "bounce@x.example",
        "peer_ip": "192.0.2.25", "helo": "mx.x.example", "tls": False,
        "received_at": received, "receipt_estimated": False,
        "analysed_at": received if relation is not None else None,
        "attempts": 0, "failures": 0,
        "set_aside_at": received if relation is None and state < 0.02 else None,
        "temperror": "DNS timed out" if relation is None and 0.02 <= state < 0.04 else None,
        "message_id": f"<{number}@x.example>", "subject": f"Offer {number}",
        "from_address": "news@x.example",
        "marketing": rng.choice((True, False, None)),
        "relation": relation.value if relation else None,
        "sender_org": rng.choice(SENDERS) if relation is not None else None,
        "sender_kind": rng.choice(list(SenderKind)).value if relation is not None else None,
        "sender_via": rng.choice((None, None, "shopify.example")),
        "reason": "generated", "auth_method": method.value if method else None,
        "auth_domain": (rng.choice(DOMAINS_SENDING) if method not in (None, AuthMethod.NONE)
                        else None),
    }


def _realistic_sender(rng: random.Random, company: int) -> dict[str, Any]:
    """Who sent a message of a realistic home: who the company is, mostly."""
    roll = rng.random()
    if roll < 0.06:  # not analysed: waiting, waiting for DNS, or set aside
        state = roll / 0.06
        return {"relation": None, "analysed_at": None, "sender_org": None, "sender_kind": None,
                "sender_via": None, "auth_method": None, "auth_domain": None,
                "marketing": None,
                "temperror": "DNS timed out" if state < 1 / 3 else None,
                "set_aside_at": START if state > 2 / 3 else None}
    if roll < 0.75:
        relation, org, kind, method = (Relation.FIRST_PARTY, f"company-{company}.example",
                                       SenderKind.ORGANISATION, AuthMethod.DKIM)
    elif roll < 0.92:
        relation, org, kind, method = (Relation.PROCESSOR, f"company-{company}.example",
                                       SenderKind.ORGANISATION, AuthMethod.DKIM)
    elif roll < 0.96:
        relation, org, kind, method = (Relation.UNVERIFIED, f"spam{rng.randint(1, 40)}.example",
                                       SenderKind.ORGANISATION, AuthMethod.NONE)
    elif company % 7 == 0:  # some companies shared the address
        relation, org, kind, method = (Relation.THIRD_PARTY,
                                       f"broker{rng.randint(1, 30)}.example",
                                       SenderKind.ORGANISATION, AuthMethod.DKIM)
    else:
        relation, org, kind, method = (Relation.UNPROVEN, "gmail.com", SenderKind.MAILBOX,
                                       AuthMethod.SPF)
    return {"relation": relation.value, "sender_org": org, "sender_kind": kind.value,
            "sender_via": None, "auth_method": method.value,
            "auth_domain": org if method is not AuthMethod.NONE else None,
            "marketing": relation.expected and rng.random() < 0.7}
