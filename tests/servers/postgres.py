"""A throw-away PostgreSQL cluster: `initdb` in a temporary directory, a free loopback port.

Never the system cluster, never port 5432. The server binaries come from
Debian's `postgresql` package (/usr/lib/postgresql/<version>/bin). PostgreSQL
refuses to run as root, so under root every server program runs as the
`postgres` OS user (which the package creates) and the cluster's directory
belongs to it; as a normal user the programs run directly.

Authentication is `trust`, for TCP from 127.0.0.1 only (no Unix-socket
entry in pg_hba.conf), and the server listens on 127.0.0.1 only. `fsync`
and `synchronous_commit` stay on: tests that crash the server
(`stop("immediate")`) rely on committed data surviving.

`freeze()` stops the postmaster and all its children with SIGSTOP, so a
client's connection attempt hangs (the kernel still accepts the TCP
connection) instead of being refused: that is what timeout tests need.

Register the fixtures with `pytest_plugins = ["servers.postgres"]` (conftest.py);
a test module that imports them instead must import `postgres_recovery` too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from servers import require

if TYPE_CHECKING:
    import psycopg

SUPERUSER = "postgres"
OS_USER = "postgres"
BIN_GLOB_ROOT = Path("/usr/lib/postgresql")
STOP_MODES = ("smart", "fast", "immediate")
# PostgreSQL identifiers: at most 63 bytes. Restricting names to this keeps both the
# SQL (quoted anyway) and the URL (no escaping needed) simple.
DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
PG_CTL_TIMEOUT = 30  # seconds pg_ctl -w waits for the server to start or stop


def postgres_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb, or None."""
    found: list[tuple[int, Path]] = []
    for bindir in BIN_GLOB_ROOT.glob("*/bin"):
        version = bindir.parent.name
        if version.isdigit() and (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            found.append((int(version), bindir))
    if not found:
        return None
    return max(found)[1]


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _process_state(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process from /proc, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (every PostgreSQL process is a child of the postmaster)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        state = _process_state(int(entry.name))
        if state is not None and state[1] == pid:
            children.append(int(entry.name))
    return children


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


@dataclass
class PostgresCluster:
    """A private PostgreSQL cluster in a temp dir on a free loopback port."""

    root: Path
    port: int
    host: str = "127.0.0.1"
    bindir: Path | None = None
    _frozen: bool = field(default=False, init=False, repr=False)

    # -- layout -------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def _bin(self, program: str) -> str:
        bindir = self.bindir or postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
        self.bindir = bindir
        return str(bindir / program)

    # -- running programs ---------------------------------------------------------------

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the OS user that owns the cluster."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", HOME=str(self.root))
        as_user: dict[str, Any] = {}
        if _running_as_root():
            account = pwd.getpwnam(OS_USER)
            as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        result = subprocess.run(argv, env=env, cwd=self.root, capture_output=True, text=True,
                                timeout=PG_CTL_TIMEOUT + 30, check=False, **as_user)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
                f"{self._log_tail()}")
        return result

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n-- server log --\n" + "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ----------------------------------------------------------------------

    def _prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if _running_as_root():
            shutil.chown(self.root, OS_USER, OS_USER)
            reachable = subprocess.run(
                ["test", "-x", str(self.root), "-a", "-w", str(self.root)],
                user=OS_USER, group=OS_USER, extra_groups=[], check=False)
            if reachable.returncode != 0:
                raise RuntimeError(
                    f"the {OS_USER} user cannot reach {self.root}: every parent directory must "
                    "be traversable by others (o+x), e.g. use a directory made under /tmp")

    def _initdb(self) -> None:
        self._prepare_root()
        self._run(self._bin("initdb"), "--pgdata", str(self.data_dir), "--username", SUPERUSER,
                  "--auth", "trust", "--encoding", "UTF8", "--locale", "C")
        (self.data_dir / "pg_hba.conf").write_text(
            "# Throw-away test cluster: trusted TCP from loopback only; no Unix-socket entry.\n"
            "host all all 127.0.0.1/32 trust\n")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude 'canary_test.conf'\n")
        self.socket_dir.mkdir(mode=0o700)
        if _running_as_root():
            shutil.chown(self.socket_dir, OS_USER, OS_USER)

    def _write_settings(self) -> None:
        settings = self.data_dir / "canary_test.conf"
        settings.write_text(
            f"listen_addresses = '{self.host}'\n"
            f"port = {self.port}\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "unix_socket_permissions = 0700\n"
            "fsync = on\n"
            "synchronous_commit = on\n"
            "full_page_writes = on\n"
            "max_connections = 100\n"
            "logging_collector = off\n"
            "log_min_messages = warning\n")
        if _running_as_root():
            shutil.chown(settings, OS_USER, OS_USER)

    def postmaster_pid(self) -> int | None:
        """The postmaster's pid while it runs (postmaster.pid present, process alive), else None."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def is_running(self) -> bool:
        return self.postmaster_pid() is not None

    def start(self) -> None:
        """initdb on the first start, then `pg_ctl -w start` on this cluster's port."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._write_settings()
        self._run(self._bin("pg_ctl"), "start", "--wait", "--timeout", str(PG_CTL_TIMEOUT),
                  "--pgdata", str(self.data_dir), "--log", str(self.log_file))
        self._frozen = False

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl -w stop -m MODE`; thaws a frozen server first; nothing to do if stopped."""
        if mode not in STOP_MODES:
            raise ValueError(f"stop mode must be one of {STOP_MODES}, not {mode!r}")
        self.thaw()
        if not self.is_running():
            return
        self._run(self._bin("pg_ctl"), "stop", "--wait", "--timeout", str(PG_CTL_TIMEOUT),
                  "--pgdata", str(self.data_dir), "--mode", mode)

    def restart(self) -> None:
        """Stop (fast) and start again: same port, same data."""
        self.stop("fast")
        self.start()

    def freeze(self) -> None:
        """SIGSTOP the postmaster, then all its children: the server hangs, it does not refuse."""
        pid = self.postmaster_pid()
        if pid is None:
            raise RuntimeError("cannot freeze a PostgreSQL cluster that is not running")
        self._frozen = True
        _signal(pid, signal.SIGSTOP)  # first, so it forks nothing new meanwhile
        for child in _children(pid):
            _signal(child, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT the children, then the postmaster; harmless when not frozen or not running."""
        pid = self.postmaster_pid()
        if pid is not None:
            for child in _children(pid):
                _signal(child, signal.SIGCONT)
            _signal(pid, signal.SIGCONT)
        self._frozen = False

    @property
    def frozen(self) -> bool:
        return self._frozen

    # -- databases ----------------------------------------------------------------------

    def url(self, name: str) -> str:
        """The SQLAlchemy URL of database `name` on this cluster."""
        _check_name(name)
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{name}"

    def conninfo(self, name: str = "postgres") -> str:
        """A libpq connection string (for psycopg.connect) for database `name`."""
        _check_name(name)
        return f"host={self.host} port={self.port} user={SUPERUSER} dbname={name}"

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        """An autocommit psycopg connection to the `postgres` database (close it when done)."""
        import psycopg  # an optional dependency (.[postgres]): imported when first needed

        return psycopg.connect(self.conninfo(), autocommit=True, connect_timeout=10)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name`; returns its SQLAlchemy URL."""
        from psycopg import sql

        _check_name(name)
        with self.admin() as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Terminate the database's connections, then drop it (if it exists)."""
        from psycopg import sql

        _check_name(name)
        with self.admin() as connection:
            connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            drop = sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))
            if connection.info.server_version >= 130000:
                # FORCE also covers a client that connected between the two statements.
                drop = drop + sql.SQL(" WITH (FORCE)")
            connection.execute(drop)

    def databases(self) -> set[str]:
        """Names of the cluster's databases, templates excluded."""
        with self.admin() as connection:
            rows = connection.execute(
                "SELECT datname FROM pg_database WHERE NOT datistemplate").fetchall()
        return {row[0] for row in rows}


