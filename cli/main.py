"""The `canary` command: composes one typer app per noun.

Errors become one sentence on stderr and exit status 1, whichever command
raised them; usage errors (a bad option, a date that is no date, a choice
that is not offered) exit 2, as click does. The layers below raise named
errors that know nothing of flags; `describe` words the few whose remedy
is a flag of this command line.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import typer
from typer.core import TyperGroup

from canary.errors import (
    AlreadyInitialised,
    CanaryError,
    CompanyExists,
    ConfigInvalid,
    DatabaseUnavailable,
    NoCanaryDomain,
    NothingToRecord,
)
from cli import (
    alerts,
    aliases,
    analyse,
    delivery,
    demo,
    export,
    importing,
    letter,
    lifecycle,
    report,
    serve,
    setup,
    triage,
)
from cli.workspace import GlobalDbOption, GlobalDnsOption, GlobalHomeOption, GlobalOptions

CONFLICTS = frozenset({"40P01", "40001"})
"""PostgreSQL's deadlock and serialization failure: the database works, the command met
another writer (several MXes share it)."""


def describe(error: CanaryError) -> str:
    """The sentence for the command line: the error's own, or one naming the flag to use."""
    match error:
        case CompanyExists():
            return (f"{error.company} already has an alias ({error.address}); use --new to "
                    "issue a fresh one as well.")
        case NothingToRecord():
            return "Say what changed: --marketing yes|no and/or --frequency."
        case NoCanaryDomain():
            return "Give at least one canary domain with --domain."
        case AlreadyInitialised():
            return (f"A Canary home already exists at {error.path}; use --force to rewrite its "
                    "config (the secret and database are kept).")
        case ConfigInvalid():
            return (f"{error.path}: {error.problem}; fix the file or re-run "
                    "`canary init --force`.")
    return str(error)


class CanaryGroup(TyperGroup):
    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CanaryError as error:
            typer.echo(f"Error: {describe(error)}", err=True)
            raise typer.Exit(1) from error
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            typer.echo(f"Error: {where}{error.strerror or error}; check the path and its "
                       "permissions.", err=True)
            raise typer.Exit(1) from error
        except Exception as error:
            # SQLAlchemy's errors, without importing SQLAlchemy for commands that never do.
            database = sys.modules.get("sqlalchemy.exc")
            if database is not None and isinstance(error, database.OperationalError):
                if getattr(error.orig, "sqlstate", None) in CONFLICTS:
                    typer.echo("Error: a listener or another Canary command changed the same "
                               "records at the same moment; run this one again.", err=True)
                    raise typer.Exit(1) from error
                typer.echo(f"Error: {DatabaseUnavailable(str(error.orig))}", err=True)
                raise typer.Exit(1) from error
            if database is not None and isinstance(error, database.IntegrityError):
                typer.echo("Error: another Canary command changed the same record at the same "
                           "moment; run this one again.", err=True)
                raise typer.Exit(1) from error
            raise


app = typer.Typer(
    cls=CanaryGroup,
    name="canary",
    help="Canary tells you which company leaked or sold your email address.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
for noun in (setup, aliases, importing, lifecycle, serve, analyse, delivery, report, triage,
             export, letter, demo):
    app.add_typer(noun.app)
app.add_typer(alerts.app, name="alerts",
              help="Alerts on the channels you already watch (ntfy, chat, e-mail, webhooks): "
              "add, list, remove, test and run them.")


@app.callback()
def main(
    ctx: typer.Context,
    home: GlobalHomeOption = None,
    db: GlobalDbOption = None,
    dns: GlobalDnsOption = None,
) -> None:
    """Canary tells you which company leaked or sold your email address."""
    ctx.obj = GlobalOptions(home=Path(home) if home else None, db=db, dns=dns)


def run() -> None:
    # A report of a large home builds a few hundred thousand small objects that form no
    # cycles, and CPython's default collector would walk them again every 700 allocations
    # (13 % of `canary report --json` at a million messages). Young objects are collected
    # every 50,000 allocations instead: cyclic garbage stays bounded, in `serve` too.
    gc.set_threshold(50_000, 20, 100)
    app()
