"""The report as Markdown: for a complaint, an issue tracker or a mail to a journalist."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from canary.report import EVIDENCE_SHOWN, CompanyReport, likely_brokers, worst_first
from canary.wording import day, plural


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(reports: Sequence[CompanyReport], generated_at: datetime, probes: int) -> str:
    lines = ["# Canary breach report", "",
             f"Generated {generated_at:%Y-%m-%d %H:%M} UTC. Companies are listed worst first.", ""]
    for r in worst_first(reports):
        lines += [f"## {_md(r.name)} — {r.verdict.value}", ""]
        lines.append(f"- Confidence: {r.confidence.value} — {_md(r.confidence_reason)}")
        for alias in r.aliases:
            retired = (f", retired {day(alias.retired_at)} ({alias.retire_reply})"
                       if alias.retired_at else "")
            lines.append(f"- Alias `{alias.address}`, given on {day(alias.issued_at)}"
                         f"{retired}, {plural(alias.messages, 'message')}")
        lines.append(f"- Own domains: {', '.join(r.domains) or 'none declared'}")
        lines.append(f"- Messages: {r.counts.total} in all, {r.counts.unexpected} from "
                     "unexpected senders")
        if r.counts.pending:
            lines.append(f"- Not analysed yet: {plural(r.counts.pending, 'message')}, not in "
                         "the verdict")
        if r.days_to_first_unexpected is not None:
            lines.append(f"- First unexpected mail {r.days_to_first_unexpected} days after the "
                         "alias was given")
        if r.consent is not None:
            c = r.consent
            agreed = ("opted out" if c.opted_out else
                      f"marketing {'yes' if c.marketing else 'no' if c.marketing is False else '?'}"
                      f", {c.frequency.value if c.frequency else 'no frequency given'}")
            lines.append(f"- Consent since {day(c.since)}: {agreed}")
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
                             f"{_md(', '.join(map(str, s.authenticated_by)))} | "
                             f"{day(s.first_seen)} | {day(s.last_seen)} | {s.count} | {cited} |")
            lines.append("")
        for finding in r.findings:
            lines.append(f"**{finding.kind.value}**: {_md(finding.summary)}")
            for m in finding.messages[:EVIDENCE_SHOWN]:
                lines.append(f"- {m.received_at:%Y-%m-%d %H:%M} {_md(m.message_id or '(none)')} "
                             f"`{m.sha256}`")
            if finding.message_count > EVIDENCE_SHOWN:
                more = plural(finding.message_count - EVIDENCE_SHOWN, "more message")
                lines.append(f"- …and {more} (all in the JSON report)")
            lines.append("")
    brokers = likely_brokers(reports)
    if brokers:
        lines += ["## Likely list brokers", ""]
        lines += [f"- {_md(b.organisation)}: {', '.join(b.companies)}" for b in brokers]
        lines.append("")
    if probes:
        lines.append(f"{plural(probes, 'probe')} to never-issued addresses were refused.")
    return "\n".join(lines).rstrip() + "\n"
