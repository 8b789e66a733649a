"""`canary triage`, `canary trust` and `canary flag`: the person decides about senders.

Canary never learns a new sender as normal by itself. Triage walks through
each company's unexpected sender organisations that the person has neither
trusted nor flagged, shows the evidence and asks. `trust` and `flag` are the
same decisions for scripts. Trusting re-decides the company's stored mail
from what analysis recorded; no DNS is asked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from canary.wording import plural
from cli.output import console, print_json
from cli.workspace import (
    CompanyArgument,
    DbOption,
    HomeOption,
    JsonOption,
    noun_app,
    workspace,
)

if TYPE_CHECKING:
    from rich.console import Console

    from canary.report import CompanyReport, SenderSummary
    from cli.workspace import Workspace
    from data.analyses import Trusted

app = noun_app()


def _trust(space: Workspace, name: str, domain: str | None,
           esp_customer: tuple[str, str] | None = None) -> Trusted:
    from data.analyses import trust_sender

    with space.store.writing() as session:
        return trust_sender(session, name, domain, datetime.now(UTC), esp_customer=esp_customer,
                            trusted_sealers=space.config.trusted_arc_sealers)


def _trusted(trusted: Trusted) -> str:
    own = [o for o in (trusted.organisation,) if o]
    if trusted.esp_customer:
        own.append(f"{trusted.esp_customer[0]} customer {trusted.esp_customer[1]}")
    return (f"{' and '.join(own)} {'is' if len(own) == 1 else 'are'} now {trusted.company}'s "
            f"own; {plural(trusted.reclassified, 'stored message')} reclassified.")


def _esp_customer(text: str | None) -> tuple[str, str] | None:
    """`SendGrid:12345` → ("SendGrid", "12345"), the ESP spelt as Canary's table does."""
    from canary.esp import load_esps

    if text is None:
        return None
    esp, colon, customer = text.partition(":")
    wanted = esp.strip().casefold()
    names = [e.name for e in load_esps()]
    found = [n for n in names if n.casefold() == wanted] or [
        n for n in names if wanted and wanted in n.casefold()]
    if not colon or not customer.strip() or len(found) != 1:
        known = ", ".join(sorted(names)[:6])
        raise typer.BadParameter(f"give ESP:CUSTOMER_ID with an ESP Canary knows ({known}, …)",
                                 param_hint="--esp-customer")
    return found[0], customer.strip()


def _flag(space: Workspace, name: str, domain: str) -> tuple[str, str]:
    from data.registry import flag_sender

    with space.store.writing() as session:
        company, organisation = flag_sender(session, name, domain, datetime.now(UTC))
        return company.name, organisation


def _flagged(company: str, organisation: str) -> str:
    return f"{organisation} is flagged as not {company}'s own."


@app.command()
def trust(
    ctx: typer.Context,
    name: CompanyArgument,
    domain: Annotated[
        str | None,
        typer.Argument(help="A sender domain that is the company's own.", show_default=False),
    ] = None,
    esp_customer: Annotated[
        str | None,
        typer.Option("--esp-customer", metavar="ESP:ID",
                     help="An ESP customer id that is the company's own, e.g. SendGrid:12345; "
                     "mail from other customers of that ESP claiming the company is a forgery."),
    ] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Mark a sender organisation (or an ESP customer) as the company's own; reclassify."""
    from cli.render.documents import trust_document

    customer = _esp_customer(esp_customer)
    if domain is None and customer is None:
        raise typer.BadParameter("give the company's DOMAIN, or --esp-customer ESP:ID")
    with workspace(ctx, home, db) as space:
        trusted = _trust(space, name, domain, customer)
    if as_json:
        print_json(trust_document(trusted))
    else:
        typer.echo(_trusted(trusted))


@app.command()
def flag(
    ctx: typer.Context,
    name: CompanyArgument,
    domain: Annotated[str, typer.Argument(help="A sender domain that is not the company's.")],
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Confirm that a sender organisation is not the company's own; triage stops asking."""
    from cli.render.documents import flag_document

    with workspace(ctx, home, db) as space:
        company, organisation = _flag(space, name, domain)
    if as_json:
        print_json(flag_document(company, organisation))
    else:
        typer.echo(_flagged(company, organisation))


def undecided(reports: list[CompanyReport]) -> list[tuple[CompanyReport, SenderSummary]]:
    """Unexpected senders the person has neither trusted nor flagged, worst company first."""
    from canary.report import UNKNOWN_SENDER

    return [
        (report, sender)
        for report in reports
        for sender in report.unexpected
        if not sender.flagged and sender.organisation != UNKNOWN_SENDER
    ]


def _show(out: Console, report: CompanyReport, sender: SenderSummary) -> None:
    from cli.render.terminal import sender_table

    out.rule(f"{report.name} — {report.aliases[-1].address}")
    out.print(sender_table(f"New sender on {report.name}'s alias", [sender]))
    for example in sender.examples:
        out.print(f"  {example.received_at:%Y-%m-%d %H:%M}  "
                  f"{example.message_id or '(no Message-ID)'}  sha256 {example.sha256}")


@app.command()
def triage(
    ctx: typer.Context,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Walk through new sender organisations: trust (the company's own), flag, or skip."""
    from rich.markup import escape
    from rich.prompt import Prompt

    from data.reporting import build_reports

    out = console()
    with workspace(ctx, home, db) as space:
        with space.store.reading() as session:
            queue = undecided(build_reports(session, timeline=False).companies)
        if not queue:
            out.print("Nothing to triage: every unexpected sender is flagged.")
            return
        for report, sender in queue:
            _show(out, report, sender)
            answer = Prompt.ask(
                f"Is {escape(sender.organisation)} {escape(report.name)}'s own? "
                r"\[t]rust / \[f]lag / \[s]kip / \[q]uit",
                choices=["t", "f", "s", "q"], default="s", console=out,
            )
            if answer == "q":
                break
            if answer == "t":
                out.print(_trusted(_trust(space, report.name, sender.organisation)))
            elif answer == "f":
                out.print(_flagged(*_flag(space, report.name, sender.organisation)))
