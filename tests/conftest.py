"""Shared fixtures: a real Canary home in tmp_path and the real listener on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from data.database import Store
from data.home import Home, init_home
from data.registry import IssuedAlias, issue_alias
from smtp_listener.server import Listener, ListenerSettings, ListenerThread

CANARY_DOMAIN = "canary.example.org"


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

    def stop(self) -> None:
        self.thread.stop()


def start_listener(home: Home, store: Store, **settings: object) -> RunningListener:
    options = {"port": 0, **settings}
    listener = Listener(store, domains=frozenset(home.config().domains), secret=home.secret(),
                        settings=ListenerSettings(**options))  # type: ignore[arg-type]
    thread = ListenerThread(listener)
    host, port = thread.__enter__()
    return RunningListener(host, port, home, store, thread)


@pytest.fixture
def listener(home: Home, store: Store) -> Iterator[RunningListener]:
    """The real Canary listener on a free loopback port, analysis off the reply path on."""
    running = start_listener(home, store)
    yield running
    running.stop()