def _check_name(name: str) -> None:
    if not DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name {name!r} must match {DATABASE_NAME.pattern}")


def _start_on_free_port(cluster: PostgresCluster) -> None:
    """Start a new cluster, choosing another port if the chosen one was taken meanwhile."""
    for attempt in range(START_ATTEMPTS):
        try:
            cluster.start()
            return
        except RuntimeError as error:
            in_use = "Address already in use" in str(error) or "could not bind" in str(error)
            if not in_use or attempt == START_ATTEMPTS - 1:
                raise
            cluster.port = _free_port(cluster.host)


def _destroy(cluster: PostgresCluster) -> None:
    """Stop immediately (thawing first) and kill anything left, so the directory can go."""
    pid = cluster.postmaster_pid()
    with contextlib.suppress(Exception):
        cluster.stop("immediate")
    if pid is None or not _alive(pid):
        return
    for child in _children(pid):
        _signal(child, signal.SIGKILL)
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    state = _process_state(pid)
    return state is not None and state[0] not in ("Z", "X")


@contextlib.contextmanager
def running_postgres(tmp: Path, host: str = "127.0.0.1") -> Iterator[PostgresCluster]:
    """A started cluster in `tmp/postgres`; stopped and removed on exit, also after an error.

    Under root the `postgres` user must be able to traverse every parent of `tmp`
    (pytest's tmp_path is not: use a directory made under /tmp with mode 0755);
    directories this creates get mode 0755.
    """
    created: list[Path] = []
    for directory in reversed([tmp, *tmp.parents]):
        if not directory.exists():
            directory.mkdir(mode=0o755)
            directory.chmod(0o755)  # mkdir's mode is subject to the umask
            created.append(directory)
    root = tmp / "postgres"
    if root.exists():
        raise FileExistsError(f"{root} exists: a new cluster needs a fresh directory")
    cluster = PostgresCluster(root=root, port=_free_port(host), host=host)
    try:
        _start_on_free_port(cluster)
        yield cluster
    finally:
        _destroy(cluster)
        shutil.rmtree(root, ignore_errors=True)
        for directory in reversed(created):
            with contextlib.suppress(OSError):
                directory.rmdir()


