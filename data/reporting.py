"""Reads what a report needs, and builds the report: companies, aliases, messages.

`build_reports` is the one service every reading command uses (report,
show, export, letter, triage, the demo). It only reads: mail not analysed
yet is counted as pending, never analysed here (that is `canary analyse`'s
or the listener's work), and no DNS is asked. Bodies are never read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from canary.aliases import RetireReply
from canary.attribution import Relation
from canary.report import (
    AliasView,
    CompanyFacts,
    CompanyReport,
    Sighting,
    company_report,
    worst_first,
)
from canary.senders import SenderKind
from data.analyses import authenticated_by
from data.deliveries import failed_count, held_count
from data.mailstore import probe_count
from data.models import Alias, Company, Message
from data.registry import company_domains, consent_history, find_company, flagged_senders


def _facts(session: Session, company: Company) -> CompanyFacts:
    assert company.id is not None
    aliases = session.exec(
        select(Alias).where(Alias.company_id == company.id).order_by(col(Alias.issued_at))
    ).all()
    slugs = {alias.id: alias.slug for alias in aliases}
    messages = session.exec(
        select(Message)
        .where(col(Message.alias_id).in_(list(slugs)))
        .order_by(col(Message.received_at), col(Message.id))
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


def company_facts(session: Session, names: Sequence[str] = ()) -> list[CompanyFacts]:
    """Facts for the named companies (each once), or for every company."""
    if names:
        companies = [find_company(session, name) for name in names]
        unique = {c.id: c for c in companies}
        return [_facts(session, company) for company in unique.values()]
    companies = list(session.exec(select(Company).order_by(col(Company.name))).all())
    return [_facts(session, company) for company in companies]


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


def build_reports(session: Session, names: Sequence[str] = ()) -> Reports:
    """The report of the named companies, or of all; reads only."""
    spread = third_party_spread(session)
    reports = worst_first(company_report(f, spread) for f in company_facts(session, names))
    return Reports(reports, 0 if names else probe_count(session), failed_count(session),
                   held_count(session))
