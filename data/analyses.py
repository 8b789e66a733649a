"""What analysis reads and writes: pending mail, results, re-decisions, evidence.

`pending_messages` hands analysis the next due messages with what Canary
knows of their company; `save_analysis`, `save_temporary_failure` and
`save_failure` record what it found. An ESP customer id seen on the
company's own authenticated mail is confirmed as the company's, and its
stored mail re-decided. `trust_sender` records the person's decision and
re-decides too, from the raw messages and the recorded authentication, with
no network. `stored_evidence` reads back what an evidence bundle cites.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, and_, func, or_, update
from sqlmodel import Session, SQLModel, col, select

from canary.analysis import Analysis, attribute
from canary.attribution import Attribution, CompanyContext, company_names, learnable_accounts
from canary.authentication import (
    AuthenticatedBy,
    DnsAnswer,
    authentication_from_dict,
    authentication_to_dict,
)
from canary.message import read_message
from data.mailstore import raw_contents, raw_message
from data.models import (
    Alias,
    Company,
    EspCustomer,
    Message,
    MessageEvidence,
    RawMessage,
)
from data.registry import company_domains, find_company, trust_domain
from data.tallies import Counted, TallyKey, count_in, recount

LEARNED = "learned"
TRUSTED = "trusted"


@dataclass(frozen=True, slots=True)
class PendingMessage:
    id: int
    sha256: str
    raw: bytes | None
    """None when the stored bytes cannot be read back (see `unreadable`)."""
    company: CompanyContext
    peer_ip: str
    mail_from: str
    helo: str | None
    attempts: int
    failures: int = 0
    unreadable: str | None = None
    received_at: datetime | None = None
    historic: bool = False
    """Imported mail, received long before it is analysed."""
    trusted_upstream: tuple[str, ...] = ()
    """The authserv-id of the provider the person trusts for this message's import."""

    @property
    def null_sender(self) -> bool:
        return not self.mail_from.strip().strip("<>").strip()


PENDING_BYTES = 64 * 1024 * 1024
"""Raw bytes one batch of pending messages may hold in memory (at least one message)."""


def within_bytes(rows: Iterable[Any]) -> list[Any]:
    """The first of these rows (each with the `size` of its raw message) whose raw mail
    fits in `PENDING_BYTES`; at least one."""
    chosen: list[Any] = []
    held = 0
    for row in rows:
        if chosen and held + row.size > PENDING_BYTES:
            break
        held += row.size
        chosen.append(row)
    return chosen


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(col(Message.analysed_at).is_(None), col(Message.set_aside_at).is_(None),
                or_(col(Message.retry_at).is_(None), col(Message.retry_at) <= now))


def pending_count(session: Session, now: datetime) -> int:
    """How many messages are due for analysis at `now`."""
    return session.exec(select(func.count()).select_from(Message).where(_due(now))).one()


def unsettled_count(session: Session) -> int:
    """How many messages are not analysed yet, due now or waiting to retry (not set aside)."""
    return session.exec(
        select(func.count()).select_from(Message).where(
            col(Message.analysed_at).is_(None), col(Message.set_aside_at).is_(None))
    ).one()


def esp_customers(session: Session, company_id: int) -> frozenset[tuple[str, str]]:
    return frozenset(session.exec(
        select(EspCustomer.esp, EspCustomer.customer_id)
        .where(EspCustomer.company_id == company_id)
    ).all())


def company_context(session: Session, company_id: int,
                    trusted_sealers: Iterable[str] = ()) -> CompanyContext:
    """What attribution needs to know of a company."""
    company = session.get(Company, company_id)
    assert company is not None
    return CompanyContext(
        domains=frozenset(company_domains(session, company_id)),
        names=company_names(company.name, company.slug),
        esp_customers=esp_customers(session, company_id),
        trusted_sealers=frozenset(trusted_sealers),
    )


def _read_raw(session: Session, sha256: str) -> tuple[bytes | None, str | None]:
    return _decompressed(raw_contents(session, [sha256]).get(sha256), sha256)


