"""`canary report`, `canary show` and `canary trust`.

Before reporting, mail stored but not yet analysed (say, while no listener
ran) is analysed, so the report always covers everything received.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from canary.classify import Relation
from canary.report import (
    UNKNOWN_SENDER,
    CompanyReport,
    Verdict,
    company_report,
    report_document,
    worst_first,
)
from cli.output import console as make_console
from cli.workspace import DbOption, HomeOption, JsonOption, Workspace, workspace
from data.mailstore import probe_count, reclassify_company
from data.registry import trust_domain
from data.reporting import company_facts
from smtp_listener.analysis import analyse_all
from smtp_listener.server import utc_now

app = typer.Typer()

VERDICT_STYLE = {
    Verdict.SHARED: "bold white on red",
    Verdict.LEAKED: "bold red",
    Verdict.CLEAN: "green",
    Verdict.QUIET: "dim",
}
RELATION_STYLE = {
    Relation.FIRST_PARTY: "green",
    Relation.PROCESSOR: "green",
    Relation.THIRD_PARTY: "bold red",
    Relation.UNVERIFIED: "red",
    Relation.SPOOFED: "magenta",
}


def build_reports(space: Workspace, company: str | None) -> tuple[list[CompanyReport], int]:
    analyse_all(space.store, utc_now)
    with space.store.reading() as session:
        reports = [company_report(f) for f in company_facts(session, company)]
        probes = probe_count(session)
    return worst_first(reports), probes


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def _verdict(verdict: Verdict) -> str:
    return f"[{VERDICT_STYLE[verdict]}]{verdict.value}[/]"


def _relation(relation: Relation | None) -> str:
    if relation is None:
        return "[dim]pending[/]"
    return f"[{RELATION_STYLE[relation]}]{relation.value}[/]"


def render_report(console: Console, reports: Sequence[CompanyReport], probes: int) -> None:
    """The summary table, then the unexpected senders of each company that has them."""
    if not reports:
        console.print("No companies yet. Issue an alias with [bold]canary issue NAME[/].")
        return
    summary = Table(title="Canary report — worst first", box=box.SIMPLE_HEAD, pad_edge=False)
    summary.add_column("Company", min_width=10)
    summary.add_column("Alias / issued", overflow="fold", min_width=30)
    summary.add_column("Verdict", min_width=7)
    for column in ("Mail", "Unexpected", "Days to leak"):
        summary.add_column(column, justify="right", min_width=4)
    for r in reports:
        days = "—" if r.days_to_first_unexpected is None else str(r.days_to_first_unexpected)
        summary.add_row(r.name, f"{r.aliases[-1].address}\n[dim]issued {_day(r.issued_at)}[/]",
                        _verdict(r.verdict), str(r.counts["total"]),
                        str(r.counts["unexpected"]), days)
    console.print(summary)
    for r in reports:
        if r.unexpected:
            table = Table(title=f"{r.name}: unexpected senders", title_justify="left")
            for column in ("Organisation", "Relation", "First seen", "Last seen", "Count"):
                table.add_column(column, justify="right" if column == "Count" else "left")
            for s in r.unexpected:
                table.add_row(s.organisation, _relation(s.relation), _day(s.first_seen),
                              _day(s.last_seen), str(s.count))
            console.print(table)
    if probes:
        console.print(f"{probes} probe(s): mail to never-issued addresses on your domains.")


@app.command()
def report(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", help="Only this company.")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Verdicts per company, worst first, with each unexpected sender."""
    with workspace(ctx, home, db) as space:
        reports, probes = build_reports(space, company)
    if as_json:
        typer.echo(json.dumps(report_document(reports, datetime.now(UTC), probes), indent=2))
    else:
        render_report(make_console(), reports, probes)


@app.command()
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The company.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most recent messages shown.")] = 50,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """One company: its aliases, every sender and the timeline of its messages."""
    with workspace(ctx, home, db) as space:
        (r,), _ = build_reports(space, name)
    console = make_console()
    console.print(f"[bold]{r.name}[/] — verdict {_verdict(r.verdict)}")
    if r.note:
        console.print(f"Note: {r.note}")
    console.print(f"Own domains: {', '.join(r.domains) or 'none declared'}")
    for alias in r.aliases:
        console.print(f"Alias {alias.address}, issued {_day(alias.issued_at)}, "
                      f"{alias.messages} message(s)")
    if r.senders:
        senders = Table(title="Senders", title_justify="left")
        for column in ("Organisation", "Relation", "First seen", "Last seen", "Count"):
            senders.add_column(column, justify="right" if column == "Count" else "left")
        for s in r.senders:
            senders.add_row(s.organisation, _relation(s.relation), _day(s.first_seen),
                            _day(s.last_seen), str(s.count))
        console.print(senders)
    timeline = Table(title=f"Timeline (latest {min(limit, len(r.timeline))} of {len(r.timeline)})",
                     title_justify="left")
    for column in ("Received (UTC)", "Relation", "Sender", "From", "Subject"):
        timeline.add_column(column, overflow="fold")
    for m in r.timeline[-limit:]:
        subject = m.subject or ""
        if m.problem:
            subject = f"{subject} [dim]({m.problem})[/]"
        timeline.add_row(f"{m.received_at:%Y-%m-%d %H:%M}", _relation(m.relation),
                         m.sender_org or UNKNOWN_SENDER, m.from_address or "", subject)
    console.print(timeline)


@app.command()
def trust(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The company.")],
    domain: Annotated[str, typer.Argument(help="A sender domain that is the company's own.")],
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Mark a sender organisation as the company's own and reclassify its past mail."""
    with workspace(ctx, home, db) as space:
        analyse_all(space.store, utc_now)
        with space.store.writing() as session:
            company, organisation = trust_domain(session, name, domain, datetime.now(UTC))
            assert company.id is not None
            changed = reclassify_company(session, company.id)
    typer.echo(f"{organisation} is now {company.name}'s own; {changed} message(s) reclassified.")
