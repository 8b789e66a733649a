"""Who is accountable for a message: its sender identity.

Usually the sender is the organisation behind the From domain. But:

- on a shared-tenant domain (a free mailbox, a group service, a cloud
  tenant) the sender is the mailbox, the group or the tenant, never the
  provider (`canary.tenants`);
- a platform that sends in its own name for a merchant (payments, bookings,
  tickets, support desks, shops) names the merchant somewhere: the display
  name, Reply-To, a tenant subdomain, the From local part, a header or the
  Subject (`canary.platforms`); the merchant is the sender;
- an ESP that rewrites a customer's From into a domain of its own encodes the
  customer's domain in the local part (`canary.esp`); the customer is.

Nothing here decides whether the sender authenticated or how it relates to
the company: that is `canary.attribution`. Pure: no I/O beyond reading the
package tables once.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from canary.domains import normalise_domain, organisational_domain
from canary.errors import InvalidDomain
from canary.esp import esp_shared_from
from canary.message import MessageFacts
from canary.platforms import MerchantSource, Platform, platform_for_domain
from canary.tenants import TenantKind, sender_identity, shared_domain

MERCHANT_NAME_MAX = 120
_NAME_MATCH_FROM = 5
"""Names shorter than this are compared whole, never by containment: `Bo` is in too much."""


class SenderKind(enum.StrEnum):
    ORGANISATION = "organisation"
    """A registrable domain: one organisation."""
    MERCHANT = "merchant"
    """A business named by a platform or an ESP that sent for it."""
    TENANT = "tenant"
    """A customer's subdomain of a shared cloud service."""
    MAILBOX = "mailbox"
    """One person's mailbox at a mailbox provider."""
    GROUP = "group"
    """A group or mailing list at a group service."""
    PLATFORM = "platform"
    """A platform that sends for many merchants, naming none here."""
    UNKNOWN = "unknown"
    """No sender can be read from the message."""

    @property
    def identifiable(self) -> bool:
        """An identifiable business: the only kind of sender Canary may say was given an address."""
        return self in (SenderKind.ORGANISATION, SenderKind.MERCHANT)


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    kind: SenderKind
    name: str
    """What the report calls it: `dealblaster.example`, `jane@gmail.com`, `Acme Coffee`."""
    organisation: str | None = None
    """Its registrable domain, when it has one of its own."""
    via: str | None = None
    """The platform or ESP that named it (`Square`), when it did not send itself."""

    def __str__(self) -> str:
        return f"{self.name} (via {self.via})" if self.via else self.name


UNKNOWN_SENDER = SenderIdentity(SenderKind.UNKNOWN, "(no sender domain)")


def _domain_of(address: str) -> str | None:
    _, at, host = address.rpartition("@")
    if not at:
        return None
    try:
        return normalise_domain(host.strip("<> "))
    except InvalidDomain:
        return None


def address_identity(address: str, list_id: str | None = None) -> SenderIdentity:
    """The sender an address stands for: its organisation, or its mailbox, group or tenant."""
    domain = _domain_of(address)
    organisation = organisational_domain(domain) if domain else None
    if organisation is None:
        return UNKNOWN_SENDER
    shared = shared_domain(organisation)
    if shared is None:
        return SenderIdentity(SenderKind.ORGANISATION, organisation, organisation)
    name = sender_identity(address, list_id) or address.lower()
    kind = {TenantKind.MAILBOX: SenderKind.MAILBOX, TenantKind.GROUP: SenderKind.GROUP,
            TenantKind.CLOUD_TENANT: SenderKind.TENANT}[shared.kind]
    return SenderIdentity(kind, name, None, shared.operator)


