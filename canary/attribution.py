"""Who sent a message, and how it relates to the company whose alias received it.

Canary accuses only what the evidence proves. Each message gets one relation
to the company and a sender identity (`canary.senders`):

| relation        | when |
|-----------------|------|
| `first_party`   | the company's own mail: From is its domain and authenticates (DMARC, or |
|                 | aligned DKIM/SPF, or a trusted ARC seal), or its own list server sent it |
| `processor`     | sent for the company by a service: its ESP, or a platform (payments, |
|                 | bookings, tickets…) naming the company as the merchant |
| `third_party`   | another sender, authenticated as itself: the address reached it |
| `unverified`    | another sender, not authenticated (typical spam) |
| `spoofed`       | claims the company's domain and fails a policy the company enforces, or |
|                 | comes from another customer of the company's own ESP |
| `impersonation` | from a look-alike of the company's domain or name: phishing |
| `backscatter`   | a bounce, delivery report or auto-reply: the address is in use |
| `unproven`      | claims the company but proves nothing either way (DMARC `p=none`, a |
|                 | platform naming no merchant): neither the company's nor held against it |

Only a `third_party` that is an identifiable business (an organisation, or a
merchant a platform named) can make the company `shared`; a mailbox, a group,
a cloud tenant, an impersonator or backscatter proves only that the address
is out. The rule never learns a domain by itself: only the person can call a
sender the company's own (`canary trust`). Pure: plain values in and out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from canary.authentication import (
    NOT_AUTHENTICATED,
    AuthenticatedBy,
    Authentication,
    AuthMethod,
    Result,
)
from canary.domains import organisational_domain
from canary.esp import EspSending
from canary.lookalike import lookalike
from canary.message import MessageFacts
from canary.senders import (
    UNKNOWN_SENDER,
    SenderIdentity,
    SenderKind,
    address_identity,
    platform_merchants,
    platform_of,
    same_business,
    shared_from_customer,
)

BOUNCE_LOCAL_PARTS = frozenset({"mailer-daemon", "postmaster"})
REPORT_TYPES = frozenset({"multipart/report", "message/delivery-status",
                          "message/disposition-notification"})


class Relation(enum.StrEnum):
    FIRST_PARTY = "first_party"
    PROCESSOR = "processor"
    THIRD_PARTY = "third_party"
    UNVERIFIED = "unverified"
    SPOOFED = "spoofed"
    IMPERSONATION = "impersonation"
    BACKSCATTER = "backscatter"
    UNPROVEN = "unproven"

    @property
    def expected(self) -> bool:
        """Mail the company may send: its own, or a service's sending for it."""
        return self in (Relation.FIRST_PARTY, Relation.PROCESSOR)

    @property
    def unexpected(self) -> bool:
        """Mail that shows the address reached someone other than the company."""
        return not self.expected and self is not Relation.UNPROVEN


@dataclass(frozen=True, slots=True)
class CompanyContext:
    """What Canary knows about the company whose alias received the message."""

    domains: frozenset[str]
    """Its own organisations: declared at issue time or trusted later."""
    names: tuple[str, ...] = ()
    """Its name and slug, for platform merchants and look-alikes."""
    esp_customers: frozenset[tuple[str, str]] = frozenset()
    """(ESP, customer id) pairs confirmed as the company's: learned from its authenticated
    mail, or recorded with `canary trust`."""
    trusted_sealers: frozenset[str] = frozenset()
    """ARC sealers the person trusts (besides the company's own domains)."""

    def owns(self, domain: str | None) -> bool:
        return domain is not None and organisational_domain(domain) in self.domains

    def trusts_sealer(self, sealer: str) -> bool:
        return self.owns(sealer) or sealer in self.trusted_sealers or (
            organisational_domain(sealer) in self.trusted_sealers)


@dataclass(frozen=True, slots=True)
class Attribution:
    relation: Relation
    sender: SenderIdentity
    reason: str
    """One line a careful investigator would write."""
    authenticated_by: AuthenticatedBy = field(default=NOT_AUTHENTICATED)

    @property
    def accusable(self) -> bool:
        """Evidence the company gave the address to this sender."""
        return self.relation is Relation.THIRD_PARTY and self.sender.kind.identifiable


def _dkim(domain: str) -> AuthenticatedBy:
    return AuthenticatedBy(AuthMethod.DKIM, domain)


