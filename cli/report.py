"""`canary report` and `canary show`: verdicts, worst first, and one company in detail.

Both only read: mail not analysed yet is counted and named, not analysed
here (`canary analyse` or a running `canary serve` does that), and no DNS
is asked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.output import console, print_json
from cli.workspace import (
    LARGEST_ID,
    CompaniesArgument,
    CompanyArgument,
    CompanyOption,
    DbOption,
    HomeOption,
    JsonOption,
    home_config,
    noun_app,
    read_plainly,
)

app = noun_app()


@app.command()
def report(
    ctx: typer.Context,
    names: CompaniesArgument = None,
    company: CompanyOption = None,
    every: Annotated[bool, typer.Option(
        "--all", help="Every company in the summary, the evidence of every company that "
        "needs attention (shared, leaked or a consent finding) and every sender; by default "
        "the evidence stops after 20 such companies, the summary lists 30 of the others, and "
        "each company lists every accused sender and 5 others of each kind. With --json, "
        "every sender of every company.",
    )] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Verdicts per company, worst first, with each unexpected sender and the evidence.

    The summary has one line per company. The evidence follows for the companies that need
    attention, the worst 20 of them, and the summary lists the first 30 of the others, so a
    report of a thousand companies stays readable; `--all` shows everything. Each company
    lists every sender its verdict accuses and the first 5 others of each kind (unexpected,
    its own, unproven), and counts the rest: `canary show NAME` lists them all.
    """
    from canary.alerts import failing_for_days
    from canary.report import EVIDENCE_SHOWN, SENDERS_LISTED, report_document
    from data.summary import channel_states, summed_reports

    chosen = [*(names or ()), *(company or ())]
    channels = home_config(ctx, home).alerts.channels
    reports, states = read_plainly(ctx, home, db, lambda connection: (
        summed_reports(connection, chosen, EVIDENCE_SHOWN, None if every else SENDERS_LISTED),
        channel_states(connection)))
    deliveries = {"failed": reports.deliveries_failed, "held": reports.held}
    now = datetime.now(UTC)
    if as_json:
        print_json(report_document(reports.companies, now, reports.probes, deliveries,
                                   evidence_limit=EVIDENCE_SHOWN))
    else:
        from cli.render.terminal import render_alert_channels, render_deliveries, render_report

        render_report(console(), reports.companies, reports.probes, every=every)
        render_deliveries(console(), reports.deliveries_failed, reports.held)
        render_alert_channels(console(), [
            (c, states[c.key]) for c in channels
            if c.key in states and failing_for_days(states[c.key], now)])


@app.command()
def show(
    ctx: typer.Context,
    name: CompanyArgument,
    limit: Annotated[int, typer.Option("--limit", min=1, max=LARGEST_ID,
                                       help="Most recent messages shown.")] = 50,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """One company: its aliases, every sender and the timeline of its messages."""
    from data.summary import company_view

    r = read_plainly(ctx, home, db, lambda connection: company_view(connection, name, limit))
    if as_json:
        from cli.render.documents import show_document

        print_json(show_document(r, limit))
    else:
        from cli.render.terminal import render_company  # rich, for the table alone

        render_company(console(), r, limit)
