"""Shared fixtures: a real Canary home in tmp_path and the real listener on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from canary.alerts import AlertsConfig
from canary.delivery import DeliveryConfig
from data.database import Store
from data.home import Home, init_home
from data.registry import IssuedAlias, issue_alias
from smtp_listener.analysis import AnalysisConfig
from smtp_listener.resolver import Resolver
from smtp_listener.server import Listener, ListenerSettings, ListenerThread
from smtp_listener.testing.zone_server import Zones, ZoneServer

pytest_plugins = ["servers.dovecot", "servers.postgres"]

CANARY_DOMAIN = "canary.example.org"


@pytest.fixture(scope="session")
def empty_dns() -> Iterator[str]:
    """A loopback DNS server that knows no records: no test may use the network's DNS."""
    with ZoneServer(Zones()) as (host, port):
        yield f"{host}:{port}"


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          empty_dns: str) -> None:
    """No CANARY_* from the developer's shell; the default home, if used, is in tmp_path.

    Reporting commands authenticate mail, so their DNS is a loopback server, never
    the network.
    """
    monkeypatch.delenv("CANARY_HOME", raising=False)
    monkeypatch.delenv("CANARY_DB", raising=False)
    monkeypatch.setenv("CANARY_DNS", empty_dns)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


@pytest.fixture(params=["default", "asyncio"])
def listener_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test once on each event loop the listener runs on: the default (uvloop, where it
    is installed) and asyncio's own (`CANARY_EVENT_LOOP=asyncio`)."""
    if request.param == "asyncio":
        monkeypatch.setenv("CANARY_EVENT_LOOP", "asyncio")
    return str(request.param)


@pytest.fixture
def zones() -> Zones:
    """DNS data the test's authoritative server serves; add records before the server starts."""
    return Zones()


@pytest.fixture
def dns_server(zones: Zones) -> Iterator[str]:
    """A real authoritative DNS server on loopback serving `zones`; yields `HOST:PORT`."""
    with ZoneServer(zones) as (host, port):
        yield f"{host}:{port}"


@pytest.fixture
def resolver(dns_server: str) -> Resolver:
    """Canary's resolver pointed at the loopback DNS server, with short timeouts."""
    return Resolver.from_setting(dns_server, timeout=0.5, lifetime=1.0)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """An initialised Canary home with one canary domain, SQLite in tmp_path."""
    return init_home(tmp_path / "home", [CANARY_DOMAIN])


@pytest.fixture
def store(home: Home) -> Iterator[Store]:
    opened = home.store()
    yield opened
    opened.dispose()


def issue(home: Home, store: Store, name: str, *domains: str, new: bool = False) -> IssuedAlias:
    """Issue an alias the way `canary issue` does."""
    with store.writing() as session:
        return issue_alias(session, secret=home.secret(), name=name, alias_domain=CANARY_DOMAIN,
                           domains=list(domains), note=None, new=new, now=datetime.now(UTC))


@dataclass
class RunningListener:
    host: str
    port: int
    home: Home
    store: Store
    thread: ListenerThread
    own_dns: ZoneServer | None = None

    def settle(self) -> None:
        """Wait until the listener has analysed the mail committed so far."""
        assert self.thread.settle(), "the listener's analysis did not settle in time"

    def stop(self) -> None:
        self.thread.stop()
        if self.own_dns is not None:
            self.own_dns.stop()


def start_listener(
    home: Home, store: Store, resolver: Resolver | None = None, *,
    trusted_upstream: tuple[str, ...] = (), delivery: DeliveryConfig | None = None,
    alerts: AlertsConfig | None = None, alerts_home: Path | None = None, **settings: object,
) -> RunningListener:
    """Start the real listener; without a resolver, it gets an empty loopback DNS of its own."""
    own_dns = None
    if resolver is None:
        own_dns = ZoneServer(Zones())
        host, port = own_dns.start()
        resolver = Resolver.from_setting(f"{host}:{port}", timeout=0.5, lifetime=1.0)
    options = {"port": 0, **settings}
    analysis = AnalysisConfig(dns=resolver.server, timeout=resolver.timeout,
                              lifetime=resolver.lifetime, trusted_upstream=trusted_upstream)
    listener = Listener(store, domains=frozenset(home.config().domains), secret=home.secret(),
                        settings=ListenerSettings(**options),  # type: ignore[arg-type]
                        analysis=analysis, delivery=delivery, alerts=alerts,
                        alerts_home=alerts_home)
    thread = ListenerThread(listener)
    host, port = thread.__enter__()
    return RunningListener(host, port, home, store, thread, own_dns)


@pytest.fixture
def listener(home: Home, store: Store, resolver: Resolver) -> Iterator[RunningListener]:
    """The real Canary listener on a free loopback port, analysis off the reply path on.

    Its DNS is the test's loopback server, which knows nothing unless the
    test adds records to `zones`.
    """
    running = start_listener(home, store, resolver)
    yield running
    running.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The attribution corpus's exact accuracy, whenever it ran."""
    import sys

    module = sys.modules.get("test_corpus")
    line = module.accuracy() if module is not None else None
    if line:
        terminalreporter.write_line(line)
