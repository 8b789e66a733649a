"""Companies, their domains and their aliases.

Issuing checks the rules of `canary.aliases` and stores the result; trusting
a domain records it as the company's own. Functions take a `Session` and
raise the domain's named errors; they never print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from canary.aliases import alias_local_part, numbered_slug, slugify
from canary.classify import Relation
from canary.consent import Consent, Frequency
from canary.domains import registrable_or_self
from canary.errors import CanaryError, CompanyExists, UnknownCompany
from data.mailstore import ACCEPT, REJECT
from data.models import Alias, Company, CompanyDomain, ConsentRecord, FlaggedSender, Message

DECLARED = "declared"
TRUSTED = "trusted"


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
        raise UnknownCompany(f"No company called {name!r}; `canary aliases` lists them.")
    return company


def company_domains(session: Session, company_id: int) -> list[str]:
    rows = session.exec(
        select(CompanyDomain.domain).where(CompanyDomain.company_id == company_id)
    ).all()
    return sorted(rows)


def _add_domains(
    session: Session, company_id: int, domains: Sequence[str], source: str, now: datetime
) -> list[str]:
    """Add registrable domains the company does not have yet; return the added ones."""
    known = set(company_domains(session, company_id))
    added = []
    for domain in dict.fromkeys(registrable_or_self(d) for d in domains):
        if domain not in known:
            session.add(CompanyDomain(company_id=company_id, domain=domain, source=source,
                                      added_at=now))
            added.append(domain)
    return added


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
    """
    base = slugify(name)
    declared = [registrable_or_self(d) for d in domains]
    company = session.exec(select(Company).where(Company.slug == base)).first()
    if company is not None and not new:
        existing = session.exec(select(Alias).where(Alias.company_id == company.id)).first()
        shown = f" ({existing.address})" if existing else ""
        raise CompanyExists(
            f"{company.name} already has an alias{shown}; use --new to issue a fresh one."
        )
    if company is None:
        company = Company(name=name.strip(), slug=base, note=note, created_at=now)
        session.add(company)
        session.flush()
    elif note:
        company.note = note
    assert company.id is not None
    _add_domains(session, company.id, declared, DECLARED, now)

    count = session.exec(
        select(func.count()).select_from(Alias).where(Alias.company_id == company.id)
    ).one()
    number = count + 1
    while session.exec(select(Alias).where(Alias.slug == numbered_slug(base, number))).first():
        number += 1
    slug = numbered_slug(base, number)
    address = f"{alias_local_part(secret, slug)}@{alias_domain}"
    session.add(Alias(company_id=company.id, slug=slug, address=address, issued_at=now))
    if marketing is not None or frequency is not None:
        _record_consent(session, company.id, marketing, frequency, now)
    session.flush()
    return IssuedAlias(
        company=company.name,
        address=address,
        slug=slug,
        issued_at=now,
        domains=tuple(company_domains(session, company.id)),
        note=company.note,
    )


def _current_consent(session: Session, company_id: int) -> ConsentRecord | None:
    return session.exec(
        select(ConsentRecord)
        .where(ConsentRecord.company_id == company_id)
        .order_by(col(ConsentRecord.since).desc(), col(ConsentRecord.id).desc())
    ).first()


def _last_agreement(session: Session, company_id: int) -> ConsentRecord | None:
    return session.exec(
        select(ConsentRecord)
        .where(ConsentRecord.company_id == company_id, col(ConsentRecord.opted_out).is_(False))
        .order_by(col(ConsentRecord.since).desc(), col(ConsentRecord.id).desc())
    ).first()


def _record_consent(
    session: Session, company_id: int, marketing: bool | None, frequency: Frequency | None,
    since: datetime, opted_out: bool = False,
) -> ConsentRecord:
    current = _current_consent(session, company_id)
    if current is not None and not opted_out:
        marketing = current.marketing if marketing is None else marketing
        # An opt-out records "never"; opting back in carries over what was agreed before.
        agreed = current if not current.opted_out else _last_agreement(session, company_id)
        if frequency is None and agreed is not None and agreed.frequency:
            frequency = Frequency(agreed.frequency)
    record = ConsentRecord(company_id=company_id, since=since, marketing=marketing,
                           frequency=frequency.value if frequency else None, opted_out=opted_out)
    session.add(record)
    return record


