"""The alert queue: events found in committed analysis results, and each channel's sends.

Detection scans, never hooks: `find_events` reads the messages analysis
committed since a watermark (the newest `analysed_at` seen, re-read with a
two-minute margin for analysts whose commit came late), with no write lock
held, and decides the events with the same report every reading command
uses (`build_reports`), computed only for companies with new analysed mail.
`record_events` then inserts them in one short transaction. Every event has
a key naming its fact (`new_sender:<company id>:<sender>`, `after_optout:<company
id>`, `broker:<sender>`…) under a unique index, so detecting the same fact
again, in another pass or in another process sharing the database, adds
nothing; detection is idempotent and a crash before the commit only means
the next pass finds the same events.

A channel gets the events recorded from the moment it was first seen on
(like a delivery destination), those it wants and severe enough. Each send
is a row: pending, claimed for a short lease, then sent (alone or in a
digest, `batch_id` naming the message) or retried with growing pauses, and
failed after `retry_for`. A crash between the channel's acceptance and the
record of it is the one window in which an alert can be sent twice.

An upgraded home starts with marks at the time of the upgrade (migration
0006): what it knew before is not news. Nothing here reads a message body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    UniqueConstraint,
    and_,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    update,
)
from sqlalchemy import select as sa_select
from sqlmodel import Column, Field, Session, SQLModel, col, select

from canary.alerts import (
    HISTORICAL,
    KIND_SEVERITY,
    ChannelState,
    Event,
    EventKind,
    Severity,
    new_sender_severity,
    retry_delay,
    verdict_severity,
    worsened,
)
from canary.authentication import AuthenticatedBy, AuthMethod
from canary.relation import Relation
from canary.report import UNKNOWN_SENDER, CompanyReport
from canary.senders import SenderKind
from canary.wording import iso_time, plural
from data.deliveries import failed_count
from data.mailstore import insert_ignoring_duplicates
from data.models import Alias, Company, DeliveryJob, Message, Probe, UTCDateTime
from data.reporting import build_reports
from data.summary import channel_states as read_channel_states

WATERMARK = "analysed_until"
"""Mark: the newest `analysed_at` detection has looked at."""
SINCE = "since"
"""Mark: when alerts began in this home (set by the upgrade that added them): senders,
findings and brokers known before are not news."""
DELIVERIES_FAILED = "deliveries_failed"
SET_ASIDE = "set_aside"
PROBES_ALERTED = "probes_alerted_at"
VERDICT = "verdict:"
"""Mark prefix: the verdict detection last saw for a company (by id)."""
MARGIN = timedelta(minutes=2)
"""Mail analysed this long before the watermark is looked at again: an analyst's commit can
come after a later one's (a lock wait, another host's clock)."""
CLAIM_FOR = timedelta(minutes=5)
PROBE_WINDOW = timedelta(hours=1)
CLAIM_LIMIT = 10_000
_IN_CHUNK = 500


def _utc(*, index: bool = False, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), index=index, nullable=nullable))


class AlertEventRecord(SQLModel, table=True):
    """One fact worth telling, found once."""

    __tablename__ = "alertevent"
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True)
    """Names the fact, so it is recorded once (`canary.alerts.Event.key`)."""
    kind: str = Field(index=True)
    """A `canary.alerts.EventKind` value."""
    severity: int
    """A `canary.alerts.Severity` rank: 1 low, 2 medium, 3 high."""
    company_id: int | None = None
    historical: bool = False
    """About mail received long before it was found (an import): sent when analysis is done."""
    occurred_at: datetime = _utc()
    created_at: datetime = _utc(index=True)
    details: str
    """JSON of the event (`canary.alerts.Event.to_dict`): names, never a message body."""


class AlertSendRecord(SQLModel, table=True):
    """One event for one channel, and how sending it went."""

    __tablename__ = "alertsend"
    __table_args__ = (UniqueConstraint("event_id", "channel"),)
    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="alertevent.id", index=True)
    channel: str = Field(index=True)
    """The channel's key (a hash of its URL: the URL itself stays in the 0600 config)."""
    state: str = Field(index=True)
    """pending, sent or failed."""
    attempts: int = 0
    next_attempt_at: datetime | None = _utc(index=True, nullable=True)
    claimed_until: datetime | None = _utc(nullable=True)
    last_error: str | None = None
    """The channel's error, its secrets taken out."""
    created_at: datetime = _utc()
    sent_at: datetime | None = _utc(index=True, nullable=True)
    batch_id: int | None = None
    """The message it went out in (the id of that message's first send): a digest is one."""
    digest: bool = False


