"""How one message relates to the company whose alias received it.

The rule is a pure function of the message's facts and the company's own
domains (declared at issue time, or trusted by the user later). It never
learns a new domain by itself: only the user can call a sender the
company's own.

This first version knows no authentication yet, so another organisation is
`unverified`; `processor`, `third_party` and `spoofed` need SPF, DKIM and
DMARC results.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class Relation(enum.StrEnum):
    FIRST_PARTY = "first_party"
    """From is the company's own domain."""
    PROCESSOR = "processor"
    """The company's domain, sent through an ESP that authenticated it."""
    THIRD_PARTY = "third_party"
    """Another organisation, authenticated as itself."""
    UNVERIFIED = "unverified"
    """Another organisation, not authenticated."""
    SPOOFED = "spoofed"
    """Claims the company's domain but fails authentication."""

    @property
    def expected(self) -> bool:
        """Mail the company may send: its own, or its processor's."""
        return self in (Relation.FIRST_PARTY, Relation.PROCESSOR)


@dataclass(frozen=True, slots=True)
class Classification:
    relation: Relation
    sender_org: str | None
    """None when the message names no sender organisation at all."""
    reason: str


def classify(from_orgs: Sequence[str], company_domains: Iterable[str]) -> Classification:
    """Classify a message by the organisations of its From addresses.

    `from_orgs` holds one organisational domain per From address; a message
    with several (a DMARC evasion trick) is the company's only if all are.
    """
    own = frozenset(company_domains)
    if not from_orgs:
        return Classification(Relation.UNVERIFIED, None, "no sender organisation in From")
    foreign = [org for org in from_orgs if org not in own]
    if not foreign:
        return Classification(
            Relation.FIRST_PARTY, from_orgs[0], f"From {from_orgs[0]} is the company's"
        )
    sender = foreign[0]
    if len(from_orgs) > 1:
        reason = f"several From addresses; {sender} is not the company's"
    else:
        reason = f"From {sender} is not the company's and is not authenticated"
    return Classification(Relation.UNVERIFIED, sender, reason)
