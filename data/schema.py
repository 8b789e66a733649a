"""The database schema's revision: what this Canary needs, and how a home gets there.

Schema changes are Alembic migrations (`data/migrations/versions`), the
same for SQLite and PostgreSQL. A new database is created at the newest
revision and stamped with it. Every command checks the revision before it
uses a database (one indexed read, no Alembic import): an older home says
to run `canary upgrade`, a newer one refuses, so an old Canary never writes
rows it does not understand. A home made by release 0.1.0 has the tables
but no revision; `upgrade` recognises it and starts from 0001.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from canary.errors import SchemaOutdated, SchemaTooNew

if TYPE_CHECKING:  # `canary aliases` checks the revision with sqlite3 alone
    from alembic.config import Config
    from sqlalchemy import Connection

REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007",
             "0008", "0009")
"""Every revision, oldest first; the last is the one this code needs."""
SCHEMA_REVISION = REVISIONS[-1]
VERSION_TABLE = "alembic_version"
RELEASE_0_1_0 = "0001"
"""The schema of the last release made without migrations."""
ATTRIBUTION_CHANGED = ("0003",)
"""Revisions that came with a new attribution model: stored mail is decided again."""


def reattribution_needed(before: str | None) -> bool:
    """Whether an upgrade from `before` crossed a change of the attribution model."""
    start = REVISIONS.index(before) + 1 if before in REVISIONS else 0
    return any(r in ATTRIBUTION_CHANGED for r in REVISIONS[start:]) and before != SCHEMA_REVISION


def revision_of(connection: Connection) -> str | None:
    """The database's revision; None for an empty database or one older than migrations."""
    from sqlalchemy import inspect, text

    if not inspect(connection).has_table(VERSION_TABLE):
        return None
    found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return str(found) if found is not None else None


def check(connection: Connection) -> None:
    """Raise `SchemaOutdated` or `SchemaTooNew` unless the database is at this code's revision."""
    check_revision(revision_of(connection))


def check_revision(found: str | None) -> None:
    """Raise `SchemaOutdated` or `SchemaTooNew` unless `found` is this code's revision."""
    if found == SCHEMA_REVISION:
        return
    if found is not None and found not in REVISIONS:
        raise SchemaTooNew(found, SCHEMA_REVISION)
    raise SchemaOutdated(found, SCHEMA_REVISION)


def stamp(connection: Connection, revision: str = SCHEMA_REVISION) -> None:
    """Record `revision` in a database whose tables were made by this code."""
    from sqlalchemy import text

    connection.execute(text(
        f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
        "(version_num VARCHAR(32) NOT NULL PRIMARY KEY)"
    ))
    connection.execute(text(f"DELETE FROM {VERSION_TABLE}"))
    connection.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:v)"),
                       {"v": revision})


def alembic_config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    from data import migrations

    config = Config()
    # The installed package's own folder: a `data` folder elsewhere on sys.path must not
    # stand in for it.
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["connection"] = connection
    return config


@contextmanager
def _foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite copies a table to alter it; its foreign keys must not fire meanwhile.

    The pragma is a no-op inside a transaction, so it goes straight to the driver
    between transactions.
    """
    sqlite = connection.dialect.name == "sqlite"
    driver = connection.connection.driver_connection
    if sqlite and driver is not None:
        driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        if sqlite and driver is not None:
            driver.execute("PRAGMA foreign_keys=ON")


def upgrade(connection: Connection) -> tuple[str | None, str]:
    """Migrate the database to this code's revision; return (from, to).

    Raises `SchemaTooNew` for a database made by a newer Canary.
    """
    from alembic import command
    from sqlalchemy import inspect

    found = revision_of(connection)
    release_0_1_0 = found is None and inspect(connection).has_table("message")
    connection.rollback()
    if found is not None and found not in REVISIONS:
        raise SchemaTooNew(found, SCHEMA_REVISION)
    if release_0_1_0:
        stamp(connection, RELEASE_0_1_0)
        connection.commit()
    with _foreign_keys_off(connection):
        command.upgrade(alembic_config(connection), "head")
        if connection.in_transaction():
            connection.commit()
    return found, SCHEMA_REVISION


def head_revision() -> str:
    """Alembic's own idea of the newest revision (tests compare it with `SCHEMA_REVISION`)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


if __name__ == "__main__":  # python -m data.schema revision "what changes"
    from alembic import command

    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit('usage: python -m data.schema revision "what changes"')
    command.revision(alembic_config(), message=sys.argv[2], rev_id=f"{len(REVISIONS) + 1:04d}")
