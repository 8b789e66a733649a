"""`canary alerts add|list|remove|test|run`: where Canary tells you what happened.

A channel is an Apprise URL (ntfy, Gotify, Matrix, Slack, Discord, e-mail,
JSON webhooks…) kept in the home's 0600 config, with the events it wants and
a minimum severity. Its URL is never printed whole: lists, errors and logs
show it masked. `canary serve` sends alerts as they happen; `run` does one
pass for a home whose listener is stopped.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

# `add` needs both when the module loads: typer reads Severity from its signature, and
# the --events help lists the event names.
from canary.events import Severity, event_names
from canary.wording import day, plural
from cli.output import console, messages, print_json
from cli.workspace import DbOption, HomeOption, JsonOption, noun_app, workspace

if TYPE_CHECKING:  # the CLI starts fast: rich, the database and the listener load when used
    from canary.alerts import ChannelState

app = noun_app()
app.info.no_args_is_help = True

ChannelArgument = Annotated[
    str, typer.Argument(help="The channel: its ID from `canary alerts list`, or its URL.")
]


def _now() -> datetime:
    return datetime.now(UTC)


def _events(given: list[str] | None) -> tuple[str, ...]:
    from canary.alerts import AlertsConfigError, expand_events

    names = tuple(n.strip().lower() for value in given or () for n in value.split(",")
                  if n.strip())
    try:
        expand_events(names)
    except AlertsConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--events") from None
    return names or ("all",)


def _read_url(url: str) -> str:
    """The URL, or one line of stdin for `-` (kept out of the shell's history)."""
    from canary.alerts import AlertsConfigError, InvalidAlertUrl, check_url_form

    text = sys.stdin.readline().strip() if url == "-" else url
    try:
        return check_url_form(text)
    except AlertsConfigError:
        raise InvalidAlertUrl(text, "is not an Apprise URL (scheme://…)") from None


@app.command()
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(
        help="An Apprise URL, e.g. ntfys://ntfy.sh/YOUR-TOPIC; `-` reads it from stdin, "
        "out of your shell's history.")],
    events: Annotated[list[str] | None, typer.Option(
        "--events", metavar="EVENT,…",
        help=f"What this channel is told (repeatable or comma-separated): {event_names()}. "
        "Default: all.")] = None,
    min_severity: Annotated[Severity, typer.Option(
        "--min-severity", help="The least severity this channel is told about: low (probes, "
        "bounces), medium (leaks, consent) or high (shared, Canary's health).")
    ] = Severity.MEDIUM,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Add an alert channel: an Apprise URL, the events it wants, a minimum severity."""
    from canary.alerts import AlertChannelExists, Channel
    from data.alerts import register_channels
    from smtp_listener.alerts import check_url

    names = _events(events)
    with workspace(ctx, home, db) as space:
        channel = Channel(_read_url(url), names, min_severity)
        check_url(channel.url)
        alerts = space.config.alerts
        if any(c.key == channel.key for c in alerts.channels):
            raise AlertChannelExists(channel)
        space.home.save_alerts(replace(alerts, channels=(*alerts.channels, channel)))
        with space.store.writing() as session:
            register_channels(session, [channel.key], _now())
    typer.echo(f"{channel.id} {channel.masked}")
    messages().print(f"Added alert channel {channel.id}: {', '.join(channel.events)}, severity "
                     f"{channel.min_severity.value} and up, from now on. Try it with "
                     "`canary alerts test`.", markup=False, highlight=False)


def _status(state: ChannelState | None) -> str:
    from canary.alerts import channel_status

    status = channel_status(state)
    if state is not None and state.failing_since is not None:
        status = f"failing since {day(state.failing_since)}: {state.last_error or '?'}"
    if state is not None and state.failed:
        status += f"; {plural(state.failed, 'alert')} given up on"
    return status


@app.command("list")
def list_channels(
    ctx: typer.Context,
    as_json: JsonOption = False,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """The alert channels (URLs masked), what each is told, and how sending to it goes."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from canary.alerts import alerts_document
    from data.alerts import channel_states

    with workspace(ctx, home, db) as space, space.store.reading() as session:
        states = channel_states(session)
        alerts = space.config.alerts
    if as_json:
        print_json(alerts_document(alerts, states))
        return
    if not alerts.channels:
        messages().print("No alert channel yet; add one with `canary alerts add URL` (see the "
                         "README's Alerts section).", markup=False, highlight=False)
        return
    table = Table(title="Alert channels", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("ID", "channel", "events", "min severity", "status", "waiting"):
        table.add_column(column, overflow="fold")
    for channel in alerts.channels:
        state = states.get(channel.key)
        table.add_row(channel.id, escape(channel.masked), ", ".join(channel.events),
                      channel.min_severity.value, escape(_status(state)),
                      str(state.pending if state else 0))
    console().print(table)
    subjects = "with" if alerts.subjects else "without"
    messages().print(f"Alerts go out {subjects} subjects, at most "
                     f"{alerts.rate_limit_per_hour} an hour per channel; more than "
                     f"{alerts.digest_after} at once become one digest.", markup=False,
                     highlight=False)


@app.command()
def remove(
    ctx: typer.Context,
    channel: ChannelArgument,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Remove an alert channel; alerts waiting for it are dropped."""
    from data.alerts import forget_channel

    with workspace(ctx, home, db) as space:
        alerts = space.config.alerts
        found = alerts.channel(channel)
        space.home.save_alerts(replace(alerts, channels=tuple(
            c for c in alerts.channels if c.key != found.key)))
        with space.store.writing() as session:
            forget_channel(session, found.key)
    typer.echo(f"Removed alert channel {found.id} ({found.masked}).")


@app.command()
def test(
    ctx: typer.Context,
    channels: Annotated[list[str] | None, typer.Argument(
        help="Only these channels, by ID (default: every channel).", show_default=False)
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Send a test alert to every channel now and say, per channel, whether it arrived."""
    from canary.alerts import AlertsNotSent, NoAlertChannel
    from smtp_listener.alerts import try_channels

    with workspace(ctx, home, db) as space:
        alerts = space.config.alerts
        chosen = ([alerts.channel(c) for c in channels] if channels
                  else list(alerts.channels))
    if not chosen:
        raise NoAlertChannel()
    results = try_channels(chosen, _now())
    for channel, sent in results:
        outcome = "ok" if sent.ok else f"failed: {sent.error}"
        typer.echo(f"{channel.id} {channel.masked} {outcome}")
    failed = sum(1 for _, sent in results if not sent.ok)
    if failed:
        raise AlertsNotSent(failed, len(results))


@app.command()
def run(
    ctx: typer.Context,
    home: HomeOption = None,
    db: DbOption = None,
) -> None:
    """Find new events and send the alerts due now, once (`canary serve` does it itself)."""
    from smtp_listener.alerts import Alerter, AlertSettings

    with workspace(ctx, home, db) as space:
        alerts = space.config.alerts
        done = Alerter(space.store, AlertSettings(alerts, watch_analysis=False),
                       _now).run_once()
    if not alerts.channels:
        typer.echo(f"Recorded {plural(done.events, 'new event')}; no alert channel is "
                   "configured, so nothing was sent.")
        return
    digests = f", {plural(done.digests, 'digest')}" if done.digests else ""
    typer.echo(f"Sent {plural(done.sent, 'message')} ({plural(done.alerts, 'alert')}{digests}); "
               f"to retry {done.retrying}, failed {done.failed}.")
    for error in done.errors:
        messages().print(f"Not sent: {error}", markup=False, highlight=False)
    if done.retrying:
        messages().print("Channels that are down are retried by `canary serve`, or by running "
                         "`canary alerts run` again.", markup=False, highlight=False)
    if done.failed:
        raise typer.Exit(1)
