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
import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from canary.domains import normalise_domain, organisational_domain
from canary.errors import InvalidDomain
from canary.esp import esp_shared_from, load_esps
from canary.message import MessageFacts
from canary.platforms import MerchantSource, Platform, load_platforms, platform_for_domain
from canary.tenants import TenantKind, sender_identity, shared_domain

MERCHANT_NAME_MAX = 120


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
    return "".join(name_words(text))


LEGAL_FORMS = frozenset({
    "ag", "bv", "co", "company", "corp", "corporation", "gmbh", "inc", "incorporated",
    "limited", "llc", "llp", "ltd", "plc", "pty", "sa", "sarl", "srl", "the",
})
"""Words that name a legal form, not a business: `MegaMart Ltd` is `MegaMart`."""


def name_words(text: str) -> tuple[str, ...]:
    """The words of a name, folded to plain lower-case ASCII: `Café Nonna` → (cafe, nonna)."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    plain = folded.encode("ascii", "ignore").decode().replace("'", "")
    return tuple(re.findall(r"[a-z0-9]+", plain))


def _business_words(text: str) -> tuple[str, ...]:
    return tuple(w for w in name_words(text) if w not in LEGAL_FORMS)


def _contains_run(words: tuple[str, ...], run: tuple[str, ...]) -> bool:
    """Whether `run` appears in `words` as whole consecutive words."""
    return any(words[i:i + len(run)] == run for i in range(len(words) - len(run) + 1))


def _joined_run(words: tuple[str, ...], joined: str) -> bool:
    """Whether consecutive words spell `joined` written together: (mega, mart) → megamart."""
    for start in range(len(words)):
        spelled = ""
        for word in words[start:]:
            spelled += word
            if spelled == joined:
                return True
            if not joined.startswith(spelled):
                break
    return False


def same_business(named: str, names: Iterable[str]) -> bool:
    """Whether a name a platform or display name gave is one of the company's names.

    By whole words, ignoring legal forms: `MegaMart Ltd`, `Mega Mart` and
    `MegaMart Online` name `megamart`; `Bloomfield Farm Shop` does not name
    `Bloom`, and `ACME` does not name `Acme Outfitters` (see `part_of_name`).
    """
    words = _business_words(named)
    if not words:
        return False
    for name in names:
        own = _business_words(name)
        if not own:
            continue
        if _contains_run(words, own) or _joined_run(words, "".join(own)):
            return True
    return False


def part_of_name(named: str, names: Iterable[str]) -> bool:
    """Whether a name is a short form of one of the company's: `ACME` of `Acme Outfitters`.

    Neither the company's nor provably another business: Canary says nothing.
    """
    words = _business_words(named)
    if not words:
        return False
    return any(_contains_run(own, words) or _joined_run(own, "".join(words))
               for name in names if (own := _business_words(name)))


@functools.cache
def _service_names() -> dict[str, str]:
    """Plain name → name of every platform and ESP Canary knows: brands phishers borrow."""
    names = {plain_name(p.name): p.name for p in load_platforms()}
    names.update({plain_name(e.name.split(" (")[0]): e.name for e in load_esps()})
    return {plain: name for plain, name in names.items() if len(plain) >= 4}


def names_a_service(text: str) -> str | None:
    """The platform or ESP a merchant name borrows (`PayPal Resolution Center`), if any:
    an account named after another brand is a claim no business stands behind."""
    words = name_words(text)
    services = _service_names()
    for start in range(len(words)):
        spelled = ""
        for word in words[start:start + 3]:
            spelled += word
            if spelled in services:
                return services[spelled]
    return None


@dataclass(frozen=True, slots=True)
class Merchant:
    """A business a platform (or an ESP) says it sent for."""

    name: str | None
    domain: str | None
    """Its registrable domain, when the platform gives an address of the merchant's own."""
    source: MerchantSource
    mailbox: str | None = None
    """The merchant's address at a mailbox provider, when that is all the platform gives."""

    @property
    def label(self) -> str:
        return self.name or self.domain or self.mailbox or "(unnamed)"


@dataclass(frozen=True, slots=True)
class _Address:
    organisation: str | None
    """A registrable domain of a business's own; None for a platform's or a free mailbox."""
    mailbox: str | None
    """The address, when it is at a mailbox provider."""


def _merchant_address(address: str) -> _Address:
    domain = _domain_of(address)
    organisation = organisational_domain(domain) if domain else None
    if organisation is None or platform_for_domain(organisation):
        return _Address(None, None)  # the platform's own address: no business
    shared = shared_domain(organisation)
    if shared is None:
        return _Address(organisation, None)
    if shared.kind is TenantKind.MAILBOX:
        return _Address(None, address.strip("<> ").lower())
    return _Address(None, None)


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
                where = _merchant_address(address)
                if name or where.organisation or where.mailbox:
                    found.append(Merchant(name or None, where.organisation, rule.source,
                                          where.mailbox))
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
        if not text or plain_name(text) == own or len(text) > MERCHANT_NAME_MAX:
            continue
        if "@" in text:
            where = _merchant_address(text)
            if where.organisation or where.mailbox:
                found.append(Merchant(None, where.organisation, rule.source, where.mailbox))
            continue
        found.append(Merchant(text, None, rule.source))
    return found


@dataclass(frozen=True, slots=True)
class SharedFromCustomer:
    esp: str
    domain: str | None
    """The customer's registrable domain encoded in the rewritten local part; None if the
    ESP encodes none."""
    address: str | None = None
    """The customer's own address, when the rewrite keeps its local part too
    (`carlscoffee-gmail.com@shared1.ccsend.com` → `carlscoffee@gmail.com`)."""
    label: str | None = None
    """The label the customer chose, or its account number, under the shared domain when
    the ESP encodes no domain (`harborbooks` of `news@harborbooks.ccsend.com`)."""


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
        under = facts.from_domain.removesuffix(shared.domain).rstrip(".")
        return SharedFromCustomer(esp.name, None, label=under.rpartition(".")[2] or None)
    found = shared.pattern.search(address.rpartition("@")[0])
    if found is None:
        return SharedFromCustomer(esp.name, None)
    domain = _domain_of("@" + found.group("domain"))
    if domain is None:
        return SharedFromCustomer(esp.name, None)
    organisation = organisational_domain(domain)
    if organisation is None:
        return SharedFromCustomer(esp.name, None)
    rewritten = address.rpartition("@")[0].lower()
    local = rewritten[:-len(organisation) - 1]
    separated = rewritten.endswith(organisation) and rewritten[-len(organisation) - 1:][0] in ".-"
    return SharedFromCustomer(esp.name, organisation,
                              f"{local}@{organisation}" if separated and local else None)


def platform_of(facts: MessageFacts) -> tuple[Platform, str] | None:
    """The platform whose sending domain the From address is under, if any."""
    return platform_for_domain(facts.from_domain) if facts.from_domain else None
