"""What the listener writes and what analysis reads back.

`store_deliveries` is called by the listener's writer thread with a batch of
accepted messages; the caller commits, and only then does the listener
answer 250. A message already stored for the same alias (same SHA-256) is
not stored again. Raw bytes are kept zlib-compressed, exactly as received.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from canary.classify import Classification, classify
from canary.message import MessageFacts
from data.models import Alias, CompanyDomain, Message, Probe, RawMessage


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

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass(frozen=True, slots=True)
class ProbeAttempt:
    received_at: datetime
    peer_ip: str
    address: str
    mail_from: str | None


def issued_alias_id(session: Session, address: str) -> int | None:
    """The id of the issued alias with this normalised address, if any."""
    return session.exec(select(Alias.id).where(Alias.address == address)).first()


def store_deliveries(session: Session, deliveries: Sequence[Delivery]) -> int:
    """Add the deliveries to the session; return how many new message rows that makes."""
    added = 0
    for delivery in deliveries:
        digest = delivery.sha256
        if session.get(RawMessage, digest) is None:
            session.add(
                RawMessage(sha256=digest, size=len(delivery.raw),
                           content=zlib.compress(delivery.raw, 6))
            )
        for alias_id, rcpt_to in dict(delivery.recipients).items():
            exists = session.exec(
                select(Message.id).where(Message.sha256 == digest, Message.alias_id == alias_id)
            ).first()
            if exists is None:
                session.add(
                    Message(
                        sha256=digest, alias_id=alias_id, rcpt_to=rcpt_to,
                        mail_from=delivery.mail_from, peer_ip=delivery.peer_ip,
                        helo=delivery.helo, tls=delivery.tls, received_at=delivery.received_at,
                    )
                )
                added += 1
        session.flush()
    return added


def record_probes(session: Session, probes: Iterable[ProbeAttempt]) -> None:
    for probe in probes:
        session.add(Probe(received_at=probe.received_at, peer_ip=probe.peer_ip,
                          address=probe.address[:320], mail_from=probe.mail_from))


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


def pending_messages(session: Session, limit: int) -> list[PendingMessage]:
    """Messages not analysed yet, oldest first, with their company's domains."""
    rows = session.exec(
        select(Message.id, Message.sha256, Alias.company_id)
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .where(col(Message.analysed_at).is_(None))
        .order_by(col(Message.id))
        .limit(limit)
    ).all()
    domains: dict[int, tuple[str, ...]] = {}
    pending = []
    for message_id, digest, company_id in rows:
        if company_id not in domains:
            domains[company_id] = tuple(
                session.exec(
                    select(CompanyDomain.domain).where(CompanyDomain.company_id == company_id)
                ).all()
            )
        assert message_id is not None
        pending.append(
            PendingMessage(message_id, digest, raw_message(session, digest), domains[company_id])
        )
    return pending


def save_analysis(
    session: Session,
    message_id: int,
    facts: MessageFacts,
    classification: Classification,
    now: datetime,
) -> None:
    message = session.get(Message, message_id)
    if message is None:
        return
    message.analysed_at = now
    message.problem = "; ".join(facts.problems) or None
    message.from_address = facts.from_address
    message.from_orgs = " ".join(facts.from_orgs) or None
    message.return_path = facts.return_path
    message.dkim_domains = " ".join(facts.dkim_domains) or None
    message.list_unsubscribe = facts.list_unsubscribe
    message.message_id = facts.message_id
    message.sent_at = facts.date
    message.subject = facts.subject
    message.relation = classification.relation.value
    message.sender_org = classification.sender_org
    message.reason = classification.reason
    session.add(message)


def reclassify_company(session: Session, company_id: int) -> int:
    """Classify the company's analysed messages again; return how many changed."""
    own = session.exec(
        select(CompanyDomain.domain).where(CompanyDomain.company_id == company_id)
    ).all()
    messages = session.exec(
        select(Message)
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .where(Alias.company_id == company_id, col(Message.analysed_at).is_not(None))
    ).all()
    changed = 0
    for message in messages:
        result = classify((message.from_orgs or "").split(), own)
        if (result.relation.value, result.sender_org) != (message.relation, message.sender_org):
            changed += 1
        message.relation = result.relation.value
        message.sender_org = result.sender_org
        message.reason = result.reason
        session.add(message)
    return changed
