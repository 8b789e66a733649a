"""Verdicts and the per-company report, built from plain values.

The report answers one question per company: did its alias start getting
mail from senders that were never given it? It is built from the attributed
messages alone, so the same inputs always give the same report. Canary says
only what the evidence supports:

| verdict   | when |
|-----------|------|
| `shared`  | an identifiable business, authenticated as itself, that is not the company, |
|           | a platform acting for it, a mailbox, an impersonator or backscatter |
| `leaked`  | only mail that proves the address is out: unverified, spoofed, impersonation, |
|           | backscatter, or authenticated mailboxes, groups and tenants |
| `clean`   | only the company's own mail, its processors', and mail that proves nothing |
| `pending` | mail arrived, but none of it is analysed yet |
| `quiet`   | no mail yet |

Each verdict carries its evidence (per sender: how it authenticated,
example Message-IDs with the raw SHA-256, first and last sighting, count)
and a confidence with its reason: the number of messages, the days they
span, whether the sender authenticated as itself and is an identifiable
business, whether it also mails other companies' aliases, and how much mail
is still waiting for analysis. One message is never `high`. A business seen
as a third party on several companies' aliases is listed as a likely broker;
a mailbox or a group never is.

The JSON form is versioned (`SCHEMA_VERSION`) and described by
`canary/schemas/report.schema.json`; scripts depend on it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from canary.aliases import RetireReply
from canary.authentication import NOT_AUTHENTICATED, AuthenticatedBy, AuthMethod
from canary.consent import Consent, Finding, MarketingMail, consent_findings
from canary.relation import Relation
from canary.senders import SenderKind
from canary.wording import iso_time, plural

SCHEMA_VERSION = 3
"""2: `authenticated_by` is a list of {method, domain} objects, not display strings.
3: `canary report --json` lists at most `SENDERS_LISTED` senders of each list per company
besides every accusable one, and `unlisted_senders` counts the rest."""
UNKNOWN_SENDER = "(no sender domain)"
EXAMPLES_KEPT = 3
"""Example messages kept per sender organisation."""
EVIDENCE_SHOWN = 10
"""Evidence a page, a terminal or `canary report --json` lists before "…and N more" (the
JSON says how many there are); exports and bundles list it all."""
SENDERS_LISTED = 5
"""Senders `canary report` lists per company in each of its three lists (unexpected, the
company's own, unproven), besides every sender its verdict accuses; `canary show`, exports
and bundles list them all."""


class Verdict(enum.StrEnum):
    SHARED = "shared"
    """An identifiable business, authenticated as itself: the company shared or sold it."""
    LEAKED = "leaked"
    """Only mail proving the address is out: a breach, a scrape or a sale, unproven."""
    CLEAN = "clean"
    """Only the company's own mail, its processors', and mail that proves nothing."""
    PENDING = "pending"
    """Mail arrived, but none of it is analysed yet."""
    QUIET = "quiet"
    """No mail yet."""

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {Verdict.SHARED: 4, Verdict.LEAKED: 3, Verdict.CLEAN: 2, Verdict.PENDING: 1,
             Verdict.QUIET: 0}


class Confidence(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class AliasView:
    address: str
    slug: str
    issued_at: datetime
    messages: int = 0
    retired_at: datetime | None = None
    retire_reply: RetireReply | None = None


@dataclass(frozen=True, slots=True)
class Sighting:
    """One analysed (or not yet analysed) message to one of the company's aliases."""

    received_at: datetime
    alias_slug: str
    relation: Relation | None
    """None while the message waits for analysis."""
    sender_org: str | None
    """The sender identity's name (an organisation, a mailbox, a merchant…)."""
    from_address: str | None = None
    subject: str | None = None
    message_id: str | None = None
    sha256: str = ""
    problem: str | None = None
    authenticated_by: AuthenticatedBy | None = None
    reason: str | None = None
    temperror: str | None = None
    """Set while analysis waits to retry after a temporary DNS failure."""
    marketing: bool | None = None
    sender_kind: SenderKind | None = None
    via: str | None = None
    """The platform or ESP that named the sender."""
    set_aside: bool = False
    """Analysis failed on it too often (Canary's fault): out of the verdict."""


@dataclass(frozen=True, slots=True)
class MailState:
    """How many of a company's messages are in one state (`Counts` adds them up)."""

    relation: Relation | None
    set_aside: bool
    temperror: bool
    marketing: bool
    count: int


@dataclass(frozen=True, slots=True)
class EarlyMessage:
    """One of the first messages of a sender group: cited, and it names the sender's kind."""

    received_at: datetime
    order: int
    """Breaks ties between messages received in the same second: the order they were stored."""
    alias_slug: str
    message_id: str | None
    sha256: str
    kind: SenderKind | None
    via: str | None


Authentications = tuple[tuple[datetime, int, AuthenticatedBy | None], ...]
"""Each distinct way a sender authenticated, with when (and in what order) it first did,
oldest first."""


@dataclass(frozen=True, slots=True)
class GroupDetails:
    """What a report cites of a sender group, beyond what it sorts and weighs it by."""

    last_seen: datetime
    earliest: tuple[EarlyMessage, ...]
    """Its first `EXAMPLES_KEPT` messages, oldest first."""
    authentications: Authentications


@dataclass(frozen=True, slots=True)
class SenderGroup:
    """A company's analysed messages from one sender in one relation, summed up."""

    organisation: str | None
    relation: Relation
    count: int
    first_seen: datetime
    order: int
    """Its first message's `EarlyMessage.order`."""
    kind: SenderKind | None
    """What its first message named the sender."""
    details: Callable[[], GroupDetails]
    """Its last sighting and its evidence: worked out only for the senders a report lists
    or accuses, and for a company's first unexpected one."""


def given(details: GroupDetails) -> Callable[[], GroupDetails]:
    """Details already at hand, as `SenderGroup.details`."""
    return lambda: details


@dataclass(frozen=True, slots=True)
class MailSummary:
    """What the verdict and the report need of a company's mail, however much there is.

    The database sums it up (`data.reporting`) so the report reads thousands of rows, not
    millions; `summarise` does the same from the messages themselves, and both give the
    same report.
    """

    states: tuple[MailState, ...]
    groups: tuple[SenderGroup, ...]
    own_marketing: tuple[MarketingMail, ...]
    """The company's own marketing mail, oldest first (for the consent findings; may be
    left empty when the company has no consent on record, or when `findings` are given)."""
    findings: tuple[Finding, ...] | None = None
    """The consent findings as worked out before from the same mail and consent, if kept."""


@dataclass(frozen=True, slots=True)
class CompanyFacts:
    name: str
    slug: str
    note: str | None
    domains: tuple[str, ...]
    """Declared at issue time and trusted later: the company's own organisations."""
    aliases: tuple[AliasView, ...]
    sightings: tuple[Sighting, ...]
    flagged: tuple[str, ...] = ()
    """Sender organisations the user confirmed are not the company's."""
    consent: tuple[Consent, ...] = ()
    """What the person agreed to, oldest first."""
    summary: MailSummary | None = None
    """The mail summed up, in place of `sightings` (the report has no timeline then)."""


@dataclass(frozen=True, slots=True)
class Example:
    message_id: str | None
    sha256: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class SenderSummary:
    organisation: str
    relation: Relation
    first_seen: datetime
    last_seen: datetime
    count: int
    authenticated_by: tuple[AuthenticatedBy, ...] = ()
    """Every distinct way this sender authenticated."""
    examples: tuple[Example, ...] = ()
    flagged: bool = False
    kind: SenderKind = SenderKind.ORGANISATION
    via: str | None = None
    elsewhere: int = 0
    """Other companies whose aliases this business also mailed as a third party."""

    @property
    def authenticated(self) -> bool:
        return any(a.authenticated for a in self.authenticated_by)

    @property
    def accusable(self) -> bool:
        """Evidence the company gave the address to this sender."""
        return accusable(self.relation, self.kind)

    @property
    def days(self) -> int:
        return (self.last_seen - self.first_seen).days


@dataclass(frozen=True, slots=True)
class Counts:
    """How many of a company's messages are in each state."""

    total: int = 0
    pending: int = 0
    """Not analysed yet (including those waiting for DNS)."""
    failed: int = 0
    """Set aside after analysis failed on them (Canary's fault): out of the verdict."""
    temperror: int = 0
    """Pending because DNS failed for now; analysed again later."""
    by_relation: Mapping[Relation, int] = field(default_factory=dict)
    unexpected: int = 0
    marketing: int = 0
    """The company's own marketing mail."""

    def of(self, relation: Relation) -> int:
        return self.by_relation.get(relation, 0)

    def to_dict(self) -> dict[str, int]:
        """The JSON form: one key per state and per relation."""
        return {
            "total": self.total, "pending": self.pending, "failed": self.failed,
            "temperror": self.temperror,
            **{relation.value: self.of(relation) for relation in Relation},
            "unexpected": self.unexpected, "marketing": self.marketing,
        }


@dataclass(frozen=True, slots=True)
class Unlisted:
    """How many senders of each list a report left out (`SENDERS_LISTED`)."""

    unexpected: int = 0
    expected: int = 0
    unproven: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"unexpected": self.unexpected, "expected": self.expected,
                "unproven": self.unproven}