def _decompressed(content: bytes | None, sha256: str) -> tuple[bytes | None, str | None]:
    """The raw message, or None and why it cannot be read back."""
    if content is None:
        return None, "stored message cannot be read back: KeyError"
    try:
        return zlib.decompress(content), None
    except zlib.error as error:
        return None, f"stored message cannot be read back: {type(error).__name__}"


CLAIM_FOR = timedelta(minutes=2)
"""How long a listener's claim on pending messages holds (several MXes on PostgreSQL)."""


def claim_pending(session: Session, limit: int, now: datetime) -> int:
    """On a shared database (several MXes on PostgreSQL), claim up to `limit` due messages
    for this analyst so that no other analyses them too: they are not due again for
    `CLAIM_FOR`, by which time they are analysed, or their analyst died and another takes
    them. Return how many. SQLite has one listener: nothing to claim."""
    if session.connection().dialect.name != "postgresql":
        return 0
    # As many as the batch will read (`within_bytes`): a message claimed and left unread
    # would wait out the claim.
    due = [row.id for row in within_bytes(session.exec(
        select(Message.id, RawMessage.size)
        .join(RawMessage, col(RawMessage.sha256) == col(Message.sha256))
        .where(_due(now)).order_by(col(Message.id)).limit(limit)
        .with_for_update(skip_locked=True, of=Message)).all())]
    if due:
        session.connection().execute(update(Message).where(col(Message.id).in_(due))
                                     .values(retry_at=now + CLAIM_FOR, claimed_at=now))
    return len(due)


def claimed_messages(session: Session, limit: int, now: datetime) -> list[PendingMessage]:
    """The messages this analyst claimed at `now` (PostgreSQL), else the due ones."""
    if session.connection().dialect.name != "postgresql":
        return pending_messages(session, limit, now)
    return pending_messages(session, limit, now, claimed_at=now)


def pending_messages(session: Session, limit: int, now: datetime,
                     claimed_at: datetime | None = None) -> list[PendingMessage]:
    """Messages not analysed yet and due, oldest first, with what is known of their company.

    The batch stops at `limit` messages or `PENDING_BYTES` of raw mail, so a
    burst of large messages cannot exhaust the listener's memory.
    """
    message, alias, stored, source = (SQLModel.metadata.tables[name] for name in (
        "message", "alias", "rawmessage", "importsource"))
    m = message.c
    rows = session.execute(  # plain columns: no ORM object per message
        sa.select(m.id, m.sha256, m.peer_ip, m.mail_from, m.helo, m.attempts, m.failures,
                  m.received_at, m.import_id, alias.c.company_id, stored.c.size,
                  source.c.trusted_authserv_id)
        .select_from(message.join(alias, alias.c.id == m.alias_id)
                     .join(stored, stored.c.sha256 == m.sha256)
                     .outerjoin(source, source.c.id == m.import_id))
        .where(_due(now) if claimed_at is None else m.claimed_at == claimed_at)
        .order_by(m.id)
        .limit(limit)
    ).all()
    chosen = within_bytes(rows)
    contents = raw_contents(session, {row.sha256 for row in chosen})
    companies: dict[int, CompanyContext] = {}
    pending: list[PendingMessage] = []
    for row in chosen:
        if row.company_id not in companies:
            companies[row.company_id] = company_context(session, row.company_id)
        raw, unreadable = _decompressed(contents.get(row.sha256), row.sha256)
        pending.append(
            PendingMessage(row.id, row.sha256, raw, companies[row.company_id], row.peer_ip,
                           row.mail_from, row.helo, row.attempts, row.failures, unreadable,
                           row.received_at, historic=row.import_id is not None,
                           trusted_upstream=(row.trusted_authserv_id,)
                           if row.trusted_authserv_id else ()))
    return pending


def _columns(authenticated_by: AuthenticatedBy | None) -> tuple[str | None, str | None]:
    if authenticated_by is None:
        return None, None
    return authenticated_by.method.value, authenticated_by.domain


