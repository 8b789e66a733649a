"""`canary held`, `release`, `drop`, `deliveries` and `deliver`: mail on its way to you.

`canary serve` delivers as mail arrives; these commands show what the policy
held back and what failed, let the person release or drop held mail, and
run one delivery pass for a home whose listener is stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from canary.errors import NoDestination, NothingHeld
from canary.wording import iso_time, plural
from cli.output import console, messages, print_json
from cli.workspace import (
    LARGEST_ID,
    CompaniesArgument,
    CompanyOption,
    DbOption,
    HomeOption,
    JsonOption,
    noun_app,
    workspace,
)

if TYPE_CHECKING:  # the CLI starts fast: rich, the database and the listener load when used
    from data.deliveries import JobListing

app = noun_app()

MessageIds = Annotated[
    list[int] | None,
    typer.Argument(help="Held messages, by the ID `canary held` shows.", show_default=False,
                   min=1, max=LARGEST_ID),
]
ReleaseCompany = Annotated[
    str | None,
    typer.Option("--company", help="Every held message of this company instead of IDs."),
]


def _now() -> datetime:
    return datetime.now(UTC)


def _by_message(listing: Sequence[JobListing]) -> list[tuple[JobListing, list[str]]]:
    """One row per message, with the destinations it is held for."""
    grouped: dict[int, tuple[JobListing, list[str]]] = {}
    for job in listing:
        grouped.setdefault(job.message_id, (job, []))[1].append(job.destination)
    return list(grouped.values())


@app.command()
def held(
    ctx: typer.Context,
    names: CompaniesArgument = None,
    company: CompanyOption = None,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Mail the delivery policy keeps in Canary, oldest first: release or drop it."""
    from rich import box
    from rich.table import Table

    from cli.render.documents import held_document
    from data import deliveries as queue

    with workspace(ctx, home, db) as space, space.store.reading() as session:
        listing = _by_message(queue.held(session, [*(names or ()), *(company or ())]))
    if as_json:
        print_json(held_document(listing))
        return
    if not listing:
        messages().print("Nothing is held.")
        return
    table = Table(title="Held mail", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("ID", "received", "company", "relation", "sender", "subject"):
        table.add_column(column, overflow="fold")
    for job, _ in listing:
        table.add_row(str(job.message_id), iso_time(job.received_at), job.company,
                      job.relation or "not analysed", job.sender or "", job.subject or "")
    console().print(table)
    messages().print("Deliver with `canary release ID…`, or keep out of your mailbox for good "
                     "with `canary drop ID…` (the evidence stays).")


def _select(ids: list[int] | None, company: str | None) -> str:
    if not ids and company is None:
        raise typer.BadParameter("give the IDs of held messages, or --company NAME")
    if ids and company is not None:
        raise typer.BadParameter("give IDs or --company, not both")
    return f"company {company}" if company else ", ".join(f"ID {i}" for i in ids or ())


@app.command()
def release(
    ctx: typer.Context,
    ids: MessageIds = None,
    company: ReleaseCompany = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Deliver held mail after all, labelled as usual (on the next delivery pass)."""
    from data import deliveries as queue

    what = _select(ids, company)
    with workspace(ctx, home, db) as space, space.store.writing() as session:
        released = queue.release(session, ids or (), company, _now())
    if not released:
        raise NothingHeld(what)
    typer.echo(f"Released {plural(len(released), 'message')}: "
               f"{', '.join(str(i) for i in released)}.")
    messages().print("A running `canary serve` delivers them within seconds; otherwise run "
                     "`canary deliver`.")


@app.command()
def drop(
    ctx: typer.Context,
    ids: MessageIds = None,
    company: ReleaseCompany = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Never deliver held mail; Canary keeps it as evidence."""
    from data import deliveries as queue

    what = _select(ids, company)
    with workspace(ctx, home, db) as space, space.store.writing() as session:
        dropped = queue.drop(session, ids or (), company)
    if not dropped:
        raise NothingHeld(what)
    typer.echo(f"Dropped {plural(len(dropped), 'message')} from delivery: "
               f"{', '.join(str(i) for i in dropped)}; the evidence is kept.")


@app.command()
def deliveries(
    ctx: typer.Context,
    failed: Annotated[
        bool, typer.Option("--failed", help="Only deliveries that failed for good.")
    ] = False,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Each message's delivery to each destination: delivered, pending, held or failed."""
    from rich import box
    from rich.table import Table

    from cli.render.documents import deliveries_document
    from data import deliveries as queue

    with workspace(ctx, home, db) as space, space.store.reading() as session:
        listing = queue.deliveries(session, failed_only=failed)
    if as_json:
        print_json(deliveries_document(listing))
        return
    if not listing:
        messages().print("No delivery failed." if failed else "Nothing delivered yet.")
        return
    table = Table(title="Failed deliveries" if failed else "Deliveries", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for column in ("ID", "received", "company", "destination", "state", "attempts",
                   "last error"):
        table.add_column(column, overflow="fold")
    for job in listing:
        table.add_row(str(job.message_id), iso_time(job.received_at), job.company,
                      job.destination, job.state.value, str(job.attempts), job.last_error or "")
    console().print(table)


@app.command()
def deliver(
    ctx: typer.Context,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Deliver what is due now to your destinations, once (`canary serve` does it itself)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from cli.render.documents import deliver_document
    from smtp_listener.delivery import Deliverer

    with workspace(ctx, home, db) as space:
        config = space.delivery_config()
        if not config.urls:
            raise NoDestination()
        deliverer = Deliverer(space.store, config, config.authserv_id or "canary", _now)
        due = deliverer.queue()
        with Progress(TextColumn("Delivering"), BarColumn(), MofNCompleteColumn(),
                      console=messages(), transient=True,
                      disable=as_json or not due) as progress:
            task = progress.add_task("deliver", total=due)
            done = deliverer.run_once(progress=lambda count: progress.advance(task, count))
    if as_json:
        print_json(deliver_document(done))
    else:
        typer.echo(f"Delivered {plural(done.delivered, 'message')}; held "
                   f"{done.held}, to retry {done.retrying}, failed {done.failed}.")
    for error in done.errors:
        messages().print(f"Failed: {error}", markup=False, highlight=False)
    if done.retrying:
        messages().print("Temporary failures are retried by `canary serve`, or by running "
                         "`canary deliver` again.")
    if done.failed:
        raise typer.Exit(1)