@dataclass(frozen=True, slots=True)
class CompanyReport:
    name: str
    slug: str
    note: str | None
    domains: tuple[str, ...]
    aliases: tuple[AliasView, ...]
    verdict: Verdict
    confidence: Confidence
    confidence_reason: str
    counts: Counts
    senders: tuple[SenderSummary, ...]
    """Every sender organisation, unexpected ones first (those listed, when capped)."""
    days_to_first_unexpected: int | None
    unlisted: Unlisted = field(default_factory=Unlisted)
    """How many senders of each list a capped report leaves out."""
    timeline: tuple[Sighting, ...] = field(default=(), repr=False)
    consent: Consent | None = None
    """The consent in force now."""
    findings: tuple[Finding, ...] = ()
    """Consent and frequency findings about the company's own marketing."""

    @property
    def issued_at(self) -> datetime:
        return min(alias.issued_at for alias in self.aliases)

    @property
    def unexpected(self) -> tuple[SenderSummary, ...]:
        return tuple(s for s in self.senders if s.relation.unexpected)

    @property
    def unproven(self) -> tuple[SenderSummary, ...]:
        return tuple(s for s in self.senders if s.relation is Relation.UNPROVEN)


@dataclass(frozen=True, slots=True)
class Broker:
    """A third party seen on the aliases of several companies: likely a list broker."""

    organisation: str
    companies: tuple[str, ...]


