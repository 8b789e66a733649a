"""`canary consent`, `optout`, `retire` and `rotate`: what was agreed, and an alias's life."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from canary.aliases import RetireReply
from canary.consent import OPTOUT_GRACE
from canary.wording import day
from cli.output import print_json
from cli.workspace import (
    CompanyArgument,
    DateOption,
    DbOption,
    FrequencyOption,
    HomeOption,
    JsonOption,
    MarketingOption,
    ReplyOption,
    noun_app,
    utc,
    workspace,
    yes_no,
)

if TYPE_CHECKING:
    from canary.consent import Consent

app = noun_app()


def _agreed(consent: Consent) -> str:
    if consent.opted_out:
        return "opted out"
    marketing = {True: "marketing yes", False: "marketing no", None: "marketing not recorded"}
    frequency = f", {consent.frequency.value}" if consent.frequency else ""
    return f"{marketing[consent.marketing]}{frequency}"


@app.command()
def consent(
    ctx: typer.Context,
    name: CompanyArgument,
    marketing: MarketingOption = None,
    frequency: FrequencyOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Change what you agreed to with a company: marketing yes/no and how often."""
    from cli.render.documents import consent_document
    from data.registry import record_consent

    with workspace(ctx, home, db) as space, space.store.writing() as session:
        company, recorded = record_consent(session, name, marketing=yes_no(marketing),
                                           frequency=frequency, now=datetime.now(UTC))
        shown = company.name
    if as_json:
        print_json(consent_document(shown, recorded))
    else:
        typer.echo(f"Consent recorded for {shown} from {day(recorded.since)}: "
                   f"{_agreed(recorded)}.")


@app.command()
def optout(
    ctx: typer.Context,
    name: CompanyArgument,
    at: Annotated[
        datetime | None,
        DateOption("--at", help="When you opted out, YYYY-MM-DD (UTC; default: now)."),
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Record that you opted out of a company's marketing."""
    from cli.render.documents import consent_document
    from data.registry import opt_out

    moment = utc(at)
    with workspace(ctx, home, db) as space, space.store.writing() as session:
        company, recorded = opt_out(session, name, moment)
        shown = company.name
    if as_json:
        print_json(consent_document(shown, recorded))
    else:
        typer.echo(f"Opt-out from {shown} recorded at {day(moment)}; marketing more than "
                   f"{OPTOUT_GRACE.days} days later will be reported.")


@app.command()
def retire(
    ctx: typer.Context,
    name: CompanyArgument,
    reply: ReplyOption = RetireReply.ACCEPT,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Retire a company's alias; it stays in reports with its retirement date."""
    from cli.render.documents import retire_document
    from data.registry import retire_aliases

    with workspace(ctx, home, db) as space, space.store.writing() as session:
        company, retired = retire_aliases(session, name, reply, datetime.now(UTC))
        shown, addresses = company.name, [a.address for a in retired]
    if as_json:
        print_json(retire_document(shown, reply.value, addresses))
        return
    for address in addresses:
        typer.echo(f"Retired {address}; mail to it is now "
                   f"{'rejected with 550' if reply is RetireReply.REJECT else 'still recorded'}.")


@app.command()
def rotate(
    ctx: typer.Context,
    name: CompanyArgument,
    reply: ReplyOption = RetireReply.ACCEPT,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Retire a company's alias and issue a fresh one; the history of both is kept."""
    from cli.render.documents import rotate_document
    from data.registry import rotate_alias

    with workspace(ctx, home, db) as space, space.store.writing() as session:
        rotation = rotate_alias(session, secret=space.secret, name=name, reply=reply,
                                now=datetime.now(UTC))
    if as_json:
        print_json(rotate_document(rotation))
        return
    for address in rotation.retired:
        typer.echo(f"Retired {address}", err=True)
    typer.echo(rotation.issued.address)
