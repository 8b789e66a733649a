"""The records the person keeps: companies, their domains, aliases, consent and flags.

Issuing checks the rules of `canary.aliases` and stores the result; a
consent change is worked out by `canary.consent.next_consent`; trusting a
domain records it as the company's own (`data.analyses.trust_sender` then
re-decides the company's stored mail). Functions take a `Session` and raise
the domain's named errors; they never print and never name a CLI flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from canary.aliases import (
    DomainSource,
    RetireReply,
    alias_local_part,
    company_name,
    numbered_slug,
    slugify,
)
from canary.consent import Consent, Frequency, next_consent
from canary.domains import registrable_or_self
from canary.errors import (
    AddressTaken,
    AliasRetired,
    BeforeAliasIssued,
    CompanyExists,
    NoActiveAlias,
    NothingToRecord,
    SenderTrusted,
    UnknownCompany,
)
from data.mailstore import insert_ignoring_duplicates
from data.models import Alias, Company, CompanyDomain, ConsentRecord, FlaggedSender


@dataclass(frozen=True, slots=True)
class IssuedAlias:
    company: str
    address: str
    slug: str
    issued_at: datetime
    domains: tuple[str, ...]
    note: str | None


def find_company(session: Session, name: str) -> Company:
    """The company called `name` (or with that slug)."""
    slug = slugify(name)
    company = session.exec(select(Company).where(Company.slug == slug)).first()
    if company is None:
        raise UnknownCompany(name)
    return company


def company_domains(session: Session, company_id: int) -> list[str]:
    """The company's own organisations, declared or trusted, sorted."""
    rows = session.exec(
        select(CompanyDomain.domain).where(CompanyDomain.company_id == company_id)
    ).all()
    return sorted(rows)


def flagged_senders(session: Session, company_id: int) -> list[str]:
    """Sender organisations the person confirmed are not the company's own, sorted."""
    rows = session.exec(
        select(FlaggedSender.organisation).where(FlaggedSender.company_id == company_id)
    ).all()
    return sorted(rows)


def _add_domains(
    session: Session, company_id: int, domains: Sequence[str], source: DomainSource,
    now: datetime,
) -> None:
    """Add registrable domains the company does not have yet.

    A domain another command (on another MX) adds at the same moment is skipped, not
    a unique-key violation that fails this command."""
    rows = [{"company_id": company_id, "domain": domain, "source": source.value, "added_at": now}
            for domain in dict.fromkeys(registrable_or_self(d) for d in domains)]
    if rows:
        session.flush()
        connection = session.connection()
        connection.execute(insert_ignoring_duplicates(connection.dialect.name, CompanyDomain),
                           rows)


def issue_alias(
    session: Session,
    *,
    secret: bytes,
    name: str,
    alias_domain: str,
    domains: Sequence[str],
    note: str | None,
    new: bool,
    now: datetime,
    marketing: bool | None = None,
    frequency: Frequency | None = None,
) -> IssuedAlias:
    """Create the company (unless `new`) and a fresh alias for it.

    `marketing` and `frequency`, when given, record what the person agreed to.
    Raises `CompanyExists` for a company that has an active alias and
    `AliasRetired` for one whose aliases are all retired, unless `new`.
    """
    name = company_name(name)
    base = slugify(name)
    declared = [registrable_or_self(d) for d in domains]
    company = session.exec(select(Company).where(Company.slug == base)).first()
    if company is not None and not new:
        assert company.id is not None
        active = active_aliases(session, company.id)
        if active:
            raise CompanyExists(company.name, active[0].address)
        latest = latest_alias(session, company.id)
        assert latest.retired_at is not None
        raise AliasRetired(company.name, latest.address, latest.retired_at)
    if company is None:
        company = Company(name=name, slug=base, note=note, created_at=now)
        session.add(company)
        session.flush()
    elif note:
        company.note = note
    assert company.id is not None
    _add_domains(session, company.id, declared, DomainSource.DECLARED, now)

    count = session.exec(
        select(func.count()).select_from(Alias).where(Alias.company_id == company.id)
    ).one()
    number = count + 1
    while session.exec(select(Alias).where(Alias.slug == numbered_slug(base, number))).first():
        number += 1
    slug = numbered_slug(base, number)
    address = f"{alias_local_part(secret, slug)}@{alias_domain}"
    session.add(Alias(company_id=company.id, slug=slug, address=address, issued_at=now))
    session.flush()
    if marketing is not None or frequency is not None:
        _record_consent(session, company, now, marketing=marketing, frequency=frequency)
        session.flush()
    return IssuedAlias(
        company=company.name,
        address=address,
        slug=slug,
        issued_at=now,
        domains=tuple(company_domains(session, company.id)),
        note=company.note,
    )


