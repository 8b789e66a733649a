"""`canary triage`, `canary trust` and `canary flag`: the user decides about senders.

Canary never learns a new sender as normal by itself. Triage walks through
each company's unexpected sender organisations that the user has neither
trusted nor flagged, shows the evidence and asks. `trust` and `flag` are the
same decisions for scripts. Trusting reclassifies the company's past mail.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.prompt import Prompt

from canary.report import UNKNOWN_SENDER, CompanyReport, SenderSummary
from cli.output import console as make_console
from cli.report import build_reports, sender_table
from cli.workspace import DbOption, DnsOption, HomeOption, Workspace, workspace
from data.mailstore import reclassify_company
from data.registry import flag_sender, trust_domain

app = typer.Typer()

NameArgument = Annotated[str, typer.Argument(help="The company.")]


def _trust(space: Workspace, name: str, domain: str) -> str:
    with space.store.writing() as session:
        company, organisation = trust_domain(session, name, domain, datetime.now(UTC))
        assert company.id is not None
        changed = reclassify_company(session, company.id)
    return f"{organisation} is now {company.name}'s own; {changed} message(s) reclassified."


def _flag(space: Workspace, name: str, domain: str) -> str:
    with space.store.writing() as session:
        company, organisation = flag_sender(session, name, domain, datetime.now(UTC))
    return f"{organisation} is flagged as not {company.name}'s own."


@app.command()
def trust(
    ctx: typer.Context,
    name: NameArgument,
    domain: Annotated[str, typer.Argument(help="A sender domain that is the company's own.")],
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Mark a sender organisation as the company's own and reclassify its past mail."""
    with workspace(ctx, home, db, dns) as space:
        space.analyse_pending()
        typer.echo(_trust(space, name, domain))


@app.command()
def flag(
    ctx: typer.Context,
    name: NameArgument,
    domain: Annotated[str, typer.Argument(help="A sender domain that is not the company's.")],
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Confirm that a sender organisation is not the company's own; triage stops asking."""
    with workspace(ctx, home, db) as space:
        typer.echo(_flag(space, name, domain))


def undecided(reports: list[CompanyReport]) -> list[tuple[CompanyReport, SenderSummary]]:
    """Unexpected senders the user has neither trusted nor flagged, worst company first."""
    return [
        (report, sender)
        for report in reports
        for sender in report.unexpected
        if not sender.flagged and sender.organisation != UNKNOWN_SENDER
    ]


def _show(console: Console, report: CompanyReport, sender: SenderSummary) -> None:
    console.rule(f"{report.name} — {report.aliases[-1].address}")
    console.print(sender_table(f"New sender on {report.name}'s alias", [sender]))
    for example in sender.examples:
        console.print(f"  {example.received_at:%Y-%m-%d %H:%M}  "
                      f"{example.message_id or '(no Message-ID)'}  sha256 {example.sha256}")


@app.command()
def triage(
    ctx: typer.Context,
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Walk through new sender organisations: trust (the company's own), flag, or skip."""
    console = make_console()
    with workspace(ctx, home, db, dns) as space:
        reports, _ = build_reports(space, None)
        queue = undecided(reports)
        if not queue:
            console.print("Nothing to triage: every unexpected sender is flagged.")
            return
        for report, sender in queue:
            _show(console, report, sender)
            answer = Prompt.ask(
                f"Is {sender.organisation} {report.name}'s own? "
                "[t]rust / [f]lag / [s]kip / [q]uit",
                choices=["t", "f", "s", "q"], default="s", console=console,
            )
            if answer == "q":
                break
            if answer == "t":
                console.print(_trust(space, report.name, sender.organisation))
            elif answer == "f":
                console.print(_flag(space, report.name, sender.organisation))