def accusable(relation: Relation, kind: SenderKind) -> bool:
    """Whether a sender of this kind in this relation is evidence the company gave it the
    address: an identifiable business, as a third party."""
    return relation is Relation.THIRD_PARTY and kind.identifiable


def verdict_for(senders: Sequence[SenderSummary], counts: Counts) -> Verdict:
    """What the analysed mail proves about the company, from its counts and its senders
    (every accusable one among them; a capped report leaves others out)."""
    if any(s.accusable for s in senders):
        return Verdict.SHARED
    if counts.unexpected:
        return Verdict.LEAKED
    if sum(counts.by_relation.values()):
        return Verdict.CLEAN
    if counts.pending or counts.failed:
        return Verdict.PENDING
    return Verdict.QUIET


_LOWER = {Confidence.HIGH: Confidence.MEDIUM, Confidence.MEDIUM: Confidence.LOW,
          Confidence.LOW: Confidence.LOW}


def _how(sender: SenderSummary) -> str:
    methods = {a.method for a in sender.authenticated_by if a.authenticated}
    if sender.kind is SenderKind.MERCHANT and sender.via:
        return f"named by {sender.via}, which authenticated the sending"
    if AuthMethod.DKIM in methods:
        return "DKIM-authenticated as itself"
    if AuthMethod.SPF in methods:
        return "SPF-authenticated as itself only"
    return "not authenticated"


def evidence_strength(sender: SenderSummary) -> int:
    """How much one accusable sender's mail proves, as points."""
    methods = {a.method for a in sender.authenticated_by if a.authenticated}
    points = 2 if AuthMethod.DKIM in methods else 1 if methods else 0
    points += (sender.count >= 3) + (sender.count >= 10) + (sender.days >= 7)
    points += sender.elsewhere >= 1
    points -= sender.kind is SenderKind.MERCHANT
    return points


def _shared_confidence(senders: Sequence[SenderSummary]) -> tuple[Confidence, str]:
    accusable = sorted((s for s in senders if s.accusable),
                       key=lambda s: (-evidence_strength(s), s.organisation))
    best = accusable[0]
    points = evidence_strength(best)
    level = (Confidence.HIGH if points >= 4 and best.count >= 2
             else Confidence.MEDIUM if points >= 2 else Confidence.LOW)
    span = f" over {plural(best.days, 'day')}" if best.days else ""
    reason = f"{best.organisation}: {plural(best.count, 'message')}{span}, {_how(best)}"
    if best.elsewhere:
        reason += f"; it also mails {plural(best.elsewhere, 'other company', 'other companies')}"
    if len(accusable) > 1:
        reason += f"; {plural(len(accusable) - 1, 'more business', 'more businesses')}"
    if best.count == 1 and level is Confidence.HIGH:
        level = Confidence.MEDIUM
    return level, reason


