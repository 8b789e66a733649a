"""The delivery queue: one job per message and destination, durable like the mail itself.

Jobs are made, set-based, for mail that is ready (analysed, set aside, or
waiting on DNS for longer than the analysis wait) and has none yet for a destination; a
destination gets the mail received from the moment it was first configured
on. A deliverer claims due jobs for a short lease, so two deliverers never
send the same job at once; it records each outcome as soon as it is known.
A crash between the destination's acceptance and that record is the one
window in which a message can be delivered twice. Held jobs wait for the
person: `release` or `drop` (the evidence is kept either way).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, insert, literal, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from canary.aliases import RetireReply
from canary.authentication import Authentication, authentication_from_dict
from canary.delivery import Action, DeliveryState
from canary.relation import Relation
from data.mailstore import raw_message
from data.models import (
    Alias,
    Company,
    DeliveryDestination,
    DeliveryJob,
    Message,
    MessageEvidence,
    UTCDateTime,
)
from data.registry import find_company

CLAIM_FOR = timedelta(minutes=2)
"""How long a claim holds a job; the deliverer renews it as it starts each job, so a job is
never worked on past its claim, and a dead deliverer's claims run out soon."""


def register_destinations(session: Session, keys: Iterable[str], now: datetime) -> None:
    """Remember when each destination was first configured: it gets mail from then on."""
    newest = session.exec(select(func.max(Message.id))).one() or 0
    for key in keys:
        if session.get(DeliveryDestination, key) is None:
            session.add(DeliveryDestination(key=key, first_message_id=newest + 1, added_at=now))
    session.flush()


def create_jobs(session: Session, keys: Iterable[str], now: datetime,
                analysis_wait: timedelta) -> int:
    """Queue the ready mail that has no job yet for each destination; return how many."""
    made = 0
    # Analysed, or set aside, or waiting on DNS (tried at least once) for `analysis_wait`.
    # Mail never tried waits for the analyst: mail received "in the past" (an import, a
    # clock behind) is not delivered unlabelled before its first analysis.
    ready = or_(col(Message.analysed_at).is_not(None), col(Message.set_aside_at).is_not(None),
                and_(or_(col(Message.attempts) > 0, col(Message.failures) > 0),
                     col(Message.received_at) <= now - analysis_wait))
    for key in keys:
        destination = session.get(DeliveryDestination, key)
        if destination is None:
            continue
        queued = exists().where(col(DeliveryJob.message_id) == col(Message.id),
                                col(DeliveryJob.destination) == key)
        rows = sa_select(
            col(Message.id), literal(key), literal(DeliveryState.PENDING.value), literal(0),
            literal(now, UTCDateTime()),
        ).where(col(Message.id) >= destination.first_message_id, ready, ~queued)
        result = session.connection().execute(insert(DeliveryJob).from_select(
            ["message_id", "destination", "state", "attempts", "created_at"], rows))
        made += result.rowcount or 0
    return made


@dataclass(frozen=True, slots=True)
class DueJob:
    """A claimed job with everything needed to deliver it and label it."""

    id: int
    destination: str
    message_id: int
    sha256: str
    mail_from: str
    received_at: datetime
    alias: str
    retired_accepting: bool
    company_id: int
    company: str
    company_slug: str
    relation: Relation | None
    sender: str | None
    authentication: Authentication | None
    action: Action | None
    attempts: int
    created_at: datetime


