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

import re
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
from canary.lookalike import lookalike_host
from canary.message import MessageFacts
from canary.platforms import MerchantSource
from canary.relation import Relation
from canary.senders import (
    UNKNOWN_SENDER,
    Merchant,
    SenderIdentity,
    SenderKind,
    address_identity,
    names_a_service,
    part_of_name,
    plain_name,
    platform_merchants,
    platform_of,
    same_business,
    shared_from_customer,
)
from canary.tenants import shared_domain

REPORT_TYPES = frozenset({"multipart/report", "message/delivery-status",
                          "message/disposition-notification"})
AUTORESPONDER_MARKS = (("x-autoreply", ""), ("x-autorespond", ""), ("x-autoresponder", ""),
                       ("precedence", "auto_reply"), ("delivered-to", "autoresponder"))
"""Headers older autoresponders mark their answers with instead of Auto-Submitted (RFC 3834):
(name, value it must have, or "" for any)."""
CONFIRMATION_SUBJECT = re.compile(
    r"^\s*(?:confirm\s+[0-9a-f]{8,}\s*$|(?:please\s+)?confirm\s+your\s+subscription|"
    r"your confirmation is (?:needed|required)|subscription confirmation|"
    r"confirm subscription)", re.IGNORECASE)
"""A list asking the address to confirm a subscription someone requested in its name."""
ACCOUNT_SOURCES = frozenset({MerchantSource.FROM_LOCAL_PART, MerchantSource.HEADER})
"""Where platforms put an account id rather than a name a person reads."""
MIN_NAME = 4
"""Company names shorter than this (`HP`) appear in too many honest display names."""


@dataclass(frozen=True, slots=True)
class CompanyContext:
    """What Canary knows about the company whose alias received the message."""

    domains: frozenset[str]
    """Its own organisations: declared at issue time or trusted later."""
    names: tuple[str, ...] = ()
    """Its name and slug, for platform merchants and look-alikes."""
    esp_customers: frozenset[tuple[str, str]] = frozenset()
    """(ESP or platform, customer or account id) pairs confirmed as the company's: learned
    from its authenticated mail, or recorded with `canary trust`."""
    trusted_sealers: frozenset[str] = frozenset()
    """ARC sealers the person trusts (besides the company's own domains)."""

    def owns(self, domain: str | None) -> bool:
        return domain is not None and organisational_domain(domain) in self.domains

    def accounts(self, service: str) -> frozenset[str]:
        """The company's confirmed customer or account ids at an ESP or platform."""
        return frozenset(cid for name, cid in self.esp_customers if name == service)

    @property
    def all_names(self) -> tuple[str, ...]:
        """Its names and its domains' labels, as a platform or display name would give them."""
        return (*self.names, *(d.split(".")[0] for d in sorted(self.domains)))

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
    confirms: tuple[tuple[str, str], ...] = ()
    """(platform, account id) pairs this message shows to be the company's own."""

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
    """Why the message is a bounce, delivery report or automatic answer; None if it is not.

    Each answers something someone else did with the address (sent in its name,
    filled it into a form), so it proves the address is in use, not who holds it.
    """
    if facts.content_type in REPORT_TYPES:
        return f"a delivery or read report ({facts.content_type})"
    if facts.auto_submitted == "auto-replied":
        return "an automatic reply (Auto-Submitted: auto-replied)"
    local = (facts.from_address or "").rpartition("@")[0]
    if local == "mailer-daemon":
        return "a message from mailer-daemon, a bounce"
    if null_sender:
        return "sent with the null envelope sender of bounces and auto-replies"
    if facts.subject and CONFIRMATION_SUBJECT.match(facts.subject):
        return ("a request to confirm a subscription someone asked for in the address's name "
                f"({facts.subject[:60]!r})")
    for name, value in facts.headers:
        mark = (name.strip().lower(), value.strip().lower())
        if any(mark[0] == n and (not v or mark[1] == v) for n, v in AUTORESPONDER_MARKS):
            return f"an automatic reply ({name.strip()}: {value.strip()[:40]})"
    return None