def _leaked_confidence(senders: Sequence[SenderSummary], counts: Counts
                       ) -> tuple[Confidence, str]:
    # A capped list keeps the unexpected senders cited here first (`_CITED_FIRST`), so the
    # first listed look-alike or third party is the first of all.
    unexpected = [s for s in senders if s.relation.unexpected]
    if spoofed := counts.of(Relation.SPOOFED):
        return Confidence.MEDIUM, (f"{plural(spoofed, 'message')} forging the company's own "
                                   "domain: someone knows this address belongs to its customer")
    impersonating = [s for s in unexpected if s.relation is Relation.IMPERSONATION]
    if impersonating:
        return Confidence.MEDIUM, (f"mail from {impersonating[0].organisation}, a look-alike of "
                                   "the company's domain: the address is known to phishers")
    third = [s for s in unexpected if s.relation is Relation.THIRD_PARTY]
    if third:
        return Confidence.LOW, (f"{third[0].organisation} ({third[0].kind.value}) wrote to it: "
                                "the address is out, but no business is proven to have it")
    if counts.unexpected == counts.of(Relation.BACKSCATTER):
        return Confidence.LOW, ("only bounces and auto-replies to mail sent in the address's "
                                "name: the address is in use, source unproven")
    return Confidence.LOW, "unauthenticated spam only: the address leaked, source unproven"


def confidence_for(
    verdict: Verdict, senders: Sequence[SenderSummary], counts: Counts
) -> tuple[Confidence, str]:
    """How sure the verdict is, with a one-line reason a person can check (from the same
    senders and counts as `verdict_for`)."""
    if verdict is Verdict.SHARED:
        level, reason = _shared_confidence(senders)
    elif verdict is Verdict.LEAKED:
        level, reason = _leaked_confidence(senders, counts)
    elif verdict is Verdict.CLEAN:
        expected = sum(n for relation, n in counts.by_relation.items() if relation.expected)
        unproven = counts.of(Relation.UNPROVEN)
        if unproven and not expected:
            level, reason = Confidence.LOW, (f"{plural(unproven, 'message')} claiming the company "
                                             "that neither proves nor disproves it is the company")
        else:
            level = Confidence.HIGH if expected >= 3 and not unproven else Confidence.MEDIUM
            reason = "only the company's own mail and its processors'"
            if unproven:
                reason += f", and {plural(unproven, 'message')} that prove nothing either way"
    elif verdict is Verdict.PENDING:
        return Confidence.LOW, "mail arrived but is not analysed yet"
    else:
        return Confidence.HIGH, "no mail yet"
    waiting = counts.pending + counts.failed
    if waiting:
        level = _LOWER[level] if level is Confidence.HIGH else level
        reason += f"; {plural(waiting, 'message')} not analysed yet"
    return level, reason


def summarise(timeline: Sequence[Sighting]) -> MailSummary:
    """The summary of these messages (oldest first), as the database would sum them up."""
    states: dict[tuple[Relation | None, bool, bool, bool], int] = {}
    groups: dict[tuple[str | None, Relation], list[tuple[int, Sighting]]] = {}
    for order, s in enumerate(timeline):
        state = (s.relation, s.set_aside, bool(s.temperror), bool(s.marketing))
        states[state] = states.get(state, 0) + 1
        if s.relation is not None:
            groups.setdefault((s.sender_org, s.relation), []).append((order, s))
    summed = []
    for (org, relation), group in groups.items():
        firsts: dict[AuthenticatedBy | None, tuple[datetime, int]] = {}
        for order, s in group:
            firsts.setdefault(s.authenticated_by, (s.received_at, order))
        earliest = tuple(EarlyMessage(s.received_at, order, s.alias_slug, s.message_id,
                                      s.sha256, s.sender_kind, s.via)
                         for order, s in group[:EXAMPLES_KEPT])
        summed.append(SenderGroup(
            organisation=org, relation=relation, count=len(group),
            first_seen=earliest[0].received_at, order=earliest[0].order,
            kind=earliest[0].kind,
            details=given(GroupDetails(
                max(s.received_at for _, s in group), earliest,
                tuple((at, order, auth) for auth, (at, order) in firsts.items()))),
        ))
    return MailSummary(
        states=tuple(MailState(*state, count) for state, count in states.items()),
        groups=tuple(summed),
        own_marketing=tuple(
            MarketingMail(s.received_at, s.message_id, s.sha256, s.subject)
            for s in timeline if s.relation is not None and s.relation.expected and s.marketing),
    )


