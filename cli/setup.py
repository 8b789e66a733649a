"""`canary init` and `canary upgrade`: create the home, bring its database up to date."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.output import console, messages, print_json
from cli.workspace import (
    DbOption,
    DnsOption,
    HomeOption,
    JsonOption,
    database_url,
    dns_server,
    home_path,
    noun_app,
    workspace,
)

app = noun_app()


@app.command()
def init(
    ctx: typer.Context,
    domain: Annotated[
        list[str] | None,
        typer.Option("--domain", help="A domain whose mail Canary receives (repeatable)."),
    ] = None,
    join: Annotated[
        str | None,
        typer.Option("--join", metavar="URL",
                     help="Make this machine another MX of the home whose shared PostgreSQL "
                     "database this is: its secret and domains come from the database."),
    ] = None,
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
    trusted_arc_sealer: Annotated[
        list[str] | None,
        typer.Option("--trusted-arc-sealer", help="A forwarder or list server whose ARC seal "
                     "Canary believes, e.g. your mail provider's domain (repeatable)."),
    ] = None,
    deliver: Annotated[
        list[str] | None,
        typer.Option("--deliver", metavar="URL",
                     help="Where to deliver accepted mail (repeatable): maildir:/PATH, "
                     "lmtp:HOST:PORT?recipient=USER, imaps://USER@HOST/FOLDER?password_file="
                     "PATH, smtp://HOST:PORT?recipient=YOU@DOMAIN. Replaces the configured "
                     "ones; see the README."),
    ] = None,
    catch_all: Annotated[
        list[str] | None,
        typer.Option("--catch-all", metavar="DOMAIN",
                     help="A domain where you gave each company its own address before "
                     "Canary (any local part is yours); for discover and import "
                     "(repeatable)."),
    ] = None,
    sub_address: Annotated[
        list[str] | None,
        typer.Option("--sub-address", metavar="ADDRESS[/+-]",
                     help="A base address whose plus (or minus) addresses you gave out, e.g. "
                     "me@mail.example or me@mail.example/+- (repeatable)."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Create the Canary home: config, a random secret and the database."""
    from data.home import init_home, join_home
    from smtp_listener.resolver import parse_server

    path = home_path(ctx, home)
    if join is not None:
        if domain:
            raise typer.BadParameter("--join takes the domains from the database; leave out "
                                     "--domain")
        joined = join_home(path, join, force=force).config()
        console().print(f"This machine is now another MX of the home in the database; canary "
                        f"domains: {', '.join(joined.domains)}", markup=False)
        return
    server = dns_server(ctx, dns)
    if server is not None:
        parse_server(server)
    created = init_home(path, domain or [], force=force, database_url=database_url(ctx, db),
                        dns=server, trusted_authserv_ids=trusted_authserv_id or (),
                        trusted_arc_sealers=trusted_arc_sealer or (), deliver=deliver or (),
                        catch_all=catch_all or (), sub_addresses=sub_address or ())
    config = created.config()
    out = console()
    out.print(f"Canary home ready at [bold]{path}[/]")
    out.print(f"Canary domains: {', '.join(config.domains)}")
    for destination in config.delivery.destinations:
        out.print(f"Delivers to: {destination.key}", markup=False, highlight=False)
    messages().print("Next: [bold]canary issue \"Company name\" --domain company.example[/]")


@app.command()
def upgrade(
    ctx: typer.Context,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Migrate the home's database to this version of Canary (back it up first)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from cli.render.documents import upgrade_document
    from data.analyses import analysed_count, reclassify_all
    from data.schema import reattribution_needed
    from data.tallies import review_consent

    with workspace(ctx, home, db, check_schema=False) as space:
        before, after = space.store.upgrade_schema()
        if not space.store.is_sqlite:
            # A database older than shared homes (or one made empty) gets this home's secret
            # and domains, so other MXes can join it; another home's is refused.
            from data.home import share_home

            with space.store.writing() as session:
                share_home(session, space.secret, space.config.domains, datetime.now(UTC))
        if reattribution_needed(before):
            with space.store.reading() as session:
                total = analysed_count(session)
            with Progress(TextColumn("Re-deciding stored mail"), BarColumn(),
                          MofNCompleteColumn(), console=messages(), transient=True,
                          disable=as_json or not total) as progress, \
                    space.store.writing() as session:
                task = progress.add_task("reclassify", total=total)
                reclassify_all(session, space.config.trusted_arc_sealers,
                               progress=lambda done: progress.advance(task, done))
        if before != after:  # the consent findings, kept as this revision keeps them
            with space.store.writing() as session:
                review_consent(session.connection())
    if as_json:
        print_json(upgrade_document(before, after))
    elif before == after:
        typer.echo(f"The database is up to date (schema {after}).")
    else:
        typer.echo(f"Upgraded the database from schema {before or 'of release 0.1.0'} to "
                   f"{after}.")
