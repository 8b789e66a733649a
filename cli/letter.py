"""`canary letter`: a data-protection request, pre-filled with the evidence.

What the letter may claim is `canary.letters`'s business; its layout is
`cli.render.letter`'s. This command only reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from canary.letters import Kind, Law, letter_content
from cli.output import messages
from cli.workspace import CompanyArgument, DbOption, HomeOption, noun_app, workspace

app = noun_app()


@app.command()
def letter(
    ctx: typer.Context,
    name: CompanyArgument,
    kind: Annotated[Kind, typer.Option("--kind", help="Which request to write.")],
    law: Annotated[Law, typer.Option("--law", help="Which law to cite.")] = Law.GDPR,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Write a Markdown access, erasure or objection letter, pre-filled with the evidence."""
    from cli.render.letter import render_letter
    from data.home import write_private
    from data.reporting import build_reports

    with workspace(ctx, home, db) as space, space.store.reading() as session:
        (report,) = build_reports(session, [name]).companies
    text = render_letter(letter_content(report, kind, law), datetime.now(UTC))
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_private(out, text.encode())
        messages().print(f"Wrote the {kind.value} letter to {out}")