def _aligned(auth: Authentication) -> AuthenticatedBy | None:
    if auth.dmarc.dkim_aligned:
        return _dkim(auth.dmarc.dkim_aligned)
    if auth.dmarc.spf_aligned:
        return AuthenticatedBy(AuthMethod.SPF, auth.dmarc.spf_aligned)
    return None


def is_backscatter(facts: MessageFacts, null_sender: bool) -> str | None:
    """Why the message is a bounce, delivery report or auto-reply; None if it is not."""
    if facts.content_type in REPORT_TYPES:
        return f"a delivery or read report ({facts.content_type})"
    if facts.auto_submitted == "auto-replied":
        return "an automatic reply (Auto-Submitted: auto-replied)"
    local = (facts.from_address or "").rpartition("@")[0]
    if local in BOUNCE_LOCAL_PARTS:
        return f"a message from {local}, a bounce"
    if null_sender:
        return "sent with the null envelope sender of bounces and auto-replies"
    return None


def _company_sent_it(facts: MessageFacts, auth: Authentication, company: CompanyContext
                     ) -> str | None:
    """The company's own list server or mailer sent it for another author: why, or None.

    Sender or List-Id name the company, and a passing DKIM or SPF domain of the
    company proves it.
    """
    proof = next((d for d in auth.dkim_pass_domains if company.owns(d)), None)
    method = "DKIM d="
    if proof is None and auth.spf.result is Result.PASS and company.owns(auth.spf.domain):
        proof, method = auth.spf.domain, "SPF "
    if proof is None:
        return None
    if facts.sender and company.owns(facts.sender.rpartition("@")[2]):
        return f"sent by the company's {facts.sender} (Sender header, {method}{proof})"
    list_domain = (facts.list_id or "").rstrip(">").rpartition("<")[2].strip()
    labels = list_domain.split(".")
    for start in range(len(labels) - 1):
        if company.owns(".".join(labels[start:])):
            return f"sent by the company's mailing list {list_domain} ({method}{proof})"
    return None


def _esp_verdict(esp: EspSending, company: CompanyContext, claimed: str, *, failed: str
                 ) -> Attribution:
    """Mail claiming the company through an ESP that authenticated its own sending."""
    sender = SenderIdentity(SenderKind.ORGANISATION, claimed, claimed, esp.esp)
    assert esp.authenticated_by is not None
    known = {cid for name, cid in company.esp_customers if name == esp.esp}
    customer = f"customer {esp.customer_id}" if esp.customer_id else "an unnamed customer"
    if known and esp.customer_id and esp.customer_id not in known:
        return Attribution(Relation.SPOOFED, sender,
                           f"claims {claimed} through {esp.esp}, but as {customer}; the "
                           f"company's own is {', '.join(sorted(known))} ({failed})")
    if known and esp.customer_id is None:
        return Attribution(Relation.UNPROVEN, sender,
                           f"claims {claimed} through {esp.esp} without naming the customer "
                           f"({failed})")
    confirmed = "confirmed as the company's" if known else "not confirmed yet"
    return Attribution(Relation.PROCESSOR, sender,
                       f"{claimed} sent through {esp.esp}, {customer} ({confirmed}; {failed})",
                       esp.authenticated_by)


