"""`canary issue` and `canary aliases`: give a company its alias, list them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from canary.domains import normalise_domain
from canary.errors import NotACanaryDomain
from canary.wording import day
from cli.output import console, messages, print_json
from cli.render.documents import aliases_document, issue_document
from cli.workspace import (
    CompanyArgument,
    DbOption,
    FrequencyOption,
    HomeOption,
    JsonOption,
    MarketingOption,
    noun_app,
    workspace,
    yes_no,
)
from data.registry import issue_alias, list_aliases

app = noun_app()


@app.command()
def issue(
    ctx: typer.Context,
    name: CompanyArgument,
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
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Issue a unique alias for a company and print its address."""
    with workspace(ctx, home, db) as space:
        on = space.config.domains[0]
        if alias_domain is not None:
            on = normalise_domain(alias_domain)
            if on not in space.config.domains:
                raise NotACanaryDomain(on, space.config.domains)
        with space.store.writing() as session:
            issued = issue_alias(
                session, secret=space.secret, name=name, alias_domain=on,
                domains=domain or [], note=note, new=new, now=datetime.now(UTC),
                marketing=yes_no(marketing), frequency=frequency,
            )
    if as_json:
        print_json(issue_document(issued))
    else:
        typer.echo(issued.address)


@app.command("aliases")
def aliases_command(
    ctx: typer.Context,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """List every alias: company, address, issue date, domains and message counts."""
    with workspace(ctx, home, db) as space, space.store.reading() as session:
        listing = list_aliases(session)
    if as_json:
        print_json(aliases_document(listing))
        return
    if not listing:
        messages().print("No aliases yet. Issue one with [bold]canary issue NAME[/].")
        return
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
