"""`canary init`: create the home (config, secret, database)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.output import console as make_console
from cli.workspace import DbOption, DnsOption, HomeOption, database_url, dns_server, home_path
from data.home import init_home

app = typer.Typer()


@app.command()
def init(
    ctx: typer.Context,
    domain: Annotated[
        list[str],
        typer.Option("--domain", help="A domain whose mail Canary receives (repeatable)."),
    ],
    force: Annotated[
        bool,
        typer.Option("--force", help="Rewrite the config of an existing home; keeps the "
                     "secret and the database."),
    ] = False,
    trusted_authserv_id: Annotated[
        list[str] | None,
        typer.Option("--trusted-authserv-id", help="authserv-id of your own MTA whose "
                     "Authentication-Results Canary believes (repeatable)."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Create the Canary home: config, a random secret and the database."""
    path = home_path(ctx, home)
    created = init_home(path, domain, force=force, database_url=database_url(ctx, db),
                        dns=dns_server(ctx, dns), trusted_authserv_ids=trusted_authserv_id or ())
    config = created.config()
    console = make_console()
    console.print(f"Canary home ready at [bold]{path}[/]")
    console.print(f"Canary domains: {', '.join(config.domains)}")
    console.print("Next: [bold]canary issue \"Company name\" --domain company.example[/]")
