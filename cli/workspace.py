"""What every command shares: its options, and where it finds its home and database.

`--home` / `CANARY_HOME` (else the platform user data dir), `--db` /
`CANARY_DB` and `--dns` / `CANARY_DNS` are read at the edge, by typer, and
passed in here. The options are accepted both before the command (`canary
--home X report`) and after it (`canary report --home X`). Help is plain
text, so a flag never looks as if it took a value.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from canary.aliases import RetireReply
from canary.consent import Frequency

if TYPE_CHECKING:  # the CLI starts fast: the database and the listener load when used
    from canary.delivery import DeliveryConfig
    from data.database import Store
    from data.directory import AliasListing
    from data.home import Config, Home
    from smtp_listener.analysis import AnalysisConfig

T = TypeVar("T")

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
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the result as JSON (a versioned schema).")
]
LARGEST_ID = 2**31 - 1
"""The largest row id (PostgreSQL's INTEGER): a larger number given as an ID or a limit is a
usage error, not a database error."""
CompanyArgument = Annotated[str, typer.Argument(help="The company, e.g. \"MegaMart\".")]
CompaniesArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Only these companies (default: every company).", show_default=False),
]
CompanyOption = Annotated[
    list[str] | None,
    typer.Option("--company", hidden=True,
                 help="The same as naming the company as an argument (kept for scripts)."),
]
def parse_date(text: str) -> datetime:
    """A date (or date and time) from the command line, as an aware UTC time.

    A time without a zone is UTC. Anything else is a usage error (exit 2).
    """
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date; use YYYY-MM-DD "
                                 "(or YYYY-MM-DDTHH:MM, UTC).") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def DateOption(name: str, help: str) -> Any:
    """An option taking a date, parsed and checked by `parse_date` (for `Annotated`)."""
    return typer.Option(name, parser=parse_date, metavar="YYYY-MM-DD", show_default=False,
                        help=help)


class YesNo(enum.StrEnum):
    YES = "yes"
    NO = "no"


def yes_no(value: YesNo | None) -> bool | None:
    return None if value is None else value is YesNo.YES


def utc(moment: datetime | None) -> datetime:
    """A date from the command line as an aware UTC time; now when not given."""
    if moment is None:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


MarketingOption = Annotated[
    YesNo | None,
    typer.Option("--marketing", help="Whether you agreed to marketing from the company."),
]
FrequencyOption = Annotated[
    Frequency | None,
    typer.Option("--frequency", help="How often the company may send you marketing."),
]
ReplyOption = Annotated[
    RetireReply,
    typer.Option("--reply", help="What mail to the retired alias gets: accept keeps recording "
                 "it (evidence keeps coming), reject refuses it with 550."),
]


def noun_app() -> typer.Typer:
    """The typer app of one noun's commands, with plain help text."""
    return typer.Typer(rich_markup_mode=None, add_completion=False)


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    home: Path | None = None
    db: str | None = None
    dns: str | None = None


def _global(ctx: typer.Context) -> GlobalOptions:
    root = ctx.find_root()
    return root.obj if isinstance(root.obj, GlobalOptions) else GlobalOptions()


def home_path(ctx: typer.Context, home: Path | None) -> Path:
    from data.home import default_home

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

    @property
    def dns_setting(self) -> str | None:
        return self.dns or self.config.dns

    def delivery_config(self) -> DeliveryConfig:
        """Where and how this home delivers; Canary's authserv-id defaults to the first
        canary domain."""
        delivery = self.config.delivery
        if delivery.authserv_id is None:
            delivery = replace(delivery, authserv_id=self.config.domains[0])
        return delivery

    def analysis_config(self) -> AnalysisConfig:
        """How this home analyses mail: its DNS, and the upstreams and ARC sealers it trusts."""
        from smtp_listener.analysis import AnalysisConfig

        return AnalysisConfig(dns=self.dns_setting,
                              trusted_upstream=self.config.trusted_authserv_ids,
                              trusted_sealers=self.config.trusted_arc_sealers,
                              dns_retry_for=timedelta(days=self.config.dns_retry_days))


@contextmanager
def workspace(
    ctx: typer.Context, home: Path | None, db: str | None, dns: str | None = None, *,
    check_schema: bool = True,
) -> Iterator[Workspace]:
    """Open the initialised home and its store; close the store afterwards.

    The database must be at this code's schema revision, unless `check_schema`
    is False (for `canary upgrade`, which brings it there); a shared database
    (PostgreSQL) must be this home's, with its secret.
    """
    from data.home import open_home

    opened = open_home(home_path(ctx, home))
    config = opened.config()
    store = opened.store(database_url(ctx, db))
    try:
        if check_schema:
            store.check_schema()
            if not store.is_sqlite:  # a shared database: this home's, or refused
                from data.home import check_share

                with store.reading() as session:
                    check_share(session, opened.secret())
        yield Workspace(opened, config, store, dns_server(ctx, dns))
    finally:
        store.dispose()


def read_plainly(ctx: typer.Context, home: Path | None, db: str | None,
                 reader: Callable[[Any], T]) -> T:
    """What `reader` reads through a DB-API connection: on a default SQLite home with
    sqlite3 alone, so the command starts without loading SQLAlchemy; otherwise through the
    store's session, with every check a command's workspace makes."""
    from data.directory import read_sqlite
    from data.home import open_home

    opened = open_home(home_path(ctx, home))
    if opened.database_url(database_url(ctx, db)) is None and opened.database_path.is_file():
        return read_sqlite(opened.database_path, reader)
    with workspace(ctx, home, db) as space, space.store.reading() as session:
        return reader(session.connection().connection.driver_connection)


def home_config(ctx: typer.Context, home: Path | None) -> Config:
    """The home's configuration, as a workspace reads it."""
    from data.home import open_home

    return open_home(home_path(ctx, home)).config()


def alias_directory(ctx: typer.Context, home: Path | None, db: str | None) -> list[AliasListing]:
    """Every alias of the home (`data.directory`)."""
    from data.directory import read_directory

    return read_plainly(ctx, home, db, read_directory)
