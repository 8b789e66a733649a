"""How one message relates to the company whose alias received it.

The rule is a pure function of the From organisations, the company's own
domains (declared at issue time or trusted by the user later), the
authentication results and, where one was used, the ESP that sent it. It
never learns a new domain by itself: only the user can call a sender the
company's own.

| relation      | when |
|---------------|------|
| `first_party` | From is the company's, and DMARC passes (or aligned DKIM/SPF) — or the |
|               | company publishes nothing to check against and nothing failed |
| `processor`   | From is the company's, unaligned, but an ESP authenticated the sending |
| `spoofed`     | From is the company's and authentication fails |
| `third_party` | another organisation, authenticated as itself (aligned, or by its ESP) |
| `unverified`  | another organisation, not authenticated |
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from canary.authentication import (
    NOT_AUTHENTICATED,
    AuthenticatedBy,
    Authentication,
    AuthMethod,
    Result,
)
from canary.domains import organisational_domain
from canary.esp import EspSending


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
    authenticated_by: AuthenticatedBy = NOT_AUTHENTICATED
    """How the sender organisation was authenticated."""


def _aligned_by(auth: Authentication) -> AuthenticatedBy | None:
    if auth.dmarc.dkim_aligned:
        return AuthenticatedBy(AuthMethod.DKIM, auth.dmarc.dkim_aligned)
    if auth.dmarc.spf_aligned:
        return AuthenticatedBy(AuthMethod.SPF, auth.dmarc.spf_aligned)
    return None


def _via(esp: EspSending) -> str:
    customer = f", customer {esp.customer_id}" if esp.customer_id else ""
    return f"{esp.esp}{customer}"


def classify(
    from_orgs: Sequence[str],
    company_domains: Iterable[str],
    auth: Authentication | None = None,
    esp: EspSending | None = None,
) -> Classification:
    """Classify a message by its From organisations and how they authenticated.

    `from_orgs` holds one organisational domain per From address. A message
    with several (a DMARC evasion trick) that mixes the company's domain
    with another is `spoofed`. Without `auth` (no checks available), the
    company's domain counts as its own and anything else is `unverified`.
    """
    own = frozenset(company_domains)
    if not from_orgs:
        return Classification(Relation.UNVERIFIED, None, "no sender organisation in From")
    foreign = [org for org in from_orgs if org not in own]
    sender = foreign[0] if foreign else from_orgs[0]
    if foreign and len(foreign) < len(from_orgs):
        company_org = next(org for org in from_orgs if org in own)
        return Classification(
            Relation.SPOOFED, sender,
            f"several From addresses mix the company's {company_org} with {sender}",
        )
    if auth is None:
        if not foreign:
            return Classification(Relation.FIRST_PARTY, sender, f"From {sender} is the company's")
        return Classification(Relation.UNVERIFIED, sender,
                              f"From {sender} is not the company's and is not authenticated")

    aligned = _aligned_by(auth)
    esp_auth = esp.authenticated_by if esp else None
    if not foreign:
        if aligned:
            return Classification(Relation.FIRST_PARTY, sender,
                                  f"{sender} authenticated ({aligned} aligned)", aligned)
        if esp is not None and esp_auth:
            return Classification(Relation.PROCESSOR, sender,
                                  f"{sender} sent through {_via(esp)} ({esp_auth})", esp_auth)
        if auth.dmarc.result is Result.FAIL:
            return Classification(
                Relation.SPOOFED, sender,
                f"claims {sender} but fails its DMARC policy (p={auth.dmarc.policy or 'none'})",
            )
        if auth.spf.result is Result.FAIL and organisational_domain(auth.spf.domain or "") in own:
            return Classification(Relation.SPOOFED, sender,
                                  f"claims {sender} but fails its SPF ({auth.spf.domain})")
        return Classification(
            Relation.FIRST_PARTY, sender,
            f"From {sender} is the company's; it publishes nothing that fails (unauthenticated)",
        )
    if aligned:
        return Classification(Relation.THIRD_PARTY, sender,
                              f"{sender} authenticated as itself ({aligned} aligned)", aligned)
    if esp is not None and esp_auth:
        return Classification(Relation.THIRD_PARTY, sender,
                              f"{sender} sent through {_via(esp)} ({esp_auth})", esp_auth)
    failed = "fails DMARC" if auth.dmarc.result is Result.FAIL else "is not authenticated"
    return Classification(Relation.UNVERIFIED, sender,
                          f"{sender} {failed} (SPF {auth.spf.result.value})")
