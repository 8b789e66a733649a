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

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from canary.aliases import RetireReply
from canary.authentication import AuthenticatedBy, authenticated_by
from canary.relation import Relation
from canary.report import (
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
from data.deliveries import failed_count, held_count
from data.mailstore import probe_count
from data.models import Alias, Company, CompanyDomain, FlaggedSender
from data.registry import company_domains, consent_history, find_company, flagged_senders
from data.tallies import consent_histories, kept_findings, own_marketing


def _facts(session: Session, company: Company) -> CompanyFacts:
    assert company.id is not None
    aliases = session.exec(
        select(Alias).where(Alias.company_id == company.id).order_by(col(Alias.issued_at))
    ).all()
    slugs = {alias.id or 0: alias.slug for alias in aliases}
    sightings = _sightings(session, slugs)
    counts: dict[str, int] = {}
    for sighting in sightings:
        counts[sighting.alias_slug] = counts.get(sighting.alias_slug, 0) + 1
    return CompanyFacts(
        name=company.name,
        slug=company.slug,
        note=company.note,
        domains=tuple(company_domains(session, company.id)),
        aliases=tuple(
            AliasView(a.address, a.slug, a.issued_at, counts.get(a.slug, 0), a.retired_at,
                      RetireReply(a.retire_reply) if a.retire_reply else None)
            for a in aliases
        ),
        sightings=sightings,
        consent=tuple(consent_history(session, company.id)),
        flagged=tuple(flagged_senders(session, company.id)),
    )


def _sightings(session: Session, slugs: dict[int, str], latest: int | None = None
               ) -> tuple[Sighting, ...]:
    """The messages of these aliases (slug by alias id), oldest first; only the `latest`
    so many when given."""
    m = SQLModel.metadata.tables["message"].c
    query = (  # plain columns: no ORM object per message
        sa.select(m.received_at, m.alias_id, m.relation, m.sender_org, m.from_address,
                  m.subject, m.message_id, m.sha256, m.problem, m.auth_method, m.auth_domain,
                  m.reason, m.temperror, m.marketing, m.sender_kind, m.sender_via,
                  m.set_aside_at)
        .where(m.alias_id.in_(list(slugs))))
    if latest is None:
        messages = session.execute(query.order_by(m.received_at, m.id)).all()
    else:
        messages = session.execute(
            query.order_by(m.received_at.desc(), m.id.desc()).limit(latest)).all()[::-1]
    return tuple(
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
    )


def latest_sightings(session: Session, name: str, limit: int) -> tuple[Sighting, ...]:
    """The company's latest `limit` messages, oldest first (`canary show`)."""
    company = find_company(session, name)
    slugs = {alias.id or 0: alias.slug
             for alias in session.exec(select(Alias).where(Alias.company_id == company.id))}
    return _sightings(session, slugs, limit)


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
    return sa.true() if every else col(column).in_(ids)


def summed_facts(session: Session, names: Sequence[str] = (),
                 listed: int | None = None) -> list[CompanyFacts]:
    """Facts for the named companies, or for every company, with their mail summed up by
    the database (no timeline). Consent findings kept from before list their first `listed`
    messages (all, for None) and count the rest."""
    companies = _companies(session, names)
    ids = [c.id for c in companies if c.id is not None]
    every = not names
    messages, alias_table = (SQLModel.metadata.tables[name] for name in ("message", "alias"))
    m, a = messages.c, alias_table.c
    mail = sa.join(messages, alias_table, a.id == m.alias_id)
    chosen = _in(a.company_id, ids, every)

    aliases: dict[int, list[Alias]] = {}
    for alias in session.exec(select(Alias).where(_in(Alias.company_id, ids, every))
                              .order_by(col(Alias.issued_at), col(Alias.id))):
        aliases.setdefault(alias.company_id, []).append(alias)
    company_of = {alias.id or 0: company for company, owned in aliases.items() for alias in owned}

    # The analysed mail, summed up per alias, sender and relation (`data.tallies`).
    per_alias: dict[int, int] = {}
    states: dict[int, list[MailState]] = {}
    groups: dict[int, list[SenderGroup]] = {}
    slugs = {alias.id: alias.slug for owned in aliases.values() for alias in owned}
    relations = {r.value: r for r in Relation}
    kinds: dict[str, SenderKind | None] = {k.value: k for k in SenderKind}
    kinds[""] = None
    ways: dict[tuple[str | None, str | None], AuthenticatedBy | None] = {}
    t = SQLModel.metadata.tables["sendertally"]
    when = datetime.fromisoformat
    c = t.c
    rows = session.execute(
        sa.select(c.alias_id, c.relation, c.organisation, c.kind, c.count, c.marketing,
                  c.first_seen, c.last_seen, c.examples, c.authentications)
        .where(_in(c.alias_id, list(company_of), every))).all()
    # Decoded here rather than through `data.tallies.decode`, and every row's JSON in one
    # call: tens of thousands of rows.
    decoded = json.loads(
        "[" + ",".join(f"{row.examples},{row.authentications}" for row in rows) + "]")
    for index, (alias_id, relation_value, organisation, kind_value, count, selling, first,
                last, _, _) in enumerate(rows):
        examples, authentications = decoded[2 * index], decoded[2 * index + 1]
        owner, relation = company_of[alias_id], relations[relation_value]
        per_alias[alias_id] = per_alias.get(alias_id, 0) + count
        states.setdefault(owner, []).extend((
            MailState(relation, False, False, True, selling),
            MailState(relation, False, False, False, count - selling)))
        slug, kind = slugs[alias_id], kinds[kind_value]
        groups.setdefault(owner, []).append(SenderGroup(
            organisation or None, relation, count, first, last,
            tuple(EarlyMessage(when(at), number, slug, message_id, sha256, kind, via)
                  for at, number, message_id, sha256, via in examples),
            tuple((when(at), number, ways[way] if (way := (method, domain)) in ways
                   else ways.setdefault(way, authenticated_by(method, domain)))
                  for at, number, method, domain in authentications)))

    # Mail waiting for analysis: not in a tally yet, and few rows (on the relation index).
    set_aside = sa.case((m.set_aside_at.is_not(None), 1), else_=0)
    temperror = sa.case((sa.and_(m.temperror.is_not(None), m.temperror != ""), 1), else_=0)
    for alias_id, aside, waiting, count in session.execute(
        sa.select(m.alias_id, set_aside, temperror, sa.func.count())
        .select_from(mail).where(chosen, m.relation.is_(None))
        .group_by(m.alias_id, set_aside, temperror)
    ):
        per_alias[alias_id] = per_alias.get(alias_id, 0) + count
        states.setdefault(company_of[alias_id], []).append(
            MailState(None, bool(aside), bool(waiting), False, count))

    domains: dict[int, list[str]] = {}
    for company_id, domain in session.exec(
            select(CompanyDomain.company_id, CompanyDomain.domain)
            .where(_in(CompanyDomain.company_id, ids, every))).all():
        domains.setdefault(company_id, []).append(domain)
    flagged: dict[int, list[str]] = {}
    for company_id, organisation in session.exec(
            select(FlaggedSender.company_id, FlaggedSender.organisation)
            .where(_in(FlaggedSender.company_id, ids, every))).all():
        flagged.setdefault(company_id, []).append(organisation)
    histories = consent_histories(session.connection(), None if every else ids)
    kept = kept_findings(session.connection(), histories, listed)
    # The company's own marketing, message by message, only where consent can be broken and
    # the findings are not kept from before.
    marketing = own_marketing(session.connection(), [c for c in histories if c not in kept])

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
            consent=history.records if (history := histories.get(company.id)) else (),
            summary=MailSummary(tuple(states.get(company.id, ())),
                                tuple(groups.get(company.id, ())),
                                tuple(marketing.get(company.id, ())), kept.get(company.id)),
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
    tallies, aliases = (SQLModel.metadata.tables[name] for name in ("sendertally", "alias"))
    t, alias = tallies.c, aliases.c
    rows = session.execute(
        sa.select(t.organisation, sa.func.count(sa.distinct(alias.company_id)))
        .select_from(sa.join(tallies, aliases, alias.id == t.alias_id))
        .where(t.relation == Relation.THIRD_PARTY.value,
               t.kind.in_([k.value for k in SenderKind if k.identifiable]))
        .group_by(t.organisation)
    ).all()
    return {sender: count - 1 for sender, count in rows if sender and count > 1}


def build_reports(session: Session, names: Sequence[str] = (), *,
                  timeline: bool = True, listed: int | None = None) -> Reports:
    """The report of the named companies, or of all; reads only. Without `timeline` the
    database sums the mail up and the reports have no timeline: the same verdicts and
    evidence, read in a few queries however much mail there is; `listed` then caps the
    messages read for each consent finding (`canary report` shows only the first few)."""
    spread = third_party_spread(session)
    facts = company_facts(session, names) if timeline else summed_facts(session, names, listed)
    reports = worst_first(company_report(f, spread) for f in facts)
    return Reports(reports, 0 if names else probe_count(session), failed_count(session),
                   held_count(session))
