"""The report's reading, in plain SQL through a DB-API connection.

A report reads the mail summed up (`data.tallies`): thousands of rows, not
millions. On the default SQLite home `canary show` reads them with the
standard library's `sqlite3` alone (`data.directory.read_sqlite`), so it
starts without loading SQLAlchemy; `data.reporting` runs the same SQL
through a session's connection, on PostgreSQL and for every other reader.
The SQL holds no value from outside: companies are matched by slug in
Python, and only row ids Canary read itself are written into it. Nothing
here writes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any

from canary.alerts import ChannelState
from canary.aliases import RetireReply, slugify
from canary.authentication import AuthenticatedBy, authenticated_by
from canary.consent import Consent, Finding, FindingKind, Frequency, MarketingMail
from canary.delivery import DeliveryState
from canary.errors import UnknownCompany
from canary.relation import Relation
from canary.report import (
    EVIDENCE_SHOWN,
    AliasView,
    CompanyFacts,
    CompanyReport,
    EarlyMessage,
    GroupDetails,
    MailState,
    MailSummary,
    SenderGroup,
    Sighting,
    company_report,
    worst_first,
)
from canary.senders import SenderKind
from data.directory import stored_time

EXPECTED = tuple(r.value for r in Relation if r.expected)
_EXPECTED_SQL = ", ".join(f"'{value}'" for value in EXPECTED)
_IDENTIFIABLE_SQL = ", ".join(f"'{k.value}'" for k in SenderKind if k.identifiable)


def rows(connection: Any, sql: str) -> list[Any]:
    """Every row `sql` selects, through a DB-API connection."""
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def id_list(ids: Iterable[int]) -> str:
    """Row ids for `IN (...)`: integers only; `NULL` (matching nothing) when there are none."""
    return ", ".join(str(int(i)) for i in ids) or "NULL"


def _flag(value: Any) -> bool | None:
    """A stored boolean: SQLite keeps 0 and 1, PostgreSQL a bool."""
    return None if value is None else bool(value)


@dataclass(frozen=True, slots=True)
class CompanyRow:
    id: int
    name: str
    slug: str
    note: str | None


def chosen_companies(connection: Any, names: Sequence[str] = ()) -> list[CompanyRow]:
    """The named companies (each once, by slug as `data.registry.find_company` finds them),
    or every company by name; `UnknownCompany` for a name Canary does not know."""
    every = [CompanyRow(*row) for row in rows(connection,
                                               "SELECT id, name, slug, note FROM company")]
    if not names:
        return sorted(every, key=lambda c: (c.name, c.id))
    by_slug = {company.slug: company for company in every}
    chosen: dict[int, CompanyRow] = {}
    for name in names:
        if (company := by_slug.get(slugify(name))) is None:
            raise UnknownCompany(name)
        chosen.setdefault(company.id, company)
    return list(chosen.values())


@dataclass(frozen=True, slots=True)
class ConsentHistory:
    """A company's consent records, oldest first, and the newest record's id."""

    records: tuple[Consent, ...]
    newest: int


def consent_histories(connection: Any, company_ids: Collection[int] | None = None
                      ) -> dict[int, ConsentHistory]:
    """The consent history of each company that has one (of these, or of all)."""
    where = "" if company_ids is None else f" WHERE company_id IN ({id_list(company_ids)})"
    records: dict[int, list[Consent]] = {}
    newest: dict[int, int] = {}
    for record_id, company_id, since, marketing, frequency, opted_out in rows(
            connection, "SELECT id, company_id, since, marketing, frequency, opted_out "
            f"FROM consentrecord{where} ORDER BY since, id"):
        records.setdefault(company_id, []).append(Consent(
            stored_time(since), _flag(marketing), Frequency(frequency) if frequency else None,
            bool(opted_out)))
        newest[company_id] = max(newest.get(company_id, 0), record_id)
    return {company: ConsentHistory(tuple(history), newest[company])
            for company, history in records.items()}


def _cited_mail(mail: Iterable[MarketingMail]) -> list[list[str | None]]:
    return [[m.received_at.isoformat(), m.message_id, m.sha256, m.subject] for m in mail]


def findings_json(findings: Sequence[Finding]) -> tuple[str, str]:
    """Consent findings as kept in `consentreview` (`data.tallies.review_consent`): the
    findings, each with its message count and first `EVIDENCE_SHOWN` messages, and apart,
    each one's other messages, so that a report decodes only what it lists."""
    return (json.dumps([
        {"kind": f.kind.value, "summary": f.summary, "observed": f.observed,
         "agreed": f.agreed, "count": f.message_count,
         "messages": _cited_mail(f.messages[:EVIDENCE_SHOWN])}
        for f in findings]),
        json.dumps([_cited_mail(f.messages[EVIDENCE_SHOWN:]) for f in findings]))


