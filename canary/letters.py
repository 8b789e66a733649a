"""`canary letter`: a data-protection request, pre-filled with the evidence.

The letter states what was observed and nothing more: the alias, when it was
given, what the person agreed to, and which other organisations have mailed
it since, with dates. The person adds their name and sends it.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from canary.classify import Relation
from canary.report import CompanyReport
from cli.report import build_reports
from cli.workspace import DbOption, DnsOption, HomeOption, workspace
from data.home import write_private

app = typer.Typer()


class Kind(enum.StrEnum):
    ACCESS = "access"
    ERASURE = "erasure"
    OBJECTION = "objection"


class Law(enum.StrEnum):
    GDPR = "gdpr"
    CCPA = "ccpa"


_SUBJECT = {
    (Kind.ACCESS, Law.GDPR): "Subject access request under Article 15 GDPR",
    (Kind.ERASURE, Law.GDPR): "Request for erasure under Article 17 GDPR",
    (Kind.OBJECTION, Law.GDPR): "Objection to processing under Article 21 GDPR",
    (Kind.ACCESS, Law.CCPA): "Request to know under the CCPA (Cal. Civ. Code § 1798.110 and "
                             "§ 1798.115)",
    (Kind.ERASURE, Law.CCPA): "Request to delete under the CCPA (Cal. Civ. Code § 1798.105)",
    (Kind.OBJECTION, Law.CCPA): "Request to opt out of sale or sharing under the CCPA "
                                "(Cal. Civ. Code § 1798.120)",
}

_ASKS = {
    (Kind.ACCESS, Law.GDPR): [
        "a copy of the personal data you hold about me (Art. 15(1) and 15(3));",
        "the purposes of the processing (Art. 15(1)(a)) and the categories of personal data "
        "concerned (Art. 15(1)(b));",
        "the recipients or categories of recipients to whom my personal data have been or will "
        "be disclosed, in particular any third parties, including the identity of each "
        "recipient (Art. 15(1)(c));",
        "how long you will keep my data, or the criteria used to decide (Art. 15(1)(d));",
        "where you did not collect the data from me, any available information about its "
        "source (Art. 15(1)(g));",
        "whether you use my data for automated decision-making, including profiling "
        "(Art. 15(1)(h)).",
    ],
    (Kind.ERASURE, Law.GDPR): [
        "that you erase all personal data you hold about me without undue delay (Art. 17(1));",
        "that you inform each recipient to whom you disclosed my data of this erasure, and tell "
        "me who they are (Art. 19).",
    ],
    (Kind.OBJECTION, Law.GDPR): [
        "that you stop processing my personal data for direct marketing, including profiling "
        "related to it (Art. 21(2) and 21(3));",
        "that you confirm in writing that you have done so.",
    ],
    (Kind.ACCESS, Law.CCPA): [
        "the categories and specific pieces of personal information you have collected about "
        "me;",
        "the categories of sources from which it was collected;",
        "the business or commercial purpose for collecting, selling or sharing it;",
        "the categories of third parties to whom you disclosed, sold or shared it, and the "
        "categories of personal information disclosed, sold or shared to each.",
    ],
    (Kind.ERASURE, Law.CCPA): [
        "that you delete the personal information you collected from me;",
        "that you direct your service providers and contractors, and notify third parties to "
        "whom you sold or shared it, to delete it as well.",
    ],
    (Kind.OBJECTION, Law.CCPA): [
        "that you stop selling or sharing my personal information;",
        "that you confirm in writing that you have done so.",
    ],
}


def _consent_lines(report: CompanyReport) -> list[str]:
    consent = report.consent
    if consent is None:
        return ["I did not record any consent to marketing with this address."]
    if consent.opted_out:
        return [f"I opted out of your marketing on {consent.since:%Y-%m-%d}.",
                "I never agreed to my address being passed to anyone else."]
    lines = []
    if consent.marketing is True:
        frequency = f" at most {consent.frequency.value}" if consent.frequency else ""
        lines.append(f"I agreed to receive marketing from you{frequency}.")
    elif consent.marketing is False:
        lines.append("I did not agree to receive marketing from you.")
    lines.append("I never agreed to my address being passed to anyone else.")
    return lines


def _evidence_lines(report: CompanyReport) -> list[str]:
    lines = []
    for sender in report.unexpected:
        how = (
            f"authenticated as itself ({', '.join(sender.authenticated_by)})"
            if sender.relation is Relation.THIRD_PARTY
            else "not authenticated" if sender.relation is Relation.UNVERIFIED
            else "claiming to be you, and failing authentication"
        )
        lines.append(
            f"- {sender.organisation}: {sender.count} message(s), {how}, first on "
            f"{sender.first_seen:%Y-%m-%d}, last on {sender.last_seen:%Y-%m-%d}."
        )
    return lines


def write_letter(report: CompanyReport, kind: Kind, law: Law, today: datetime) -> str:
    alias = report.aliases[0]
    addresses = ", ".join(a.address for a in report.aliases)
    lines = [
        f"# {_SUBJECT[kind, law]}",
        "",
        f"Date: {today:%Y-%m-%d}",
        f"To: {report.name}, data protection officer / privacy team",
        "",
        "Dear Sir or Madam,",
        "",
        f"On {alias.issued_at:%Y-%m-%d} I gave you the email address {alias.address}. "
        "I created this address for you and gave it to no one else.",
        "",
        *_consent_lines(report),
        "",
    ]
    evidence = _evidence_lines(report)
    if evidence:
        first = report.days_to_first_unexpected
        lines += [
            "Since then, this address has received mail from organisations other than you"
            + (f", the first {first} days after I gave it to you" if first is not None else "")
            + ":",
            "",
            *evidence,
            "",
        ]
    findings = [f"- {finding.summary}." for finding in report.findings]
    if findings:
        lines += ["Your own marketing to this address did not keep to what I agreed:", "",
                  *findings, ""]
    if evidence or findings:
        lines += [
            "I keep the original messages, with their DKIM signatures and the DNS records used "
            "to verify them, and can provide them.",
            "",
        ]
    lines += [
        "I therefore request:",
        "",
        *[f"{number}. {ask}" for number, ask in enumerate(_ASKS[kind, law], 1)],
        "",
        f"Please use the address {addresses} to identify my records.",
        "",
        (
            "Please reply within one month of receiving this request (Art. 12(3) GDPR)."
            if law is Law.GDPR
            else "Please reply within 45 days of receiving this request (Cal. Civ. Code "
                 "§ 1798.130)."
        ),
        "",
        "Yours faithfully,",
        "",
        "[your name]",
    ]
    return "\n".join(lines) + "\n"


@app.command()
def letter(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The company.")],
    kind: Annotated[Kind, typer.Option("--kind", help="Which request to write.")],
    law: Annotated[Law, typer.Option("--law", help="Which law to cite.")] = Law.GDPR,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    home: HomeOption = None,
    db: DbOption = None,
    dns: DnsOption = None,
) -> None:
    """Write a Markdown access, erasure or objection letter, pre-filled with the evidence."""
    with workspace(ctx, home, db, dns) as space:
        (report,), _ = build_reports(space, name)
    text = write_letter(report, kind, law, datetime.now(UTC))
    if out is None:
        typer.echo(text, nl=False)
    else:
        write_private(out, text.encode())
        typer.echo(f"Wrote {kind.value} letter to {out}", err=True)
