"""The alias directory: every alias with its company, domains and message counts.

`canary aliases` is the command a person or a script runs most often, so it
is read with plain SQL through a DB-API connection: on the default SQLite
home, `read_sqlite` needs only the standard library's `sqlite3` and the
command starts without loading SQLAlchemy (`canary show` reads the same
way, `data.summary`). On PostgreSQL, or with `--db`, the same SQL runs
through the store session's connection (`cli.workspace.read_plainly`).
Nothing here writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from canary.aliases import RetireReply
from canary.relation import Relation
from data import schema

if TYPE_CHECKING:
    pass

T = TypeVar("T")

BUSY_SECONDS = 30.0
"""As long as the store waits for a writer's lock (`data.database.BUSY_TIMEOUT_MS`)."""


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
    retire_reply: RetireReply | None = None


_UNEXPECTED = ", ".join(f"'{r.value}'" for r in Relation if not r.expected)
_COUNTS = ("SELECT alias_id, count(*), "
           f"sum(CASE WHEN relation IN ({_UNEXPECTED}) THEN 1 ELSE 0 END) "
           "FROM message GROUP BY alias_id")
_DOMAINS = "SELECT company_id, domain FROM companydomain ORDER BY company_id, domain"
_ALIASES = ("SELECT alias.id, company.id, company.name, company.note, alias.address, "
            "alias.issued_at, alias.retired_at, alias.retire_reply "
            "FROM alias JOIN company ON company.id = alias.company_id")


def stored_time(value: Any) -> datetime:
    """A stored time as an aware UTC datetime (SQLite keeps text, PostgreSQL a naive time)."""
    if isinstance(value, str) and len(value) >= 19:  # SQLite's "YYYY-MM-DD HH:MM:SS[.ffffff]"
        try:  # read as UTC at once: a report reads hundreds of thousands
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            pass
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC)


def read_directory(connection: Any) -> list[AliasListing]:
    """Every alias, by company name then issue date, read through a DB-API connection."""
    cursor = connection.cursor()
    try:
        cursor.execute(_COUNTS)
        counts = {alias_id: (int(total), int(unexpected or 0))
                  for alias_id, total, unexpected in cursor.fetchall()}
        cursor.execute(_DOMAINS)
        domains: dict[int, list[str]] = {}
        for company_id, domain in cursor.fetchall():
            domains.setdefault(company_id, []).append(domain)
        cursor.execute(_ALIASES)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    listing = []
    for alias_id, company_id, name, note, address, issued_at, retired_at, reply in rows:
        total, unexpected = counts.get(alias_id, (0, 0))
        listing.append(AliasListing(
            company=name, address=address, issued_at=stored_time(issued_at),
            domains=tuple(domains.get(company_id, ())), note=note, messages=total,
            unexpected=unexpected, retired_at=stored_time(retired_at) if retired_at else None,
            retire_reply=RetireReply(reply) if reply else None))
    # Sorted here, not by the database, whose collation may differ (PostgreSQL's ICU
    # locales ignore case): the same order on every database, as the report's.
    listing.sort(key=lambda a: (a.company, a.issued_at))
    return listing


def read_sqlite(path: Path, reader: Callable[[Any], T]) -> T:
    """What `reader` reads, in one snapshot, from the SQLite database at `path` through
    `sqlite3` alone (the caller has checked that the file exists).

    Raises `SchemaOutdated` or `SchemaTooNew` like every command that opens a store.
    """
    connection = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    try:
        connection.execute("BEGIN")  # one snapshot for everything read
        try:
            found = connection.execute(
                f"SELECT version_num FROM {schema.VERSION_TABLE}").fetchone()
        except sqlite3.OperationalError:  # no version table: empty, or release 0.1.0
            found = None
        schema.check_revision(str(found[0]) if found else None)
        return reader(connection)
    finally:
        connection.close()
