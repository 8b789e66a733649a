"""What analysis found out about one message, and the pure step that decides it.

`smtp_listener.analysis` does the I/O (reading stored mail, SPF, DKIM and
DMARC through the resolver); `attribute` takes what it found and decides
the rest: which ESP carried the message, how it relates to the company, and
whether it is marketing. `Analysis` is the result that `data` stores.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from canary.authentication import Authentication, DnsAnswer
from canary.classify import Classification, classify
from canary.consent import is_marketing
from canary.esp import EspSending, esp_sending
from canary.message import MessageFacts


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything analysis found out about one message."""

    facts: MessageFacts
    classification: Classification
    authentication: Authentication | None = None
    esp: EspSending | None = None
    dns_answers: tuple[DnsAnswer, ...] = ()
    marketing: tuple[bool, str] | None = None
    """Whether it is marketing, and why (`canary.consent.is_marketing`)."""


def attribute(
    facts: MessageFacts,
    auth: Authentication,
    company_domains: Iterable[str],
    dns_answers: Iterable[DnsAnswer] = (),
) -> Analysis:
    """The ESP, the relation to the company and the marketing verdict of one message."""
    esp = esp_sending(facts.headers, auth)
    classification = classify(facts.from_orgs, company_domains, auth, esp)
    marketing = is_marketing(subject=facts.subject, list_unsubscribe=facts.list_unsubscribe,
                             precedence=facts.precedence, esp=esp.esp if esp else None)
    return Analysis(facts, classification, auth, esp, tuple(dns_answers), marketing)
