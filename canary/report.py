"""Verdicts and the per-company report, built from plain values.

The report answers one question per company: did its alias start getting
mail from organisations that were never given it? It is built from the
classified messages alone, so the same inputs always give the same report.
The JSON form is versioned (`SCHEMA_VERSION`) and described by
`canary/schemas/report.schema.json`; scripts depend on it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from canary.classify import Relation

SCHEMA_VERSION = 1
UNKNOWN_SENDER = "(no sender domain)"


class Verdict(enum.StrEnum):
    SHARED = "shared"
    """At least one authenticated third party: the company shared or sold the address."""
    LEAKED = "leaked"
    """Only unverified or spoofed unexpected mail: a breach, a scrape or a sale, unproven."""
    CLEAN = "clean"
    """Only first-party or processor mail."""
    QUIET = "quiet"
    """No mail yet."""

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Verdict.SHARED: 3, Verdict.LEAKED: 2, Verdict.CLEAN: 1, Verdict.QUIET: 0}


@dataclass(frozen=True, slots=True)
class AliasView:
    address: str
    slug: str
    issued_at: datetime
    messages: int = 0


@dataclass(frozen=True, slots=True)
class Sighting:
    """One analysed (or not yet analysed) message to one of the company's aliases."""

    received_at: datetime
    alias_slug: str
    relation: Relation | None
    """None while the message waits for analysis."""
    sender_org: str | None
    from_address: str | None = None
    subject: str | None = None
    message_id: str | None = None
    sha256: str = ""
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class CompanyFacts:
    name: str
    slug: str
    note: str | None
    domains: tuple[str, ...]
    """Declared at issue time and trusted later: the company's own organisations."""
    aliases: tuple[AliasView, ...]
    sightings: tuple[Sighting, ...]


@dataclass(frozen=True, slots=True)
class SenderSummary:
    organisation: str
    relation: Relation
    first_seen: datetime
    last_seen: datetime
    count: int


@dataclass(frozen=True, slots=True)
class CompanyReport:
    name: str
    slug: str
    note: str | None
    domains: tuple[str, ...]
    aliases: tuple[AliasView, ...]
    verdict: Verdict
    counts: dict[str, int]
    senders: tuple[SenderSummary, ...]
    """Every sender organisation, unexpected ones first."""
    days_to_first_unexpected: int | None
    timeline: tuple[Sighting, ...] = field(default=(), repr=False)

    @property
    def issued_at(self) -> datetime:
        return min(alias.issued_at for alias in self.aliases)

    @property
    def unexpected(self) -> tuple[SenderSummary, ...]:
        return tuple(s for s in self.senders if not s.relation.expected)


def verdict_for(relations: Iterable[Relation]) -> Verdict:
    seen = set(relations)
    if not seen:
        return Verdict.QUIET
    if Relation.THIRD_PARTY in seen:
        return Verdict.SHARED
    if seen & {Relation.UNVERIFIED, Relation.SPOOFED}:
        return Verdict.LEAKED
    return Verdict.CLEAN


def _senders(sightings: Sequence[Sighting]) -> tuple[SenderSummary, ...]:
    groups: dict[tuple[str, Relation], list[datetime]] = {}
    for sighting in sightings:
        if sighting.relation is None:
            continue
        key = (sighting.sender_org or UNKNOWN_SENDER, sighting.relation)
        groups.setdefault(key, []).append(sighting.received_at)
    summaries = [
        SenderSummary(org, relation, min(times), max(times), len(times))
        for (org, relation), times in groups.items()
    ]
    summaries.sort(key=lambda s: (s.relation.expected, s.first_seen, s.organisation))
    return tuple(summaries)


def company_report(facts: CompanyFacts) -> CompanyReport:
    """The verdict and evidence for one company."""
    timeline = tuple(sorted(facts.sightings, key=lambda s: s.received_at))
    analysed = [(s, s.relation) for s in timeline if s.relation is not None]
    counts = {"total": len(timeline), "pending": len(timeline) - len(analysed)}
    for relation in Relation:
        counts[relation.value] = sum(1 for _, r in analysed if r is relation)
    unexpected = [s for s, r in analysed if not r.expected]
    counts["unexpected"] = len(unexpected)

    issued = {alias.slug: alias.issued_at for alias in facts.aliases}
    days: int | None = None
    if unexpected and unexpected[0].alias_slug in issued:
        delta = unexpected[0].received_at - issued[unexpected[0].alias_slug]
        days = max(delta.days, 0)

    return CompanyReport(
        name=facts.name,
        slug=facts.slug,
        note=facts.note,
        domains=facts.domains,
        aliases=facts.aliases,
        verdict=verdict_for(r for _, r in analysed),
        counts=counts,
        senders=_senders([s for s, _ in analysed]),
        days_to_first_unexpected=days,
        timeline=timeline,
    )


def worst_first(reports: Iterable[CompanyReport]) -> list[CompanyReport]:
    return sorted(
        reports, key=lambda r: (-r.verdict.severity, -r.counts["unexpected"], r.name.lower())
    )


def iso_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _sender_json(sender: SenderSummary) -> dict[str, Any]:
    return {
        "organisation": sender.organisation,
        "relation": sender.relation.value,
        "first_seen": iso_time(sender.first_seen),
        "last_seen": iso_time(sender.last_seen),
        "count": sender.count,
    }


def company_json(report: CompanyReport) -> dict[str, Any]:
    return {
        "name": report.name,
        "slug": report.slug,
        "note": report.note,
        "domains": list(report.domains),
        "issued_at": iso_time(report.issued_at),
        "aliases": [
            {"address": a.address, "issued_at": iso_time(a.issued_at), "messages": a.messages}
            for a in report.aliases
        ],
        "verdict": report.verdict.value,
        "counts": dict(report.counts),
        "unexpected_senders": [_sender_json(s) for s in report.unexpected],
        "days_to_first_unexpected": report.days_to_first_unexpected,
    }


def report_document(
    reports: Sequence[CompanyReport], generated_at: datetime, probes: int
) -> dict[str, Any]:
    """The versioned JSON report, companies worst first."""
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso_time(generated_at),
        "probes": probes,
        "companies": [company_json(r) for r in worst_first(reports)],
    }
