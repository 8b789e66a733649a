"""Reads what a report needs, and builds the report: companies, aliases, messages.

`build_reports` is the one service every reading command uses (report,
show, export, letter, triage, alerts, delivery, the demo). It only reads:
mail not analysed yet is counted as pending, never analysed here (that is
`canary analyse`'s or the listener's work), and no DNS is asked. Bodies are
never read.

By default the database sums the mail up (a few set-based queries grouped
by company, sender and relation, see `canary.report.MailSummary`), so a
report reads thousands of rows however many messages there are, unless the
caller needs each message on a timeline (`show`, the HTML export); both
give the same verdicts and evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from canary.aliases import RetireReply
from canary.attribution import Relation
from canary.authentication import AuthenticatedBy
from canary.consent import Consent, Frequency, MarketingMail
from canary.report import (
    EXAMPLES_KEPT,
    AliasView,
    CompanyFacts,
    CompanyReport,
    EarlyMessage,
    MailState,
    MailSummary,
    SenderGroup,
    Sighting,
    company_report,
    worst_first,
)
from canary.senders import SenderKind
from data.analyses import authenticated_by
from data.deliveries import failed_count, held_count
from data.mailstore import probe_count
from data.models import Alias, Company, CompanyDomain, ConsentRecord, FlaggedSender, Message
from data.registry import company_domains, consent_history, find_company, flagged_senders


def _facts(session: Session, company: Company) -> CompanyFacts:
    assert company.id is not None
    aliases = session.exec(
        select(Alias).where(Alias.company_id == company.id).order_by(col(Alias.issued_at))
    ).all()
    slugs = {alias.id: alias.slug for alias in aliases}
    m = SQLModel.metadata.tables["message"].c
    messages = session.execute(  # plain columns: no ORM object per message
        sa.select(m.received_at, m.alias_id, m.relation, m.sender_org, m.from_address,
                  m.subject, m.message_id, m.sha256, m.problem, m.auth_method, m.auth_domain,
                  m.reason, m.temperror, m.marketing, m.sender_kind, m.sender_via,
                  m.set_aside_at)
        .where(m.alias_id.in_(list(slugs)))
        .order_by(m.received_at, m.id)
    ).all()
    counts: dict[int, int] = {}
    for message in messages:
        counts[message.alias_id] = counts.get(message.alias_id, 0) + 1
    return CompanyFacts(
        name=company.name,
        slug=company.slug,
        note=company.note,
        domains=tuple(company_domains(session, company.id)),
        aliases=tuple(
            AliasView(a.address, a.slug, a.issued_at, counts.get(a.id or 0, 0), a.retired_at,
                      RetireReply(a.retire_reply) if a.retire_reply else None)
            for a in aliases
        ),
        sightings=tuple(
            Sighting(
                received_at=m.received_at,
                alias_slug=slugs[m.alias_id],
                relation=Relation(m.relation) if m.relation else None,
                sender_org=m.sender_org,
                from_address=m.from_address,
                subject=m.subject,
                message_id=m.message_id,
                sha256=m.sha256,
                problem=m.problem,
                authenticated_by=authenticated_by(m.auth_method, m.auth_domain),
                reason=m.reason,
                temperror=m.temperror,
                marketing=m.marketing,
                sender_kind=SenderKind(m.sender_kind) if m.sender_kind else None,
                via=m.sender_via,
                set_aside=m.set_aside_at is not None,
            )
            for m in messages
        ),
        consent=tuple(consent_history(session, company.id)),
        flagged=tuple(flagged_senders(session, company.id)),
    )


def _companies(session: Session, names: Sequence[str]) -> list[Company]:
    """The named companies (each once), or every company."""
    if names:
        unique = {c.id: c for c in (find_company(session, name) for name in names)}
        return list(unique.values())
    return list(session.exec(select(Company).order_by(col(Company.name))).all())


def company_facts(session: Session, names: Sequence[str] = ()) -> list[CompanyFacts]:
    """Facts for the named companies (each once), or for every company, with every message."""
    return [_facts(session, company) for company in _companies(session, names)]


def _in(column: Any, ids: Sequence[int], every: bool) -> Any:
    """`column IN ids`, or no condition at all when every company is read."""
    return True if every else col(column).in_(ids)


def summed_facts(session: Session, names: Sequence[str] = ()) -> list[CompanyFacts]:
    """Facts for the named companies, or for every company, with their mail summed up by
    the database (no timeline)."""
    companies = _companies(session, names)
    ids = [c.id for c in companies if c.id is not None]
    every = not names
    messages, alias_table = (SQLModel.metadata.tables[name] for name in ("message", "alias"))
    m, a = messages.c, alias_table.c
    mail = sa.join(messages, alias_table, a.id == m.alias_id)
    chosen = sa.true() if every else a.company_id.in_(ids)
    analysed = sa.and_(chosen, m.relation.is_not(None))

    aliases: dict[int, list[Alias]] = {}
    for alias in session.exec(select(Alias).where(_in(Alias.company_id, ids, every))
                              .order_by(col(Alias.issued_at), col(Alias.id))):
        aliases.setdefault(alias.company_id, []).append(alias)
    company_of = {alias.id: company for company, listed in aliases.items() for alias in listed}

    # One pass for both: messages per alias, and per company in each state.
    per_alias: dict[int, int] = {}
    states: dict[int, list[MailState]] = {}
    set_aside = sa.case((m.set_aside_at.is_not(None), 1), else_=0)
    temperror = sa.case((sa.and_(m.temperror.is_not(None), m.temperror != ""), 1), else_=0)
    marketing = sa.case((m.marketing.is_(True), 1), else_=0)
    for alias_id, relation, aside, waiting, selling, count in session.execute(
        sa.select(m.alias_id, m.relation, set_aside, temperror, marketing, sa.func.count())
        .select_from(mail).where(chosen)
        .group_by(m.alias_id, m.relation, set_aside, temperror, marketing)
    ):
        per_alias[alias_id] = per_alias.get(alias_id, 0) + count
        states.setdefault(company_of[alias_id], []).append(MailState(
            Relation(relation) if relation else None, bool(aside), bool(waiting), bool(selling),
            count))

    group_key = (a.company_id, m.sender_org, m.relation)
    order = (m.received_at, m.id)
    numbered = (
        sa.select(
            a.company_id, m.sender_org, m.relation, m.received_at, m.id, a.slug, m.message_id,
            m.sha256, m.sender_kind, m.sender_via, m.auth_method, m.auth_domain,
            sa.func.row_number().over(partition_by=group_key, order_by=order).label("rank"),
            sa.func.row_number().over(partition_by=(*group_key, m.auth_method, m.auth_domain),
                                      order_by=order).label("way_rank"),
            sa.func.count().over(partition_by=group_key).label("total"),
            sa.func.max(m.received_at).over(partition_by=group_key).label("last"))
        .select_from(mail).where(analysed).subquery())
    early: dict[tuple[int, str | None, str], list[EarlyMessage]] = {}
    ways: dict[tuple[int, str | None, str],
               list[tuple[datetime, int, AuthenticatedBy | None]]] = {}
    spans: dict[tuple[int, str | None, str], tuple[int, datetime, datetime]] = {}
    for (company, org, relation, received, number, slug, message_id, sha256, kind, via,
         method, domain, rank, way_rank, total, last) in session.execute(
            sa.select(numbered).where(sa.or_(numbered.c.rank <= EXAMPLES_KEPT,
                                             numbered.c.way_rank == 1))):
        key = (company, org, relation)
        if rank <= EXAMPLES_KEPT:
            early.setdefault(key, []).append(EarlyMessage(
                received, number, slug, message_id, sha256, SenderKind(kind) if kind else None,
                via))
        if rank == 1:
            spans[key] = (total, received, last)
        if way_rank == 1:
            ways.setdefault(key, []).append((received, number, authenticated_by(method, domain)))

    groups: dict[int, list[SenderGroup]] = {}
    for key, (count, first, last) in spans.items():
        company, org, relation = key
        groups.setdefault(company, []).append(SenderGroup(
            org, Relation(relation), count, first, last,
            tuple(sorted(early[key], key=lambda e: (e.received_at, e.order))),
            tuple(ways.get(key, ()))))

    domains: dict[int, list[str]] = {}
    for company, domain in session.exec(
            select(CompanyDomain.company_id, CompanyDomain.domain)
            .where(_in(CompanyDomain.company_id, ids, every))).all():
        domains.setdefault(company, []).append(domain)
    flagged: dict[int, list[str]] = {}
    for company, organisation in session.exec(
            select(FlaggedSender.company_id, FlaggedSender.organisation)
            .where(_in(FlaggedSender.company_id, ids, every))).all():
        flagged.setdefault(company, []).append(organisation)
    consent: dict[int, list[Consent]] = {}
    for record in session.exec(
            select(ConsentRecord).where(_in(ConsentRecord.company_id, ids, every))
            .order_by(col(ConsentRecord.since), col(ConsentRecord.id))).all():
        consent.setdefault(record.company_id, []).append(Consent(
            record.since, record.marketing,
            Frequency(record.frequency) if record.frequency else None, record.opted_out))

    # The company's own marketing, message by message, only where consent can be broken.
    own_marketing: dict[int, list[MarketingMail]] = {}
    if consent:
        expected = [r.value for r in Relation if r.expected]
        for company, received, message_id, sha256, subject in session.execute(
            sa.select(a.company_id, m.received_at, m.message_id, m.sha256, m.subject)
            .select_from(mail)
            .where(a.company_id.in_(list(consent)), m.relation.in_(expected),
                   m.marketing.is_(True))
            .order_by(*order)
        ):
            own_marketing.setdefault(company, []).append(
                MarketingMail(received, message_id, sha256, subject))

    facts = []
    for company in companies:
        assert company.id is not None
        facts.append(CompanyFacts(
            name=company.name, slug=company.slug, note=company.note,
            domains=tuple(sorted(domains.get(company.id, ()))),
            aliases=tuple(
                AliasView(alias.address, alias.slug, alias.issued_at,
                          per_alias.get(alias.id or 0, 0), alias.retired_at,
                          RetireReply(alias.retire_reply) if alias.retire_reply else None)
                for alias in aliases.get(company.id, ())),
            sightings=(),
            flagged=tuple(sorted(flagged.get(company.id, ()))),
            consent=tuple(consent.get(company.id, ())),
            summary=MailSummary(tuple(states.get(company.id, ())),
                                tuple(groups.get(company.id, ())),
                                tuple(own_marketing.get(company.id, ()))),
        ))
    return facts


@dataclass(frozen=True, slots=True)
class Reports:
    companies: list[CompanyReport]
    """Worst first."""
    probes: int
    """Mail to never-issued addresses; counted only when every company is reported."""
    deliveries_failed: int = 0
    """Deliveries that failed for good (`canary deliveries --failed`)."""
    held: int = 0
    """Messages the delivery policy holds (`canary held`)."""

    @property
    def pending(self) -> int:
        return sum(r.counts.pending for r in self.companies)


def third_party_spread(session: Session) -> dict[str, int]:
    """Per identifiable business, how many *other* companies' aliases it mailed as a third
    party (it shares each company's report with that many)."""
    rows = session.exec(
        select(Message.sender_org, func.count(func.distinct(Alias.company_id)))
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .where(Message.relation == Relation.THIRD_PARTY.value,
               col(Message.sender_kind).in_([k.value for k in SenderKind if k.identifiable]))
        .group_by(col(Message.sender_org))
    ).all()
    return {sender: count - 1 for sender, count in rows if sender and count > 1}


def build_reports(session: Session, names: Sequence[str] = (), *,
                  timeline: bool = True) -> Reports:
    """The report of the named companies, or of all; reads only. Without `timeline` the
    database sums the mail up and the reports have no timeline: the same verdicts and
    evidence, read in a few queries however much mail there is."""
    spread = third_party_spread(session)
    facts = company_facts(session, names) if timeline else summed_facts(session, names)
    reports = worst_first(company_report(f, spread) for f in facts)
    return Reports(reports, 0 if names else probe_count(session), failed_count(session),
                   held_count(session))