def adopt_alias(
    session: Session, *, address: str, name: str, domains: Sequence[str],
    issued_at: datetime | None, note: str | None, now: datetime,
) -> tuple[IssuedAlias, bool]:
    """Record an address the person already gave a company (a catch-all or plus address) as
    one of its aliases; (the alias, whether it was new). Adopting it again is harmless:
    the domains are added and an earlier issue date is kept.

    `address` is normalised (`canary.addresses.normalise_address`). Raises
    `AddressTaken` if it is another company's alias.
    """
    name = company_name(name)
    base = slugify(name)
    company = session.exec(select(Company).where(Company.slug == base)).first()
    existing = session.exec(select(Alias).where(Alias.address == address)).first()
    if existing is not None and (company is None or existing.company_id != company.id):
        owner = session.get(Company, existing.company_id)
        raise AddressTaken(address, owner.name if owner else "another company")
    if company is None:
        company = Company(name=name, slug=base, note=note, created_at=now)
        session.add(company)
        session.flush()
    elif note and not company.note:
        company.note = note
    assert company.id is not None
    _add_domains(session, company.id, [registrable_or_self(d) for d in domains],
                 DomainSource.DECLARED, now)
    given = issued_at or now
    if existing is None:
        alias = Alias(company_id=company.id, slug=address, address=address, issued_at=given,
                      adopted=True)
        session.add(alias)
    else:
        alias = existing
        if issued_at is not None and issued_at < alias.issued_at:
            alias.issued_at = issued_at
            session.add(alias)
    session.flush()
    return IssuedAlias(company=company.name, address=address, slug=alias.slug,
                       issued_at=alias.issued_at,
                       domains=tuple(company_domains(session, company.id)),
                       note=company.note), existing is None


def alias_addresses(session: Session) -> dict[str, int]:
    """Every alias address, issued or adopted, retired or not, with its id: where imported
    mail may belong."""
    rows = session.exec(select(Alias.address, Alias.id)).all()
    return {address: alias_id for address, alias_id in rows if alias_id is not None}


def _record_consent(
    session: Session, company: Company, since: datetime, *, marketing: bool | None,
    frequency: Frequency | None, opted_out: bool = False,
) -> Consent:
    assert company.id is not None
    issued = session.exec(
        select(func.min(Alias.issued_at)).where(Alias.company_id == company.id)
    ).one()
    if issued is not None and since < issued:
        # A date given without a time is midnight; the day the alias was issued counts
        # from the moment it was issued.
        if since.date() < issued.date():
            raise BeforeAliasIssued(company.name, since, issued)
        since = issued
    consent = next_consent(consent_history(session, company.id), since, marketing=marketing,
                           frequency=frequency, opted_out=opted_out)
    session.add(ConsentRecord(
        company_id=company.id, since=consent.since, marketing=consent.marketing,
        frequency=consent.frequency.value if consent.frequency else None,
        opted_out=consent.opted_out,
    ))
    return consent


def record_consent(
    session: Session, name: str, *, marketing: bool | None, frequency: Frequency | None,
    now: datetime,
) -> tuple[Company, Consent]:
    """Record a change of what the person agrees to; unchanged parts carry over."""
    if marketing is None and frequency is None:
        raise NothingToRecord()
    company = find_company(session, name)
    return company, _record_consent(session, company, now, marketing=marketing,
                                    frequency=frequency)


