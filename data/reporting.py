"""Reads what the report needs: companies, their aliases and their messages.

Returns `canary.report.CompanyFacts`, plain values the domain turns into
verdicts. Bodies are never read here.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from canary.classify import Relation
from canary.report import AliasView, CompanyFacts, Sighting
from data.models import Alias, Company, FlaggedSender, Message
from data.registry import company_domains, consent_history, find_company


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
                      a.retire_reply)
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
                authenticated_by=m.authenticated_by,
                reason=m.reason,
                temperror=m.temperror,
                marketing=m.marketing,
            )
            for m in messages
        ),
        consent=tuple(consent_history(session, company.id)),
        flagged=tuple(
            session.exec(
                select(FlaggedSender.organisation).where(FlaggedSender.company_id == company.id)
            )
        ),
    )


def company_facts(session: Session, name: str | None = None) -> list[CompanyFacts]:
    """Facts for the named company, or for every company."""
    if name is not None:
        return [_facts(session, find_company(session, name))]
    companies = session.exec(select(Company).order_by(col(Company.name))).all()
    return [_facts(session, company) for company in companies]
