"""`canary export` and `canary verify`: reports as files others can check.

Exports contain only what the person asked for: the chosen companies, the
messages their evidence cites, never the secret. `verify` needs no Canary
home and no network, so whoever receives a bundle can check it. Both only
read the database.
"""

from __future__ import annotations

import enum
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from canary.wording import plural
from cli.output import messages, print_json
from cli.workspace import (
    CompaniesArgument,
    CompanyOption,
    DbOption,
    HomeOption,
    JsonOption,
    noun_app,
    workspace,
)

if TYPE_CHECKING:  # the CLI starts fast: rich, the report and the database load when used
    from canary.report import CompanyReport

app = noun_app()

PROGRESS_FROM = 50
"""Show a progress bar when a bundle holds at least this many messages."""


class Format(enum.StrEnum):
    JSON = "json"
    CSV = "csv"
    MD = "md"
    HTML = "html"


def _render(fmt: Format, reports: Sequence[CompanyReport], now: datetime, probes: int) -> str:
    from canary.report import report_document
    from cli.render.csv import render_csv
    from cli.render.html import render_html
    from cli.render.markdown import render_markdown

    if fmt is Format.JSON:
        return json.dumps(report_document(reports, now, probes), indent=2) + "\n"
    if fmt is Format.CSV:
        return render_csv(reports)
    if fmt is Format.MD:
        return render_markdown(reports, now, probes)
    return render_html(reports, now, probes)


@app.command()
def export(
    ctx: typer.Context,
    names: CompaniesArgument = None,
    company: CompanyOption = None,
    fmt: Annotated[
        Format | None, typer.Option("--format", help="File format of --out.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The file to write.")] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Write a verifiable evidence bundle (zip) here instead."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Export the report as JSON, CSV, Markdown or HTML, or as a verifiable evidence bundle."""
    from rich.progress import Progress

    from canary.report import report_document
    from cli.render.html import render_html
    from cli.render.markdown import render_markdown
    from data.analyses import stored_evidence
    from data.home import write_private
    from data.reporting import build_reports
    from smtp_listener.evidence import cited_sha256s, write_bundle

    if (bundle is None) == (out is None):
        raise typer.BadParameter("give either --out FILE with --format, or --bundle FILE.zip")
    if out is not None and fmt is None:
        raise typer.BadParameter("say which --format to write: json, csv, md or html")
    now = datetime.now(UTC)
    say = messages()
    with workspace(ctx, home, db) as space, space.store.reading() as session:
        # The HTML (alone or in a bundle) draws every message on its timeline.
        built = build_reports(session, [*(names or ()), *(company or ())],
                              timeline=bundle is not None or fmt is Format.HTML)
        reports, probes = built.companies, built.probes
        companies = plural(len(reports), "company", "companies")
        if out is not None:
            assert fmt is not None
            write_private(out, _render(fmt, reports, now, probes).encode())
            say.print(f"Wrote the {fmt.value.upper()} report of {companies} to {out}")
            return
        assert bundle is not None
        document = report_document(reports, now, probes)
        evidence = stored_evidence(session, cited_sha256s(document))
    buffer = io.BytesIO()
    with Progress(console=say, transient=True,
                  disable=len(evidence) < PROGRESS_FROM) as progress:
        task = progress.add_task("Bundling evidence", total=len(evidence))
        count = write_bundle(
            buffer, report_json=document, report_html=render_html(reports, now, probes),
            report_md=render_markdown(reports, now, probes), evidence=evidence,
            progress=lambda: progress.advance(task),
        )
    write_private(bundle, buffer.getvalue())
    say.print(f"Wrote evidence bundle {bundle}: {companies}, {plural(count, 'message')}. "
              f"Check it anywhere with: canary verify {bundle.name}")


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="The evidence bundle (zip) to check.")],
    as_json: JsonOption = False,
) -> None:
    """Check an evidence bundle: every hash, and every DKIM signature offline. No home needed."""
    from cli.render.documents import verify_document
    from smtp_listener.evidence import verify_bundle

    result = verify_bundle(bundle, bundle.read_bytes())
    if as_json:
        print_json(verify_document(result))
    else:
        for problem in result.problems:
            typer.echo(f"MISMATCH: {problem}")
        summary = (f"{plural(result.files, 'file')}, {plural(result.messages, 'message')}, "
                   f"{plural(result.signatures, 'DKIM signature')} re-verified offline")
        if result.ok:
            typer.echo(f"All evidence verified: {summary}.")
        else:
            typer.echo(f"{plural(len(result.problems), 'problem')} found; {summary}.")
    if not result.ok:
        raise typer.Exit(1)