def _open_list(facts: MessageFacts) -> str | None:
    """The list id of an open discussion list (List-Post takes a mailto:), if it is one.

    Anyone can subscribe any address to such a list, and members write from
    anywhere: a post proves the address is on the list, not that a business
    was given it.
    """
    if not facts.list_id or "mailto:" not in (facts.list_post or "").lower():
        return None
    return facts.list_id.rstrip(">").rpartition("<")[2].strip() or None


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
        dmarc = vouch.results.dmarc is Result.PASS and _vouches_for(vouch.results.dmarc_from,
                                                                    claimed, strict=False)
        if dmarc or passed:
            how = f"DKIM d={passed[0]}" if passed else "DMARC pass"
            return Attribution(Relation.FIRST_PARTY, own,
                               f"{claimed} authenticated before forwarding ({how}, recorded in an "
                               f"ARC seal of {vouch.sealer})",
                               AuthenticatedBy(AuthMethod.ARC, vouch.sealer))
    if auth.dmarc.result is Result.TEMPERROR:
        return Attribution(Relation.UNPROVEN, own,
                           f"claims {claimed}, whose DMARC policy could not be looked up (DNS "
                           "failed)")
    esp_authenticated = esp is not None and esp.authenticated_by is not None
    policy = auth.dmarc.policy
    if policy is not None and auth.dmarc.result is Result.FAIL:
        if auth.dmarc.enforced:
            return Attribution(Relation.SPOOFED, own,
                               f"claims {claimed} but fails its DMARC policy (p={policy})")
        monitoring = f"p={policy}, pct={auth.dmarc.pct}" if policy.enforced else "p=none"
        if esp is not None and esp_authenticated:
            return _esp_verdict(esp, company, claimed,
                                failed=f"DMARC {monitoring} not passed")
        return Attribution(Relation.UNPROVEN, own,
                           f"claims {claimed} and fails DMARC, which {claimed} does not enforce "
                           f"({monitoring}): its own mail through an unknown service, or a "
                           "forgery")
    if esp is not None and esp_authenticated:
        return _esp_verdict(esp, company, claimed,
                            failed="imported: DMARC not judged after the fact"
                            if auth.historic else "no DMARC record")
    if auth.historic:
        return Attribution(Relation.UNPROVEN, own,
                           f"imported mail claiming {claimed}: nothing in it verifies today "
                           "(keys rotate, SPF records change) and no provider you trust "
                           "recorded its results at receipt")
    if auth.spf.result is Result.FAIL and company.owns(auth.spf.domain):
        return Attribution(Relation.SPOOFED, own,
                           f"claims {claimed} and uses its envelope domain {auth.spf.domain}, "
                           "whose SPF record refuses the sending server (-all)")
    from_spf = auth.from_spf
    if from_spf is not None and from_spf.result is Result.PASS:
        return Attribution(Relation.FIRST_PARTY, own,
                           f"{claimed}'s own SPF record authorises the sending server (it "
                           "publishes no DMARC)", AuthenticatedBy(AuthMethod.SPF, claimed))
    if from_spf is not None and from_spf.result in (Result.FAIL, Result.SOFTFAIL,
                                                     Result.PERMERROR):
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
    names = company.all_names
    known = company.accounts(platform.name)
    if own := next((m for m in merchants if m.name in known), None):
        return Attribution(
            Relation.PROCESSOR, SenderIdentity(SenderKind.MERCHANT, own.label, own.domain,
                                               platform.name),
            f"sent by {platform.name} from the company's own account {own.name} (confirmed by "
            "its earlier mail)", aligned)
    for merchant in merchants:
        if (merchant.domain and company.owns(merchant.domain)) or (
                merchant.name and same_business(merchant.name, names)):
            accounts = tuple((platform.name, m.name) for m in merchants
                             if m.source in ACCOUNT_SOURCES and m.name and m is not merchant)
            return Attribution(
                Relation.PROCESSOR,
                SenderIdentity(SenderKind.MERCHANT, merchant.label, merchant.domain,
                               platform.name),
                f"sent for the company by {platform.name}, which names it as the merchant "
                f"({merchant.source.value.replace('_', ' ')}: {merchant.label})", aligned,
                confirms=accounts)
    if not merchants:
        return Attribution(
            Relation.UNPROVEN,
            SenderIdentity(SenderKind.PLATFORM, platform.name, organisational_domain(listed)),
            f"{platform.name} sends for many merchants and names none here; the company may "
            "use it", aligned)
    if short := next((m for m in merchants if m.name and part_of_name(m.name, names)), None):
        return Attribution(
            Relation.UNPROVEN,
            SenderIdentity(SenderKind.MERCHANT, short.label, short.domain, platform.name),
            f"{platform.name} names the merchant {short.label}, part of the company's name: "
            "the company under a short name, or another business; not proven either way",
            aligned)
    merchant = merchants[0]
    sender, why = _merchant_identity(merchants, platform.name, listed)
    return Attribution(
        Relation.THIRD_PARTY, sender,
        f"{merchant.label}, a merchant named by {platform.name} "
        f"({merchant.source.value.replace('_', ' ')}), which authenticated the sending "
        f"({aligned}){why}", aligned)