def _apply(message: Message, attribution: Attribution) -> None:
    message.relation = attribution.relation.value
    message.sender_org = attribution.sender.name
    message.sender_kind = attribution.sender.kind.value
    message.sender_via = attribution.sender.via
    message.reason = attribution.reason
    message.auth_method, message.auth_domain = _columns(attribution.authenticated_by)


def save_analysis(session: Session, message_id: int, analysis: Analysis, now: datetime,
                  trusted_sealers: Iterable[str] = ()) -> None:
    """Record what analysis found for one message (see `save_analyses`)."""
    save_analyses(session, [(message_id, analysis, now)], trusted_sealers)


def save_analyses(session: Session, results: Sequence[tuple[int, Analysis, datetime]],
                  trusted_sealers: Iterable[str] = ()) -> None:
    """Record what analysis found for each message (id, analysis, when), and count them in
    their tallies, in a few statements for the whole group; then confirm the ESP customer
    ids the company's own mail shows, deciding its stored mail again when one is new.

    A message decided before (an import judged again) has its aliases' tallies counted
    again from the messages instead."""
    if not results:
        return
    session.flush()  # what this session changed before, written ahead of the statements here
    message_table, evidence_table = (SQLModel.metadata.tables[name]
                                     for name in ("message", "messageevidence"))
    m, connection = message_table.c, session.connection()
    stored = {row.id: row for row in connection.execute(
        sa.select(m.id, m.alias_id, m.relation, m.received_at, m.sha256, m.attempts,
                  m.marketing, m.marketing_reason, m.esp, m.esp_customer, m.esp_auth_method,
                  m.esp_auth_domain)
        .where(m.id.in_(sorted({message_id for message_id, _, _ in results}))))}
    rows: dict[int, dict[str, Any]] = {}
    evidence: dict[int, dict[str, Any]] = {}
    for message_id, analysis, now in results:
        if (before := stored.get(message_id)) is None:
            continue
        facts, attribution = analysis.facts, analysis.attribution
        selling = analysis.marketing or (before.marketing, before.marketing_reason)
        esp = ((analysis.esp.esp, analysis.esp.customer_id,
                *_columns(analysis.esp.authenticated_by)) if analysis.esp is not None else
               (before.esp, before.esp_customer, before.esp_auth_method, before.esp_auth_domain))
        method, domain = _columns(attribution.authenticated_by)
        rows[message_id] = {
            "message_row": message_id, "analysed_at": now, "attempts": before.attempts + 1,
            "retry_at": None, "temperror": None, "problem": "; ".join(facts.problems) or None,
            "from_address": facts.from_address, "from_orgs": " ".join(facts.from_orgs) or None,
            "return_path": facts.return_path,
            "dkim_domains": " ".join(facts.dkim_domains) or None,
            "list_unsubscribe": facts.list_unsubscribe, "message_id": facts.message_id,
            "sent_at": facts.date, "subject": facts.subject, "precedence": facts.precedence,
            "marketing": selling[0], "marketing_reason": selling[1],
            "esp": esp[0], "esp_customer": esp[1], "esp_auth_method": esp[2],
            "esp_auth_domain": esp[3],
            "relation": attribution.relation.value, "sender_org": attribution.sender.name,
            "sender_kind": attribution.sender.kind.value, "sender_via": attribution.sender.via,
            "reason": attribution.reason, "auth_method": method, "auth_domain": domain,
        }
        evidence[message_id] = {
            "message_id": message_id,
            "authentication": json.dumps(authentication_to_dict(analysis.authentication)),
            "dns_answers": json.dumps([a.to_dict() for a in analysis.dns_answers]),
        }
    if not rows:
        return
    ids = sorted(rows)
    connection.execute(sa.update(message_table).where(m.id == sa.bindparam("message_row")),
                       [rows[i] for i in ids])
    connection.execute(sa.delete(evidence_table).where(evidence_table.c.message_id.in_(ids)))
    connection.execute(sa.insert(evidence_table), [evidence[i] for i in ids])
    session.expire_all()  # rows this session loaded before are read again, as written here
    recounted = {stored[i].alias_id for i in ids if stored[i].relation is not None}
    recount(connection, sorted(recounted))
    count_in(connection, [_counted(stored[i], rows[i]) for i in ids
                          if stored[i].alias_id not in recounted])
    _learn_accounts(session, [(stored[message_id].alias_id, analysis)
                              for message_id, analysis, _ in results if message_id in rows],
                    max(now for _, _, now in results), trusted_sealers)


