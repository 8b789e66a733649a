"""The report drawn for a terminal with rich: a summary table, then the evidence.

The summary has one line per company and the evidence is shown for the companies
that need attention only, the first few by default, so a report of a thousand
companies stays readable (`canary report --all` shows everything).

Colours carry meaning only together with words, so the output reads the
same piped into a file. Nothing here reads the database or the clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from canary.alerts import Channel, ChannelState
from canary.relation import Relation
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


DETAILS_SHOWN = 20
"""Companies needing attention whose evidence `canary report` shows before "…and N more"."""
OTHERS_LISTED = 30
"""Companies needing nothing (clean, pending, quiet) the summary lists before "…and N more"."""
NAME_WIDTH = 30
"""Characters of a company's name the summary shows before cutting it short."""
FIGURES_WIDTH = 43
"""The summary's verdict, confidence, mail and unexpected columns, with the gaps between
its columns."""
SHORTEST = 12
"""The fewest characters of a name, and of a reason, the summary shows on one line."""


def _needs_attention(r: CompanyReport) -> bool:
    """Shared or leaked, or the company's own marketing broke what the person agreed to."""
    return r.verdict in (Verdict.SHARED, Verdict.LEAKED) or bool(r.findings)


def _one_line(markup: str) -> Text:
    """A cell that never wraps: cut short with "…" when the table is too narrow."""
    text = Text.from_markup(markup, overflow="ellipsis")
    text.no_wrap = True
    return text


def _why(r: CompanyReport) -> str:
    """The summary's reason in a few words: the first unexpected sender, the findings."""
    reasons = []
    if unexpected := r.unexpected:
        first = escape(sender_name(unexpected[0]))
        if len(unexpected) > 1:
            first += f" +{len(unexpected) - 1} more"
        if r.days_to_first_unexpected is not None:
            first += f", {r.days_to_first_unexpected} days in"
        reasons.append(first)
    if r.findings:
        reasons.append(f"[magenta]{', '.join(f.kind.value for f in r.findings)}[/]")
    if r.counts.pending and r.verdict is Verdict.PENDING:
        reasons.append(f"[dim]{r.counts.pending} not analysed yet[/]")
    return "; ".join(reasons)


def _summary_table(reports: Sequence[CompanyReport], width: int) -> Table:
    """One line per company, its alias beside its name, when `width` has room for the whole
    alias; else the alias goes under the name, folded if it must. The alias is never cut
    short; the reason is first, then a name (always past `NAME_WIDTH`)."""
    summary = Table(title="Canary report — worst first", box=box.SIMPLE_HEAD, pad_edge=False,
                    show_edge=False, collapse_padding=True)
    alias_width = max(cell_len(r.aliases[-1].address) for r in reports)
    inline = width >= alias_width + FIGURES_WIDTH + 2 * SHORTEST
    # Fixed widths for the name and the alias: rich narrows the reason, the one column left.
    if inline:
        name_width = min(NAME_WIDTH, max(cell_len(r.name) for r in reports))
        summary.add_column("Company", width=max(len("Company"), min(
            name_width, width - alias_width - FIGURES_WIDTH - SHORTEST)))
        summary.add_column("Alias", overflow="fold", width=alias_width)
    else:
        summary.add_column("Company / alias", overflow="fold", width=max(
            SHORTEST, min(alias_width, width - FIGURES_WIDTH - SHORTEST)))
    summary.add_column("Verdict", no_wrap=True, min_width=7)
    summary.add_column("Confidence", no_wrap=True)
    for column in ("Mail", "Unexpected"):
        summary.add_column(column, justify="right", no_wrap=True)
    summary.add_column("Why")
    for r in reports:
        name, alias = f"[bold]{escape(r.name)}[/]", escape(r.aliases[-1].address)
        summary.add_row(*((_one_line(name), alias) if inline else (f"{name}\n{alias}",)),
                        verdict_text(r.verdict), r.confidence.value, str(r.counts.total),
                        str(r.counts.unexpected), _one_line(_why(r)))
    return summary


def _summary_rows(reports: Sequence[CompanyReport], every: bool
                  ) -> tuple[list[CompanyReport], list[CompanyReport]]:
    """The companies the summary lists, in order, and those it only counts: every company
    needing attention is listed, and the first `OTHERS_LISTED` of the rest (all if `every`)."""
    listed: list[CompanyReport] = []
    hidden: list[CompanyReport] = []
    others = 0
    for r in reports:
        if not _needs_attention(r):
            others += 1
            if others > OTHERS_LISTED and not every:
                hidden.append(r)
                continue
        listed.append(r)
    return listed, hidden


def _render_details(console: Console, r: CompanyReport) -> None:
    """The evidence of one company needing attention: senders, examples, findings."""
    if r.verdict in (Verdict.SHARED, Verdict.LEAKED):
        console.print(f"[bold]{escape(r.name)}[/]: {verdict_text(r.verdict)}, confidence "
                      f"{r.confidence.value} — {escape(r.confidence_reason)}")
        console.print(sender_table(f"{escape(r.name)}: unexpected senders", r.unexpected))
        if r.unlisted.unexpected:
            console.print(f"  …and {plural(r.unlisted.unexpected, 'more unexpected sender')}: "
                          f"canary show {r.slug} lists every one.")
        for sender in r.unexpected[:EVIDENCE_SHOWN]:
            for example in sender.examples[:1]:
                console.print(f"  e.g. {escape(sender.organisation)}: "
                              f"{escape(example.message_id or '(no Message-ID)')} "
                              f"[dim]sha256 {example.sha256[:16]}…[/]")
    for finding in r.findings:
        console.print(f"[bold]{escape(r.name)}[/]: [magenta]{finding.kind.value}[/] — "
                      f"{escape(finding.summary)}")


def render_report(console: Console, reports: Sequence[CompanyReport], probes: int, *,
                  every: bool = False) -> None:
    """The summary, one line per company, then the evidence of those needing attention.

    `reports` come worst first and keep their order. A company needs attention when it
    is shared or leaked or has a consent finding; the summary lists each of them, and by
    default only the first `OTHERS_LISTED` of the rest, and the evidence is shown for the
    first `DETAILS_SHOWN` of them; a line says how many more there are and how to see
    them. `every` (`canary report --all`) lists every company and all the evidence.
    """
    if not reports:
        console.print("No companies yet. Issue an alias with [bold]canary issue NAME[/].")
        return
    listed, hidden = _summary_rows(reports, every)
    console.print(_summary_table(listed, console.width))
    if hidden:
        verdicts = Counter(r.verdict for r in hidden)
        kinds = ", ".join(f"{verdicts[v]} {v.value}" for v in Verdict if verdicts[v])
        console.print(f"…and {plural(len(hidden), 'more company', 'more companies')} with "
                      f"nothing to act on ({kinds}): `canary report --all` lists them, "
                      "`canary report NAME` one.")
    attention = [r for r in reports if _needs_attention(r)]
    shown = attention if every else attention[:DETAILS_SHOWN]
    for r in shown:
        _render_details(console, r)
    if more := len(attention) - len(shown):
        console.print(f"…and {plural(more, 'more company needs', 'more companies need')} "
                      "attention: `canary report --all` shows them all, `canary show NAME` one.")
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
    console.print(timeline_table(r.timeline, limit, r.counts.total))


def timeline_table(timeline: Sequence[Sighting], limit: int, total: int) -> Table:
    shown = min(limit, len(timeline))
    table = Table(title=f"Timeline (latest {shown} of {total})", title_justify="left")
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
