"""`canary issue` and `canary aliases`: give a company its alias, list them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from canary.consent import Frequency
from canary.domains import normalise_domain
from canary.errors import InvalidValue, NotACanaryDomain
from canary.wording import day
from cli.output import console, messages, print_json
from cli.workspace import (
    DateOption,
    DbOption,
    FrequencyOption,
    HomeOption,
    JsonOption,
    MarketingOption,
    alias_directory,
    noun_app,
    utc,
    workspace,
    yes_no,
)

if TYPE_CHECKING:  # the CLI starts fast: rich and the database load when used
    from canary.addresses import CompanyRow

app = noun_app()


@app.command()
def issue(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="The company, e.g. \"MegaMart\" (or --from FILE for many).",
                       show_default=False),
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option("--domain", help="A domain the company sends from (repeatable)."),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note, e.g. where you "
                                             "gave the address.")] = None,
    new: Annotated[bool, typer.Option("--new", help="Issue a fresh alias for a company "
                                      "that has one; the old one keeps working.")] = False,
    alias_domain: Annotated[
        str | None,
        typer.Option("--alias-domain", help="Canary domain for the alias (default: the first "
                     "configured)."),
    ] = None,
    marketing: MarketingOption = None,
    frequency: FrequencyOption = None,
    at: Annotated[
        datetime | None,
        DateOption("--at", help="When you gave the company the address, YYYY-MM-DD (UTC; "
                   "default: now); consent and opt-outs cannot predate it."),
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="Issue aliases to every company of a CSV or TOML file "
                     "(name, domains, note, marketing, frequency, at), in one transaction."),
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Issue a unique alias for a company and print its address."""
    from sqlalchemy.exc import IntegrityError

    from cli.render.documents import issue_document, issued_document
    from data.registry import issue_alias

    given = utc(at)
    if given > datetime.now(UTC):
        raise typer.BadParameter("the date is in the future", param_hint="--at")
    if (name is None) == (from_file is None):
        raise typer.BadParameter("name one company, or give --from FILE")
    if from_file is not None:
        requests = [(r.name, list(r.domains), r.note, r.marketing,
                     Frequency(r.frequency) if r.frequency else None, r.at or given)
                    for r in _company_rows(from_file)]
    else:
        assert name is not None
        requests = [(name, domain or [], note, yes_no(marketing), frequency, given)]
    with workspace(ctx, home, db) as space:
        on = space.config.domains[0]
        if alias_domain is not None:
            on = normalise_domain(alias_domain)
            if on not in space.config.domains:
                raise NotACanaryDomain(on, space.config.domains)
        for attempt in (1, 2):
            try:
                with space.store.writing() as session:  # all of them, or none
                    issued = [issue_alias(session, secret=space.secret, name=company,
                                          alias_domain=on, domains=domains, note=text, new=new,
                                          now=when, marketing=agreed, frequency=how_often)
                              for company, domains, text, agreed, how_often, when in requests]
                break
            except IntegrityError:
                # Another `canary issue` of the same company committed first (several MXes
                # on one database): once more, and it reads as "already has an alias".
                if attempt == 2:
                    raise
    if as_json:
        print_json(issue_document(issued[0]) if from_file is None
                   else issued_document(issued))
    else:
        for alias in issued:
            typer.echo(alias.address)


def _company_rows(path: Path) -> list[CompanyRow]:
    from canary.addresses import company_rows

    try:
        rows = company_rows(path.read_text(encoding="utf-8-sig"), path.name)
    except UnicodeDecodeError as error:
        raise InvalidValue(f"{path} is not UTF-8 text; save it as UTF-8.") from error
    if not rows:
        raise InvalidValue(f"{path} names no company; write a name column.")
    for row in rows:
        if row.frequency and row.frequency not in {f.value for f in Frequency}:
            raise InvalidValue(f"{path}: {row.name}'s frequency {row.frequency!r} is not one of "
                               f"{', '.join(f.value for f in Frequency)}.")
        if row.at and row.at > datetime.now(UTC):
            raise InvalidValue(f"{path}: {row.name}'s date is in the future.")
    return rows


@app.command("aliases")
def aliases_command(
    ctx: typer.Context,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """List every alias: company, address, issue date, domains and message counts."""
    from cli.render.documents import aliases_document

    listing = alias_directory(ctx, home, db)
    if as_json:
        print_json(aliases_document(listing))
        return
    if not listing:
        messages().print("No aliases yet. Issue one with [bold]canary issue NAME[/].")
        return
    from rich.table import Table

    table = Table(title="Aliases")
    table.add_column("Company")
    # Fold, never truncate: the address is what the user copies from this table.
    table.add_column("Alias", overflow="fold",
                     min_width=min(max(len(a.address) for a in listing), 40))
    table.add_column("Issued")
    table.add_column("Status")
    table.add_column("Domains")
    table.add_column("Messages", justify="right")
    table.add_column("Unexpected", justify="right")
    for a in listing:
        status = (f"retired {day(a.retired_at)}\n{a.retire_reply}s mail" if a.retired_at
                  else "active")
        table.add_row(a.company, a.address, day(a.issued_at), status,
                      ", ".join(a.domains) or "—", str(a.messages), str(a.unexpected))
    console().print(table)
