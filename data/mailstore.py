"""What the listener writes and what analysis reads back.

`store_deliveries` is called by the listener's writer thread with a batch of
accepted messages; the caller commits, and only then does the listener
answer 250. A message already stored for the same alias (same SHA-256) is
not stored again. Raw bytes are kept zlib-compressed, exactly as received.
"""

from __future__ import annotations

import functools
import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, or_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, col, select

from canary.authentication import (
    Authentication,
    DnsAnswer,
    authentication_from_dict,
    authentication_to_dict,
)
from canary.classify import Classification, EspSending, classify
from canary.message import MessageFacts
from data.models import Alias, CompanyDomain, Message, Probe, RawMessage

REJECT = "reject"
ACCEPT = "accept"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted DATA transaction: raw bytes and the envelope."""

    raw: bytes
    recipients: tuple[tuple[int, str], ...]
    """(alias id, RCPT TO address as given) for every accepted recipient."""
    mail_from: str
    peer_ip: str
    helo: str | None
    tls: bool
    received_at: datetime
    forwarded_by: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass(frozen=True, slots=True)
class ProbeAttempt:
    received_at: datetime
    peer_ip: str
    address: str
    mail_from: str | None


@dataclass(frozen=True, slots=True)
class IssuedAddress:
    alias_id: int
    rejected: bool
    """Retired by its owner with `--reply reject`: RCPT gets 550."""


def issued_alias(session: Session, address: str) -> IssuedAddress | None:
    """The issued alias with this normalised address, if any, and whether it still accepts."""
    alias = session.exec(select(Alias).where(Alias.address == address)).first()
    if alias is None or alias.id is None:
        return None
    return IssuedAddress(alias.id, alias.retired_at is not None and alias.retire_reply == REJECT)


@functools.cache
def _insert_ignoring_duplicates(dialect: str, table: type[SQLModel]) -> Any:
    """INSERT that skips rows whose key is already stored (SQLite and PostgreSQL)."""
    if dialect == "postgresql":
        return postgresql_insert(table).on_conflict_do_nothing()
    return sqlite_insert(table).on_conflict_do_nothing()


def store_deliveries(target: Session | Connection, deliveries: Sequence[Delivery]) -> None:
    """Add a group of deliveries in two multi-row INSERTs.

    The writer calls this with a whole group. A message already stored (same
    SHA-256) or already delivered to the same alias is skipped by the
    database's unique keys, not by lookups first: the one writer thread
    shares the GIL with the SMTP loop, so every millisecond here slows the
    replies.
    """
    raw_rows: dict[str, dict[str, object]] = {}
    message_rows: dict[tuple[str, int], dict[str, object]] = {}
    for delivery in deliveries:
        digest = delivery.sha256
        if digest not in raw_rows:
            raw_rows[digest] = {"sha256": digest, "size": len(delivery.raw),
                                # Level 1, the fastest: this runs before every 250.
                                "content": zlib.compress(delivery.raw, 1)}
        for alias_id, rcpt_to in delivery.recipients:
            message_rows.setdefault((digest, alias_id), {
                "sha256": digest, "alias_id": alias_id, "rcpt_to": rcpt_to,
                "mail_from": delivery.mail_from, "peer_ip": delivery.peer_ip,
                "helo": delivery.helo, "tls": delivery.tls,
                "received_at": delivery.received_at, "forwarded_by": delivery.forwarded_by,
                "attempts": 0,
            })
    if not raw_rows:
        return
    connection = target.connection() if isinstance(target, Session) else target
    dialect = connection.dialect.name
    connection.execute(_insert_ignoring_duplicates(dialect, RawMessage), list(raw_rows.values()))
    connection.execute(_insert_ignoring_duplicates(dialect, Message),
                       list(message_rows.values()))


def record_probes(target: Session | Connection, probes: Iterable[ProbeAttempt]) -> None:
    rows = [
        {"received_at": p.received_at, "peer_ip": p.peer_ip, "address": p.address[:320],
         "mail_from": p.mail_from}
        for p in probes
    ]
    if rows:
        connection = target.connection() if isinstance(target, Session) else target
        connection.execute(insert(Probe), rows)


def probe_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Probe)).one()


def raw_message(session: Session, sha256: str) -> bytes:
    stored = session.get(RawMessage, sha256)
    if stored is None:
        raise KeyError(sha256)
    return zlib.decompress(stored.content)


@dataclass(frozen=True, slots=True)
class PendingMessage:
    id: int
    sha256: str
    raw: bytes
    company_domains: tuple[str, ...]
    peer_ip: str
    mail_from: str
    helo: str | None
    attempts: int


PENDING_BYTES = 64 * 1024 * 1024
"""Raw bytes one batch of pending messages may hold in memory (at least one message)."""


def pending_messages(session: Session, limit: int, now: datetime) -> list[PendingMessage]:
    """Messages not analysed yet and due, oldest first, with their company's domains.

    The batch stops at `limit` messages or `PENDING_BYTES` of raw mail, so a
    burst of large messages cannot exhaust the listener's memory.
    """
    due = or_(col(Message.retry_at).is_(None), col(Message.retry_at) <= now)
    rows = session.exec(
        select(Message, Alias.company_id, RawMessage.size)
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .join(RawMessage, col(RawMessage.sha256) == col(Message.sha256))
        .where(col(Message.analysed_at).is_(None), due)
        .order_by(col(Message.id))
        .limit(limit)
    ).all()
    domains: dict[int, tuple[str, ...]] = {}
    pending: list[PendingMessage] = []
    held = 0
    for message, company_id, size in rows:
        if pending and held + size > PENDING_BYTES:
            break
        held += size
        if company_id not in domains:
            domains[company_id] = tuple(_own_domains(session, company_id))
        assert message.id is not None
        pending.append(
            PendingMessage(message.id, message.sha256, raw_message(session, message.sha256),
                           domains[company_id], message.peer_ip, message.mail_from, message.helo,
                           message.attempts)
        )
    return pending


def _own_domains(session: Session, company_id: int) -> list[str]:
    return list(
        session.exec(select(CompanyDomain.domain).where(CompanyDomain.company_id == company_id))
    )


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything analysis found out about one message."""

    facts: MessageFacts
    classification: Classification
    authentication: Authentication | None = None
    esp: EspSending | None = None
    dns_answers: tuple[DnsAnswer, ...] = ()
    marketing: tuple[bool, str] | None = None
    """Whether it is marketing, and why (`canary.consent.is_marketing`)."""