_SESSION_CLUSTER = pytest.StashKey[PostgresCluster]()


def recover(cluster: PostgresCluster) -> None:
    """Undo what a test may have left: thaw a frozen server, start a stopped one."""
    if cluster.frozen:
        cluster.thaw()
    if not cluster.is_running():
        cluster.start()


@pytest.fixture(scope="session")
def postgres_cluster(pytestconfig: pytest.Config) -> Iterator[PostgresCluster]:
    """One private cluster per test session (initdb and start take about a second).

    Tests may stop or freeze it: after each test `postgres_recovery` thaws and
    restarts it. At the end of the session it is stopped and its directory removed.
    """
    require(postgres_bindir() is not None, "PostgreSQL", "apt-get install postgresql")
    require(importlib.util.find_spec("psycopg") is not None, "psycopg",
            "pip install -e '.[postgres]'")
    # tempfile's directory (normally /tmp) is world-traversable; pytest's tmp dirs are not.
    tmp = Path(tempfile.mkdtemp(prefix="canary-pg-"))
    try:
        tmp.chmod(0o755)
        with running_postgres(tmp) as cluster:
            pytestconfig.stash[_SESSION_CLUSTER] = cluster
            try:
                yield cluster
            finally:
                del pytestconfig.stash[_SESSION_CLUSTER]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(autouse=True)
def postgres_recovery(pytestconfig: pytest.Config) -> Iterator[None]:
    """After every test, recover the session cluster if one was started (cheap otherwise)."""
    yield
    cluster = pytestconfig.stash.get(_SESSION_CLUSTER, None)
    if cluster is not None:
        recover(cluster)


def _database_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:40]
    return f"t_{slug}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster, request: pytest.FixtureRequest
                 ) -> Iterator[str]:
    """A fresh, uniquely named database for this test; its SQLAlchemy URL. Dropped afterwards.

    The cluster is recovered (thawed, started) before the database is created
    and before it is dropped, whatever the test did to it.
    """
    recover(postgres_cluster)
    name = _database_name(request.node.name)
    url = postgres_cluster.create_database(name)
    yield url
    recover(postgres_cluster)
    postgres_cluster.drop_database(name)