def plain_name(text: str) -> str:
    """A business name for comparison: `Acme Coffee Ltd.` → `acmecoffeeltd`."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    return re.sub(r"[^a-z0-9]", "", folded.encode("ascii", "ignore").decode())


def same_business(named: str, names: Iterable[str]) -> bool:
    """Whether a merchant name a platform gave is one of the company's names.

    Lenient on purpose: `MegaMart Ltd` and `megamart` are the same business; a
    wrong "no" would accuse the company over its own receipt.
    """
    plain = plain_name(named)
    if not plain:
        return False
    for name in names:
        other = plain_name(name)
        if not other:
            continue
        if plain == other:
            return True
        shorter, longer = sorted((plain, other), key=len)
        if len(shorter) >= _NAME_MATCH_FROM and shorter in longer:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Merchant:
    """A business a platform (or an ESP) says it sent for."""

    name: str | None
    domain: str | None
    """Its registrable domain, when the platform gives an address of the merchant's own."""
    source: MerchantSource

    @property
    def label(self) -> str:
        return self.name or self.domain or "(unnamed)"


def _cut(pattern: re.Pattern[str] | None, text: str | None) -> str | None:
    if not text:
        return None
    if pattern is None:
        return text.strip() or None
    found = pattern.search(text)
    return found.group("merchant").strip() if found and found.group("merchant") else None


def platform_merchants(platform: Platform, listed: str, facts: MessageFacts) -> list[Merchant]:
    """Every merchant the platform names in this message, most reliable rule first.

    The platform's own name is not a merchant: that is the platform writing for
    itself.
    """
    found: list[Merchant] = []
    own = plain_name(platform.name)
    local, _, host = (facts.from_address or "").rpartition("@")
    for rule in platform.merchant:
        if rule.source is MerchantSource.REPLY_TO:
            for name, address in facts.reply_to:
                domain = _domain_of(address)
                organisation = organisational_domain(domain) if domain else None
                if organisation and (platform_for_domain(organisation)
                                     or shared_domain(organisation)):
                    organisation = None  # the platform's own or a free mailbox: no business
                if name or organisation:
                    found.append(Merchant(name or None, organisation, rule.source))
            continue
        text: str | None = None
        if rule.source is MerchantSource.DISPLAY_NAME:
            text = _cut(rule.pattern, facts.from_name)
        elif rule.source is MerchantSource.SUBJECT:
            text = _cut(rule.pattern, facts.subject)
        elif rule.source is MerchantSource.FROM_LOCAL_PART:
            text = _cut(rule.pattern, local)
        elif rule.source is MerchantSource.HEADER and rule.header:
            wanted = rule.header.lower()
            values = [v for k, v in facts.headers if k.strip().lower() == wanted]
            text = next((t for v in values if (t := _cut(rule.pattern, v))), None)
        elif rule.source is MerchantSource.TENANT_SUBDOMAIN and host:
            under = rule.under or listed
            if host.endswith("." + under):
                text = host.removesuffix("." + under).rsplit(".", 1)[-1]
        if text and plain_name(text) != own and len(text) <= MERCHANT_NAME_MAX:
            found.append(Merchant(text, None, rule.source))
    return found


@dataclass(frozen=True, slots=True)
class SharedFromCustomer:
    esp: str
    domain: str | None
    """The customer's domain encoded in the rewritten local part; None if the ESP encodes none."""


def shared_from_customer(facts: MessageFacts) -> SharedFromCustomer | None:
    """The ESP customer behind a From the ESP rewrote into a shared domain of its own."""
    address = facts.from_address
    if not address or facts.from_domain is None:
        return None
    hit = esp_shared_from(facts.from_domain)
    if hit is None:
        return None
    esp, shared = hit
    if shared.pattern is None:
        return SharedFromCustomer(esp.name, None)
    found = shared.pattern.search(address.rpartition("@")[0])
    domain = _domain_of("@" + found.group("domain")) if found else None
    return SharedFromCustomer(esp.name, organisational_domain(domain) if domain else None)


def platform_of(facts: MessageFacts) -> tuple[Platform, str] | None:
    """The platform whose sending domain the From address is under, if any."""
    return platform_for_domain(facts.from_domain) if facts.from_domain else None