def _counts(states: Iterable[MailState]) -> Counts:
    by_relation: dict[Relation, int] = {}
    total = failed = temperror = marketing = 0
    for state in states:
        total += state.count
        if state.relation is None:
            failed += state.count if state.set_aside else 0
            temperror += state.count if state.temperror else 0
            continue
        by_relation[state.relation] = by_relation.get(state.relation, 0) + state.count
        marketing += state.count if state.relation.expected and state.marketing else 0
    analysed = sum(by_relation.values())
    return Counts(
        total=total, pending=total - analysed - failed, failed=failed, temperror=temperror,
        by_relation=by_relation,
        unexpected=sum(n for relation, n in by_relation.items() if relation.unexpected),
        marketing=marketing,
    )


_PLACE = {r: (not r.unexpected, r.expected) for r in Relation}
"""Where a relation's senders stand in a report: unexpected first, the company's own last."""
_CITED_FIRST = {Relation.SPOOFED: 0, Relation.IMPERSONATION: 1, Relation.THIRD_PARTY: 2,
                Relation.BACKSCATTER: 3, Relation.UNVERIFIED: 4}
"""Which unexpected senders a capped list keeps first, after the accused: those the
confidence reason cites (`_leaked_confidence`) come before plain spam."""


@dataclass(frozen=True, slots=True)
class _Sender:
    """A sender in one relation, before the report decides whether it lists it."""

    organisation: str
    lead: SenderGroup
    """Its group with the first message: it names the sender's kind and when it began."""
    parts: list[SenderGroup]
    """One group per alias it wrote to (most senders write to one)."""

    @property
    def sort_key(self) -> tuple[tuple[bool, bool], datetime, str, int]:
        """Report order: where its relation stands, then when it began."""
        lead = self.lead
        return _PLACE[lead.relation], lead.first_seen, self.organisation, lead.order

    @property
    def kind(self) -> SenderKind:
        return self.lead.kind or SenderKind.ORGANISATION


def _listed(senders: Sequence[_Sender], listed: int) -> tuple[list[_Sender], Unlisted]:
    """Which of these senders (in report order) a capped report lists: every accusable one
    and the first `listed` others of each list, unexpected ones by what they prove; and how
    many it leaves out of each list."""
    if listed < 1:
        raise ValueError("a report lists at least one sender of each list")
    chosen: list[int] = []
    lists: dict[str, list[int]] = {"unexpected": [], "expected": [], "unproven": []}
    for index, sender in enumerate(senders):
        relation = sender.lead.relation
        if accusable(relation, sender.kind):
            chosen.append(index)
        else:
            lists["expected" if relation.expected else "unexpected" if relation.unexpected
                  else "unproven"].append(index)
    lists["unexpected"].sort(key=lambda index: _CITED_FIRST[senders[index].lead.relation])
    for indexes in lists.values():
        chosen.extend(indexes[:listed])
    return [senders[index] for index in sorted(chosen)], Unlisted(
        **{name: max(len(indexes) - listed, 0) for name, indexes in lists.items()})


def _senders(groups: Iterable[SenderGroup], flagged: Iterable[str],
             elsewhere: Mapping[str, int], listed: int | None = None
             ) -> tuple[tuple[SenderSummary, ...], Unlisted]:
    """The senders a report lists, in report order, with their evidence: every one, or
    (`listed`) every accusable one and the first `listed` others of each list; and how many
    it leaves out. Only the listed senders' evidence is worked out."""
    merged: dict[tuple[str, Relation], list[SenderGroup]] = {}
    for group in groups:  # a sender without a domain and one named like that are one
        merged.setdefault((group.organisation or UNKNOWN_SENDER, group.relation), []).append(group)
    senders: list[_Sender] = []
    for (org, _), parts in merged.items():
        lead = parts[0] if len(parts) == 1 else min(
            parts, key=lambda part: (part.first_seen, part.order))
        senders.append(_Sender(org, lead, parts))
    senders.sort(key=lambda sender: sender.sort_key)
    chosen, unlisted = (senders, Unlisted()) if listed is None else _listed(senders, listed)
    flagged_orgs = set(flagged)
    return tuple(_with_evidence(sender, sender.organisation in flagged_orgs, elsewhere)
                 for sender in chosen), unlisted


