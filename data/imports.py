"""Imported mail: where it came from, how far an import got, and storing it once.

`canary import` reads a mailbox (mbox, Maildir or an IMAP folder) and hands
this module batches of messages already matched to aliases. Each message is
stored exactly as it was received, like mail the listener accepted, marked
with its import source; a message already stored for the same alias is
counted as a duplicate, so importing the same source twice, or overlapping
ones, stores nothing twice. The source row keeps the counts and, for IMAP,
where a rerun goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import tuple_, update
from sqlmodel import Session, col, select

from data.mailstore import Delivery, store_deliveries
from data.models import ImportSource, Message


@dataclass
class ImportCounts:
    """What one run of an import did."""

    read: int = 0
    stored: int = 0
    skipped: int = 0
    """Messages to no alias: counted, never stored."""
    duplicates: int = 0
    problems: int = 0

    def add(self, other: ImportCounts) -> None:
        for name in ("read", "stored", "skipped", "duplicates", "problems"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def begin_import(session: Session, source: str, trusted_authserv_id: str | None,
                 now: datetime) -> ImportSource:
    """The source's row (made on its first import), ready for another run."""
    row = session.exec(select(ImportSource).where(ImportSource.source == source)).first()
    if row is None:
        row = ImportSource(source=source, trusted_authserv_id=trusted_authserv_id,
                           started_at=now)
    else:
        row.started_at, row.finished_at = now, None
        if trusted_authserv_id and trusted_authserv_id != row.trusted_authserv_id:
            row.trusted_authserv_id = trusted_authserv_id
            # Mail imported before is judged again with the provider's results believed.
            session.connection().execute(
                update(Message).where(col(Message.import_id) == row.id)
                .values(analysed_at=None, retry_at=None, attempts=0))
    session.add(row)
    session.flush()
    return row


def store_imported(session: Session, import_id: int, deliveries: Sequence[Delivery],
                   counts: ImportCounts, resume: str | None) -> None:
    """Store a batch (already matched to aliases), count what was new and what was stored
    before, and note where a rerun goes on."""
    wanted = {(d.sha256, alias_id) for d in deliveries for alias_id, _ in d.recipients}
    known: set[tuple[str, int]] = set()
    if wanted:
        known = set(session.exec(select(Message.sha256, Message.alias_id).where(
            tuple_(col(Message.sha256), col(Message.alias_id)).in_(list(wanted)))).all())
    fresh = []
    for delivery in deliveries:  # new to the database, and not earlier in this very batch
        keys = {(delivery.sha256, alias_id) for alias_id, _ in delivery.recipients}
        if not keys <= known:
            fresh.append(delivery)
            known |= keys
    counts.duplicates += len(deliveries) - len(fresh)
    counts.stored += len(fresh)
    store_deliveries(session, fresh)
    if resume is not None:
        row = session.get(ImportSource, import_id)
        assert row is not None
        row.resume = resume
        session.add(row)


def finish_import(session: Session, import_id: int, counts: ImportCounts,
                  now: datetime) -> None:
    """Add the run's counts to the source's, and record that it ended."""
    row = session.get(ImportSource, import_id)
    assert row is not None
    row.read += counts.read
    row.stored += counts.stored
    row.skipped += counts.skipped
    row.duplicates += counts.duplicates
    row.problems += counts.problems
    row.finished_at = now
    session.add(row)


def resume_point(session: Session, source: str) -> str | None:
    row = session.exec(select(ImportSource).where(ImportSource.source == source)).first()
    return row.resume if row is not None else None