class AlertChannelRecord(SQLModel, table=True):
    """A channel alerting has served: it gets the events recorded from `first_event_id` on."""

    __tablename__ = "alertchannel"
    key: str = Field(primary_key=True)
    first_event_id: int
    added_at: datetime = _utc()
    last_sent_at: datetime | None = _utc(nullable=True)
    failing_since: datetime | None = _utc(nullable=True)
    """Since the first failure after the last success; None while it works."""
    last_error: str | None = None


class AlertMark(SQLModel, table=True):
    """What detection remembers between passes: the watermark, verdicts, counts."""

    __tablename__ = "alertmark"
    name: str = Field(primary_key=True)
    value: str
    updated_at: datetime = _utc()


# --- marks --------------------------------------------------------------------------------


def _marks(session: Session, names: Iterable[str]) -> dict[str, str]:
    wanted = list(dict.fromkeys(names))
    found: dict[str, str] = {}
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start:start + _IN_CHUNK]
        found.update(session.exec(select(AlertMark.name, AlertMark.value)
                                  .where(col(AlertMark.name).in_(chunk))).all())
    return found


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def set_marks(session: Session, marks: dict[str, str], now: datetime) -> None:
    for name, value in marks.items():
        mark = session.get(AlertMark, name)
        if mark is None:
            session.add(AlertMark(name=name, value=value, updated_at=now))
        elif mark.value != value:
            mark.value, mark.updated_at = value, now
            session.add(mark)
    session.flush()


# --- detection ----------------------------------------------------------------------------


@dataclass
class Found:
    """What one detection pass found: events to record, marks that changed."""

    events: list[Event] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)
    company_ids: dict[str, int | None] = field(default_factory=dict)
    """Per event key, the company it is about."""
    historical: set[str] = field(default_factory=set)
    """Keys of events about mail received long before it was found."""

    def add(self, event: Event, company_id: int | None = None, historical: bool = False
            ) -> None:
        self.events.append(event)
        self.company_ids[event.key] = company_id
        if historical:
            self.historical.add(event.key)


_UNEXPECTED = [r.value for r in Relation if r.unexpected]
_IDENTIFIABLE = [k.value for k in SenderKind if k.identifiable]


def existing_keys(session: Session, keys: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), _IN_CHUNK):
        found.update(session.exec(select(AlertEventRecord.key).where(
            col(AlertEventRecord.key).in_(wanted[start:start + _IN_CHUNK]))).all())
    return found


def _sender_column() -> Any:
    return func.coalesce(col(Message.sender_org), UNKNOWN_SENDER)


def _new_sender_key(company_id: int, sender: str) -> str:
    return f"new_sender:{company_id}:{sender}"