def save_analysis(session: Session, message_id: int, analysis: Analysis, now: datetime) -> None:
    message = session.get(Message, message_id)
    if message is None:
        return
    facts, classification = analysis.facts, analysis.classification
    message.analysed_at = now
    message.attempts += 1
    message.retry_at = None
    message.temperror = None
    message.problem = "; ".join(facts.problems) or None
    message.from_address = facts.from_address
    message.from_orgs = " ".join(facts.from_orgs) or None
    message.return_path = facts.return_path
    message.dkim_domains = " ".join(facts.dkim_domains) or None
    message.list_unsubscribe = facts.list_unsubscribe
    message.message_id = facts.message_id
    message.sent_at = facts.date
    message.subject = facts.subject
    message.precedence = facts.precedence
    if analysis.authentication is not None:
        message.authentication = json.dumps(authentication_to_dict(analysis.authentication))
    message.dns_answers = json.dumps(
        [{"name": a.name, "type": a.rdtype, "records": list(a.records), "exists": a.exists}
         for a in analysis.dns_answers]
    )
    if analysis.marketing is not None:
        message.marketing, message.marketing_reason = analysis.marketing
    if analysis.esp is not None:
        message.esp = analysis.esp.esp
        message.esp_customer = analysis.esp.customer_id
        message.esp_authenticated_by = analysis.esp.authenticated_by
    _apply(message, classification)
    session.add(message)


def save_temporary_failure(
    session: Session, message_id: int, problem: str, retry_at: datetime
) -> None:
    """Record a temporary DNS failure; the message is analysed again at `retry_at`."""
    message = session.get(Message, message_id)
    if message is None:
        return
    message.attempts += 1
    message.temperror = problem[:500]
    message.retry_at = retry_at
    session.add(message)


def _apply(message: Message, classification: Classification) -> None:
    message.relation = classification.relation.value
    message.sender_org = classification.sender_org
    message.reason = classification.reason
    message.authenticated_by = classification.authenticated_by


def stored_classification(message: Message, own: Sequence[str]) -> Classification:
    """Classify a stored message again from what analysis recorded; no DNS needed."""
    auth = (
        authentication_from_dict(json.loads(message.authentication))
        if message.authentication else None
    )
    esp = (
        EspSending(message.esp, message.esp_customer, message.esp_authenticated_by)
        if message.esp else None
    )
    return classify((message.from_orgs or "").split(), own, auth, esp)


def reclassify_company(session: Session, company_id: int) -> int:
    """Classify the company's analysed messages again; return how many changed."""
    own = _own_domains(session, company_id)
    messages = session.exec(
        select(Message)
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .where(Alias.company_id == company_id, col(Message.analysed_at).is_not(None))
    ).all()
    changed = 0
    for message in messages:
        result = stored_classification(message, own)
        if (result.relation.value, result.sender_org) != (message.relation, message.sender_org):
            changed += 1
        _apply(message, result)
        session.add(message)
    return changed


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    """A message as evidence: its raw bytes and what was checked at receipt."""

    sha256: str
    raw: bytes
    received_at: datetime
    peer_ip: str
    mail_from: str
    helo: str | None
    authentication: dict[str, object] | None
    dns_answers: list[dict[str, object]]


def stored_evidence(session: Session, sha256s: Iterable[str]) -> list[StoredEvidence]:
    """The raw message and receipt-time DNS answers of each cited SHA-256, oldest first."""
    wanted = sorted(set(sha256s))
    evidence = []
    for digest in wanted:
        message = session.exec(
            select(Message).where(Message.sha256 == digest).order_by(col(Message.id))
        ).first()
        if message is None:
            continue
        evidence.append(
            StoredEvidence(
                sha256=digest,
                raw=raw_message(session, digest),
                received_at=message.received_at,
                peer_ip=message.peer_ip,
                mail_from=message.mail_from,
                helo=message.helo,
                authentication=json.loads(message.authentication)
                if message.authentication else None,
                dns_answers=json.loads(message.dns_answers) if message.dns_answers else [],
            )
        )
    evidence.sort(key=lambda e: e.received_at)
    return evidence