def _claims_company(facts: MessageFacts, auth: Authentication, esp: EspSending | None,
                    company: CompanyContext, claimed: str) -> Attribution:
    own = SenderIdentity(SenderKind.ORGANISATION, claimed, claimed)
    if aligned := _aligned(auth):
        if esp is not None and esp.authenticated_by is not None:
            customer = f", customer {esp.customer_id}" if esp.customer_id else ""
            return Attribution(
                Relation.PROCESSOR, SenderIdentity(SenderKind.ORGANISATION, claimed, claimed,
                                                   esp.esp),
                f"{claimed} sent through {esp.esp}{customer}, authenticated as the company "
                f"({aligned} aligned)", aligned)
        return Attribution(Relation.FIRST_PARTY, own,
                           f"{claimed} authenticated ({aligned} aligned)", aligned)
    vouch = auth.arc.vouched(company.trusts_sealer)
    if vouch is not None:
        passed = [d for d in vouch.results.dkim_pass_domains if company.owns(d)]
        if vouch.results.dmarc is Result.PASS or passed:
            how = f"DKIM d={passed[0]}" if passed else "DMARC pass"
            return Attribution(Relation.FIRST_PARTY, own,
                               f"{claimed} authenticated before forwarding ({how}, recorded in an "
                               f"ARC seal of {vouch.sealer})",
                               _dkim(passed[0]) if passed else NOT_AUTHENTICATED)
    esp_authenticated = esp is not None and esp.authenticated_by is not None
    policy = auth.dmarc.policy
    if policy is not None and auth.dmarc.result is Result.FAIL:
        if policy.enforced:
            return Attribution(Relation.SPOOFED, own,
                               f"claims {claimed} but fails its DMARC policy (p={policy})")
        if esp is not None and esp_authenticated:
            return _esp_verdict(esp, company, claimed, failed="DMARC p=none not passed")
        return Attribution(Relation.UNPROVEN, own,
                           f"claims {claimed} and fails DMARC, which {claimed} does not enforce "
                           "(p=none): its own mail through an unknown service, or a forgery")
    if esp is not None and esp_authenticated:
        return _esp_verdict(esp, company, claimed, failed="no DMARC record")
    if auth.spf.result is Result.FAIL and company.owns(auth.spf.domain):
        return Attribution(Relation.SPOOFED, own,
                           f"claims {claimed} and uses its envelope domain {auth.spf.domain}, "
                           "whose SPF record refuses the sending server (-all)")
    from_spf = auth.from_spf
    if from_spf is not None and from_spf.result is Result.PASS:
        return Attribution(Relation.FIRST_PARTY, own,
                           f"{claimed}'s own SPF record authorises the sending server (it "
                           "publishes no DMARC)", AuthenticatedBy(AuthMethod.SPF, claimed))
    if from_spf is not None and from_spf.result in (Result.FAIL, Result.SOFTFAIL):
        return Attribution(Relation.UNPROVEN, own,
                           f"claims {claimed}, whose SPF record does not authorise the sending "
                           f"server ({from_spf.result}); it publishes no DMARC")
    if any(d.result is Result.FAIL and company.owns(d.domain) for d in auth.dkim):
        return Attribution(Relation.UNPROVEN, own,
                           f"claims {claimed}, but its DKIM signature of the company fails")
    return Attribution(Relation.FIRST_PARTY, own,
                       f"From {claimed} is the company's; it publishes nothing to check against "
                       "(unauthenticated)")


def _platform(facts: MessageFacts, auth: Authentication, company: CompanyContext
              ) -> Attribution | None:
    found = platform_of(facts)
    if found is None:
        return None
    platform, listed = found
    aligned = _aligned(auth)
    if aligned is None:
        return None  # an unauthenticated "platform" is anyone: judged like other mail
    merchants = platform_merchants(platform, listed, facts)
    names = (*company.names, *(d.split(".")[0] for d in company.domains))
    for merchant in merchants:
        if (merchant.domain and company.owns(merchant.domain)) or (
                merchant.name and same_business(merchant.name, names)):
            return Attribution(
                Relation.PROCESSOR,
                SenderIdentity(SenderKind.MERCHANT, merchant.label, merchant.domain,
                               platform.name),
                f"sent for the company by {platform.name}, which names it as the merchant "
                f"({merchant.source.value.replace('_', ' ')}: {merchant.label})", aligned)
    if merchants:
        merchant = merchants[0]
        return Attribution(
            Relation.THIRD_PARTY,
            SenderIdentity(SenderKind.MERCHANT, merchant.label, merchant.domain, platform.name),
            f"{merchant.label}, a merchant named by {platform.name} "
            f"({merchant.source.value.replace('_', ' ')}), which authenticated the sending "
            f"({aligned})", aligned)
    return Attribution(
        Relation.UNPROVEN,
        SenderIdentity(SenderKind.PLATFORM, platform.name, organisational_domain(listed)),
        f"{platform.name} sends for many merchants and names none here; the company may "
        "use it", aligned)


def _shared_from(facts: MessageFacts, esp: EspSending | None, company: CompanyContext
                 ) -> Attribution | None:
    customer = shared_from_customer(facts)
    if customer is None:
        return None
    authenticated = esp.authenticated_by if esp is not None and esp.esp == customer.esp else None
    if customer.domain and company.owns(customer.domain) and authenticated:
        return Attribution(
            Relation.PROCESSOR,
            SenderIdentity(SenderKind.ORGANISATION, customer.domain, customer.domain,
                           customer.esp),
            f"the company's {customer.domain}, rewritten into {customer.esp}'s shared From",
            authenticated)
    if customer.domain:
        sender = address_identity("x@" + customer.domain)
        sender = SenderIdentity(sender.kind, sender.name, sender.organisation, customer.esp)
    elif facts.from_name:
        sender = SenderIdentity(SenderKind.MERCHANT, facts.from_name, None, customer.esp)
    else:
        sender = SenderIdentity(SenderKind.PLATFORM, customer.esp)
    if authenticated is None:
        return Attribution(Relation.UNVERIFIED, sender,
                           f"{sender.name} in {customer.esp}'s shared From, not authenticated")
    return Attribution(Relation.THIRD_PARTY, sender,
                       f"{sender.name}, a customer of {customer.esp} sending from its shared "
                       f"From ({authenticated})", authenticated)


