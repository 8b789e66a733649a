"""`canary demo`: a self-contained tour on loopback, with no network.

The tour itself (its companies, mail servers, DNS and six weeks of mail) is
`smtp_listener.testing.demo`; this command runs it in a temporary home (or
`--keep DIR`) and prints the report it ends with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

from canary.attribution import Relation
from cli.output import console
from cli.render.terminal import render_report
from cli.workspace import noun_app
from smtp_listener.testing.demo import RETAILER, run_tour

app = noun_app()


def _tour(home: Path) -> None:
    out = console()
    reports = run_tour(home, out.print)
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
