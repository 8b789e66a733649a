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
    SenderSummary,
    Verdict,
    company_report,
    likely_brokers,
    report_document,
    worst_first,
)
from cli.output import console as make_console
from cli.workspace import DbOption, DnsOption, HomeOption, JsonOption, Workspace, workspace
from data.mailstore import probe_count
from data.reporting import company_facts

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
    space.analyse_pending()
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


def _auth(sender: SenderSummary) -> str:
    return ", ".join(sender.authenticated_by) or "none"


def sender_table(title: str, senders: Sequence[SenderSummary]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("Organisation", "Relation", "Authenticated by", "First seen", "Last seen",
                   "Count"):
        table.add_column(column, justify="right" if column == "Count" else "left",
                         overflow="fold")
    for s in senders:
        name = f"{s.organisation} [dim](flagged)[/]" if s.flagged else s.organisation
        table.add_row(name, _relation(s.relation), _auth(s), _day(s.first_seen),
                      _day(s.last_seen), str(s.count))
    return table


def render_report(console: Console, reports: Sequence[CompanyReport], probes: int) -> None:
    """The summary table, then the evidence of each company with unexpected senders."""
    if not reports:
        console.print("No companies yet. Issue an alias with [bold]canary issue NAME[/].")
        return
    summary = Table(title="Canary report — worst first", box=box.SIMPLE_HEAD, pad_edge=False)
    summary.add_column("Company / alias / issued", overflow="fold")
    summary.add_column("Verdict", min_width=7)
    for column in ("Mail", "Unexpected"):
        summary.add_column(column, justify="right", min_width=len(column))
    for r in reports:
        verdict = _verdict(r.verdict)
        if r.days_to_first_unexpected is not None:
            verdict += f"\n[dim]{r.days_to_first_unexpected} days in[/]"
        summary.add_row(
            f"[bold]{r.name}[/]\n{r.aliases[-1].address}\n[dim]issued {_day(r.issued_at)}[/]",
            verdict, str(r.counts["total"]), str(r.counts["unexpected"]),
        )
    console.print(summary)
    for r in reports:
        if r.verdict in (Verdict.SHARED, Verdict.LEAKED):
            console.print(f"[bold]{r.name}[/]: {_verdict(r.verdict)}, confidence "
                          f"{r.confidence.value} — {r.confidence_reason}")
            console.print(sender_table(f"{r.name}: unexpected senders", r.unexpected))
            for sender in r.unexpected[:5]:
                for example in sender.examples[:1]:
                    console.print(f"  e.g. {sender.organisation}: "
                                  f"{example.message_id or '(no Message-ID)'} "
                                  f"[dim]sha256 {example.sha256[:16]}…[/]")
        for finding in r.findings:
            console.print(f"[bold]{r.name}[/]: [magenta]{finding.kind.value}[/] — "
                          f"{finding.summary}")
        if r.counts.get("temperror"):
            console.print(f"[yellow]{r.name}: {r.counts['temperror']} message(s) wait for DNS "
                          "to answer; they will be analysed again.[/]")
    brokers = likely_brokers(reports)
    if brokers:
        console.print("[bold]Likely list brokers[/] (one sender on several companies' aliases):")
        for broker in brokers:
            console.print(f"  {broker.organisation}: {', '.join(broker.companies)}")
    if probes:
        console.print(f"{probes} probe(s): mail to never-issued addresses on your domains.")


@app.command()
def report(
    ctx: typer.Context,
    company: Annotated[str | None, typer.Option("--company", help="Only this company.")] = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Verdicts per company, worst first, with each unexpected sender."""
    with workspace(ctx, home, db, dns) as space:
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
    dns: DnsOption = None,
) -> None:
    """One company: its aliases, every sender and the timeline of its messages."""
    with workspace(ctx, home, db, dns) as space:
        (r,), _ = build_reports(space, name)
    console = make_console()
    console.print(f"[bold]{r.name}[/] — verdict {_verdict(r.verdict)}, confidence "
                  f"{r.confidence.value}: {r.confidence_reason}")
    if r.note:
        console.print(f"Note: {r.note}")
    console.print(f"Own domains: {', '.join(r.domains) or 'none declared'}")
    for alias in r.aliases:
        console.print(f"Alias {alias.address}, issued {_day(alias.issued_at)}, "
                      f"{alias.messages} message(s)")
    if r.senders:
        console.print(sender_table("Senders", r.senders))
    timeline = Table(title=f"Timeline (latest {min(limit, len(r.timeline))} of {len(r.timeline)})",
                     title_justify="left")
    for column in ("Received (UTC)", "Relation", "Sender", "Why", "Subject"):
        timeline.add_column(column, overflow="fold")
    for m in r.timeline[-limit:]:
        subject = m.subject or ""
        if m.problem:
            subject = f"{subject} [dim]({m.problem})[/]"
        why = m.reason or (f"waiting for DNS: {m.temperror}" if m.temperror else "")
        timeline.add_row(f"{m.received_at:%Y-%m-%d %H:%M}", _relation(m.relation),
                         m.sender_org or UNKNOWN_SENDER, why, subject)
    console.print(timeline)