def _first_message(session: Session, company_id: int, sender: str
                   ) -> tuple[Message, Alias] | None:
    """The first unexpected message from `sender` on the company's aliases."""
    row = session.exec(
        select(Message, Alias).join(Alias, col(Alias.id) == col(Message.alias_id))
        .where(Alias.company_id == company_id, col(Message.relation).in_(_UNEXPECTED),
               _sender_column() == sender, col(Message.analysed_at).is_not(None))
        .order_by(col(Message.received_at), col(Message.id)).limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else None


def _known_before(session: Session, company_id: int | None, sender: str, since: datetime,
                  relations: Sequence[str]) -> bool:
    """Whether the sender had mail of these relations analysed before alerts began."""
    query = (select(func.count()).select_from(Message)
             .join(Alias, col(Alias.id) == col(Message.alias_id))
             .where(_sender_column() == sender, col(Message.relation).in_(relations),
                    col(Message.analysed_at) <= since))
    if company_id is not None:
        query = query.where(Alias.company_id == company_id)
    return bool(session.exec(query).one())


def _broker_companies(session: Session, sender: str) -> tuple[str, ...]:
    names = session.exec(
        select(Company.name).join(Alias, col(Alias.company_id) == col(Company.id))
        .join(Message, col(Message.alias_id) == col(Alias.id))
        .where(Message.relation == Relation.THIRD_PARTY.value, Message.sender_org == sender,
               col(Message.sender_kind).in_(_IDENTIFIABLE)).distinct()
    ).all()
    return tuple(sorted(names))


def _authenticated_by(message: Message) -> AuthenticatedBy | None:
    if message.auth_method is None:
        return None
    return AuthenticatedBy(AuthMethod(message.auth_method), message.auth_domain)


def _new_sender(message: Message, alias: Alias, company: CompanyReport, sender: str,
                previous: str | None) -> Event:
    relation = Relation(message.relation or Relation.UNVERIFIED.value)
    kind = SenderKind(message.sender_kind) if message.sender_kind else None
    return Event(
        EventKind.NEW_SENDER, _new_sender_key(alias.company_id, sender),
        new_sender_severity(relation, kind), message.received_at,
        company=company.name, alias=alias.address, sender=sender, sender_kind=kind,
        relation=relation, authenticated_by=_authenticated_by(message),
        verdict=company.verdict.value,
        previous_verdict=previous if previous not in (None, company.verdict.value) else None,
        days_since_issued=max((message.received_at - alias.issued_at).days, 0),
        subject=message.subject,
    )


def _company_events(session: Session, found: Found, report: CompanyReport, company_id: int,
                    new_senders: Sequence[str], previous: str | None,
                    since: datetime | None, now: datetime) -> None:
    alias = report.aliases[-1].address if report.aliases else None
    verdict = report.verdict.value
    for sender in new_senders:
        first = _first_message(session, company_id, sender)
        if first is None:
            continue
        if since is not None and _known_before(session, company_id, sender, since,
                                               _UNEXPECTED):
            continue
        event = _new_sender(first[0], first[1], report, sender, previous)
        found.add(event, company_id, historical=now - event.occurred_at > HISTORICAL)
    if worsened(previous, verdict) and not any(
            found.company_ids.get(e.key) == company_id for e in found.events):
        best = next((s for s in report.unexpected), None)
        found.add(Event(
            EventKind.VERDICT_CHANGED, f"verdict_changed:{company_id}:{previous}:{verdict}",
            verdict_severity(verdict), now, company=report.name, alias=alias,
            sender=best.organisation if best else None, verdict=verdict,
            previous_verdict=previous, detail=report.confidence_reason), company_id)
    for finding in report.findings:
        kind = EventKind(finding.kind.value)
        last = max((m.received_at for m in finding.messages), default=now)
        if since is not None and last <= since:
            continue
        found.add(Event(kind, f"{kind.value}:{company_id}", KIND_SEVERITY[kind], last,
                        company=report.name, alias=alias, verdict=verdict,
                        detail=finding.summary), company_id,
                  historical=now - last > HISTORICAL)
    for summary in report.senders:
        if not (summary.accusable and summary.elsewhere >= 1):
            continue
        if since is not None and _known_before(session, None, summary.organisation, since,
                                               [Relation.THIRD_PARTY.value]):
            continue
        companies = _broker_companies(session, summary.organisation)
        found.add(Event(EventKind.BROKER, f"broker:{summary.organisation}",
                        KIND_SEVERITY[EventKind.BROKER], summary.last_seen,
                        sender=summary.organisation, sender_kind=summary.kind,
                        relation=summary.relation, companies=companies,
                        detail=f"{summary.organisation} mails the aliases of "
                               f"{plural(len(companies), 'company', 'companies')}"),
                  historical=now - summary.last_seen > HISTORICAL)
    if verdict != previous:
        found.marks[f"{VERDICT}{company_id}"] = verdict


def _analysis_events(session: Session, found: Found, marks: dict[str, str], now: datetime
                     ) -> None:
    """Companies with new analysed mail: new senders, worse verdicts, findings, brokers."""
    watermark = _time(marks.get(WATERMARK))
    since = _time(marks.get(SINCE))
    upper = session.exec(select(func.max(Message.analysed_at))).one()
    if upper is None:
        return
    scan_from = watermark - MARGIN if watermark is not None else None
    window = [col(Message.analysed_at) <= upper]
    if scan_from is not None:
        window.append(col(Message.analysed_at) > scan_from)
    # Grouped by the column itself: PostgreSQL does not see two COALESCEs with a bound
    # parameter each as the same expression, so the unknown sender is named here.
    pairs = list(dict.fromkeys((company_id, sender or UNKNOWN_SENDER) for company_id, sender
                               in session.exec(
        select(Alias.company_id, Message.sender_org).select_from(Message).join(
            Alias, col(Alias.id) == col(Message.alias_id))
        .where(col(Message.relation).in_(_UNEXPECTED), *window)
        .group_by(col(Alias.company_id), col(Message.sender_org))
    ).all()))
    known = existing_keys(session, (_new_sender_key(c, s) for c, s in pairs))
    new_senders: dict[int, list[str]] = {}
    for company_id, sender in pairs:
        if _new_sender_key(company_id, sender) not in known:
            new_senders.setdefault(company_id, []).append(sender)
    fresh = [col(Message.analysed_at) <= upper]
    if watermark is not None:
        fresh.append(col(Message.analysed_at) > watermark)
    with_new_mail = set(session.exec(
        select(Alias.company_id).select_from(Message)
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .where(col(Message.analysed_at).is_not(None), *fresh).distinct()).all())
    evaluate = sorted(with_new_mail | set(new_senders))
    if iso_time(upper) != marks.get(WATERMARK):
        found.marks[WATERMARK] = iso_time(upper)
    if not evaluate:
        return
    slugs = dict(session.exec(select(Company.id, Company.slug)
                              .where(col(Company.id).in_(evaluate))).all())
    previous = _marks(session, (f"{VERDICT}{c}" for c in evaluate))
    reports = {r.slug: r for r in build_reports(session, list(slugs.values()),
                                                timeline=False).companies}
    for company_id in evaluate:
        assert company_id is not None
        report = reports[slugs[company_id]]
        _company_events(session, found, report, company_id, new_senders.get(company_id, []),
                        previous.get(f"{VERDICT}{company_id}"), since, now)


def _count_event(found: Found, marks: dict[str, str], mark: str, count: int, event: Event
                 ) -> None:
    """An event when a count (failed deliveries, messages set aside) grew since the last pass."""
    before = int(marks.get(mark, "0"))
    if count > before:
        found.add(event)
    if count != before:
        found.marks[mark] = str(count)


def _health_events(session: Session, found: Found, marks: dict[str, str], now: datetime
                   ) -> None:
    failed = failed_count(session)
    before = int(marks.get(DELIVERIES_FAILED, "0"))
    if failed > before:
        last_error = session.exec(
            select(DeliveryJob.last_error).where(DeliveryJob.state == "failed")
            .order_by(col(DeliveryJob.id).desc()).limit(1)).first()
        _count_event(found, marks, DELIVERIES_FAILED, failed, Event(
            EventKind.DELIVERY_FAILED, f"delivery_failed:{failed}",
            KIND_SEVERITY[EventKind.DELIVERY_FAILED], now, count=failed - before,
            detail=(f"{plural(failed - before, 'message')} could not be delivered to your "
                    f"mailbox and will not be retried; the last error: {last_error or '?'}")))
    elif failed != before:
        found.marks[DELIVERIES_FAILED] = str(failed)
    set_aside = session.exec(select(func.count()).select_from(Message).where(
        col(Message.set_aside_at).is_not(None))).one()
    before = int(marks.get(SET_ASIDE, "0"))
    _count_event(found, marks, SET_ASIDE, set_aside, Event(
        EventKind.ANALYSIS_STUCK, f"set_aside:{set_aside}",
        KIND_SEVERITY[EventKind.ANALYSIS_STUCK], now, count=set_aside - before,
        detail=(f"Analysis failed on {plural(set_aside - before, 'message')} three times "
                "(Canary's fault, not the sender's): set aside, out of the verdicts. Please "
                "report it.")))


def _probe_events(session: Session, found: Found, marks: dict[str, str], now: datetime,
                  probes_per_hour: int) -> None:
    last = _time(marks.get(PROBES_ALERTED))
    if last is not None and now - last < PROBE_WINDOW:
        return
    count = session.exec(select(func.count()).select_from(Probe).where(
        col(Probe.received_at) > now - PROBE_WINDOW, col(Probe.received_at) <= now)).one()
    if count >= probes_per_hour:
        found.add(Event(EventKind.PROBES, f"probes:{iso_time(now)}",
                        KIND_SEVERITY[EventKind.PROBES], now, count=count))
        found.marks[PROBES_ALERTED] = iso_time(now)


def find_events(session: Session, now: datetime, probes_per_hour: int) -> Found:
    """Every event committed analysis (and the queues beside it) shows since the last pass.

    Only reads; `record_events` writes what it found.
    """
    found = Found()
    marks = _marks(session, (WATERMARK, SINCE, DELIVERIES_FAILED, SET_ASIDE, PROBES_ALERTED))
    _analysis_events(session, found, marks, now)
    _health_events(session, found, marks, now)
    _probe_events(session, found, marks, now, probes_per_hour)
    return found


def record_events(session: Session, found: Found, now: datetime) -> int:
    """Insert the events not recorded yet (by key) and remember the marks; return how many
    were new."""
    new = 0
    if found.events:
        known = existing_keys(session, (e.key for e in found.events))
        fresh = [e for e in found.events if e.key not in known]
        rows = [{"key": e.key, "kind": e.kind.value, "severity": e.severity.rank,
                 "company_id": found.company_ids.get(e.key),
                 "historical": e.key in found.historical, "occurred_at": e.occurred_at,
                 "created_at": now, "details": json.dumps(e.to_dict(), ensure_ascii=False)}
                for e in dict((e.key, e) for e in fresh).values()]
        if rows:
            result = session.connection().execute(insert_ignoring_duplicates(
                session.connection().dialect.name, AlertEventRecord), rows)
            # Some drivers cannot count the rows of a multi-row insert: they were new when
            # looked up a moment ago, in this transaction.
            new = result.rowcount if result.rowcount is not None and result.rowcount >= 0 \
                else len(rows)
    set_marks(session, found.marks, now)
    return new


# --- channels and sends -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelFilter:
    """What the queue needs of a channel: its key, the kinds it wants, its least severity."""

    key: str
    kinds: frozenset[EventKind]
    min_severity: Severity


def register_channels(session: Session, keys: Iterable[str], now: datetime) -> None:
    """Remember when each channel was first seen: it gets the events recorded from then on."""
    newest = session.exec(select(func.max(AlertEventRecord.id))).one() or 0
    for key in keys:
        if session.get(AlertChannelRecord, key) is None:
            session.add(AlertChannelRecord(key=key, first_event_id=newest + 1, added_at=now))
    session.flush()


def forget_channel(session: Session, key: str) -> None:
    """A removed channel: its sends and its record go (added again, it starts afresh)."""
    session.connection().execute(delete(AlertSendRecord).where(
        col(AlertSendRecord.channel) == key))
    record = session.get(AlertChannelRecord, key)
    if record is not None:
        session.delete(record)
    session.flush()


def queue_sends(session: Session, channels: Sequence[ChannelFilter], now: datetime) -> int:
    """Queue, set-based, every event each channel wants and has no send for yet."""
    made = 0
    for channel in channels:
        record = session.get(AlertChannelRecord, channel.key)
        if record is None or not channel.kinds:
            continue
        queued = exists().where(col(AlertSendRecord.event_id) == col(AlertEventRecord.id),
                                col(AlertSendRecord.channel) == channel.key)
        rows = sa_select(
            col(AlertEventRecord.id), literal(channel.key), literal("pending"), literal(0),
            literal(now, UTCDateTime()), literal(False),
        ).where(col(AlertEventRecord.id) >= record.first_event_id,
                col(AlertEventRecord.kind).in_(sorted(k.value for k in channel.kinds)),
                col(AlertEventRecord.severity) >= channel.min_severity.rank, ~queued
                ).order_by(col(AlertEventRecord.id))
        result = session.connection().execute(insert(AlertSendRecord).from_select(
            ["event_id", "channel", "state", "attempts", "created_at", "digest"], rows))
        made += result.rowcount or 0
    return made


@dataclass(frozen=True, slots=True)
class DueSend:
    send_id: int
    event: Event
    created_at: datetime
    historical: bool = False
    """About mail received long before it was found: goes out with the rest of its kind."""


def _due(now: datetime) -> Any:
    return and_(col(AlertSendRecord.state) == "pending",
                or_(col(AlertSendRecord.next_attempt_at).is_(None),
                    col(AlertSendRecord.next_attempt_at) <= now),
                or_(col(AlertSendRecord.claimed_until).is_(None),
                    col(AlertSendRecord.claimed_until) < now))


def claim_due(session: Session, channel: str, now: datetime, *, hold_historical: bool,
              limit: int = CLAIM_LIMIT) -> list[DueSend]:
    """Claim the channel's sends due now, in the order their events were found, for
    `CLAIM_FOR`.

    With `hold_historical`, events about old mail (an import) wait while analysis still has
    mail to do, so they go out together; at most a day.
    """
    query = (select(AlertSendRecord, AlertEventRecord)
             .join(AlertEventRecord, col(AlertEventRecord.id) == col(AlertSendRecord.event_id))
             .where(AlertSendRecord.channel == channel, _due(now))
             .order_by(col(AlertSendRecord.event_id)).limit(limit))
    if hold_historical:
        query = query.where(or_(col(AlertEventRecord.historical).is_(False),
                                col(AlertEventRecord.created_at) < now - HISTORICAL))
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=AlertSendRecord)
    rows = session.exec(query).all()
    if not rows:
        return []
    ids = [send.id for send, _ in rows if send.id is not None]
    session.connection().execute(update(AlertSendRecord).where(
        col(AlertSendRecord.id).in_(ids)).values(claimed_until=now + CLAIM_FOR))
    return [DueSend(send.id, Event.from_dict(json.loads(event.details), event.id),
                    send.created_at, event.historical)
            for send, event in rows if send.id is not None]


