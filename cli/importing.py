"""`canary adopt`, `discover` and `import`: years of evidence from the mailboxes you have.

`discover` lists the addresses of yours a mailbox was sent to (on your
catch-all domains, your sub-addresses, your canary domains), with counts,
dates and the sender organisations, and can write a mapping file to fill in;
`adopt` records an address you already gave a company (or every line of a
mapping file); `import` stores the mail to adopted and issued aliases,
exactly as received, and analyses it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from canary.errors import InvalidValue
from canary.wording import plural
from cli.output import console, messages, print_json
from cli.workspace import (
    DateOption,
    DbOption,
    DnsOption,
    HomeOption,
    JsonOption,
    noun_app,
    utc,
    workspace,
)
from smtp_listener.limits import DEFAULT_MAX_SIZE

if TYPE_CHECKING:  # the CLI starts fast: rich, the importer and the database load when used
    from data.imports import ImportCounts

app = noun_app()

SourceArgument = Annotated[
    str, typer.Argument(help="An mbox file, a Maildir, or imaps://USER@HOST/FOLDER?"
                        "password_file=PATH (or password_env=NAME).")
]
MaxSizeOption = Annotated[
    int, typer.Option("--max-size", min=1024, max=1 << 30,
                      help="Larger messages are counted as problems and skipped, in bytes.")
]


def _now() -> datetime:
    return datetime.now(UTC)


class BadAddress(InvalidValue):
    def __init__(self, text: str) -> None:
        super().__init__(f"{text!r} is not an email address; write it as name@domain.example.")


@app.command()
def adopt(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="The company, then the address you gave it: \"MegaMart\" "
                       "megamart@me.example.", show_default=False),
    ] = None,
    company: Annotated[
        str | None,
        typer.Option("--company", hidden=True,
                     help="The company, for `adopt ADDRESS --company NAME`."),
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option("--domain", help="A domain the company sends from (repeatable)."),
    ] = None,
    issued: Annotated[
        datetime | None,
        DateOption("--issued", help="When you gave the company the address, YYYY-MM-DD "
                   "(default: now)."),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="A note about the company.")] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from", help="A mapping file (CSV or TOML: address, company, domains, "
                     "issued, note) to adopt many addresses at once, e.g. from "
                     "`canary discover --mapping`."),
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Adopt an address you already gave a company (a catch-all or plus address) as its
    alias."""
    from canary.addresses import normalise_address
    from data.registry import adopt_alias

    given = list(names or ())
    if issued is not None and utc(issued) > _now():
        raise typer.BadParameter("the date is in the future", param_hint="--issued")
    if from_file is not None:
        if given or company:
            raise typer.BadParameter("give a company and an address, or --from FILE, not both")
        rows = _mapping(from_file)
    else:
        if company is not None:
            given.insert(0, company)
        if len(given) != 2:
            raise typer.BadParameter("give the company and the address: canary adopt NAME "
                                     "ADDRESS")
        address = normalise_address(given[1])
        if address is None:
            raise BadAddress(given[1])
        rows = [(address, given[0], tuple(domain or ()), utc(issued) if issued else None,
                 note)]
    adopted = 0
    with workspace(ctx, home, db) as space, space.store.writing() as session:
        for address, name, domains, when, text in rows:
            alias, new = adopt_alias(session, address=address, name=name, domains=domains,
                                     issued_at=when, note=text, now=_now())
            adopted += new
            if len(rows) == 1:
                typer.echo(alias.address)
                if not new:
                    messages().print(f"{alias.address} was already {alias.company}'s alias.",
                                     markup=False)
    if len(rows) > 1:
        typer.echo(f"Adopted {plural(adopted, 'address', 'addresses')}"
                   f"{f'; {len(rows) - adopted} already were' if len(rows) > adopted else ''}.")


def _mapping(path: Path) -> list[tuple[str, str, tuple[str, ...], datetime | None, str | None]]:
    from canary.addresses import mapping_rows

    try:
        text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's "CSV UTF-8" has a BOM
    except UnicodeDecodeError as error:
        raise InvalidValue(f"{path} is not UTF-8 text; save it as UTF-8.") from error
    mapping = mapping_rows(text, path.name)
    if mapping.unassigned:
        messages().print(f"{plural(len(mapping.unassigned), 'address', 'addresses')} in "
                         f"{path} name no company and were left out; fill in the company "
                         "column to adopt them.", markup=False)
    if not mapping.rows:
        raise InvalidValue(f"{path} names no address with a company; fill in the company "
                           "column.")
    return [(r.address, r.company, r.domains, r.issued, r.note) for r in mapping.rows]