def _with_evidence(sender: _Sender, flagged: bool, elsewhere: Mapping[str, int]
                   ) -> SenderSummary:
    """The sender summed up from its groups, with its examples and the ways it
    authenticated."""
    lead, parts = sender.lead, sender.parts
    if len(parts) == 1:  # most senders write to one alias: already in order
        details = lead.details()
        count, last_seen, via = lead.count, details.last_seen, details.earliest[0].via
        earliest, authentications = details.earliest, details.authentications
    else:
        every = [(part, part.details()) for part in parts]
        count = sum(part.count for part in parts)
        last_seen = max(details.last_seen for _, details in every)
        via = next(details.earliest[0].via for part, details in every if part is lead)
        earliest = tuple(sorted((m for _, details in every for m in details.earliest),
                                key=lambda m: (m.received_at, m.order))[:EXAMPLES_KEPT])
        authentications = tuple(sorted((a for _, details in every
                                        for a in details.authentications),
                                       key=lambda a: (a[0], a[1])))
    relation = lead.relation
    return SenderSummary(
        organisation=sender.organisation,
        relation=relation,
        first_seen=lead.first_seen,
        last_seen=last_seen,
        count=count,
        authenticated_by=tuple(dict.fromkeys(auth or NOT_AUTHENTICATED
                                             for _, _, auth in authentications)),
        examples=tuple(Example(m.message_id, m.sha256, m.received_at) for m in earliest),
        flagged=flagged,
        kind=sender.kind,
        via=via,
        elsewhere=elsewhere.get(sender.organisation, 0)
        if relation is Relation.THIRD_PARTY else 0,
    )


_UNEXPECTED = frozenset(r for r in Relation if r.unexpected)


def _days_to_first_unexpected(groups: Iterable[SenderGroup],
                              aliases: Iterable[AliasView]) -> int | None:
    unexpected = [group for group in groups if group.relation in _UNEXPECTED]
    if not unexpected:
        return None
    first = min(unexpected, key=lambda group: (group.first_seen, group.order))
    issued = {alias.slug: alias.issued_at for alias in aliases}
    slug = first.details().earliest[0].alias_slug
    if slug not in issued:
        return None
    return max((first.first_seen - issued[slug]).days, 0)


def company_report(facts: CompanyFacts, elsewhere: Mapping[str, int] | None = None,
                   listed: int | None = None) -> CompanyReport:
    """The verdict and evidence for one company.

    `elsewhere` counts, per business, the other companies whose aliases it mailed as
    a third party. The report lists every sender, or (`listed`) every sender its verdict
    accuses and the first `listed` others of each list, and counts the rest; the verdict
    and confidence weigh every sender either way.
    """
    timeline = tuple(sorted(facts.sightings, key=lambda s: s.received_at))
    summary = facts.summary or summarise(timeline)
    counts = _counts(summary.states)
    senders, unlisted = _senders(summary.groups, facts.flagged, elsewhere or {}, listed)
    verdict = verdict_for(senders, counts)
    confidence, reason = confidence_for(verdict, senders, counts)
    return CompanyReport(
        name=facts.name,
        slug=facts.slug,
        note=facts.note,
        domains=facts.domains,
        aliases=facts.aliases,
        verdict=verdict,
        confidence=confidence,
        confidence_reason=reason,
        counts=counts,
        senders=senders,
        unlisted=unlisted,
        days_to_first_unexpected=_days_to_first_unexpected(summary.groups, facts.aliases),
        timeline=timeline,
        consent=facts.consent[-1] if facts.consent else None,
        findings=(summary.findings if summary.findings is not None
                  else consent_findings(facts.consent, summary.own_marketing)),
    )


def worst_first(reports: Iterable[CompanyReport]) -> list[CompanyReport]:
    return sorted(
        reports,
        key=lambda r: (-r.verdict.severity, -r.counts.unexpected, -len(r.findings),
                       r.name.lower()),
    )