def _merchant_identity(merchants: list[Merchant], platform: str, listed: str
                       ) -> tuple[SenderIdentity, str]:
    """Who a platform's merchant is, and why it is no identifiable business when it is not."""
    merchant = merchants[0]
    domain = next((m.domain for m in merchants if m.domain), None)
    if brand := next((b for m in merchants if m.name and (b := names_a_service(m.name))),
                     None):
        return (SenderIdentity(SenderKind.TENANT, merchant.label, None, platform),
                f"; an account named after {brand}, a claim no business stands behind")
    if domain is None and (tenant := shared_domain(listed)) is not None:
        return (SenderIdentity(SenderKind.TENANT, merchant.label, None, platform),
                f"; a tenant of {tenant.domain}, not a business with a domain of its own")
    mailbox = next((m.mailbox for m in merchants if m.mailbox), None)
    if domain is None and mailbox is not None:
        return (SenderIdentity(SenderKind.MAILBOX, mailbox, None, platform),
                f"; its only address is the mailbox {mailbox}, no business of its own")
    return SenderIdentity(SenderKind.MERCHANT, merchant.label, domain, platform), ""


def _shared_from(facts: MessageFacts, esp: EspSending | None, company: CompanyContext
                 ) -> Attribution | None:
    customer = shared_from_customer(facts)
    if customer is None:
        return None
    authenticated = esp.authenticated_by if esp is not None and esp.esp == customer.esp else None
    names = company.all_names
    if customer.address:
        sender = address_identity(customer.address)
    elif customer.domain:
        sender = address_identity("x@" + customer.domain)
        sender = SenderIdentity(sender.kind, sender.organisation or sender.name,
                                sender.organisation)
    elif facts.from_name:
        sender = SenderIdentity(SenderKind.MERCHANT, facts.from_name, None)
    elif customer.label and not customer.label.isdigit():
        sender = SenderIdentity(SenderKind.MERCHANT, customer.label, None)
    else:
        sender = SenderIdentity(SenderKind.PLATFORM, customer.esp)
    sender = SenderIdentity(sender.kind, sender.name, sender.organisation, customer.esp)
    if authenticated is None:
        return Attribution(Relation.UNVERIFIED, sender,
                           f"{sender.name} in {customer.esp}'s shared From, not authenticated")
    assert esp is not None
    if esp.customer_id and esp.customer_id in company.accounts(customer.esp):
        return Attribution(Relation.PROCESSOR, sender,
                           f"sent through {customer.esp} by the company's own account "
                           f"{esp.customer_id}, rewritten into its shared From", authenticated)
    if customer.domain and company.owns(customer.domain):
        return Attribution(Relation.PROCESSOR, sender,
                           f"the company's {customer.domain}, rewritten into {customer.esp}'s "
                           "shared From", authenticated)
    named = [n for n in (facts.from_name, customer.label) if n and not n.isdigit()]
    in_its_name = next((n for n in named if same_business(n, names)), None)
    if in_its_name and sender.kind is SenderKind.MAILBOX:
        return Attribution(Relation.UNPROVEN, sender,
                           f"{customer.esp} sent for the mailbox {sender.name} in the company's "
                           f"name ({in_its_name}): perhaps its own list, not provably",
                           authenticated)
    if in_its_name and customer.domain is None:
        label = f", label {customer.label}" if customer.label else ""
        return Attribution(Relation.PROCESSOR, sender,
                           f"{customer.esp} sent in the company's name ({in_its_name}{label}) "
                           "from its shared From, which names no other business", authenticated)
    label = (f" (label {customer.label} under {facts.from_domain})"
             if customer.label and customer.domain is None else "")
    return Attribution(Relation.THIRD_PARTY, sender,
                       f"{sender.name}{label}, a customer of {customer.esp} sending from its "
                       f"shared From ({authenticated})", authenticated)


