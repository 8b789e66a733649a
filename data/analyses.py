"""What analysis reads and writes: pending mail, results, re-decisions, evidence.

`pending_messages` hands analysis the next due messages with their
company's domains; `save_analysis` and `save_temporary_failure` record what
it found. `trust_sender` records the person's decision and re-decides the
company's stored mail from what analysis recorded, with no DNS.
`stored_evidence` reads back what an evidence bundle cites.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_
from sqlmodel import Session, col, select

from canary.analysis import Analysis
from canary.authentication import (
    AuthenticatedBy,
    AuthMethod,
    DnsAnswer,
    authentication_from_dict,
    authentication_to_dict,
)
from canary.classify import Classification, classify
from canary.esp import EspSending
from data.mailstore import raw_message
from data.models import Alias, Message, RawMessage
from data.registry import company_domains, trust_domain


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


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(col(Message.analysed_at).is_(None),
                or_(col(Message.retry_at).is_(None), col(Message.retry_at) <= now))


def pending_count(session: Session, now: datetime) -> int:
    """How many messages are due for analysis at `now`."""
    return session.exec(select(func.count()).select_from(Message).where(_due(now))).one()


def unsettled_count(session: Session) -> int:
    """How many messages are not analysed yet, due now or waiting to retry."""
    return session.exec(
        select(func.count()).select_from(Message).where(col(Message.analysed_at).is_(None))
    ).one()


def pending_messages(session: Session, limit: int, now: datetime) -> list[PendingMessage]:
    """Messages not analysed yet and due, oldest first, with their company's domains.

    The batch stops at `limit` messages or `PENDING_BYTES` of raw mail, so a
    burst of large messages cannot exhaust the listener's memory.
    """
    rows = session.exec(
        select(Message, Alias.company_id, RawMessage.size)
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .join(RawMessage, col(RawMessage.sha256) == col(Message.sha256))
        .where(_due(now))
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
            domains[company_id] = tuple(company_domains(session, company_id))
        assert message.id is not None
        pending.append(
            PendingMessage(message.id, message.sha256, raw_message(session, message.sha256),
                           domains[company_id], message.peer_ip, message.mail_from, message.helo,
                           message.attempts)
        )
    return pending


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
    message.dns_answers = json.dumps([a.to_dict() for a in analysis.dns_answers])
    if analysis.marketing is not None:
        message.marketing, message.marketing_reason = analysis.marketing
    if analysis.esp is not None:
        message.esp = analysis.esp.esp
        message.esp_customer = analysis.esp.customer_id
        message.esp_auth_method, message.esp_auth_domain = _columns(analysis.esp.authenticated_by)
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


def _columns(authenticated_by: AuthenticatedBy | None) -> tuple[str | None, str | None]:
    if authenticated_by is None:
        return None, None
    return authenticated_by.method.value, authenticated_by.domain


def authenticated_by(method: str | None, domain: str | None) -> AuthenticatedBy | None:
    """The typed form of a stored method and domain."""
    return None if method is None else AuthenticatedBy(AuthMethod(method), domain)


def _apply(message: Message, classification: Classification) -> None:
    message.relation = classification.relation.value
    message.sender_org = classification.sender_org
    message.reason = classification.reason
    message.auth_method, message.auth_domain = _columns(classification.authenticated_by)


def stored_classification(message: Message, own: Sequence[str]) -> Classification:
    """Classify a stored message again from what analysis recorded; no DNS needed."""
    auth = (
        authentication_from_dict(json.loads(message.authentication))
        if message.authentication else None
    )
    esp = (
        EspSending(message.esp, message.esp_customer,
                   authenticated_by(message.esp_auth_method, message.esp_auth_domain))
        if message.esp else None
    )
    return classify((message.from_orgs or "").split(), own, auth, esp)


def reclassify_company(session: Session, company_id: int) -> int:
    """Classify the company's analysed messages again; return how many changed."""
    own = company_domains(session, company_id)
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
    dns_answers: tuple[DnsAnswer, ...]


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
                dns_answers=tuple(DnsAnswer.from_dict(a) for a in
                                  json.loads(message.dns_answers or "[]")),
            )
        )
    evidence.sort(key=lambda e: e.received_at)
    return evidence


@dataclass(frozen=True, slots=True)
class Trusted:
    company: str
    organisation: str
    reclassified: int
    """Stored messages whose relation or sender changed."""


def trust_sender(session: Session, name: str, domain: str, now: datetime) -> Trusted:
    """Record `domain`'s organisation as the company's own and re-decide its stored mail."""
    company, organisation = trust_domain(session, name, domain, now)
    assert company.id is not None
    session.flush()
    return Trusted(company.name, organisation, reclassify_company(session, company.id))