def record_consent(
    session: Session, name: str, *, marketing: bool | None, frequency: Frequency | None,
    now: datetime,
) -> Company:
    """Record a change of what the person agrees to; unchanged parts carry over."""
    if marketing is None and frequency is None:
        raise CanaryError("Say what changed: --marketing yes|no and/or --frequency.")
    company = find_company(session, name)
    assert company.id is not None
    _record_consent(session, company.id, marketing, frequency, now)
    return company


def opt_out(session: Session, name: str, at: datetime) -> Company:
    """Record that the person opted out of the company's marketing at `at`."""
    company = find_company(session, name)
    assert company.id is not None
    _record_consent(session, company.id, False, Frequency.NEVER, at, opted_out=True)
    return company


def consent_history(session: Session, company_id: int) -> list[Consent]:
    records = session.exec(
        select(ConsentRecord)
        .where(ConsentRecord.company_id == company_id)
        .order_by(col(ConsentRecord.since), col(ConsentRecord.id))
    ).all()
    return [
        Consent(r.since, r.marketing, Frequency(r.frequency) if r.frequency else None,
                r.opted_out)
        for r in records
    ]


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


def retire_aliases(session: Session, name: str, reply: str, now: datetime) -> list[Alias]:
    """Retire the company's active aliases; `reply` is `accept` or `reject`."""
    if reply not in (ACCEPT, REJECT):
        raise CanaryError("--reply must be accept or reject.")
    company = find_company(session, name)
    assert company.id is not None
    aliases = active_aliases(session, company.id)
    if not aliases:
        raise CanaryError(f"{company.name} has no active alias to retire.")
    for alias in aliases:
        alias.retired_at = now
        alias.retire_reply = reply
        session.add(alias)
    return aliases


def trust_domain(session: Session, name: str, domain: str, now: datetime) -> tuple[Company, str]:
    """Record `domain`'s organisation as the company's own; return it."""
    company = find_company(session, name)
    assert company.id is not None
    organisation = registrable_or_self(domain)
    _add_domains(session, company.id, [organisation], TRUSTED, now)
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
        raise CanaryError(
            f"{organisation} is trusted as {company.name}'s own; it cannot also be flagged."
        )
    exists = session.exec(
        select(FlaggedSender).where(FlaggedSender.company_id == company.id,
                                    FlaggedSender.organisation == organisation)
    ).first()
    if exists is None:
        session.add(FlaggedSender(company_id=company.id, organisation=organisation,
                                  flagged_at=now))
    return company, organisation


def flagged_senders(session: Session, company_id: int) -> set[str]:
    return set(
        session.exec(
            select(FlaggedSender.organisation).where(FlaggedSender.company_id == company_id)
        )
    )


@dataclass(frozen=True, slots=True)
class AliasListing:
    company: str
    address: str
    issued_at: datetime
    domains: tuple[str, ...]
    note: str | None
    messages: int
    unexpected: int
    retired_at: datetime | None = None
    retire_reply: str | None = None


def list_aliases(session: Session) -> list[AliasListing]:
    counts = dict(
        session.exec(
            select(Message.alias_id, func.count()).group_by(col(Message.alias_id))
        ).all()
    )
    unexpected = dict(
        session.exec(
            select(Message.alias_id, func.count())
            .where(col(Message.relation).in_([r.value for r in Relation if not r.expected]))
            .group_by(col(Message.alias_id))
        ).all()
    )
    listing = []
    rows = session.exec(
        select(Alias, Company).join(Company).order_by(col(Company.name), col(Alias.issued_at))
    ).all()
    for alias, company in rows:
        assert company.id is not None and alias.id is not None
        listing.append(
            AliasListing(
                company=company.name,
                address=alias.address,
                issued_at=alias.issued_at,
                domains=tuple(company_domains(session, company.id)),
                note=company.note,
                messages=counts.get(alias.id, 0),
                unexpected=unexpected.get(alias.id, 0),
                retired_at=alias.retired_at,
                retire_reply=alias.retire_reply,
            )
        )
    return listing
