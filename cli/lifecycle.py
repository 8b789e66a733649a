"""`canary consent`, `optout`, `retire` and `rotate`: what was agreed, and an alias's life."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

import typer

from canary.errors import CanaryError
from cli.workspace import (
    DbOption,
    FrequencyOption,
    HomeOption,
    MarketingOption,
    workspace,
    yes_no,
)
from data.mailstore import ACCEPT, REJECT
from data.registry import (
    active_aliases,
    find_company,
    issue_alias,
    latest_alias,
    opt_out,
    record_consent,
    retire_aliases,
)

app = typer.Typer()

NameArgument = Annotated[str, typer.Argument(help="The company.")]


@app.command()
def consent(
    ctx: typer.Context,
    name: NameArgument,
    marketing: MarketingOption = None,
    frequency: FrequencyOption = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Change what you agreed to with a company: marketing yes/no and how often."""
    with workspace(ctx, home, db) as space, space.store.writing() as session:
        company = record_consent(session, name, marketing=yes_no(marketing),
                                 frequency=frequency, now=datetime.now(UTC))
        shown = company.name
    typer.echo(f"Consent recorded for {shown}.")


def _moment(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(text), time())
        except ValueError as error:
            raise CanaryError(f"{text!r} is not a date; use YYYY-MM-DD.") from error
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def optout(
    ctx: typer.Context,
    name: NameArgument,
    at: Annotated[
        str | None,
        typer.Option("--at", help="When you opted out, YYYY-MM-DD (default: now)."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Record that you opted out of a company's marketing."""
    moment = _moment(at)
    with workspace(ctx, home, db) as space, space.store.writing() as session:
        company = opt_out(session, name, moment)
        shown = company.name
    typer.echo(f"Opt-out from {shown} recorded at {moment:%Y-%m-%d}; marketing more than "
               "10 days later will be reported.")


ReplyOption = Annotated[
    str,
    typer.Option("--reply", help="After retiring: `accept` keeps recording (evidence keeps "
                 "coming), `reject` answers 550."),
]


def _check_reply(reply: str) -> str:
    if reply not in (ACCEPT, REJECT):
        raise CanaryError("--reply must be accept or reject.")
    return reply


@app.command()
def retire(
    ctx: typer.Context,
    name: NameArgument,
    reply: ReplyOption = ACCEPT,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Retire a company's alias; it stays in reports with its retirement date."""
    _check_reply(reply)
    with workspace(ctx, home, db) as space, space.store.writing() as session:
        retired = retire_aliases(session, name, reply, datetime.now(UTC))
        addresses = [a.address for a in retired]
    for address in addresses:
        typer.echo(f"Retired {address}; mail to it is now "
                   f"{'rejected with 550' if reply == REJECT else 'still recorded'}.")


@app.command()
def rotate(
    ctx: typer.Context,
    name: NameArgument,
    reply: ReplyOption = ACCEPT,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Retire a company's alias and issue a fresh one; the history of both is kept."""
    _check_reply(reply)
    now = datetime.now(UTC)
    with workspace(ctx, home, db) as space, space.store.writing() as session:
        company = find_company(session, name)
        assert company.id is not None
        retired = (
            retire_aliases(session, name, reply, now) if active_aliases(session, company.id)
            else []
        )
        latest = latest_alias(session, company.id)
        issued = issue_alias(session, secret=space.secret, name=company.name,
                             alias_domain=latest.address.rpartition("@")[2], domains=[],
                             note=None, new=True, now=now)
    for alias in retired:
        typer.echo(f"Retired {alias.address}", err=True)
    typer.echo(issued.address)