def _incomplete(finding: dict[str, Any], listed: int | None) -> bool:
    """Whether a kept finding lists fewer of its messages than `listed` (all, for None)."""
    kept = len(finding["messages"])
    return kept < finding["count"] and (listed is None or listed > kept)


def kept_findings(connection: Any, histories: dict[int, ConsentHistory],
                  listed: int | None = None) -> dict[int, tuple[Finding, ...]]:
    """The kept findings still valid for these companies' consent histories, each listing
    its first `listed` messages (all, for None) and counting the rest."""
    kept: dict[int, list[dict[str, Any]]] = {}
    if not histories:
        return {}
    for company_id, consent_id, findings in rows(
            connection, "SELECT company_id, consent_id, findings FROM consentreview "
            f"WHERE company_id IN ({id_list(histories)})"):
        if consent_id == histories[company_id].newest:
            kept[company_id] = json.loads(findings)
    # The messages beyond the first few, only where they are listed.
    longer = [c for c, findings in kept.items() if any(_incomplete(f, listed) for f in findings)]
    more = {company_id: json.loads(messages) for company_id, messages in rows(
        connection, "SELECT company_id, messages FROM consentreview "
        f"WHERE company_id IN ({id_list(longer)})")} if longer else {}
    return {company_id: tuple(
                _finding(f, others, listed)
                for f, others in zip(findings, more.get(company_id) or [[]] * len(findings),
                                     strict=True))
            for company_id, findings in kept.items()}


def _finding(kept: dict[str, Any], others: list[list[str]], listed: int | None) -> Finding:
    """A kept finding, listing its first `listed` messages (all, for None) of those kept with
    it and `others`, and counting the rest."""
    cited = tuple(MarketingMail(datetime.fromisoformat(at), message_id, sha256, subject)
                  for at, message_id, sha256, subject in [*kept["messages"], *others][:listed])
    return Finding(FindingKind(kept["kind"]), kept["summary"], cited, kept["observed"],
                   kept["agreed"], unlisted=kept["count"] - len(cited))


def own_marketing(connection: Any, company_ids: Collection[int]
                  ) -> dict[int, list[MarketingMail]]:
    """Each company's own marketing mail (first party or processor), oldest first."""
    found: dict[int, list[MarketingMail]] = {}
    if not company_ids:
        return found
    for company_id, received, message_id, sha256, subject in rows(
            connection,
            "SELECT alias.company_id, message.received_at, message.message_id, "
            "message.sha256, message.subject FROM message "
            "JOIN alias ON alias.id = message.alias_id "
            f"WHERE alias.company_id IN ({id_list(company_ids)}) "
            f"AND message.relation IN ({_EXPECTED_SQL}) AND message.marketing IS TRUE "
            "ORDER BY message.received_at, message.id"):
        found.setdefault(company_id, []).append(
            MarketingMail(stored_time(received), message_id, sha256, subject))
    return found


