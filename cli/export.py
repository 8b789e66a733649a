"""`canary export` and `canary verify`: reports as files others can check.

Exports contain only what the user asked for: the chosen companies, the
messages their evidence cites, never the secret. `verify` needs no Canary
home and no network, so whoever receives a bundle can check it.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from canary.errors import CanaryError
from canary.report import CompanyReport, likely_brokers, report_document, worst_first
from cli.bundle import cited_sha256s, verify_bundle, write_bundle
from cli.export_html import render_html
from cli.output import console as make_console
from cli.report import build_reports
from cli.workspace import DbOption, DnsOption, HomeOption, workspace
from data.home import write_private
from data.mailstore import stored_evidence

app = typer.Typer()

PROGRESS_FROM = 50
"""Show a progress bar when a bundle holds at least this many messages."""


class Format(enum.StrEnum):
    JSON = "json"
    CSV = "csv"
    MD = "md"
    HTML = "html"


CSV_COLUMNS = ("company", "alias", "issued_at", "verdict", "confidence", "organisation",
               "relation", "authenticated_by", "first_seen", "last_seen", "count")


def render_csv(reports: Sequence[CompanyReport]) -> str:
    """One row per company and unexpected sender; a company with none gets one row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in worst_first(reports):
        company = [r.name, r.aliases[-1].address, f"{r.issued_at:%Y-%m-%d}", r.verdict.value,
                   r.confidence.value]
        if not r.unexpected:
            writer.writerow([*company, "", "", "", "", "", 0])
        for s in r.unexpected:
            writer.writerow([*company, s.organisation, s.relation.value,
                             "; ".join(s.authenticated_by), f"{s.first_seen:%Y-%m-%d}",
                             f"{s.last_seen:%Y-%m-%d}", s.count])
    return out.getvalue()


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(reports: Sequence[CompanyReport], generated_at: datetime, probes: int) -> str:
    lines = ["# Canary breach report", "",
             f"Generated {generated_at:%Y-%m-%d %H:%M} UTC. Companies are listed worst first.", ""]
    for r in worst_first(reports):
        lines += [f"## {_md(r.name)} — {r.verdict.value}", ""]
        lines.append(f"- Confidence: {r.confidence.value} — {_md(r.confidence_reason)}")
        for alias in r.aliases:
            retired = (f", retired {alias.retired_at:%Y-%m-%d} ({alias.retire_reply})"
                       if alias.retired_at else "")
            lines.append(f"- Alias `{alias.address}`, given on {alias.issued_at:%Y-%m-%d}"
                         f"{retired}, {alias.messages} message(s)")
        lines.append(f"- Own domains: {', '.join(r.domains) or 'none declared'}")
        lines.append(f"- Messages: {r.counts['total']} in all, {r.counts['unexpected']} from "
                     "unexpected senders")
        if r.days_to_first_unexpected is not None:
            lines.append(f"- First unexpected mail {r.days_to_first_unexpected} days after the "
                         "alias was given")
        if r.consent is not None:
            c = r.consent
            agreed = ("opted out" if c.opted_out else
                      f"marketing {'yes' if c.marketing else 'no' if c.marketing is False else '?'}"
                      f", {c.frequency.value if c.frequency else 'no frequency given'}")
            lines.append(f"- Consent since {c.since:%Y-%m-%d}: {agreed}")
        lines.append("")
        if r.unexpected:
            lines += ["| Organisation | Relation | Authenticated by | First seen | Last seen | "
                      "Count | Example (Message-ID, SHA-256) |",
                      "|---|---|---|---|---|---:|---|"]
            for s in r.unexpected:
                example = s.examples[0] if s.examples else None
                cited = (f"{_md(example.message_id or '(none)')}, `{example.sha256}`"
                         if example else "")
                lines.append(f"| {_md(s.organisation)} | {s.relation.value} | "
                             f"{_md(', '.join(s.authenticated_by))} | {s.first_seen:%Y-%m-%d} | "
                             f"{s.last_seen:%Y-%m-%d} | {s.count} | {cited} |")
            lines.append("")
        for finding in r.findings:
            lines.append(f"**{finding.kind.value}**: {_md(finding.summary)}")
            for m in finding.messages[:10]:
                lines.append(f"- {m.received_at:%Y-%m-%d %H:%M} {_md(m.message_id or '(none)')} "
                             f"`{m.sha256}`")
            lines.append("")
    brokers = likely_brokers(reports)
    if brokers:
        lines += ["## Likely list brokers", ""]
        lines += [f"- {_md(b.organisation)}: {', '.join(b.companies)}" for b in brokers]
        lines.append("")
    if probes:
        lines.append(f"{probes} probe(s) to never-issued addresses were refused.")
    return "\n".join(lines).rstrip() + "\n"


