"""Where every command finds its home and database.

`--home` / `CANARY_HOME` (else the platform user data dir) and `--db` /
`CANARY_DB` are read at the edge, by typer, and passed in here. The options
are accepted both before the command (`canary --home X report`) and after
it (`canary report --home X`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from data.database import Store
from data.home import Config, Home, default_home, open_home

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", envvar="CANARY_HOME", show_envvar=True,
        help="Canary home directory (default: the platform's user data dir).",
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db", envvar="CANARY_DB", show_envvar=True,
        help="Database URL, e.g. postgresql+psycopg://… (default: SQLite in the home).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    home: Path | None = None
    db: str | None = None


def _global(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()


def home_path(ctx: typer.Context, home: Path | None) -> Path:
    return (home or _global(ctx).home or default_home()).expanduser()


def database_url(ctx: typer.Context, db: str | None) -> str | None:
    return db or _global(ctx).db


@dataclass(frozen=True, slots=True)
class Workspace:
    home: Home
    config: Config
    store: Store

    @property
    def secret(self) -> bytes:
        return self.home.secret()


@contextmanager
def workspace(ctx: typer.Context, home: Path | None, db: str | None) -> Iterator[Workspace]:
    """Open the initialised home and its store; close the store afterwards."""
    opened = open_home(home_path(ctx, home))
    config = opened.config()
    store = opened.store(database_url(ctx, db))
    try:
        yield Workspace(opened, config, store)
    finally:
        store.dispose()
