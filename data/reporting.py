"""Reads what a report needs, and builds the report: companies, aliases, messages.

`build_reports` is the one service every reading command uses (report,
show, export, letter, triage, alerts, delivery, the demo). It only reads:
mail not analysed yet is counted as pending, never analysed here (that is
`canary analyse`'s or the listener's work), and no DNS is asked. Bodies are
never read.

By default the database sums the mail up (a few set-based queries grouped
by company, sender and relation, see `canary.report.MailSummary`), so a
report reads thousands of rows however many messages there are, unless the
caller needs each message on a timeline (the HTML export); both give the
same verdicts and evidence. The summed reading is `data.summary`'s plain
SQL, run here through the session's connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session, col, select

from canary.aliases import RetireReply
from canary.report import AliasView, CompanyFacts
from data import summary
from data.models import Alias
from data.registry import company_domains, consent_history, flagged_senders
from data.summary import CompanyRow, Reports


def _read(session: Session) -> Any:
    """The session's DB-API connection, for `data.summary`'s plain SQL, with what the
    session changed written first."""
    session.flush()
    return session.connection().connection.driver_connection


def _facts(session: Session, company: CompanyRow) -> CompanyFacts:
    aliases = session.exec(
        select(Alias).where(Alias.company_id == company.id).order_by(col(Alias.issued_at))
    ).all()
    slugs = {alias.id or 0: alias.slug for alias in aliases}
    sightings = summary.sightings(_read(session), slugs)
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


def company_facts(session: Session, names: Sequence[str] = ()) -> list[CompanyFacts]:
    """Facts for the named companies (each once), or for every company, with every message."""
    return [_facts(session, company)
            for company in summary.chosen_companies(_read(session), names)]


def build_reports(session: Session, names: Sequence[str] = (), *, timeline: bool = True,
                  listed: int | None = None, senders: int | None = None) -> Reports:
    """The report of the named companies, or of all; reads only. Without `timeline` the
    database sums the mail up and the reports have no timeline: the same verdicts and
    evidence, read in a few queries however much mail there is (`data.summary`); `listed`
    then caps the messages read for each consent finding (`canary report` shows only the
    first few). `senders` caps the senders listed (`canary.report.company_report`)."""
    read = _read(session)
    if not timeline:
        return summary.summed_reports(read, names, listed, senders)
    return summary.reports_of(read, company_facts(session, names), not names, senders)
