"""The `canary` command: composes one typer app per noun.

Domain errors (`canary.errors.CanaryError`) become one sentence on stderr
and exit status 1, whichever command raised them.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.exc import OperationalError
from typer.core import TyperGroup

from canary.errors import CanaryError
from cli import aliases, demo, export, letter, lifecycle, report, serve, setup, triage
from cli.workspace import GlobalDbOption, GlobalDnsOption, GlobalHomeOption, GlobalOptions


class CanaryGroup(TyperGroup):
    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CanaryError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(1) from error
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            typer.echo(f"Error: {where}{error.strerror or error}; check the path and its "
                       "permissions.", err=True)
            raise typer.Exit(1) from error
        except OperationalError as error:
            typer.echo(f"Error: the database cannot be used ({error.orig}); check --db and "
                       "the home's permissions.", err=True)
            raise typer.Exit(1) from error


app = typer.Typer(
    cls=CanaryGroup,
    name="canary",
    help="Canary tells you which company leaked or sold your email address.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for noun in (setup, aliases, lifecycle, serve, report, triage, export, letter, demo):
    app.add_typer(noun.app)


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
    app()
