"""What analysis found out about one message, and the pure step that decides it.

`smtp_listener.analysis` does the I/O (reading stored mail, SPF, DKIM, DMARC
and ARC through the resolver); `attribute` takes what it found and decides
the rest: which ESP carried the message, who sent it and how that sender
relates to the company (`canary.attribution`), and whether it is marketing.
`Analysis` is the result that `data` stores. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from canary.attribution import Attribution, CompanyContext, attribute_message
from canary.authentication import Authentication, AuthMethod, DnsAnswer
from canary.consent import is_marketing
from canary.esp import EspSending, esp_sending
from canary.message import MessageFacts


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything analysis found out about one message."""

    facts: MessageFacts
    attribution: Attribution
    authentication: Authentication
    esp: EspSending | None = None
    dns_answers: tuple[DnsAnswer, ...] = ()
    marketing: tuple[bool, str] | None = None
    """Whether it is marketing, and why (`canary.consent.is_marketing`)."""

    def settled_despite(self, problem: str) -> Analysis:
        """This analysis, made although some checks could not be done, saying which: the
        failed checks count as not passed, so they can only make Canary say less."""
        attribution = replace(self.attribution,
                              reason=f"{self.attribution.reason}; settled with {problem}")
        return replace(self, attribution=attribution)


def attribute(
    facts: MessageFacts,
    auth: Authentication,
    company: CompanyContext,
    *,
    null_sender: bool,
    dns_answers: Iterable[DnsAnswer] = (),
) -> Analysis:
    """The ESP, the sender and its relation to the company, and the marketing verdict."""
    esp = esp_sending(facts.headers, auth)
    attribution = attribute_message(facts, auth, esp, company, null_sender=null_sender)
    if (witness := _witness(auth, attribution)) is not None:
        attribution = replace(attribution, reason=f"{attribution.reason}; {witness}")
    marketing = is_marketing(subject=facts.subject, list_unsubscribe=facts.list_unsubscribe,
                             precedence=facts.precedence, esp=esp.esp if esp else None)
    return Analysis(facts, attribution, auth, esp, tuple(dns_answers), marketing)


def _witness(auth: Authentication, attribution: Attribution) -> str | None:
    """Who vouches for the authentication an imported message's verdict rests on: the
    provider at receipt, or Canary itself today (evidence must say which)."""
    proof = attribution.authenticated_by
    if proof.domain is None:
        return None
    attested = auth.upstream is not None and (
        any(d.domain == proof.domain and d.reason == "upstream" for d in auth.dkim)
        or (proof.method is AuthMethod.SPF and auth.spf.domain == proof.domain))
    if attested:
        return f"as {auth.upstream} recorded at receipt"
    if auth.historic:
        return "verified by Canary against today's DNS"
    return None
