"""`canary demo`: a self-contained tour on loopback, with no network.

The tour itself (its companies, mail servers, DNS and six weeks of mail) is
`smtp_listener.testing.demo`; this command runs it in a temporary home (or
`--keep DIR`) and prints the report it ends with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from canary.wording import plural
from cli.output import console
from cli.workspace import noun_app

if TYPE_CHECKING:  # the CLI starts fast: rich, the listener and the database load when used
    from canary.alerts import Event

app = noun_app()


def _delivered(maildir: Path) -> list[str]:
    """The subjects of the messages delivered into the Maildir, as a mail client shows them."""
    import mailbox  # here, not at start: every command imports this module
    from email.header import decode_header, make_header

    box = mailbox.Maildir(maildir, create=False)
    try:
        return [str(make_header(decode_header(str(m.get("Subject", ""))))) for m in box]
    finally:
        box.close()


def _alerts(events: tuple[Event, ...]) -> None:
    """The alerts a channel with the default settings would have had, one by one."""
    from rich.markup import escape

    from canary.alerts import Channel, alert_text, alert_title

    default = Channel("json://localhost")
    wanted = [e for e in events if default.wants(e.kind, e.severity)]
    out = console()
    out.print(f"\n[bold]Alerts Canary would have sent[/] ({plural(len(wanted), 'alert')}, each "
              "once, as the mail arrived; add your phone with `canary alerts add "
              "ntfys://ntfy.sh/YOUR-TOPIC`):")
    for event in wanted:
        out.print(f"\n  {escape(f'[{event.severity.value}]')} "
                  f"[bold]{escape(alert_title(event))}[/]")
        for line in alert_text(event).splitlines():
            out.print(f"    {escape(line)}", highlight=False)


def _tour(home: Path) -> None:
    from rich.markup import escape

    from canary.relation import Relation
    from cli.render.terminal import render_report
    from smtp_listener.testing.demo import RETAILER, run_tour

    out = console()
    tour = run_tour(home, out.print)
    reports = tour.reports
    subjects = _delivered(tour.maildir)
    tagged = [s for s in subjects if s.startswith("[Canary:")]
    out.print(f"\nDelivered {plural(len(subjects), 'message')} into the Maildir {tour.maildir}, "
              f"each labelled with X-Canary-* headers; {len(tagged)} tagged as unexpected, "
              f"e.g. [bold]{escape(tagged[0]) if tagged else '(none)'}[/]")
    for job in tour.held:
        out.print(f"Held, not delivered: message {job.message_id} to {job.company} from "
                  f"{escape(job.sender or '?')} ({job.relation}): "
                  f"\"{escape(job.subject or '')}\"; `canary release {job.message_id}` would "
                  "deliver it.")
    out.print()
    render_report(out, reports.companies, reports.probes)
    retailer = next(r for r in reports.companies if r.name == RETAILER.name)
    third = [s.organisation for s in retailer.unexpected if s.relation is Relation.THIRD_PARTY]
    out.print(
        f"\n[bold]{retailer.name}[/]: verdict [bold red]{retailer.verdict.value}[/]. "
        f"Its alias, given to {retailer.name} alone, now gets authenticated mail from "
        f"{', '.join(third) or 'nobody'}, first {retailer.days_to_first_unexpected} days after "
        "it was issued. Its own newsletters, sent through its ESP, are not held against it."
    )
    _alerts(tour.alerts)


@app.command()
def demo(
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Keep the demo's home in this new directory, to explore "
                     "with `canary --home DIR report` (its DNS is gone after the demo)."),
    ] = None,
) -> None:
    """A self-contained tour on loopback: issues aliases, sends real SMTP, prints the report."""
    if keep is not None:
        _tour(keep)
        console().print(f"\nThe demo's home is kept at {keep}.")
        return
    with tempfile.TemporaryDirectory(prefix="canary-demo-") as directory:
        _tour(Path(directory) / "home")