def _counted(stored: Any, row: dict[str, Any]) -> Counted:
    return Counted(
        TallyKey(stored.alias_id, row["relation"], row["sender_org"] or "",
                 row["sender_kind"] or ""),
        stored.id, stored.received_at, row["message_id"], stored.sha256, row["sender_via"],
        row["auth_method"], row["auth_domain"], bool(row["marketing"]))


def _learn_accounts(session: Session, analysed: Sequence[tuple[int, Analysis]], now: datetime,
                    trusted_sealers: Iterable[str]) -> None:
    """Confirm the ESP customer ids the company's own authenticated mail shows; decide a
    company's stored mail again when one is new to it."""
    learning = [(alias_id, analysis) for alias_id, analysis in analysed
                if analysis.attribution.confirms
                or (analysis.esp is not None and analysis.esp.customer_id)]
    if not learning:
        return
    companies = dict(session.exec(select(Alias.id, Alias.company_id).where(
        col(Alias.id).in_({alias_id for alias_id, _ in learning}))).all())
    learned: set[int] = set()
    for alias_id, analysis in learning:
        company_id = companies[alias_id]
        accounts = learnable_accounts(analysis.attribution, analysis.esp,
                                      company_context(session, company_id))
        if any([confirm_esp_customer(session, company_id, service, account, LEARNED, now)
                for service, account in accounts]):
            learned.add(company_id)
    if learned:
        session.flush()
    for company_id in sorted(learned):
        reclassify_company(session, company_id, trusted_sealers)


def confirm_esp_customer(session: Session, company_id: int, esp: str, customer_id: str,
                         source: str, now: datetime) -> bool:
    """Record an ESP customer id as the company's own; False if it was already."""
    exists = session.exec(select(EspCustomer).where(
        EspCustomer.company_id == company_id, EspCustomer.esp == esp,
        EspCustomer.customer_id == customer_id)).first()
    if exists is not None:
        return False
    session.add(EspCustomer(company_id=company_id, esp=esp, customer_id=customer_id,
                            source=source, added_at=now))
    return True


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


def save_failure(session: Session, message_id: int, problem: str, retry_at: datetime | None,
                 now: datetime) -> None:
    """Record that analysis itself failed on a message: try again at `retry_at`, or, when
    None, set it aside (out of the verdict, counted in the report)."""
    message = session.get(Message, message_id)
    if message is None:
        return
    message.failures += 1
    message.problem = problem[:500]
    message.retry_at = retry_at
    if retry_at is None:
        message.set_aside_at = now
    session.add(message)


def stored_analysis(session: Session, message: Message, evidence: MessageEvidence | None,
                    company: CompanyContext) -> Analysis | None:
    """Analyse a stored message again from its raw bytes and recorded authentication.

    No DNS is asked: the authentication recorded at receipt is what counts.
    None for a message never analysed, or whose bytes cannot be read back.
    """
    if evidence is None:
        return None
    raw, _ = _read_raw(session, message.sha256)
    if raw is None:
        return None
    auth = authentication_from_dict(json.loads(evidence.authentication))
    answers = tuple(DnsAnswer.from_dict(a) for a in json.loads(evidence.dns_answers or "[]"))
    null_sender = not message.mail_from.strip().strip("<>").strip()
    return attribute(read_message(raw), auth, company, null_sender=null_sender,
                     dns_answers=answers)