def has_due(session: Session, channel: str, now: datetime) -> bool:
    """Whether the channel has a send due now (read without a write lock)."""
    return session.exec(select(func.count()).select_from(AlertSendRecord).where(
        AlertSendRecord.channel == channel, _due(now))).one() > 0


def release(session: Session, send_ids: Sequence[int]) -> None:
    """Give claimed sends back untouched (the channel's hour is full)."""
    if send_ids:
        session.connection().execute(update(AlertSendRecord).where(
            col(AlertSendRecord.id).in_(list(send_ids))).values(claimed_until=None))


def sent_this_hour(session: Session, channel: str, now: datetime) -> int:
    """Messages (an alert or a digest each) the channel got in the last hour."""
    return session.exec(select(func.count(func.distinct(AlertSendRecord.batch_id))).where(
        AlertSendRecord.channel == channel, AlertSendRecord.state == "sent",
        col(AlertSendRecord.sent_at) > now - timedelta(hours=1))).one()


def _channel(session: Session, key: str, now: datetime) -> AlertChannelRecord:
    record = session.get(AlertChannelRecord, key)
    if record is None:
        record = AlertChannelRecord(key=key, first_event_id=0, added_at=now)
    return record


def record_sent(session: Session, channel: str, send_ids: Sequence[int], now: datetime,
                digest: bool) -> None:
    session.connection().execute(update(AlertSendRecord).where(
        col(AlertSendRecord.id).in_(list(send_ids))).values(
        state="sent", sent_at=now, batch_id=min(send_ids), digest=digest, claimed_until=None,
        last_error=None, attempts=AlertSendRecord.attempts + 1))
    record = _channel(session, channel, now)
    record.last_sent_at, record.failing_since, record.last_error = now, None, None
    session.add(record)