def third_party_spread(connection: Any) -> dict[str, int]:
    """Per identifiable business, how many *other* companies' aliases it mailed as a third
    party (it shares each company's report with that many)."""
    spread = rows(
        connection,
        "SELECT sendertally.organisation, count(DISTINCT alias.company_id) FROM sendertally "
        "JOIN alias ON alias.id = sendertally.alias_id "
        f"WHERE sendertally.relation = '{Relation.THIRD_PARTY.value}' "
        f"AND sendertally.kind IN ({_IDENTIFIABLE_SQL}) GROUP BY sendertally.organisation")
    return {sender: count - 1 for sender, count in spread if sender and count > 1}


def _first_order(connection: Any) -> str:
    """The row id of a tally's first example message, read from its JSON by the database."""
    if isinstance(connection, sqlite3.Connection):
        return "json_extract(examples, '$[0][1]')"
    return "CAST(examples AS json) -> 0 ->> 1"


def _pending_messages(connection: Any) -> str:
    """The message table, read through `ix_message_pending` (the mail not analysed yet).

    SQLite's planner, without statistics, would take the relation index and read every
    pending row; PostgreSQL's chooses the partial index itself."""
    if isinstance(connection, sqlite3.Connection):
        return "message INDEXED BY ix_message_pending"
    return "message"


def _details(last_seen: Any, examples: str, authentications: str, slug: str,
             kind: SenderKind | None,
             ways: dict[tuple[str | None, str | None], AuthenticatedBy | None]) -> GroupDetails:
    """A tally's last sighting and evidence, decoded (`SenderGroup.details`)."""
    when = datetime.fromisoformat
    return GroupDetails(
        stored_time(last_seen),
        tuple(EarlyMessage(when(at), number, slug, message_id, sha256, kind, via)
              for at, number, message_id, sha256, via in json.loads(examples)),
        tuple((when(at), number, ways[way] if (way := (method, domain)) in ways
               else ways.setdefault(way, authenticated_by(method, domain)))
              for at, number, method, domain in json.loads(authentications)))


@dataclass(frozen=True, slots=True)
class _Alias:
    id: int
    company_id: int
    address: str
    slug: str
    issued_at: datetime
    retired_at: datetime | None
    retire_reply: RetireReply | None


def _aliases(connection: Any, company_ids: Collection[int] | None) -> dict[int, list[_Alias]]:
    """Each company's aliases, in the order they were issued."""
    where = "" if company_ids is None else f" WHERE company_id IN ({id_list(company_ids)})"
    found: dict[int, list[_Alias]] = {}
    for alias_id, company_id, address, slug, issued, retired, reply in rows(
            connection, "SELECT id, company_id, address, slug, issued_at, retired_at, "
            f"retire_reply FROM alias{where} ORDER BY issued_at, id"):
        found.setdefault(company_id, []).append(_Alias(
            alias_id, company_id, address, slug, stored_time(issued),
            stored_time(retired) if retired else None,
            RetireReply(reply) if reply else None))
    return found


def _by_company(connection: Any, table: str, column: str, company_ids: Collection[int] | None
                ) -> dict[int, list[str]]:
    where = "" if company_ids is None else f" WHERE company_id IN ({id_list(company_ids)})"
    found: dict[int, list[str]] = {}
    for company_id, value in rows(connection, f"SELECT company_id, {column} FROM {table}{where}"):
        found.setdefault(company_id, []).append(value)
    return found


