"""`canary analyse`: analyse mail stored while no listener ran, with a progress bar.

`canary serve` analyses as mail arrives; this is for a home whose listener
is stopped (or was, when the mail came). It asks DNS (`--dns`), so it is
the one reading-side command that does network I/O; reports never do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from cli.output import messages, print_json
from cli.workspace import (
    DbOption,
    DnsOption,
    HomeOption,
    JsonOption,
    Workspace,
    noun_app,
    workspace,
)


def _now() -> datetime:
    return datetime.now(UTC)


app = noun_app()


def analyse_due(space: Workspace, *, quiet: bool) -> int:
    """Analyse every message due now, with a progress bar on stderr unless `quiet`; how many
    were analysed (`analyse`, and `import` after it stored the mail)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from smtp_listener.analysis import analyse_all, due_count

    settings = space.analysis_config().settings()
    due = due_count(space.store, _now)
    with Progress(TextColumn("Analysing"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=messages(), transient=True,
                  disable=quiet or not due) as progress:
        task = progress.add_task("analyse", total=due)
        return analyse_all(space.store, settings, _now,
                           progress=lambda count: progress.advance(task, count))


@app.command()
def analyse(
    ctx: typer.Context,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="Then compute the report's sender tallies again from every stored "
        "message (they are kept current as mail is analysed; rebuild after restoring a "
        "database by hand, or if you doubt a report).")] = False,
) -> None:
    """Analyse stored mail that is not analysed yet (SPF, DKIM, DMARC, then the verdicts)."""
    from cli.render.documents import analyse_document
    from data.analyses import unsettled_count
    from data.tallies import rebuild as rebuild_tallies

    counted = None
    with workspace(ctx, home, db, dns) as space:
        done = analyse_due(space, quiet=as_json)
        if rebuild:
            with space.store.writing() as session:
                counted = rebuild_tallies(session.connection())
        with space.store.reading() as session:
            left = unsettled_count(session)
    if as_json:
        print_json(analyse_document(done, left, counted))
        return
    typer.echo(f"Analysed {done} message{'' if done == 1 else 's'}.")
    if counted is not None:
        typer.echo(f"Rebuilt the report's sender tallies from the stored mail: "
                   f"{counted} sender{'' if counted == 1 else 's'} across the aliases.")
    if left:
        typer.echo(f"{left} still waiting to be analysed again after a temporary DNS failure; "
                   "run this again later, or keep `canary serve` running.", err=True)
