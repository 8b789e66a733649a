"""The PostgreSQL test harness against a real server: databases, stop/restart, freeze/thaw."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy
from servers.postgres import (
    PostgresCluster,
    postgres_bindir,
    running_postgres,
)

if TYPE_CHECKING or os.environ.get("CI") == "true":
    import psycopg  # CI must have the driver: missing, collection fails there
else:
    psycopg = pytest.importorskip("psycopg", reason="pip install -e '.[postgres]'")

# Database names the parametrized isolation test has seen, across its runs in this session.
_seen_databases: list[str] = []


def _database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _connect(cluster: PostgresCluster, name: str, timeout: int = 5) -> psycopg.Connection:
    return psycopg.connect(cluster.conninfo(name), connect_timeout=timeout, autocommit=True)


def _rows(cluster: PostgresCluster, name: str) -> list[str]:
    with _connect(cluster, name) as connection:
        return [row[0] for row in connection.execute("SELECT note FROM kept ORDER BY id")]


def _process_gone(pid: int) -> bool:
    """Exited: no such process, or a zombie its (adoptive) parent has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_bindir_is_the_newest_installed_version() -> None:
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed")
    versions = [int(path.parent.name) for path in Path("/usr/lib/postgresql").glob("*/bin")
                if path.parent.name.isdigit() and (path / "initdb").is_file()]
    assert int(bindir.parent.name) == max(versions)


def test_a_test_database_accepts_a_table_through_sqlalchemy(postgres_url: str,
                                                             postgres_cluster: PostgresCluster
                                                             ) -> None:
    assert postgres_url.startswith(f"postgresql+psycopg://postgres@127.0.0.1:"
                                   f"{postgres_cluster.port}/")
    assert postgres_cluster.port != 5432
    metadata = sqlalchemy.MetaData()
    notes = sqlalchemy.Table(
        "notes", metadata,
        sqlalchemy.Column("id", sqlalchemy.Integer, primary_key=True),
        sqlalchemy.Column("text", sqlalchemy.Text, nullable=False))
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        metadata.create_all(engine)
        with engine.begin() as connection:
            connection.execute(notes.insert(), [{"text": "ünïcode"}, {"text": "two"}])
        with engine.connect() as connection:
            texts = connection.execute(sqlalchemy.select(notes.c.text).order_by(notes.c.id))
            assert texts.scalars().all() == ["ünïcode", "two"]
            encoding = connection.execute(sqlalchemy.text("SHOW server_encoding")).scalar()
            assert encoding == "UTF8"
            show = "SELECT current_setting('fsync'), current_setting('listen_addresses')"
            assert connection.execute(sqlalchemy.text(show)).one() == ("on", "127.0.0.1")
    finally:
        engine.dispose()


@pytest.mark.parametrize("run", ["first", "second"])
def test_each_test_gets_a_fresh_database_dropped_afterwards(
        run: str, postgres_url: str, postgres_cluster: PostgresCluster) -> None:
    name = _database_of(postgres_url)
    assert name not in _seen_databases
    existing = postgres_cluster.databases()
    assert name in existing
    assert not existing & set(_seen_databases), "an earlier test's database was not dropped"
    _seen_databases.append(name)
    with _connect(postgres_cluster, name) as connection:
        # Fails if another test's table were here: the same name in both runs.
        connection.execute("CREATE TABLE marker (run text)")
        connection.execute("INSERT INTO marker VALUES (%s)", (run,))


def test_stop_refuses_connections_and_restart_keeps_the_data(
        postgres_url: str, postgres_cluster: PostgresCluster) -> None:
    cluster, name = postgres_cluster, _database_of(postgres_url)
    port = cluster.port
    with _connect(cluster, name) as connection:
        connection.execute("CREATE TABLE kept (id serial PRIMARY KEY, note text)")
        connection.execute("INSERT INTO kept (note) VALUES ('before stop')")

    cluster.stop()
    assert not cluster.is_running()
    with pytest.raises(psycopg.OperationalError, match=r"(?i)refused"):
        _connect(cluster, name)

    cluster.start()
    assert cluster.port == port
    assert _rows(cluster, name) == ["before stop"]

    cluster.restart()
    assert cluster.port == port
    with _connect(cluster, name) as connection:
        connection.execute("INSERT INTO kept (note) VALUES ('committed before a crash')")
    cluster.stop("immediate")  # no shutdown checkpoint: recovery replays the WAL
    cluster.start()
    assert _rows(cluster, name) == ["before stop", "committed before a crash"]


def test_freeze_makes_connections_hang_and_thaw_recovers(
        postgres_url: str, postgres_cluster: PostgresCluster) -> None:
    cluster, name = postgres_cluster, _database_of(postgres_url)
    cluster.freeze()
    assert cluster.frozen
    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError) as hung:
        _connect(cluster, name, timeout=2)
    waited = time.monotonic() - started
    assert "timeout" in str(hung.value).lower()
    assert "refused" not in str(hung.value).lower()
    assert 1.5 <= waited < 10

    cluster.thaw()
    cluster.thaw()  # twice is harmless
    assert not cluster.frozen
    with _connect(cluster, name) as connection:
        assert connection.execute("SELECT 1").fetchone() == (1,)


def test_drop_database_while_a_connection_is_open(postgres_cluster: PostgresCluster) -> None:
    name = "harness_drop_while_open"
    postgres_cluster.drop_database(name)  # a leftover from an interrupted run
    postgres_cluster.create_database(name)
    connection = _connect(postgres_cluster, name)
    try:
        connection.execute("SELECT 1")
        postgres_cluster.drop_database(name)
        assert name not in postgres_cluster.databases()
        with pytest.raises(psycopg.OperationalError):
            connection.execute("SELECT 1")
    finally:
        connection.close()


def test_running_postgres_cleans_up_after_a_failure_while_frozen() -> None:
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed")
    base = Path(tempfile.mkdtemp(prefix="canary-pg-test-"))
    base.chmod(0o755)
    try:
        with pytest.raises(RuntimeError, match="the test failed"):
            with running_postgres(base / "made" / "here") as cluster:
                assert oct((base / "made").stat().st_mode & 0o777) == oct(0o755)
                pid = cluster.postmaster_pid()
                assert pid is not None
                cluster.freeze()
                raise RuntimeError("the test failed")
        assert not cluster.root.exists()
        assert not (base / "made").exists()  # directories it created are gone too
        assert pid is not None
        assert _process_gone(pid)
        assert not cluster.is_running()
        with pytest.raises(psycopg.OperationalError, match=r"(?i)refused"):
            _connect(cluster, "postgres")
    finally:
        os.rmdir(base)
