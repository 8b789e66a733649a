"""The database engine: SQLite in the home by default, PostgreSQL by URL.

SQLite is opened for durability and for sharing between the listener and
the CLI: WAL, `synchronous=FULL`, a busy timeout, and `BEGIN IMMEDIATE` for
writers, so a writer waits for the lock instead of failing with "database
is locked" halfway through. The file is created mode 0600.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlmodel import Session, SQLModel, create_engine

from canary.errors import DatabaseUrlInvalid
from data import (
    alerts,  # noqa: F401  (registers the alert queue's tables)
    models,  # noqa: F401  (registers the tables)
    schema,
)

BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_SECONDS = 5.0
PG_STATEMENT_MS = 60_000
PG_LOCK_MS = 10_000
"""A PostgreSQL server that stops answering (rather than refusing) costs a command or a
group of mail seconds, not the sender's own timeout: the listener answers 451."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _create_private_file(path: Path) -> None:
    """Create the SQLite file readable by the owner alone (its WAL files follow its mode).

    An existing database is never opened here: closing a descriptor of a file
    releases every POSIX lock this process holds on it, SQLite's included,
    which lets another process checkpoint under a live connection.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Straight to the driver: this runs for every transaction. Its errors (a lock held
        # elsewhere past the busy timeout) are given SQLAlchemy's form, like every other.
        try:
            connection.connection.driver_connection.execute(begin)
        except sqlite3.Error as error:
            raise OperationalError(begin, None, error) from error

    return engine


@functools.cache
def _dumpers_without_nul() -> tuple[type[Any], ...]:
    from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

    class BinaryText(StrBinaryDumper):
        def dump(self, obj: str) -> bytes:
            return obj.replace("\x00", "\ufffd").encode(self._encoding)

    class Text(StrDumperUnknown):
        def dump(self, obj: str) -> bytes:
            return obj.replace("\x00", "\ufffd").encode(self._encoding)

    return BinaryText, Text  # the last registered is the one `%s` parameters use


def _text_without_nul(dbapi_connection: Any, _record: Any) -> None:
    """PostgreSQL text cannot hold NUL, which hostile mail puts anywhere (an envelope
    address, a DKIM tag quoted in a DNS error). It is written as U+FFFD (SQLite keeps it)
    rather than failing the transaction, which would answer the sender 451 for ever or
    set the message aside. The message itself is stored as bytes, untouched."""
    for dumper in _dumpers_without_nul():
        dbapi_connection.adapters.register_dumper(str, dumper)


class Store:
    """Opens sessions on Canary's database; one per process, passed explicitly."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except (ArgumentError, NoSuchModuleError) as error:
            raise DatabaseUrlInvalid(
                url, "give a URL such as sqlite:////var/lib/canary/canary.db"
            ) from error
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.directory: Path | None = None
        """The directory of an SQLite database file: the disk whose free space matters."""
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            self.directory = Path(parsed.database).parent
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                _create_private_file(Path(parsed.database))
            self._writer = _sqlite_engine(url, immediate=True)
            self._reader = _sqlite_engine(url, immediate=False)
        else:
            try:
                self._writer = self._reader = create_engine(
                    url, pool_pre_ping=True, pool_timeout=PG_CONNECT_SECONDS,
                    connect_args={"connect_timeout": int(PG_CONNECT_SECONDS),
                                  "options": f"-c statement_timeout={PG_STATEMENT_MS} "
                                             f"-c lock_timeout={PG_LOCK_MS}"})
            except NoSuchModuleError as error:
                raise DatabaseUrlInvalid(
                    url, "use sqlite:///PATH or postgresql+psycopg://…") from error
            except ModuleNotFoundError as error:
                raise DatabaseUrlInvalid(
                    url, f"its driver {error.name} is not installed (for PostgreSQL: "
                    "pip install 'canary[postgres]')") from error
            if parsed.get_driver_name() == "psycopg":
                event.listen(self._writer, "connect", _text_without_nul)

    def create_schema(self) -> None:
        """Create the tables of a new database, at this code's revision.

        An existing database is left as it is: its revision is checked where it
        is used, and `canary upgrade` migrates it.
        """
        with self._reader.connect() as connection:
            tables = inspect(connection)
            if tables.has_table(schema.VERSION_TABLE) or tables.has_table("message"):
                return
        SQLModel.metadata.create_all(self._writer)
        with self._writer.begin() as connection:
            schema.stamp(connection)

    def check_schema(self) -> None:
        """Raise unless the database is at this code's revision (`canary upgrade` fixes older)."""
        with self._reader.connect() as connection:
            schema.check(connection)

    def upgrade_schema(self) -> tuple[str | None, str]:
        """Migrate the database to this code's revision; return (from, to)."""
        with self._writer.connect() as connection:
            return schema.upgrade(connection)

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session whose transaction holds the write lock; committed on success."""
        with Session(self._writer, expire_on_commit=False) as session:
            yield session
            session.commit()

    def writer_connection(self, busy_timeout: float | None = None) -> Connection:
        """A long-lived bare connection for the listener's store process.

        Each group is written in `with connection.begin(): …`; keeping the
        connection saves a pool checkout and reset per group. `busy_timeout`
        (seconds, SQLite) is how long a group waits for a lock another process
        holds before it fails, to be answered 451 and retried by its senders.
        """
        connection = self._writer.connect()
        if busy_timeout is not None and self.is_sqlite:
            connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        return connection

    def check_readable(self) -> None:
        """Raise if the database cannot be opened and read; never waits for a write lock."""
        with self._reader.connect() as connection:
            connection.exec_driver_sql("SELECT 1 FROM rawmessage LIMIT 0")

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read-only session that never blocks the listener's writes, and reads one
        snapshot: a report's counts and its senders agree even while mail is analysed.
        SQLite's transaction does that already; PostgreSQL's default (READ COMMITTED)
        would give each statement its own, so the session asks for REPEATABLE READ,
        which never fails a transaction that only reads."""
        snapshot = (self._reader if self.is_sqlite
                    else self._reader.execution_options(isolation_level="REPEATABLE READ"))
        with Session(snapshot, expire_on_commit=False) as session:
            yield session
            session.rollback()

    def dispose(self) -> None:
        self._writer.dispose()
        self._reader.dispose()
