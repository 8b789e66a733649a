"""What a data-protection request may claim, given the evidence.

A letter states what was observed and nothing more: the alias and when it
was given, what the person agreed to, which other organisations have mailed
it since (with dates and how they authenticated), and the company's own
marketing that broke what was agreed. Then it asks for what the chosen law
grants. `letter_content` builds those statements from a report; the layout
(Markdown) is `cli.render.letter`'s business. Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from canary.wording import day, plural

if TYPE_CHECKING:  # the CLI imports this module for its choices: keep it light
    from canary.report import CompanyReport, SenderSummary


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


def consent_lines(report: CompanyReport) -> list[str]:
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


def _how(sender: SenderSummary) -> str:
    """What the evidence lets the person say about one sender, and no more."""
    from canary.relation import Relation
    from canary.senders import SenderKind

    if sender.relation is Relation.THIRD_PARTY and sender.kind is SenderKind.MERCHANT:
        return f"a business named by {sender.via}, which authenticated the sending"
    if sender.relation is Relation.THIRD_PARTY and sender.kind.identifiable:
        return f"authenticated as itself ({', '.join(map(str, sender.authenticated_by))})"
    if sender.relation is Relation.THIRD_PARTY:
        return f"a {sender.kind.value} of a shared service, authenticated"
    if sender.relation is Relation.SPOOFED:
        return "claiming to be you, and failing your own authentication policy"
    if sender.relation is Relation.IMPERSONATION:
        return "from a domain made to look like yours"
    if sender.relation is Relation.BACKSCATTER:
        return "bounces or automatic replies to mail sent in this address's name"
    return "not authenticated"


def evidence_lines(report: CompanyReport) -> list[str]:
    return [
        f"{sender.organisation}: {plural(sender.count, 'message')}, {_how(sender)}, first on "
        f"{day(sender.first_seen)}, last on {day(sender.last_seen)}."
        for sender in report.unexpected
    ]


_DEADLINE = {
    Law.GDPR: "Please reply within one month of receiving this request (Art. 12(3) GDPR).",
    Law.CCPA: "Please reply within 45 days of receiving this request (Cal. Civ. Code "
              "§ 1798.130).",
}


@dataclass(frozen=True, slots=True)
class LetterContent:
    """Everything a letter says, as sentences; the layout is the renderer's."""

    subject: str
    company: str
    given: str
    """When and which address was given, and that it was given to no one else."""
    consent: tuple[str, ...]
    evidence_intro: str | None
    evidence: tuple[str, ...]
    """One line per unexpected sender organisation."""
    findings: tuple[str, ...]
    """The company's own marketing that broke what was agreed."""
    keeps_originals: bool
    asks: tuple[str, ...]
    identify_by: str
    deadline: str


def letter_content(report: CompanyReport, kind: Kind, law: Law) -> LetterContent:
    """What a `kind` letter under `law` may say to the company, given its report."""
    alias = report.aliases[0]
    evidence = evidence_lines(report)
    first = report.days_to_first_unexpected
    intro = None
    if evidence:
        intro = ("Since then, this address has received mail from organisations other than you"
                 + (f", the first {first} days after I gave it to you" if first is not None
                    else "") + ":")
    findings = tuple(f"{finding.summary}." for finding in report.findings)
    return LetterContent(
        subject=_SUBJECT[kind, law],
        company=report.name,
        given=(f"On {day(alias.issued_at)} I gave you the email address {alias.address}. "
               "I created this address for you and gave it to no one else."),
        consent=tuple(consent_lines(report)),
        evidence_intro=intro,
        evidence=tuple(evidence),
        findings=findings,
        keeps_originals=bool(evidence or findings),
        asks=tuple(_ASKS[kind, law]),
        identify_by=", ".join(a.address for a in report.aliases),
        deadline=_DEADLINE[law],
    )