def _reclassify(session: Session, company_id: int, company: CompanyContext) -> tuple[int, int]:
    """Decide the company's analysed messages again and recount their tallies; return how
    many messages there were and how many changed."""
    rows = session.exec(
        select(Message, MessageEvidence)
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .join(MessageEvidence, col(MessageEvidence.message_id) == col(Message.id),
              isouter=True)
        .where(Alias.company_id == company_id, col(Message.analysed_at).is_not(None))
    ).all()
    changed = 0
    for message, evidence in rows:
        analysis = stored_analysis(session, message, evidence, company)
        if analysis is None:
            continue
        attribution = analysis.attribution
        if (attribution.relation.value, attribution.sender.name) != (message.relation,
                                                                    message.sender_org):
            changed += 1
        _apply(message, attribution)
        if analysis.marketing is not None:
            message.marketing, message.marketing_reason = analysis.marketing
        session.add(message)
    session.flush()
    recount(session.connection(), [alias.id for alias in session.exec(
        select(Alias).where(Alias.company_id == company_id)) if alias.id is not None])
    return len(rows), changed


def reclassify_company(session: Session, company_id: int,
                       trusted_sealers: Iterable[str] = ()) -> int:
    """Decide the company's analysed messages again; return how many changed."""
    return _reclassify(session, company_id,
                       company_context(session, company_id, trusted_sealers))[1]


def reclassify_all(session: Session, trusted_sealers: Iterable[str] = (),
                   progress: Callable[[int], None] = lambda done: None) -> int:
    """Decide every analysed message again under this version's model; return how many
    changed. `canary upgrade` runs it after a migration that changes the model."""
    sealers = tuple(trusted_sealers)
    changed = 0
    for company_id in session.exec(select(Company.id)).all():
        assert company_id is not None
        read, decided = _reclassify(session, company_id,
                                    company_context(session, company_id, sealers))
        changed += decided
        progress(read)
    return changed


def analysed_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Message).where(
        col(Message.analysed_at).is_not(None))).one()


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
        found = session.exec(
            select(Message, MessageEvidence)
            .join(MessageEvidence, col(MessageEvidence.message_id) == col(Message.id),
                  isouter=True)
            .where(Message.sha256 == digest).order_by(col(Message.id))
        ).first()
        if found is None:
            continue
        message, recorded = found
        evidence.append(
            StoredEvidence(
                sha256=digest,
                raw=raw_message(session, digest),
                received_at=message.received_at,
                peer_ip=message.peer_ip,
                mail_from=message.mail_from,
                helo=message.helo,
                authentication=json.loads(recorded.authentication) if recorded else None,
                dns_answers=tuple(DnsAnswer.from_dict(a) for a in
                                  json.loads(recorded.dns_answers if recorded else "[]")),
            )
        )
    evidence.sort(key=lambda e: e.received_at)
    return evidence


@dataclass(frozen=True, slots=True)
class Trusted:
    company: str
    organisation: str | None
    """The domain's organisation now the company's own (None when only an ESP id was)."""
    reclassified: int
    """Stored messages whose relation or sender changed."""
    esp_customer: tuple[str, str] | None = None


def trust_sender(session: Session, name: str, domain: str | None, now: datetime, *,
                 esp_customer: tuple[str, str] | None = None,
                 trusted_sealers: Iterable[str] = ()) -> Trusted:
    """Record a domain's organisation (and/or an ESP customer id) as the company's own and
    re-decide its stored mail."""
    organisation = None
    if domain is not None:
        company, organisation = trust_domain(session, name, domain, now)
    else:
        company = find_company(session, name)
    assert company.id is not None
    if esp_customer is not None:
        confirm_esp_customer(session, company.id, *esp_customer, TRUSTED, now)
    session.flush()
    return Trusted(company.name, organisation,
                   reclassify_company(session, company.id, trusted_sealers), esp_customer)


def with_sealers(company: CompanyContext, trusted_sealers: Iterable[str]) -> CompanyContext:
    return replace(company, trusted_sealers=frozenset(trusted_sealers))
