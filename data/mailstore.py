"""What the listener writes: accepted mail, exactly as received, and probes.

`store_deliveries` is called by the listener's store process with a group
of accepted messages; the caller commits, and only then does the listener
answer 250. A message already stored for the same alias (same SHA-256) is
not stored again. Raw bytes are kept zlib-compressed, exactly as received.
Nothing here parses a message: that is analysis's business (`data.analyses`).
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert
from sqlmodel import Session, SQLModel, col, select

from canary.aliases import RetireReply
from data.models import Alias, Message, Probe, RawMessage


@dataclass(frozen=True, slots=True)
class Delivery:
    """One accepted DATA transaction: raw bytes and the envelope."""

    raw: bytes
    recipients: tuple[tuple[int, str], ...]
    """(alias id, RCPT TO address as given) for every accepted recipient."""
    mail_from: str
    peer_ip: str
    helo: str | None
    tls: bool
    received_at: datetime
    forwarded_by: str | None = None
    import_id: int | None = None
    """For mail read by `canary import`: where from."""
    receipt_estimated: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


@dataclass(frozen=True, slots=True)
class ProbeAttempt:
    received_at: datetime
    peer_ip: str
    address: str
    mail_from: str | None


@dataclass(frozen=True, slots=True)
class IssuedAddress:
    alias_id: int
    rejected: bool
    """Retired by its owner with `--reply reject`: RCPT gets 550."""


def issued_alias(session: Session, address: str) -> IssuedAddress | None:
    """The issued alias with this normalised address, if any, and whether it still accepts."""
    alias = session.exec(select(Alias).where(Alias.address == address)).first()
    if alias is None or alias.id is None:
        return None
    return IssuedAddress(alias.id, alias.retired_at is not None
                         and alias.retire_reply == RetireReply.REJECT.value)


@functools.cache
def insert_ignoring_duplicates(dialect: str, table: type[SQLModel]) -> Any:
    """INSERT that skips rows whose key is already stored (SQLite and PostgreSQL).

    Each dialect is imported when first used: a command on an SQLite home never loads
    PostgreSQL's (a tenth of a second)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def store_deliveries(target: Session | Connection, deliveries: Sequence[Delivery]) -> None:
    """Add a group of deliveries in two multi-row INSERTs.

    The store process calls this with a whole group. A message already
    stored (same SHA-256) or already delivered to the same alias is skipped
    by the database's unique keys, not by lookups first: a lookup per message
    would cost a round trip before every 250.
    """
    raw_rows: dict[str, dict[str, object]] = {}
    message_rows: dict[tuple[str, int], dict[str, object]] = {}
    for delivery in deliveries:
        digest = delivery.sha256
        if digest not in raw_rows:
            raw_rows[digest] = {"sha256": digest, "size": len(delivery.raw),
                                # Level 1, the fastest: this runs before every 250.
                                "content": zlib.compress(delivery.raw, 1)}
        for alias_id, rcpt_to in delivery.recipients:
            message_rows.setdefault((digest, alias_id), {
                "sha256": digest, "alias_id": alias_id, "rcpt_to": rcpt_to,
                "mail_from": delivery.mail_from, "peer_ip": delivery.peer_ip,
                "helo": delivery.helo, "tls": delivery.tls,
                "received_at": delivery.received_at, "forwarded_by": delivery.forwarded_by,
                "attempts": 0, "import_id": delivery.import_id,
                "receipt_estimated": delivery.receipt_estimated,
            })
    if not raw_rows:
        return
    connection = target.connection() if isinstance(target, Session) else target
    dialect = connection.dialect.name
    # Rows in a stable order: two listeners storing the same messages at once (several MXes
    # on one PostgreSQL) take their row locks in the same order and cannot deadlock.
    connection.execute(insert_ignoring_duplicates(dialect, RawMessage),
                       [raw_rows[k] for k in sorted(raw_rows)])
    connection.execute(insert_ignoring_duplicates(dialect, Message),
                       [message_rows[k] for k in sorted(message_rows)])


def record_probes(target: Session | Connection, probes: Iterable[ProbeAttempt]) -> None:
    rows = [
        {"received_at": p.received_at, "peer_ip": p.peer_ip, "address": p.address[:320],
         "mail_from": p.mail_from}
        for p in probes
    ]
    if rows:
        connection = target.connection() if isinstance(target, Session) else target
        connection.execute(insert(Probe), rows)


def raw_message(session: Session, sha256: str) -> bytes:
    stored = session.get(RawMessage, sha256)
    if stored is None:
        raise KeyError(sha256)
    return zlib.decompress(stored.content)


def raw_contents(session: Session, sha256s: Collection[str]) -> dict[str, bytes]:
    """The stored (compressed) bytes of these messages, by SHA-256, in one query."""
    if not sha256s:
        return {}
    return dict(session.execute(
        select(RawMessage.sha256, RawMessage.content)
        .where(col(RawMessage.sha256).in_(sorted(sha256s)))).all())