def likely_brokers(reports: Iterable[CompanyReport]) -> list[Broker]:
    """Identifiable businesses seen as third parties on two or more companies' aliases.

    A mailbox, a group or a cloud tenant is never a broker: thousands of unrelated
    senders share such domains.
    """
    seen: dict[str, list[str]] = {}
    for report in reports:
        for sender in report.senders:
            if sender.accusable:
                seen.setdefault(sender.organisation, []).append(report.name)
    return [
        Broker(org, tuple(sorted(set(companies))))
        for org, companies in sorted(seen.items())
        if len(set(companies)) >= 2
    ]


def _cited(message_id: str | None, sha256: str, received_at: datetime) -> dict[str, Any]:
    """A message cited as evidence: what an evidence bundle carries as `messages/<sha256>.eml`."""
    return {"message_id": message_id, "sha256": sha256, "received_at": iso_time(received_at)}


def _sender_json(sender: SenderSummary) -> dict[str, Any]:
    return {
        "organisation": sender.organisation,
        "relation": sender.relation.value,
        "first_seen": iso_time(sender.first_seen),
        "last_seen": iso_time(sender.last_seen),
        "count": sender.count,
        "authenticated_by": [a.to_dict() for a in sender.authenticated_by],
        "kind": sender.kind.value,
        "via": sender.via,
        "flagged": sender.flagged,
        "examples": [_cited(e.message_id, e.sha256, e.received_at) for e in sender.examples],
    }


def _alias_json(alias: AliasView) -> dict[str, Any]:
    return {
        "address": alias.address,
        "issued_at": iso_time(alias.issued_at),
        "messages": alias.messages,
        "retired_at": iso_time(alias.retired_at) if alias.retired_at else None,
        "retire_reply": alias.retire_reply.value if alias.retire_reply else None,
    }


def _consent_json(consent: Consent | None) -> dict[str, Any] | None:
    if consent is None:
        return None
    return {
        "since": iso_time(consent.since),
        "marketing": consent.marketing,
        "frequency": consent.frequency.value if consent.frequency else None,
        "opted_out": consent.opted_out,
    }


def _finding_json(finding: Finding, limit: int | None) -> dict[str, Any]:
    return {
        "kind": finding.kind.value,
        "summary": finding.summary,
        "observed": finding.observed,
        "agreed": finding.agreed,
        "message_count": finding.message_count,
        "messages": [_cited(m.message_id, m.sha256, m.received_at)
                     for m in finding.messages[:limit]],
    }


def company_json(report: CompanyReport, evidence_limit: int | None = None) -> dict[str, Any]:
    """The company's part of the JSON; each finding lists at most `evidence_limit` of its
    messages (all of them when None) and always how many there are."""
    return {
        "name": report.name,
        "slug": report.slug,
        "note": report.note,
        "domains": list(report.domains),
        "issued_at": iso_time(report.issued_at),
        "aliases": [_alias_json(a) for a in report.aliases],
        "verdict": report.verdict.value,
        "confidence": report.confidence.value,
        "confidence_reason": report.confidence_reason,
        "counts": report.counts.to_dict(),
        "unexpected_senders": [_sender_json(s) for s in report.unexpected],
        "expected_senders": [_sender_json(s) for s in report.senders if s.relation.expected],
        "unproven_senders": [_sender_json(s) for s in report.unproven],
        "unlisted_senders": report.unlisted.to_dict(),
        "days_to_first_unexpected": report.days_to_first_unexpected,
        "consent": _consent_json(report.consent),
        "findings": [_finding_json(f, evidence_limit) for f in report.findings],
    }


def report_document(
    reports: Sequence[CompanyReport], generated_at: datetime, probes: int,
    deliveries: Mapping[str, int] | None = None, evidence_limit: int | None = None,
) -> dict[str, Any]:
    """The versioned JSON report, companies worst first; `deliveries` (failed and held
    counts) only where the person reads their own report, never in an export. Findings
    list at most `evidence_limit` messages each (`canary report`; exports list all)."""
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "generated_at": iso_time(generated_at),
        "probes": probes,
        "companies": [company_json(r, evidence_limit) for r in worst_first(reports)],
        "brokers": [
            {"organisation": b.organisation, "companies": list(b.companies)}
            for b in likely_brokers(reports)
        ],
    }
    if deliveries is not None:
        document["deliveries"] = dict(deliveries)
    return document