def _render(fmt: Format, reports: Sequence[CompanyReport], now: datetime, probes: int) -> str:
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
    company: Annotated[
        list[str] | None,
        typer.Option("--company", help="Only this company (repeatable; default: all)."),
    ] = None,
    fmt: Annotated[
        Format | None, typer.Option("--format", help="File format of --out.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="The file to write.")] = None,
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Write an evidence bundle (zip) here instead."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Export the report as JSON, CSV, Markdown or HTML, or as a verifiable evidence bundle."""
    if (bundle is None) == (out is None):
        raise CanaryError("Give either --out FILE with --format, or --bundle FILE.zip.")
    if out is not None and fmt is None:
        raise CanaryError("Say which --format to write: json, csv, md or html.")
    now = datetime.now(UTC)
    console = make_console()
    with workspace(ctx, home, db, dns) as space:
        if company:
            reports = [r for name in dict.fromkeys(company) for r in build_reports(space, name)[0]]
            probes = 0  # probes belong to no company; a per-company export leaves them out
        else:
            reports, probes = build_reports(space, None)
        if out is not None:
            assert fmt is not None
            write_private(out, _render(fmt, reports, now, probes).encode())
            console.print(f"Wrote {fmt.value.upper()} report of {len(reports)} "
                          f"compan{'y' if len(reports) == 1 else 'ies'} to {out}")
            return
        assert bundle is not None
        document = report_document(reports, now, probes)
        with space.store.reading() as session:
            evidence = stored_evidence(session, cited_sha256s(document))
        buffer = io.BytesIO()
        with Progress(console=console, transient=True,
                      disable=len(evidence) < PROGRESS_FROM) as progress:
            task = progress.add_task("Bundling evidence", total=len(evidence))
            count = write_bundle(
                buffer, report_json=document, report_html=render_html(reports, now, probes),
                report_md=render_markdown(reports, now, probes), evidence=evidence,
                progress=lambda: progress.advance(task),
            )
        write_private(bundle, buffer.getvalue())
    console.print(f"Wrote evidence bundle {bundle}: {len(reports)} compan"
                  f"{'y' if len(reports) == 1 else 'ies'}, {count} message(s). "
                  f"Check it anywhere with: canary verify {bundle.name}")


@app.command()
def verify(
    bundle: Annotated[Path, typer.Argument(help="The evidence bundle (zip) to check.")],
) -> None:
    """Check an evidence bundle: every hash, and every DKIM signature offline. No home needed."""
    try:
        data = bundle.read_bytes()
    except OSError as error:
        raise CanaryError(f"Cannot read {bundle}: {error.strerror}.") from error
    result = verify_bundle(data)
    for problem in result.problems:
        typer.echo(f"MISMATCH: {problem}", err=True)
    summary = (f"{result.files} file(s), {result.messages} message(s), "
               f"{result.signatures} DKIM signature(s) re-verified offline")
    if result.ok:
        typer.echo(f"All evidence verified: {summary}.")
        return
    typer.echo(f"{len(result.problems)} problem(s) found; {summary}.", err=True)
    raise typer.Exit(1)