def record_failure(session: Session, channel: str, sends: Sequence[DueSend], error: str,
                   now: datetime, first_retry: timedelta, retry_for: timedelta) -> int:
    """A failed send: retried with growing pauses, failed for good after `retry_for`; return
    how many were given up on."""
    given_up = 0
    for due in sends:
        send = session.get(AlertSendRecord, due.send_id)
        if send is None:
            continue
        send.attempts += 1
        send.last_error, send.claimed_until = error[:500], None
        if now - send.created_at >= retry_for:
            send.state = "failed"
            given_up += 1
        else:
            send.next_attempt_at = now + retry_delay(send.attempts, first_retry)
        session.add(send)
    record = _channel(session, channel, now)
    record.failing_since = record.failing_since or now
    record.last_error = error[:500]
    session.add(record)
    return given_up


def next_due(session: Session) -> datetime | None:
    """When the next retry is due, for an alerter deciding how long to sleep."""
    found: datetime | None = session.exec(select(func.min(AlertSendRecord.next_attempt_at))
                                          .where(AlertSendRecord.state == "pending")).one()
    return found


def channel_states(session: Session) -> dict[str, ChannelState]:
    """How each channel the queue knows has been doing (`data.summary.channel_states`)."""
    return read_channel_states(session.connection().connection.driver_connection)


def recorded_events(session: Session, after_id: int = 0) -> list[Event]:
    """Events recorded after `after_id`, oldest first (the demo prints them)."""
    rows = session.exec(select(AlertEventRecord).where(col(AlertEventRecord.id) > after_id)
                        .order_by(col(AlertEventRecord.id))).all()
    return [Event.from_dict(json.loads(r.details), r.id) for r in rows]


@dataclass(frozen=True, slots=True)
class AnalysisProgress:
    analysed: int
    waiting: int
    """Messages neither analysed nor set aside."""
    temperror: int
    """Of those, waiting for DNS to answer."""


def analysis_progress(session: Session) -> AnalysisProgress:
    analysed = session.exec(select(func.count()).select_from(Message).where(
        col(Message.analysed_at).is_not(None))).one()
    waiting, temperror = session.exec(
        select(func.count(), func.count(col(Message.temperror))).select_from(Message).where(
            col(Message.analysed_at).is_(None), col(Message.set_aside_at).is_(None))).one()
    return AnalysisProgress(analysed, waiting, temperror)