@app.command()
def discover(
    ctx: typer.Context,
    source: SourceArgument,
    mapping: Annotated[
        Path | None,
        typer.Option("--mapping", help="Write the addresses found to this CSV file, to fill in "
                     "the company of each and then `canary adopt --from` it."),
    ] = None,
    guess: Annotated[
        bool, typer.Option("--guess", help="Fill in the mapping file's company with the "
                           "organisation that sent each address its first mail: a guess for "
                           "you to check, never used silently.")
    ] = False,
    max_size: MaxSizeOption = DEFAULT_MAX_SIZE,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """List your addresses a mailbox was sent to, with counts, dates and senders."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from canary.addresses import mapping_csv
    from cli.render.documents import discover_document
    from cli.render.terminal import addresses_table
    from data.registry import alias_addresses
    from smtp_listener.importer import discover as discover_addresses
    from smtp_listener.importer import open_source

    if guess and mapping is None:
        raise typer.BadParameter("--guess fills in the mapping file: give --mapping FILE too")
    with workspace(ctx, home, db) as space:
        with space.store.reading() as session:
            known = alias_addresses(session)
        with open_source(source) as opened, Progress(
                TextColumn("Reading"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), console=messages(), transient=True,
                disable=as_json) as progress:
            total = opened.count()
            task = progress.add_task("discover", total=total)
            found, problems = discover_addresses(
                opened, space.config.addresses, frozenset(space.config.domains), known,
                max_size, progress=lambda n: progress.update(task, completed=n))
    if mapping is not None:
        rows = [(f.address, (f.first_sender or "") if guess and f.address not in known else "",
                 (f.first_sender,) if guess and f.first_sender and f.address not in known
                 else (), f.first) for f in found if f.address not in known]
        mapping.write_text(mapping_csv(rows), encoding="utf-8")
        messages().print(f"Wrote {mapping}: fill in the company of each address, then run "
                         f"canary adopt --from {mapping}.", markup=False)
    if as_json:
        print_json(discover_document(found, known, problems))
        return
    if not found:
        messages().print("None of your addresses appears in it. Configure your catch-all "
                         "domains and sub-addresses with canary init --force --catch-all / "
                         "--sub-address.", markup=False)
        return
    console().print(addresses_table(found, known))
    if problems:
        messages().print(f"{plural(problems, 'message')} could not be read.")


@app.command("import")
def import_(
    ctx: typer.Context,
    source: SourceArgument,
    trust_authserv_id: Annotated[
        str | None,
        typer.Option("--trust-authserv-id", help="Believe the Authentication-Results your "
                     "provider wrote at receipt with this authserv-id (e.g. mx.google.com); "
                     "only the topmost."),
    ] = None,
    analyse: Annotated[
        bool, typer.Option("--analyse/--no-analyse",
                           help="Analyse the imported mail right away (asks DNS).")
    ] = True,
    max_size: MaxSizeOption = DEFAULT_MAX_SIZE,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Import the mail of a mailbox sent to your aliases, exactly as received; analyse it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from cli.analyse import analyse_due
    from cli.render.documents import import_document
    from smtp_listener.importer import import_mail, open_source

    with workspace(ctx, home, db, dns) as space:
        with open_source(source) as opened, Progress(
                TextColumn("Importing {task.fields[counts]}"), BarColumn(),
                MofNCompleteColumn(), TimeRemainingColumn(), console=messages(),
                transient=True, disable=as_json) as progress:
            task = progress.add_task("import", total=opened.count(), counts="")

            def report(counts: ImportCounts) -> None:
                progress.update(task, completed=counts.read, counts=_counts_text(counts))

            run = import_mail(space.store, opened, trusted_authserv_id=trust_authserv_id,
                              max_size=max_size, clock=_now, progress=report)
        analysed = analyse_due(space, quiet=as_json) if analyse and not run.stopped else 0
    if as_json:
        print_json(import_document(opened.name, run, analysed))
    else:
        typer.echo(f"Imported from {opened.name}: {_counts_text(run.counts)}.")
        if analysed:
            typer.echo(f"Analysed {plural(analysed, 'message')}; see canary report.")
    for position, why in run.problems[:10]:
        messages().print(f"Problem at {position}: {why}", markup=False, highlight=False)
    if run.stopped:
        messages().print("Stopped; run the same import again to go on.", markup=False)
        raise typer.Exit(130)


def _counts_text(counts: ImportCounts) -> str:
    return (f"{counts.read} read, {counts.stored} stored, {counts.skipped} to no alias, "
            f"{counts.duplicates} already stored, {counts.problems} problems")