def claim_due(session: Session, now: datetime, limit: int, claimant: str = "") -> list[DueJob]:
    """Claim up to `limit` jobs due now, oldest first, for `CLAIM_FOR`, for `claimant`."""
    free = or_(col(DeliveryJob.claimed_until).is_(None), col(DeliveryJob.claimed_until) < now)
    due = or_(col(DeliveryJob.next_attempt_at).is_(None), col(DeliveryJob.next_attempt_at) <= now)
    query = (
        sa_select(DeliveryJob, Message, Alias, Company, col(MessageEvidence.authentication))
        .join(Message, col(Message.id) == col(DeliveryJob.message_id))
        .join(MessageEvidence, col(MessageEvidence.message_id) == col(Message.id),
              isouter=True)
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .join(Company, col(Company.id) == col(Alias.company_id))
        .where(col(DeliveryJob.state) == DeliveryState.PENDING.value, due, free)
        .order_by(col(DeliveryJob.id))
        .limit(limit)
    )
    if session.connection().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=DeliveryJob)
    claimed = []
    for job, message, alias, company, authentication in session.execute(query).all():
        assert job.id is not None and message.id is not None and company.id is not None
        taken = session.connection().execute(
            update(DeliveryJob).where(col(DeliveryJob.id) == job.id, free)
            .values(claimed_until=now + CLAIM_FOR, claimed_by=claimant or None))
        if not taken.rowcount:
            continue
        claimed.append(DueJob(
            id=job.id, destination=job.destination, message_id=message.id,
            sha256=message.sha256, mail_from=message.mail_from,
            received_at=message.received_at, alias=alias.address,
            retired_accepting=alias.retired_at is not None
            and alias.retire_reply == RetireReply.ACCEPT.value,
            company_id=company.id, company=company.name, company_slug=company.slug,
            relation=Relation(message.relation) if message.relation else None,
            sender=message.sender_org,
            authentication=authentication_from_dict(json.loads(authentication))
            if authentication else None,
            action=Action(job.action) if job.action else None,
            attempts=job.attempts, created_at=job.created_at,
        ))
    return claimed


def renew_claim(session: Session, job_id: int, claimant: str, now: datetime) -> bool:
    """Extend our claim on a job we are about to deliver; False if it is no longer ours
    (it ran out and another deliverer took it): then leave it alone."""
    taken = session.connection().execute(
        update(DeliveryJob).where(col(DeliveryJob.id) == job_id,
                                  col(DeliveryJob.claimed_by) == claimant,
                                  col(DeliveryJob.state) == DeliveryState.PENDING.value)
        .values(claimed_until=now + CLAIM_FOR))
    return bool(taken.rowcount)


def release_dead_claims(session: Session, host: str, alive: Callable[[int], bool]) -> int:
    """Free the claims of deliverers on this host whose process is gone (killed, crashed):
    their jobs are delivered now, not when the claims run out. Return how many."""
    rows = session.exec(select(DeliveryJob.id, DeliveryJob.claimed_by).where(
        col(DeliveryJob.claimed_by).startswith(f"{host}:"),
        DeliveryJob.state == DeliveryState.PENDING.value)).all()
    dead = [job_id for job_id, claimant in rows
            if claimant and not alive(int(claimant.split(":")[1]))]
    if dead:
        session.connection().execute(
            update(DeliveryJob).where(col(DeliveryJob.id).in_(dead))
            .values(claimed_until=None, claimed_by=None))
    return len(dead)


def job_raw(session: Session, job: DueJob) -> bytes:
    return raw_message(session, job.sha256)


def _job(session: Session, job_id: int) -> DeliveryJob:
    found = session.get(DeliveryJob, job_id)
    assert found is not None
    return found


def record_delivered(session: Session, job_id: int, action: Action, now: datetime) -> None:
    job = _job(session, job_id)
    job.state, job.action = DeliveryState.DELIVERED.value, action.value
    job.attempts += 1
    job.delivered_at, job.claimed_until, job.last_error = now, None, None
    job.claimed_by = None
    session.add(job)


def record_held(session: Session, job_id: int) -> None:
    job = _job(session, job_id)
    job.state, job.action, job.claimed_until = DeliveryState.HELD.value, Action.HOLD.value, None
    job.claimed_by = None
    session.add(job)


def record_retry(session: Session, job_id: int, action: Action, error: str,
                 at: datetime) -> None:
    job = _job(session, job_id)
    job.action = action.value
    job.attempts += 1
    job.last_error, job.next_attempt_at, job.claimed_until = error[:500], at, None
    job.claimed_by = None
    session.add(job)


def record_failed(session: Session, job_id: int, action: Action, error: str) -> None:
    job = _job(session, job_id)
    job.state, job.action = DeliveryState.FAILED.value, action.value
    job.attempts += 1
    job.last_error, job.claimed_until = error[:500], None
    job.claimed_by = None
    session.add(job)


@dataclass(frozen=True, slots=True)
class JobListing:
    """A delivery as the person sees it: which message, where, and how it went."""

    job_id: int
    message_id: int
    company: str
    alias: str
    relation: str | None
    sender: str | None
    subject: str | None
    received_at: datetime
    destination: str
    state: DeliveryState
    attempts: int
    last_error: str | None
    delivered_at: datetime | None