def _vouches_for(dmarc_from: str | None, organisation: str, *, strict: bool) -> bool:
    """Whether an ARC-recorded DMARC result is about this From organisation.

    `strict`: a result that does not say which From it was for counts for nothing.
    """
    if dmarc_from is None:
        return not strict
    return organisational_domain(dmarc_from) == organisation


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
    if (decided := _platform(facts, auth, company)) is not None:
        return decided
    if (decided := _shared_from(facts, esp, company)) is not None:
        return decided
    if (decided := _impersonation(facts, auth, company, sender)) is not None:
        return decided
    if auth.spf.result is Result.FAIL and company.owns(auth.spf.domain):
        return Attribution(Relation.SPOOFED, sender,
                           f"{sender.name} uses the company's {auth.spf.domain} as envelope "
                           "sender, whose SPF record refuses the sending server: a forgery")
    if (listed := _open_list(facts)) is not None:
        sender = SenderIdentity(SenderKind.GROUP, listed, None, claimed)
    if aligned := _aligned(auth):
        on_list = (", a post on an open discussion list, which anyone can join"
                   if sender.kind is SenderKind.GROUP and listed else "")
        return Attribution(Relation.THIRD_PARTY, sender,
                           f"{sender.name} authenticated as itself ({aligned} aligned){on_list}",
                           aligned)
    vouch = auth.arc.vouched(company.trusts_sealer)
    if vouch is not None and vouch.results.dmarc is Result.PASS and _vouches_for(
            vouch.results.dmarc_from, claimed, strict=True):
        return Attribution(Relation.THIRD_PARTY, sender,
                           f"{sender.name} authenticated before forwarding (DMARC pass for "
                           f"{claimed} in an ARC seal of {vouch.sealer})",
                           AuthenticatedBy(AuthMethod.ARC, vouch.sealer))
    if esp is not None and esp.authenticated_by is not None:
        return Attribution(Relation.UNVERIFIED, sender,
                           f"{sender.name} is named in From but not authenticated; sent through "
                           f"{esp.esp} ({esp.authenticated_by}), which proves its customer, not "
                           f"{sender.name}")
    failed = "fails DMARC" if auth.dmarc.result is Result.FAIL else "is not authenticated"
    return Attribution(Relation.UNVERIFIED, sender,
                       f"{sender.name} {failed} (SPF {auth.spf.result.value})")


def _impersonation(facts: MessageFacts, auth: Authentication, company: CompanyContext,
                   sender: SenderIdentity) -> Attribution | None:
    """Mail from a look-alike domain, or calling itself by the company's name from
    elsewhere: the address is out, and someone poses as the company."""
    authenticated = _aligned(auth) or NOT_AUTHENTICATED
    names = [n for n in company.names if n]
    if sender.kind is SenderKind.ORGANISATION and facts.from_domain and (
            found := lookalike_host(facts.from_domain, company.domains, names)) is not None:
        return Attribution(Relation.IMPERSONATION, sender,
                           f"{found.describe(facts.from_domain)}: mail in its name proves the "
                           "address is out, not who has it (trust the domain if it is the "
                           "company's own)", authenticated)
    own = [n for n in company.all_names if len(plain_name(n)) >= MIN_NAME]
    if (facts.from_name and authenticated.method is not AuthMethod.NONE
            and same_business(facts.from_name, own)):
        return Attribution(Relation.IMPERSONATION, sender,
                           f"calls itself {facts.from_name!r}, the company's name, from "
                           f"{sender.name}: someone posing as the company (trust the sender if "
                           "it is the company's own)", authenticated)
    return None


def company_names(name: str, slug: str) -> tuple[str, ...]:
    """The names a company goes by, for platform merchants and look-alikes."""
    return tuple(dict.fromkeys(n for n in (name, slug) if n))


def learnable_accounts(attribution: Attribution, esp: EspSending | None,
                       company: CompanyContext) -> tuple[tuple[str, str], ...]:
    """The ESP customer or platform account ids a message shows to be the company's own.

    Only mail that passed as the company's own domain teaches an ESP customer
    id: an unaligned ESP signature proves the ESP's customer, not which
    company that is. A platform that named the company as its merchant teaches
    the account id it sent from. Learning only ever makes Canary say less.
    """
    learned = list(attribution.confirms)
    if (esp is not None and esp.customer_id and attribution.relation.expected
            and company.owns(attribution.authenticated_by.domain)):
        learned.append((esp.esp, esp.customer_id))
    return tuple(learned)