def summed_facts(connection: Any, companies: Sequence[CompanyRow], every: bool,
                 listed: int | None = None) -> list[CompanyFacts]:
    """Facts for these companies (`every` company, when true), with their mail summed up by
    the database (no timeline). Consent findings kept from before list their first `listed`
    messages (all, for None) and count the rest."""
    ids = None if every else [c.id for c in companies]
    aliases = _aliases(connection, ids)
    company_of = {alias.id: company for company, owned in aliases.items() for alias in owned}
    slugs = {alias.id: alias.slug for owned in aliases.values() for alias in owned}

    # The analysed mail, summed up per alias, sender and relation (`data.tallies`), added
    # up by the database per company and alias. Each tally becomes a group the report sorts
    # and weighs; its evidence is decoded only for the senders the report lists or accuses
    # (`canary.report.SenderGroup.details`).
    where = "" if every else f" WHERE alias_id IN ({id_list(company_of)})"
    per_alias: dict[int, int] = {}
    relations = {r.value: r for r in Relation}
    states: dict[int, list[MailState]] = {}
    for alias_id, relation_value, count, selling in rows(
            connection, "SELECT alias_id, relation, sum(count), sum(marketing) "
            f"FROM sendertally{where} GROUP BY alias_id, relation"):
        relation, count, selling = relations[relation_value], int(count), int(selling)
        per_alias[alias_id] = per_alias.get(alias_id, 0) + count
        states.setdefault(company_of[alias_id], []).extend((
            MailState(relation, False, False, True, selling),
            MailState(relation, False, False, False, count - selling)))
    groups: dict[int, list[SenderGroup]] = {}
    kinds: dict[str, SenderKind | None] = {k.value: k for k in SenderKind}
    kinds[""] = None
    ways: dict[tuple[str | None, str | None], AuthenticatedBy | None] = {}
    for (alias_id, relation_value, organisation, kind_value, count, first, order, last,
         examples, authentications) in rows(
            connection, "SELECT alias_id, relation, organisation, kind, count, first_seen, "
            f"{_first_order(connection)}, last_seen, examples, authentications "
            f"FROM sendertally{where}"):
        kind = kinds[kind_value]
        groups.setdefault(company_of[alias_id], []).append(SenderGroup(
            organisation or None, relations[relation_value], count, stored_time(first),
            int(order), kind,
            partial(_details, last, examples, authentications, slugs[alias_id], kind, ways)))

    # Mail waiting for analysis: not in a tally yet, and counted from its own index.
    chosen = "" if every else f" AND alias_id IN ({id_list(company_of)})"
    for alias_id, aside, waiting, count in rows(
            connection,
            "SELECT alias_id, CASE WHEN set_aside_at IS NOT NULL THEN 1 ELSE 0 END, "
            "CASE WHEN temperror IS NOT NULL AND temperror != '' THEN 1 ELSE 0 END, count(*) "
            f"FROM {_pending_messages(connection)} "
            f"WHERE relation IS NULL{chosen} GROUP BY alias_id, 2, 3"):
        per_alias[alias_id] = per_alias.get(alias_id, 0) + count
        states.setdefault(company_of[alias_id], []).append(
            MailState(None, bool(aside), bool(waiting), False, count))

    domains = _by_company(connection, "companydomain", "domain", ids)
    flagged = _by_company(connection, "flaggedsender", "organisation", ids)
    histories = consent_histories(connection, ids)
    kept = kept_findings(connection, histories, listed)
    # The company's own marketing, message by message, only where consent can be broken and
    # the findings are not kept from before.
    marketing = own_marketing(connection, [c for c in histories if c not in kept])

    return [
        CompanyFacts(
            name=company.name, slug=company.slug, note=company.note,
            domains=tuple(sorted(domains.get(company.id, ()))),
            aliases=tuple(
                AliasView(alias.address, alias.slug, alias.issued_at,
                          per_alias.get(alias.id, 0), alias.retired_at, alias.retire_reply)
                for alias in aliases.get(company.id, ())),
            sightings=(),
            flagged=tuple(sorted(flagged.get(company.id, ()))),
            consent=history.records if (history := histories.get(company.id)) else (),
            summary=MailSummary(tuple(states.get(company.id, ())),
                                tuple(groups.get(company.id, ())),
                                tuple(marketing.get(company.id, ())), kept.get(company.id)),
        )
        for company in companies]