def _listing(session: Session, where: Sequence[object], names: Sequence[str] = ()
             ) -> list[JobListing]:
    query = (
        select(DeliveryJob, Message, Alias, Company)
        .join(Message, col(Message.id) == col(DeliveryJob.message_id))
        .join(Alias, col(Alias.id) == col(Message.alias_id))
        .join(Company, col(Company.id) == col(Alias.company_id))
        .where(*where)  # type: ignore[arg-type]
        .order_by(col(Message.received_at), col(DeliveryJob.id))
    )
    if names:
        ids = [find_company(session, name).id for name in names]
        query = query.where(col(Company.id).in_(ids))
    listing = []
    for job, message, alias, company in session.exec(query).all():
        assert job.id is not None and message.id is not None
        listing.append(JobListing(job.id, message.id, company.name, alias.address,
                                  message.relation, message.sender_org, message.subject,
                                  message.received_at, job.destination,
                                  DeliveryState(job.state), job.attempts, job.last_error,
                                  job.delivered_at))
    return listing


def held(session: Session, names: Sequence[str] = ()) -> list[JobListing]:
    """Jobs the policy holds, oldest first, for the named companies or all."""
    return _listing(session, [DeliveryJob.state == DeliveryState.HELD.value], names)


def deliveries(session: Session, *, failed_only: bool) -> list[JobListing]:
    """Every delivery job, or the failed ones; oldest first."""
    where = [DeliveryJob.state == DeliveryState.FAILED.value] if failed_only else []
    return _listing(session, where)


def failed_count(session: Session) -> int:
    return session.exec(select(func.count()).select_from(DeliveryJob).where(
        DeliveryJob.state == DeliveryState.FAILED.value)).one()


def _held_jobs(session: Session, message_ids: Sequence[int], company: str | None
               ) -> list[DeliveryJob]:
    query = select(DeliveryJob).where(DeliveryJob.state == DeliveryState.HELD.value)
    if company is not None:
        company_id = find_company(session, company).id
        query = query.join(Message, col(Message.id) == col(DeliveryJob.message_id)).join(
            Alias, col(Alias.id) == col(Message.alias_id)).where(Alias.company_id == company_id)
    else:
        query = query.where(col(DeliveryJob.message_id).in_(list(message_ids)))
    return list(session.exec(query).all())


def release(session: Session, message_ids: Sequence[int], company: str | None,
            now: datetime) -> list[int]:
    """Deliver held messages after all (labelled, as `deliver`); return their message ids."""
    jobs = _held_jobs(session, message_ids, company)
    for job in jobs:
        job.state, job.action = DeliveryState.PENDING.value, Action.DELIVER.value
        job.next_attempt_at, job.claimed_until = now, None
        session.add(job)
    return sorted({job.message_id for job in jobs})


def drop(session: Session, message_ids: Sequence[int], company: str | None) -> list[int]:
    """Mark held messages as not to be delivered (the evidence is kept); return their ids."""
    jobs = _held_jobs(session, message_ids, company)
    for job in jobs:
        job.state = DeliveryState.DROPPED.value
        session.add(job)
    return sorted({job.message_id for job in jobs})


def due_count(session: Session, now: datetime) -> int:
    """Pending jobs due now."""
    due = or_(col(DeliveryJob.next_attempt_at).is_(None), col(DeliveryJob.next_attempt_at) <= now)
    return session.exec(select(func.count()).select_from(DeliveryJob).where(
        DeliveryJob.state == DeliveryState.PENDING.value, due)).one()


def pending_jobs(session: Session) -> int:
    return session.exec(select(func.count()).select_from(DeliveryJob).where(
        DeliveryJob.state == DeliveryState.PENDING.value)).one()


def next_due(session: Session) -> datetime | None:
    """When the next pending job is due, for a deliverer deciding how long to sleep."""
    found: datetime | None = session.exec(
        select(func.min(DeliveryJob.next_attempt_at)).where(and_(
            col(DeliveryJob.state) == DeliveryState.PENDING.value,
            col(DeliveryJob.next_attempt_at).is_not(None)))).one()
    return found