def attribute_message(
    facts: MessageFacts,
    auth: Authentication,
    esp: EspSending | None,
    company: CompanyContext,
    *,
    null_sender: bool = False,
) -> Attribution:
    """The relation of one message to the company, its sender, and why."""
    if not facts.from_orgs:
        if why := is_backscatter(facts, null_sender):
            return Attribution(Relation.BACKSCATTER, UNKNOWN_SENDER, why)
        return Attribution(Relation.UNVERIFIED, UNKNOWN_SENDER, "no sender organisation in From")
    claimed = facts.from_orgs[0]
    foreign = [org for org in facts.from_orgs if not company.owns(org)]
    if foreign and len(foreign) < len(facts.from_orgs):
        own_org = next(org for org in facts.from_orgs if company.owns(org))
        return Attribution(
            Relation.SPOOFED, SenderIdentity(SenderKind.ORGANISATION, foreign[0], foreign[0]),
            f"several From addresses mix the company's {own_org} with {foreign[0]}")
    if not foreign:
        return _claims_company(facts, auth, esp, company, claimed)

    sender = address_identity(facts.from_address or "", facts.list_id)
    if why := is_backscatter(facts, null_sender):
        return Attribution(Relation.BACKSCATTER, sender,
                           f"{why} from {sender.name}: it shows the address is in use, not that "
                           f"{sender.name} was given it")
    if why := _company_sent_it(facts, auth, company):
        return Attribution(Relation.FIRST_PARTY,
                           SenderIdentity(SenderKind.ORGANISATION, claimed, claimed), why,
                           _aligned(auth) or NOT_AUTHENTICATED)
    names = [n for n in company.names if n]
    if sender.kind is SenderKind.ORGANISATION and (
            found := lookalike(claimed, company.domains, names)) is not None:
        return Attribution(Relation.IMPERSONATION, sender,
                           f"{found.describe(claimed)}: mail in its name proves the address is "
                           "out, not who has it (trust the domain if it is the company's own)",
                           _aligned(auth) or NOT_AUTHENTICATED)
    if (decided := _platform(facts, auth, company)) is not None:
        return decided
    if (decided := _shared_from(facts, esp, company)) is not None:
        return decided
    if aligned := _aligned(auth):
        return Attribution(Relation.THIRD_PARTY, sender,
                           f"{sender.name} authenticated as itself ({aligned} aligned)", aligned)
    vouch = auth.arc.vouched(company.trusts_sealer)
    if vouch is not None and vouch.results.dmarc is Result.PASS:
        return Attribution(Relation.THIRD_PARTY, sender,
                           f"{sender.name} authenticated before forwarding (DMARC pass in an "
                           f"ARC seal of {vouch.sealer})")
    if esp is not None and esp.authenticated_by is not None:
        return Attribution(Relation.UNVERIFIED, sender,
                           f"{sender.name} is named in From but not authenticated; sent through "
                           f"{esp.esp} ({esp.authenticated_by}), which proves its customer, not "
                           f"{sender.name}")
    failed = "fails DMARC" if auth.dmarc.result is Result.FAIL else "is not authenticated"
    return Attribution(Relation.UNVERIFIED, sender,
                       f"{sender.name} {failed} (SPF {auth.spf.result.value})")


def company_names(name: str, slug: str) -> tuple[str, ...]:
    """The names a company goes by, for platform merchants and look-alikes."""
    return tuple(dict.fromkeys(n for n in (name, slug) if n))


def learnable_customer(attribution: Attribution, esp: EspSending | None,
                       company: CompanyContext) -> tuple[str, str] | None:
    """The ESP customer id that mail authenticated as the company shows: the company's own.

    Only mail that passed as the company's own domain teaches it; an unaligned
    ESP signature proves the ESP's customer, not which company that is.
    """
    if (esp is not None and esp.customer_id and attribution.relation.expected
            and company.owns(attribution.authenticated_by.domain)):
        return esp.esp, esp.customer_id
    return None
