"""A data-protection letter laid out as Markdown, ready to edit and send."""

from __future__ import annotations

from datetime import datetime

from canary.letters import LetterContent
from canary.wording import day


def render_letter(content: LetterContent, today: datetime) -> str:
    lines = [
        f"# {content.subject}",
        "",
        f"Date: {day(today)}",
        f"To: {content.company}, data protection officer / privacy team",
        "",
        "Dear Sir or Madam,",
        "",
        content.given,
        "",
        *content.consent,
        "",
    ]
    if content.evidence_intro:
        lines += [content.evidence_intro, "", *(f"- {line}" for line in content.evidence), ""]
    if content.findings:
        lines += ["Your own marketing to this address did not keep to what I agreed:", "",
                  *(f"- {line}" for line in content.findings), ""]
    if content.keeps_originals:
        lines += [
            "I keep the original messages, with their DKIM signatures and the DNS records used "
            "to verify them, and can provide them.",
            "",
        ]
    lines += [
        "I therefore request:",
        "",
        *[f"{number}. {ask}" for number, ask in enumerate(content.asks, 1)],
        "",
        f"Please use the address {content.identify_by} to identify my records.",
        "",
        content.deadline,
        "",
        "Yours faithfully,",
        "",
        "[your name]",
    ]
    return "\n".join(lines) + "\n"