def opt_out(session: Session, name: str, at: datetime) -> tuple[Company, Consent]:
    """Record that the person opted out of the company's marketing at `at`."""
    company = find_company(session, name)
    return company, _record_consent(session, company, at, marketing=False,
                                    frequency=Frequency.NEVER, opted_out=True)


def consent_of(record: Any) -> Consent:
    """A stored consent record (a `ConsentRecord`, or a row selected with its columns)."""
    return Consent(record.since, record.marketing,
                   Frequency(record.frequency) if record.frequency else None, record.opted_out)


def consent_history(session: Session, company_id: int) -> list[Consent]:
    """What the person agreed to with the company, oldest first."""
    records = session.exec(
        select(ConsentRecord)
        .where(ConsentRecord.company_id == company_id)
        .order_by(col(ConsentRecord.since), col(ConsentRecord.id))
    ).all()
    return [consent_of(r) for r in records]


def active_aliases(session: Session, company_id: int) -> list[Alias]:
    return list(
        session.exec(
            select(Alias).where(Alias.company_id == company_id, col(Alias.retired_at).is_(None))
        )
    )


def latest_alias(session: Session, company_id: int) -> Alias:
    alias = session.exec(
        select(Alias).where(Alias.company_id == company_id)
        .order_by(col(Alias.issued_at).desc(), col(Alias.id).desc())
    ).first()
    assert alias is not None, "every company has at least one alias"
    return alias


def retire_aliases(
    session: Session, name: str, reply: RetireReply, now: datetime
) -> tuple[Company, list[Alias]]:
    """Retire the company's active aliases; raise `NoActiveAlias` when it has none."""
    company = find_company(session, name)
    assert company.id is not None
    aliases = active_aliases(session, company.id)
    if not aliases:
        raise NoActiveAlias(company.name)
    for alias in aliases:
        alias.retired_at = now
        alias.retire_reply = reply.value
        session.add(alias)
    return company, aliases


@dataclass(frozen=True, slots=True)
class Rotation:
    company: str
    retired: tuple[str, ...]
    """The addresses retired now (none if every alias was retired already)."""
    reply: RetireReply
    issued: IssuedAlias


def rotate_alias(
    session: Session, *, secret: bytes, name: str, reply: RetireReply, now: datetime
) -> Rotation:
    """Retire the company's active aliases and issue a fresh one on the same canary domain."""
    company = find_company(session, name)
    assert company.id is not None
    retired = [a.address for a in active_aliases(session, company.id)]
    if retired:
        retire_aliases(session, company.name, reply, now)
    latest = latest_alias(session, company.id)
    issued = issue_alias(session, secret=secret, name=company.name,
                         alias_domain=latest.address.rpartition("@")[2], domains=[],
                         note=None, new=True, now=now)
    return Rotation(company.name, tuple(retired), reply, issued)


def trust_domain(session: Session, name: str, domain: str, now: datetime) -> tuple[Company, str]:
    """Record `domain`'s organisation as the company's own; return it.

    Stored mail is re-decided by `data.analyses.trust_sender`, which calls this.
    """
    company = find_company(session, name)
    assert company.id is not None
    organisation = registrable_or_self(domain)
    _add_domains(session, company.id, [organisation], DomainSource.TRUSTED, now)
    flag = session.exec(
        select(FlaggedSender).where(FlaggedSender.company_id == company.id,
                                    FlaggedSender.organisation == organisation)
    ).first()
    if flag is not None:  # the user changed their mind: trust wins
        session.delete(flag)
    return company, organisation


def flag_sender(session: Session, name: str, domain: str, now: datetime) -> tuple[Company, str]:
    """Record that `domain`'s organisation is not the company's own; return it."""
    company = find_company(session, name)
    assert company.id is not None
    organisation = registrable_or_self(domain)
    if organisation in company_domains(session, company.id):
        raise SenderTrusted(company.name, organisation)
    exists = session.exec(
        select(FlaggedSender).where(FlaggedSender.company_id == company.id,
                                    FlaggedSender.organisation == organisation)
    ).first()
    if exists is None:
        session.add(FlaggedSender(company_id=company.id, organisation=organisation,
                                  flagged_at=now))
    return company, organisation