def sightings(connection: Any, slugs: dict[int, str], latest: int | None = None
              ) -> tuple[Sighting, ...]:
    """The messages of these aliases (slug by alias id), oldest first; only the `latest`
    so many when given."""
    query = ("SELECT received_at, alias_id, relation, sender_org, from_address, subject, "
             "message_id, sha256, problem, auth_method, auth_domain, reason, temperror, "
             "marketing, sender_kind, sender_via, set_aside_at FROM message "
             f"WHERE alias_id IN ({id_list(slugs)}) ")
    if latest is None:
        found = rows(connection, query + "ORDER BY received_at, id")
    else:
        found = rows(connection, query + "ORDER BY received_at DESC, id DESC "
                     f"LIMIT {int(latest)}")[::-1]
    return tuple(
        Sighting(
            received_at=stored_time(received), alias_slug=slugs[alias_id],
            relation=Relation(relation) if relation else None, sender_org=sender_org,
            from_address=from_address, subject=subject, message_id=message_id, sha256=sha256,
            problem=problem, authenticated_by=authenticated_by(method, domain), reason=reason,
            temperror=temperror, marketing=_flag(marketing),
            sender_kind=SenderKind(kind) if kind else None, via=via,
            set_aside=set_aside is not None,
        )
        for (received, alias_id, relation, sender_org, from_address, subject, message_id,
             sha256, problem, method, domain, reason, temperror, marketing, kind, via,
             set_aside) in found)


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


def _count(connection: Any, sql: str) -> int:
    ((count,),) = rows(connection, sql)
    return int(count)


def reports_of(connection: Any, facts: Iterable[CompanyFacts], every: bool,
               senders: int | None = None) -> Reports:
    """The reports of these companies' facts, worst first, with the home's counts; probes
    only when `every` company is reported. Each lists every sender, or every accused one
    and the first `senders` others of each list (`canary.report.company_report`)."""
    spread = third_party_spread(connection)
    return Reports(
        worst_first(company_report(f, spread, senders) for f in facts),
        _count(connection, "SELECT count(*) FROM probe") if every else 0,
        _count(connection, "SELECT count(*) FROM deliveryjob "
               f"WHERE state = '{DeliveryState.FAILED.value}'"),
        _count(connection, "SELECT count(DISTINCT message_id) FROM deliveryjob "
               f"WHERE state = '{DeliveryState.HELD.value}'"))


def summed_reports(connection: Any, names: Sequence[str] = (), listed: int | None = None,
                   senders: int | None = None) -> Reports:
    """The report of the named companies, or of all, from the summed-up mail (no timeline):
    `data.reporting.build_reports` without a timeline. `listed` caps the messages listed
    per consent finding, `senders` the senders listed per list (see `reports_of`)."""
    facts = summed_facts(connection, chosen_companies(connection, names), not names, listed)
    return reports_of(connection, facts, not names, senders)


def channel_states(connection: Any) -> dict[str, ChannelState]:
    """How each alert channel the queue knows has been doing."""
    counts = {(channel, state): int(count) for channel, state, count in rows(
        connection, "SELECT channel, state, count(*) FROM alertsend GROUP BY channel, state")}
    return {
        key: ChannelState(
            key=key, added_at=stored_time(added) if added else None,
            last_sent_at=stored_time(sent) if sent else None,
            failing_since=stored_time(failing) if failing else None, last_error=error,
            pending=counts.get((key, "pending"), 0), failed=counts.get((key, "failed"), 0))
        for key, added, sent, failing, error in rows(
            connection, "SELECT \"key\", added_at, last_sent_at, failing_since, last_error "
            "FROM alertchannel")}


def company_view(connection: Any, name: str, latest: int) -> CompanyReport:
    """One company's report with its `latest` messages as the timeline (`canary show`)."""
    (company,) = chosen_companies(connection, [name])
    (facts,) = summed_facts(connection, [company], every=False)
    slugs = {alias.id: alias.slug for alias in _aliases(connection, [company.id]).get(
        company.id, ())}
    return replace(company_report(facts, third_party_spread(connection)),
                   timeline=sightings(connection, slugs, latest))
