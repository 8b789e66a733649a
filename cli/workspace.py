"""Where every command finds its home and database.

`--home` / `CANARY_HOME` (else the platform user data dir) and `--db` /
`CANARY_DB` are read at the edge, by typer, and passed in here. The options
are accepted both before the command (`canary --home X report`) and after
it (`canary report --home X`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from canary.consent import Frequency
from data.database import Store
from data.home import Config, Home, default_home, open_home
from smtp_listener.analysis import AnalysisSettings, analyse_all
from smtp_listener.resolver import Resolver
from smtp_listener.server import utc_now

# The environment is read once, by the group's callback (`canary --home X cmd`).
# A command's own options read only the command line, so an explicit option beats
# CANARY_HOME / CANARY_DB / CANARY_DNS wherever it is written.
GlobalHomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", envvar="CANARY_HOME", show_envvar=True,
        help="Canary home directory (default: the platform's user data dir).",
    ),
]
GlobalDbOption = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="CANARY_DB", show_envvar=True,
        help="Database URL, e.g. postgresql+psycopg://… (default: SQLite in the home).",
    ),
]
GlobalDnsOption = Annotated[
    str | None,
    typer.Option(
        "--dns", envvar="CANARY_DNS", show_envvar=True,
        help="DNS server HOST[:PORT] for SPF/DKIM/DMARC (default: the config's, else the "
        "system resolver).",
    ),
]
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Canary home directory (default: CANARY_HOME, else the "
                 "platform's user data dir)."),
]
DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database URL (default: CANARY_DB, else the config's, else "
                 "SQLite in the home)."),
]
DnsOption = Annotated[
    str | None,
    typer.Option("--dns", help="DNS server HOST[:PORT] for SPF/DKIM/DMARC (default: "
                 "CANARY_DNS, else the config's, else the system resolver)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


class YesNo(enum.StrEnum):
    YES = "yes"
    NO = "no"


def yes_no(value: YesNo | None) -> bool | None:
    return None if value is None else value is YesNo.YES


MarketingOption = Annotated[
    YesNo | None,
    typer.Option("--marketing", help="Whether you agreed to marketing from the company."),
]
FrequencyOption = Annotated[
    Frequency | None,
    typer.Option("--frequency", help="How often the company may send you marketing."),
]

ANALYSIS_BUDGET_SECONDS = 30.0
"""How long a reporting command analyses pending mail before it reports what it has."""


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    home: Path | None = None
    db: str | None = None
    dns: str | None = None


def _global(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()


def home_path(ctx: typer.Context, home: Path | None) -> Path:
    return (home or _global(ctx).home or default_home()).expanduser()


def database_url(ctx: typer.Context, db: str | None) -> str | None:
    return db or _global(ctx).db


def dns_server(ctx: typer.Context, dns: str | None) -> str | None:
    return dns or _global(ctx).dns


@dataclass(frozen=True, slots=True)
class Workspace:
    home: Home
    config: Config
    store: Store
    dns: str | None = None
    """The `--dns` given on the command line, which wins over the config's."""

    @property
    def secret(self) -> bytes:
        return self.home.secret()

    def analysis_settings(self) -> AnalysisSettings:
        return AnalysisSettings(
            resolver=Resolver.from_setting(self.dns or self.config.dns),
            trusted_upstream=self.config.trusted_authserv_ids,
        )

    def analyse_pending(self) -> int:
        """Analyse mail stored while no listener ran (bounded, so DNS trouble cannot hang us)."""
        return analyse_all(self.store, self.analysis_settings(), utc_now,
                           budget_seconds=ANALYSIS_BUDGET_SECONDS)


@contextmanager
def workspace(
    ctx: typer.Context, home: Path | None, db: str | None, dns: str | None = None
) -> Iterator[Workspace]:
    """Open the initialised home and its store; close the store afterwards."""
    opened = open_home(home_path(ctx, home))
    config = opened.config()
    store = opened.store(database_url(ctx, db))
    try:
        yield Workspace(opened, config, store, dns_server(ctx, dns))
    finally:
        store.dispose()
