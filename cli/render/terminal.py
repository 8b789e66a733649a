"""The report drawn for a terminal with rich: a summary table, then the evidence.

Colours carry meaning only together with words, so the output reads the
same piped into a file. Nothing here reads the database or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from canary.alerts import Channel, ChannelState
from canary.attribution import Relation
from canary.report import (
    EVIDENCE_SHOWN,
    UNKNOWN_SENDER,
    CompanyReport,
    SenderSummary,
    Sighting,
    Verdict,
    likely_brokers,
)
from canary.senders import SenderKind
from canary.wording import day, plural

if TYPE_CHECKING:
    from smtp_listener.importer import Found

VERDICT_STYLE = {
    Verdict.SHARED: "bold white on red",
    Verdict.LEAKED: "bold red",
    Verdict.CLEAN: "green",
    Verdict.PENDING: "yellow",
    Verdict.QUIET: "dim",
}
RELATION_STYLE = {
    Relation.FIRST_PARTY: "green",
    Relation.PROCESSOR: "green",
    Relation.THIRD_PARTY: "bold red",
    Relation.UNVERIFIED: "red",
    Relation.SPOOFED: "magenta",
    Relation.IMPERSONATION: "magenta",
    Relation.BACKSCATTER: "yellow",
    Relation.UNPROVEN: "dim",
}
ANALYSE_HINT = "run `canary analyse`, or keep `canary serve` running"


def verdict_text(verdict: Verdict) -> str:
    return f"[{VERDICT_STYLE[verdict]}]{verdict.value}[/]"


def relation_text(relation: Relation | None) -> str:
    if relation is None:
        return "[dim]pending[/]"
    return f"[{RELATION_STYLE[relation]}]{relation.value}[/]"


def sender_name(sender: SenderSummary) -> str:
    """`dealblaster.example`, `Acme Coffee (merchant via Square)`, `jane@gmail.com (mailbox)`."""
    notes = [] if sender.kind is SenderKind.ORGANISATION else [sender.kind.value]
    if sender.via:
        notes.append(f"via {sender.via}")
    return f"{sender.organisation} ({' '.join(notes)})" if notes else sender.organisation


def sender_table(title: str, senders: Sequence[SenderSummary]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("Organisation", "Relation", "Authenticated by", "First seen", "Last seen",
                   "Count"):
        table.add_column(column, justify="right" if column == "Count" else "left",
                         overflow="fold")
    for s in senders:
        name = escape(sender_name(s))
        if s.flagged:
            name += " [dim](flagged)[/]"
        table.add_row(name, relation_text(s.relation),
                      ", ".join(map(str, s.authenticated_by)) or "none",
                      day(s.first_seen), day(s.last_seen), str(s.count))
    return table


def pending_note(pending: int, temperror: int, failed: int = 0) -> str | None:
    """What a report says about mail it does not cover yet, and how to cover it."""
    notes = []
    if pending:
        waiting = f" ({temperror} waiting for DNS to answer)" if temperror else ""
        notes.append(f"{plural(pending, 'message')} not analysed yet{waiting}; they are not in "
                     f"the verdicts: {ANALYSE_HINT}.")
    if failed:
        notes.append(f"{plural(failed, 'message')} set aside because analysis failed on them "
                     "(Canary's fault, not the sender's; please report it): not in the verdicts.")
    return " ".join(notes) or None


def render_report(console: Console, reports: Sequence[CompanyReport], probes: int) -> None:
    """The summary table, then the evidence of each company with unexpected senders."""
    if not reports:
        console.print("No companies yet. Issue an alias with [bold]canary issue NAME[/].")
        return
    summary = Table(title="Canary report — worst first", box=box.SIMPLE_HEAD, pad_edge=False)
    summary.add_column("Company / alias / issued", overflow="fold")
    summary.add_column("Verdict", min_width=7)
    for column in ("Mail", "Unexpected"):
        summary.add_column(column, justify="right", min_width=len(column))
    for r in reports:
        verdict = verdict_text(r.verdict)
        if r.days_to_first_unexpected is not None:
            verdict += f"\n[dim]{r.days_to_first_unexpected} days in[/]"
        summary.add_row(
            f"[bold]{escape(r.name)}[/]\n{escape(r.aliases[-1].address)}\n"
            f"[dim]issued {day(r.issued_at)}[/]",
            verdict, str(r.counts.total), str(r.counts.unexpected),
        )
    console.print(summary)
    for r in reports:
        if r.verdict in (Verdict.SHARED, Verdict.LEAKED):
            console.print(f"[bold]{escape(r.name)}[/]: {verdict_text(r.verdict)}, confidence "
                          f"{r.confidence.value} — {escape(r.confidence_reason)}")
            console.print(sender_table(f"{escape(r.name)}: unexpected senders", r.unexpected))
            for sender in r.unexpected[:EVIDENCE_SHOWN]:
                for example in sender.examples[:1]:
                    console.print(f"  e.g. {escape(sender.organisation)}: "
                                  f"{escape(example.message_id or '(no Message-ID)')} "
                                  f"[dim]sha256 {example.sha256[:16]}…[/]")
        for finding in r.findings:
            console.print(f"[bold]{escape(r.name)}[/]: [magenta]{finding.kind.value}[/] — "
                          f"{escape(finding.summary)}")
    pending = sum(r.counts.pending for r in reports)
    if note := pending_note(pending, sum(r.counts.temperror for r in reports),
                            sum(r.counts.failed for r in reports)):
        console.print(f"[yellow]{note}[/]")
    brokers = likely_brokers(reports)
    if brokers:
        console.print("[bold]Likely list brokers[/] (one sender on several companies' aliases):")
        for broker in brokers:
            console.print(f"  {escape(broker.organisation)}: "
                          f"{escape(', '.join(broker.companies))}")
    if probes:
        console.print(f"{plural(probes, 'probe')}: mail to never-issued addresses on your "
                      "domains.")


def render_company(console: Console, r: CompanyReport, limit: int) -> None:
    """One company: verdict, aliases, senders and the latest `limit` messages."""
    console.print(f"[bold]{escape(r.name)}[/] — verdict {verdict_text(r.verdict)}, confidence "
                  f"{r.confidence.value}: {escape(r.confidence_reason)}")
    if r.note:
        console.print(f"Note: {escape(r.note)}")
    console.print(f"Own domains: {', '.join(r.domains) or 'none declared'}")
    for alias in r.aliases:
        retired = (f", retired {day(alias.retired_at)} ({alias.retire_reply})"
                   if alias.retired_at else "")
        console.print(f"Alias {alias.address}, issued {day(alias.issued_at)}{retired}, "
                      f"{plural(alias.messages, 'message')}")
    if r.senders:
        console.print(sender_table("Senders", r.senders))
    if note := pending_note(r.counts.pending, r.counts.temperror, r.counts.failed):
        console.print(f"[yellow]{note}[/]")
    console.print(timeline_table(r.timeline, limit))


def timeline_table(timeline: Sequence[Sighting], limit: int) -> Table:
    table = Table(title=f"Timeline (latest {min(limit, len(timeline))} of {len(timeline)})",
                  title_justify="left")
    for column in ("Received (UTC)", "Relation", "Sender", "Why", "Subject"):
        table.add_column(column, overflow="fold")
    for m in timeline[-limit:]:
        subject = escape(m.subject or "")
        if m.problem:
            subject = f"{subject} [dim]({escape(m.problem)})[/]"
        why = m.reason or (f"waiting for DNS: {m.temperror}" if m.temperror else "")
        if m.set_aside:
            why = "set aside: analysis failed on it (Canary's fault)"
        table.add_row(f"{m.received_at:%Y-%m-%d %H:%M}", relation_text(m.relation),
                      escape(m.sender_org or UNKNOWN_SENDER), escape(why), subject)
    return table


def render_deliveries(console: Console, failed: int, held: int) -> None:
    """What did not reach the person's mailbox, and the command that shows it."""
    if failed:
        console.print(f"[red]{plural(failed, 'delivery', 'deliveries')} failed for good[/]: "
                      "see [bold]canary deliveries --failed[/].")
    if held:
        console.print(f"{plural(held, 'message')} held by the delivery policy: see "
                      "[bold]canary held[/].")


def render_alert_channels(console: Console, failing: Sequence[tuple[Channel, ChannelState]]
                          ) -> None:
    """Alert channels that have been failing for days, and the command that shows them."""
    for channel, state in failing:
        since = f"failing since {day(state.failing_since)}" if state.failing_since else "failed"
        lost = (f"; {plural(state.failed, 'alert')} given up on" if state.failed else "")
        console.print(f"[red]Alert channel {channel.id}[/] ({escape(channel.masked)}) {since}"
                      f"{lost}: {escape(state.last_error or '?')}; see "
                      "[bold]canary alerts list[/].")


def addresses_table(found: Sequence[Found], known: Mapping[str, int]) -> Table:
    """`canary discover`: each address of the person's a mailbox was sent to."""
    table = Table(title="Your addresses in this mailbox", title_justify="left")
    for column in ("address", "messages", "first", "last", "top senders", "alias of"):
        table.add_column(column, overflow="fold")
    for f in found:
        table.add_row(f.address, str(f.messages), day(f.first) if f.first else "",
                      day(f.last) if f.last else "",
                      ", ".join(s for s, _ in f.senders.most_common(3)),
                      "yes" if f.address in known else "")
    return table
