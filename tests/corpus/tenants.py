"""Shared-tenant domains and mailing lists: who is the sender when many share a domain.

The cast: Northwind Cycles (northwind-cycles.example, DMARC p=reject) runs a
riders' club list on its own Mailman server (lists.northwind-cycles.example),
a members' group in its Google Workspace, and an offers list that carries
sponsors' mailings. It gave its alias to nobody else.

Around it: people writing from free mailboxes (gmail.com, outlook.com,
yahoo.co.uk, gmx.de, proton.me), groups at group services (googlegroups.com,
groups.io), cloud tenants (contoso.onmicrosoft.com, a mailgun.org sandbox,
a wordpress.com site, a Substack publication), and organisations with lists
of their own. A mailbox, a group or a tenant that writes to the alias proves
only that the address is out; a business authenticated on its own registrable
domain proves the company's address reached it. Mail the company's own list
server sent, proved by the company's signature or SPF, is the company's own
whoever wrote it.

The DMARC records are the providers' published policies as far as known:
gmail.com p=none (sp=quarantine), outlook.com p=none, yahoo.com and
yahoo.co.uk p=reject, proton.me p=quarantine with strict alignment.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.relation import Relation
from canary.report import Verdict
from corpus import Mail, Scenario, Seal
from corpus.baseline import dmarc, spf

NORTHWIND = ("Northwind Cycles", ("northwind-cycles.example",))
NW = "northwind-cycles.example"
NW_LISTS = "lists.northwind-cycles.example"
NW_IP, NW_HELO = "198.51.100.10", "mail.northwind-cycles.example"
NW_LIST_IP = "198.51.100.11"
GOOGLE_NET, GOOGLE_IP = "198.51.100.16/28", "198.51.100.20"
"""Google's outbound servers: Gmail, Google Groups and Google Workspace share them."""
SPAM_IP = "192.0.2.77"

NW_DNS = (
    (NW, "TXT", f"v=spf1 ip4:{NW_IP} ip4:{NW_LIST_IP} ip4:{GOOGLE_NET} -all"),
    spf(NW_LISTS, NW_LIST_IP),
    dmarc(NW, "reject"),
)

RIDERS_LIST_ID = f"Northwind Riders Club <riders.{NW_LISTS}>"
RIDERS_LIST_HEADERS = (
    ("List-Id", RIDERS_LIST_ID),
    ("List-Post", f"<mailto:riders@{NW_LISTS}>"),
    ("List-Unsubscribe", f"<https://{NW_LISTS}/mailman3/lists/riders.{NW_LISTS}/>, "
                         f"<mailto:riders-leave@{NW_LISTS}>"),
    ("Precedence", "list"),
)


# --- the mailbox providers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """A mailbox provider: where its users' mail leaves from and what it publishes."""

    domain: str
    ip: str
    helo: str
    spf: str
    dmarc: str | None

    @property
    def dns(self) -> tuple[tuple[str, str, str], ...]:
        records = [(self.domain, "TXT", self.spf)]
        if self.dmarc is not None:
            records.append((f"_dmarc.{self.domain}", "TXT", self.dmarc))
        return tuple(records)


GMAIL = Provider("gmail.com", GOOGLE_IP, "mail-wr1-f41.google.com",
                 f"v=spf1 ip4:{GOOGLE_NET} ~all",
                 "v=DMARC1; p=none; sp=quarantine; rua=mailto:mailauth-reports@google.com")
OUTLOOK = Provider("outlook.com", "198.51.100.40", "EUR05-AM6-obe.outbound.protection.outlook.com",
                   "v=spf1 ip4:198.51.100.32/28 -all", "v=DMARC1; p=none; pct=100; fo=1")
YAHOO_UK = Provider("yahoo.co.uk", "198.51.100.56", "sonic301-2.consmr.mail.ir2.yahoo.com",
                    "v=spf1 ip4:198.51.100.48/28 ~all", "v=DMARC1; p=reject; pct=100")
YAHOO = Provider("yahoo.com", "198.51.100.57", "sonic315-9.consmr.mail.gq1.yahoo.com",
                 "v=spf1 ip4:198.51.100.48/28 ~all", "v=DMARC1; p=reject; pct=100")
GMX = Provider("gmx.de", "198.51.100.72", "mout.gmx.net", "v=spf1 ip4:198.51.100.64/28 -all",
               "v=DMARC1; p=quarantine")
PROTON = Provider("proton.me", "198.51.100.88", "mail-4316.protonmail.ch",
                  "v=spf1 ip4:198.51.100.80/28 ~all",
                  "v=DMARC1; p=quarantine; fo=1; aspf=s; adkim=s")
GOOGLEGROUPS_DNS = (("googlegroups.com", "TXT", f"v=spf1 ip4:{GOOGLE_NET} ~all"),)


def person(provider: Provider, local: str, name: str, **fields: object) -> Mail:
    """A person writing from their own mailbox, sent and signed by the provider."""
    address = f"{local}@{provider.domain}"
    base: dict[str, object] = {
        "from_header": f'"{name}" <{address}>', "mail_from": address,
        "client_ip": provider.ip, "helo": provider.helo, "signed_by": (provider.domain,),
        "subject": "Quick question", "day": 18.0,
        "body": "Hi,\n\nGot your address from a friend. Are you still selling the bike?\n"}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


def forged(address: str, name: str, **fields: object) -> Mail:
    """Spam from a botnet host claiming a mailbox it does not control."""
    base: dict[str, object] = {
        "from_header": f'"{name}" <{address}>', "mail_from": address, "client_ip": SPAM_IP,
        "helo": "ylmf-pc", "subject": "Re: your parcel", "day": 26.0,
        "body": "Your parcel is waiting. Pay the customs fee here: http://203.0.113.9/p\n"}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


# --- businesses on their own domains -------------------------------------------------------------

DEALBLASTER = "dealblaster.example"
DEALBLASTER_IP = "203.0.113.25"
DEALBLASTER_DNS = (spf(DEALBLASTER, DEALBLASTER_IP), dmarc(DEALBLASTER, "none"))


def dealblaster(**fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": f'"Deal Blaster" <offers@{DEALBLASTER}>',
        "mail_from": f"bounce@{DEALBLASTER}", "client_ip": DEALBLASTER_IP,
        "helo": f"mta.{DEALBLASTER}", "signed_by": (DEALBLASTER,),
        "subject": "Cycling gear clearance: up to 70% off", "day": 24.0,
        "headers": (("List-Unsubscribe", f"<https://{DEALBLASTER}/u/9f31>"),)}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


# --- cloud tenants -------------------------------------------------------------------------------

M365_NET, M365_IP = "203.0.113.80/28", "203.0.113.84"
M365_HELO = "EUR03-DB5-obe.outbound.protection.outlook.com"
CONTOSO_TENANT = "contoso.onmicrosoft.com"
CONTOSO_DOMAIN = "contoso-traders.example"
STRAY_TENANT = "x7q2lmv.onmicrosoft.com"
M365_DNS = (
    (CONTOSO_TENANT, "TXT", f"v=spf1 ip4:{M365_NET} -all"),
    (STRAY_TENANT, "TXT", f"v=spf1 ip4:{M365_NET} -all"),
    (CONTOSO_DOMAIN, "TXT", f"v=spf1 ip4:{M365_NET} -all"),
    dmarc(CONTOSO_DOMAIN, "none"),
)

MAILGUN_IP = "203.0.113.100"
SANDBOX = "sandbox3f9a62c1d4b84e0c9b27d5e6f1a0b2c3.mailgun.org"
MAILGUN_DNS = (
    (SANDBOX, "TXT", f"v=spf1 ip4:{MAILGUN_IP} ~all"),
    ("mg.brightdeals.example", "TXT", f"v=spf1 ip4:{MAILGUN_IP} ~all"),
    dmarc("brightdeals.example", "none"),
)


def mailgun(from_header: str, sending_domain: str, **fields: object) -> Mail:
    """Mail sent through Mailgun for `sending_domain`, signed by it and by mailgun.org."""
    base: dict[str, object] = {
        "from_header": from_header,
        "mail_from": f"bounce+5e1c2a.7d90f3-shop.k7f3qd4m=canary.example.org@{sending_domain}",
        "client_ip": MAILGUN_IP, "helo": "m42-150.mailgun.net",
        "signed_by": (sending_domain, "mailgun.org"),
        "subject": "Flash sale: bikes from 199", "day": 33.0,
        "headers": (("X-Mailgun-Sid", "WyI0ZTJlMyIsICJzaG9wLms3ZjNxZDRtIiwgIjE3YjQiXQ=="),
                    ("X-Mailgun-Sending-Ip", MAILGUN_IP))}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


# --- lists ---------------------------------------------------------------------------------------

VELO = "velotrade.example"
VELO_LISTS = "lists.velotrade.example"
VELO_IP = "203.0.113.160"
VELO_DNS = (spf(VELO, VELO_IP), spf(VELO_LISTS, VELO_IP), dmarc(VELO, "quarantine"))

GROUPSIO_IP = "203.0.113.60"
GROUPSIO_DNS = (spf("groups.io", GROUPSIO_IP),)


def own_list_post(from_header: str, **fields: object) -> Mail:
    """A post distributed by the company's own Mailman list server."""
    base: dict[str, object] = {
        "from_header": from_header, "mail_from": f"riders-bounces@{NW_LISTS}",
        "client_ip": NW_LIST_IP, "helo": NW_LISTS, "signed_by": (NW_LISTS,),
        "subject": "Sunday ride from the Dock Street shop", "day": 12.0,
        "headers": RIDERS_LIST_HEADERS,
        "body": "Meeting 8:30 at the shop, 60 km, coffee stop at the harbour.\n"}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


def offers_list(from_header: str, **fields: object) -> Mail:
    """A mailing on Northwind's own offers list, sent from its own server."""
    base: dict[str, object] = {
        "from_header": from_header, "mail_from": f"bounce@{NW}", "client_ip": NW_IP,
        "helo": NW_HELO, "signed_by": (NW,), "day": 21.0,
        "headers": (("Sender", f'"Northwind Cycles" <offers@{NW}>'),
                    ("List-Id", f"Northwind offers <offers.{NW}>"),
                    ("List-Unsubscribe", f"<https://{NW}/unsubscribe?l=offers&u=7741>"),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
                    ("Precedence", "bulk"))}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


TRAILHEAD = "trailhead-gear.example"
TRAILHEAD_IP = "203.0.113.150"
TRAILHEAD_DNS = (spf(TRAILHEAD, TRAILHEAD_IP), dmarc(TRAILHEAD, "none"))
TRAILHEAD_FROM = f'"Trailhead Gear" <partners@{TRAILHEAD}>'


def confirmation(list_host: str, ip: str, list_name: str, local: str, subject: str,
                 headers: tuple[tuple[str, str], ...]) -> Mail:
    """A list server asking the address to confirm a subscription someone requested."""
    return Mail(f"<{local}@{list_host}>", f"{list_name}-bounces@{list_host}", ip, list_host,
                signed_by=(list_host,), subject=subject, headers=headers, day=40.0,
                body="We have received a request to subscribe your address to this list. "
                     "To confirm, reply to this message or visit the link below. If you did "
                     "not ask for this, ignore this message.\n")


SCENARIOS: list[Scenario] = [
    # --- people writing from free mailboxes -----------------------------------------------------
    Scenario(
        "tenant-gmail-person-writes", *NORTHWIND,
        (person(GMAIL, "jane.doe", "Jane Doe"),), (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A person writes from her own Gmail mailbox, DKIM-signed by gmail.com: she is "
        "authenticated, but a mailbox is not a business, so the address is only shown to be out.",
        dns=NW_DNS + GMAIL.dns, mentions=("jane.doe@gmail.com",)),
    Scenario(
        "tenant-mailbox-then-business", *NORTHWIND,
        (person(GMAIL, "jane.doe", "Jane Doe"), dealblaster(times=4, every=5, day=30.0)),
        (Relation.THIRD_PARTY, Relation.THIRD_PARTY), Verdict.SHARED,
        "Besides a Gmail user, a marketer authenticated on its own registrable domain mails "
        "the alias for weeks: that business has the address.", guilty=True,
        dns=NW_DNS + GMAIL.dns + DEALBLASTER_DNS, mentions=(DEALBLASTER,)),
    Scenario(
        "tenant-outlook-person-several-messages", *NORTHWIND,
        (person(OUTLOOK, "m.kowalski", "Marek Kowalski", times=3, every=4.0,
                subject="Bike for sale"),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "Three messages from one Outlook.com mailbox, DKIM-signed by outlook.com: a private "
        "person, however often they write, never makes the company a seller.",
        dns=NW_DNS + OUTLOOK.dns, mentions=("m.kowalski@outlook.com",)),
    Scenario(
        "tenant-hijacked-yahoo-mailbox", *NORTHWIND,
        (person(YAHOO_UK, "m.ellis1958", "Margaret Ellis", times=5, every=1.0,
                subject="Shared document: Invoice 4471",
                body="Please review the attached invoice: https://203.0.113.9/doc/4471\n"),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A hijacked Yahoo mailbox blasting phishing passes yahoo.co.uk's DKIM and DMARC, but "
        "its owner is one person whose account was stolen, not a business given the address.",
        dns=NW_DNS + YAHOO_UK.dns, mentions=("m.ellis1958@yahoo.co.uk",)),
    Scenario(
        "tenant-gmx-spf-only", *NORTHWIND,
        (person(GMX, "karl.brandt", "Karl Brandt", signed_by=(), subject="Frage zum Rad"),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A GMX user's mail authenticated only by gmx.de's SPF, aligned with the From: a "
        "mailbox, so leaked, never shared.", dns=NW_DNS + GMX.dns),
    Scenario(
        "tenant-proton-strict-alignment", *NORTHWIND,
        (person(PROTON, "quietrider", "Quiet Rider"),), (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A Proton mailbox, DKIM-signed by proton.me under its strict alignment: a person "
        "wrote, which proves the address is out and nothing about who sold it.",
        dns=NW_DNS + PROTON.dns),
    Scenario(
        "tenant-forged-yahoo-fails-reject", *NORTHWIND,
        (forged("sandra.price@yahoo.com", "Sandra Price"),), (Relation.UNVERIFIED,),
        Verdict.LEAKED,
        "A botnet host claims a yahoo.com mailbox without Yahoo's signature and fails Yahoo's "
        "p=reject: nobody is proven to have the address.", dns=NW_DNS + YAHOO.dns),
    Scenario(
        "tenant-forged-gmail-p-none", *NORTHWIND,
        (forged("win.prizes.2026@gmail.com", "Prize Desk"),), (Relation.UNVERIFIED,),
        Verdict.LEAKED,
        "Unauthenticated spam claiming a Gmail address from a host Gmail's SPF does not list: "
        "gmail.com's p=none lets it through, but it proves only that the address is out.",
        dns=NW_DNS + GMAIL.dns),
    Scenario(
        "tenant-business-name-on-gmail", *NORTHWIND,
        (person(GMAIL, "dealblaster.offers", "Deal Blaster Offers",
                subject="Cycling gear clearance: up to 70% off"),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A business name on a Gmail mailbox proves only that someone with that mailbox has the "
        "address; Gmail authenticates the mailbox, not the business it names.",
        dns=NW_DNS + GMAIL.dns, mentions=("dealblaster.offers@gmail.com",)),
    Scenario(
        "tenant-business-own-domain", *NORTHWIND,
        (dealblaster(times=3, every=7.0),), (Relation.THIRD_PARTY,), Verdict.SHARED,
        "The same marketer on its own registrable domain, DKIM-signed and DMARC-aligned as "
        "itself: an identifiable business has the address.", guilty=True,
        dns=NW_DNS + DEALBLASTER_DNS, mentions=(DEALBLASTER,)),
    Scenario(
        "tenant-gmail-posing-as-company-support", *NORTHWIND,
        (person(GMAIL, "northwindcycles.support", "Northwind Cycles Support",
                subject="Your order is on hold: verify your payment",
                body="Verify your card within 24 hours: https://203.0.113.9/verify\n"),),
        (Relation.IMPERSONATION,), Verdict.LEAKED,
        "A Gmail mailbox using the company's name to phish its customers: Gmail authenticates "
        "the mailbox, which poses as the company and is not a business it gave the address to.",
        dns=NW_DNS + GMAIL.dns),
    # --- cloud tenants ------------------------------------------------------------------------
    Scenario(
        "tenant-onmicrosoft-tenant", *NORTHWIND,
        (Mail(f'"Contoso Billing" <billing@{CONTOSO_TENANT}>', f"billing@{CONTOSO_TENANT}",
              M365_IP, M365_HELO, signed_by=(CONTOSO_TENANT,),
              subject="Outstanding invoice INV-20931", day=29.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A Microsoft 365 tenant's initial onmicrosoft.com domain, DKIM-signed as the tenant: "
        "anyone can open such a tenant in minutes (a favourite of phishers), so it proves the "
        "address is out, not that a business bought it.",
        dns=NW_DNS + M365_DNS, mentions=(CONTOSO_TENANT,)),
    Scenario(
        "tenant-m365-business-own-domain", *NORTHWIND,
        (Mail(f'"Contoso Traders" <sales@{CONTOSO_DOMAIN}>', f"sales@{CONTOSO_DOMAIN}",
              M365_IP, M365_HELO, signed_by=(CONTOSO_DOMAIN,),
              subject="Trade prices for your shop", day=29.0, times=2, every=10.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "The business behind the tenant mails from its own verified domain through Microsoft "
        "365, DKIM-signed as that domain: an identifiable business has the address.",
        guilty=True, dns=NW_DNS + M365_DNS, mentions=(CONTOSO_DOMAIN,)),
    Scenario(
        "tenant-m365-custom-domain-spf-only", *NORTHWIND,
        (Mail(f'"Contoso Traders" <sales@{CONTOSO_DOMAIN}>', f"sales@{CONTOSO_DOMAIN}",
              M365_IP, M365_HELO, signed_by=(CONTOSO_TENANT,),
              subject="Trade prices for your shop", day=29.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Without custom DKIM, Microsoft 365 signs as the onmicrosoft.com tenant, but the "
        "envelope domain's SPF passes and aligns with the From: the business authenticated as "
        "itself.", guilty=True, dns=NW_DNS + M365_DNS, mentions=("SPF",)),
    Scenario(
        "tenant-m365-forged-custom-domain", *NORTHWIND,
        (Mail(f'"Contoso Traders" <sales@{CONTOSO_DOMAIN}>', f"admin@{STRAY_TENANT}",
              M365_IP, M365_HELO, signed_by=(STRAY_TENANT,),
              subject="Trade prices for your shop", day=29.0),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "A throwaway Microsoft 365 tenant sends in Contoso Traders' name: its own signature and "
        "SPF are the stray tenant's, nothing aligns with the From, so nobody is proven.",
        dns=NW_DNS + M365_DNS),
    Scenario(
        "tenant-mailgun-sandbox-default-sender", *NORTHWIND,
        (mailgun(f'"Mailgun Sandbox" <postmaster@{SANDBOX}>', SANDBOX),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A Mailgun sandbox sends marketing with the quick-start default sender postmaster@: it "
        "is no bounce (real envelope, plain body), but a sandbox tenant authenticated as itself, "
        "which proves only that the address is out.", dns=NW_DNS + MAILGUN_DNS),
    Scenario(
        "tenant-mailgun-sandbox-custom-sender", *NORTHWIND,
        (mailgun(f'"Bike Flash Sales" <offers@{SANDBOX}>', SANDBOX),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A Mailgun sandbox domain, DKIM-signed as the sandbox: a throwaway tenant anyone can "
        "get, not an identifiable business.", dns=NW_DNS + MAILGUN_DNS, mentions=(SANDBOX,)),
    Scenario(
        "tenant-mailgun-customer-own-domain", *NORTHWIND,
        (mailgun('"Bright Deals" <offers@mg.brightdeals.example>', "mg.brightdeals.example",
                 times=3, every=6.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "A Mailgun customer sending from a subdomain of its own registrable domain, DKIM-signed "
        "as it: the business brightdeals.example has the address.", guilty=True,
        dns=NW_DNS + MAILGUN_DNS, mentions=("brightdeals.example",)),
    Scenario(
        "tenant-wordpress-site", *NORTHWIND,
        (Mail('"Bargain Bin" <wordpress@bargainbin.wordpress.com>', "donotreply@wordpress.com",
              "203.0.113.120", "smtp.wordpress.com", signed_by=("wordpress.com",),
              subject="New post: ten bikes under 300", day=45.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A free wordpress.com site's notification, signed by wordpress.com: the sender is the "
        "site, a tenant anyone can open, not an identifiable business.",
        dns=(*NW_DNS, spf("wordpress.com", "203.0.113.120")),
        mentions=("bargainbin.wordpress.com",)),
    Scenario(
        "tenant-substack-publication", *NORTHWIND,
        (Mail('"Sam Reed from Thrifty Tips" <thriftytips@substack.com>',
              "bounce+7d2f1a@mg-d1.substack.com", "203.0.113.140", "mg-d1.substack.com",
              signed_by=("substack.com",), subject="Five ways to save on your next bike",
              headers=(("List-Unsubscribe",
                        "<https://thriftytips.substack.com/action/disable_email?token=x1>"),),
              day=38.0, times=2, every=7.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A publication on substack.com without a domain of its own is a tenant of a shared "
        "domain, often one person's newsletter; ambiguous whether it is a business, so the "
        "conservative reading: the address is out, no business proven.",
        dns=(*NW_DNS, spf("mg-d1.substack.com", "203.0.113.140"))),
    Scenario(
        "tenant-newsletter-own-domain", *NORTHWIND,
        (Mail('"Thrifty Tips" <hello@thriftytips.example>', "bounce@thriftytips.example",
              "203.0.113.141", "mta.thriftytips.example", signed_by=("thriftytips.example",),
              subject="Five ways to save on your next bike",
              headers=(("List-Unsubscribe", "<https://thriftytips.example/unsubscribe/x1>"),),
              day=38.0, times=2, every=7.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "The same newsletter on its own registrable domain, DKIM-signed as it: an identifiable "
        "sender has the address.", guilty=True,
        dns=(*NW_DNS, spf("thriftytips.example", "203.0.113.141"),
             dmarc("thriftytips.example", "none")),
        mentions=("thriftytips.example",)),
    # --- groups at group services ---------------------------------------------------------------
    Scenario(
        "list-spammer-google-group", *NORTHWIND,
        (Mail('"\'Kev\' via Hot Deals UK" <hot-deals-uk@googlegroups.com>',
              "hot-deals-uk+bncBDE5ZKGS3IHRBQ7X2@googlegroups.com", GOOGLE_IP,
              "mail-yw1-f190.google.com", signed_by=("googlegroups.com",),
              subject="Road bikes 60% off today only",
              headers=(("Reply-To", "kev.deals@yahoo.com"),
                       ("Sender", "hot-deals-uk@googlegroups.com"),
                       ("List-Id", "<hot-deals-uk.googlegroups.com>"),
                       ("Mailing-list", "list hot-deals-uk@googlegroups.com; contact "
                                        "hot-deals-uk+owners@googlegroups.com"),
                       ("Precedence", "list"),
                       ("List-Unsubscribe", "<mailto:googlegroups-manage+481516234200+"
                                            "unsubscribe@googlegroups.com>")),
              seals=(Seal("google.com", "dkim=pass header.d=yahoo.com; dmarc=pass "
                                        "header.from=yahoo.com"),),
              day=31.0, times=3, every=2.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A spammer's Google Group put the alias on its member list; Google Groups authenticates "
        "the group, which anyone can create, so the address is out but no business is proven.",
        dns=NW_DNS + GOOGLEGROUPS_DNS, mentions=("hot-deals-uk.googlegroups.com",)),
    Scenario(
        "list-community-google-group-member-post", *NORTHWIND,
        (Mail('"Tom Hughes" <tom.hughes@gmail.com>',
              "trail-runners-uk+bncBCT4XGKZ6QLRBA@googlegroups.com", GOOGLE_IP,
              "mail-yw1-f191.google.com", signed_by=("gmail.com", "googlegroups.com"),
              subject="Saturday long run, Peak District",
              headers=(("Sender", "trail-runners-uk@googlegroups.com"),
                       ("List-Id", "<trail-runners-uk.googlegroups.com>"),
                       ("Precedence", "list"),
                       ("List-Unsubscribe", "<mailto:googlegroups-manage+99120344+unsubscribe@"
                                            "googlegroups.com>")),
              day=15.0, times=4, every=7.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "The alias was subscribed to a public community Google Group and a member's post "
        "arrives, DKIM-signed by gmail.com: a mailbox on a community list proves the address "
        "is out, not that the company sold it.", dns=NW_DNS + GMAIL.dns + GOOGLEGROUPS_DNS,
        mentions=("tom.hughes@gmail.com",)),
    Scenario(
        "list-groupsio-spam-list", *NORTHWIND,
        (Mail('"Rick Moss via groups.io" <rick.moss=aol.com@groups.io>',
              "bounce+62aa1b+0+12345+67890@groups.io", GROUPSIO_IP, "mail02.groups.io",
              signed_by=("groups.io",), subject="[dealsdigest] Bike parts job lot",
              headers=(("Sender", "main@dealsdigest.groups.io"),
                       ("Reply-To", "main@dealsdigest.groups.io"),
                       ("List-Id", "<main.dealsdigest.groups.io>"),
                       ("List-Unsubscribe", "<mailto:main+unsubscribe@dealsdigest.groups.io>"),
                       ("Precedence", "Bulk")),
              day=36.0, times=2, every=3.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A groups.io list with the poster's From rewritten into groups.io: the group "
        "authenticated, a group is not a business, so the address is out and nothing more.",
        dns=NW_DNS + GROUPSIO_DNS, mentions=("main.dealsdigest.groups.io",)),
    # --- the company's own lists --------------------------------------------------------------
    Scenario(
        "list-own-mailman-member-post", *NORTHWIND,
        (own_list_post('"Priya Shah" <priya.shah@gmail.com>', signed_by=("gmail.com", NW_LISTS),
                       headers=(("Sender", f'"Northwind Riders Club" <riders-bounces@{NW_LISTS}>'),
                                *RIDERS_LIST_HEADERS),
                       times=4, every=7.0),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "A club member's post distributed by Northwind's own list server: Sender and List-Id "
        "name the company's list host, which DKIM-signed it, so the company sent it to its own "
        "subscriber.", dns=NW_DNS + GMAIL.dns, mentions=("Sender header",)),
    Scenario(
        "list-own-list-id-only", *NORTHWIND,
        (own_list_post('"Hannah Kerr" <hannah.k@outlook.com>'),), (Relation.FIRST_PARTY,),
        Verdict.CLEAN,
        "Mailman 3 removed the member's signature and Northwind's list host signed instead; no "
        "Sender header, but the List-Id is under the company's domain and its signature proves "
        "the company sent it.", dns=NW_DNS + OUTLOOK.dns, mentions=("mailing list",)),
    Scenario(
        "list-own-list-spf-only", *NORTHWIND,
        (own_list_post('"Dave Rowe" <dave.rowe@btinternet.com>', signed_by=(),
                       headers=(("Sender", f"riders-bounces@{NW_LISTS}"),
                                *RIDERS_LIST_HEADERS)),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "An unsigned post from the company's old list server: the envelope is the company's "
        "list bounce address and the company's SPF authorises the server, so the company sent "
        "it.", dns=(*NW_DNS, spf("btinternet.com", "198.51.100.100")), mentions=("SPF",)),
    Scenario(
        "list-own-list-munged-from", *NORTHWIND,
        (own_list_post(f'"Sandra Price via Northwind Riders Club" <riders@{NW_LISTS}>',
                       headers=(("Reply-To", "sandra.price@yahoo.com"),
                                *RIDERS_LIST_HEADERS)),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "A Yahoo member's post with the From rewritten to the company's list address for "
        "Yahoo's p=reject, DKIM-signed by the company's list host: the company's own mail.",
        dns=NW_DNS + YAHOO.dns),
    Scenario(
        "list-own-open-list-relays-spam", *NORTHWIND,
        (own_list_post('"Cheap Parts" <sales@cheap-parts-direct.example>',
                       subject="Wholesale tyres, factory prices"),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "A spammer posted to the company's open list address and Northwind's own list server "
        "delivered it to its subscribers: the spammer never had the alias, the company's list "
        "did.", dns=(*NW_DNS, spf("cheap-parts-direct.example", "192.0.2.150", "~all"))),
    Scenario(
        "list-own-workspace-group", *NORTHWIND,
        (Mail('"Dana Whitfield" <dana.whitfield@gmail.com>', f"members+bncBAABBJ4K2@{NW}",
              "198.51.100.21", "mail-sor-f69.google.com", signed_by=("gmail.com", NW),
              subject="Club AGM on the 14th",
              headers=(("List-Id", f"<members.{NW}>"),
                       ("Mailing-list", f"list members@{NW}; contact members+owners@{NW}"),
                       ("X-Original-Sender", "dana.whitfield@gmail.com"),
                       ("Precedence", "list"),
                       ("List-Unsubscribe", "<mailto:googlegroups-manage+772014650033+"
                                            "unsubscribe@googlegroups.com>, <https://groups."
                                            f"google.com/a/{NW}/group/members/subscribe>")),
              day=20.0),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "The company's Google Workspace group relays a coach's Gmail post: List-Id under "
        "northwind-cycles.example and Workspace's signature as that domain prove it is the "
        "company's group.", dns=NW_DNS + GMAIL.dns, mentions=("mailing list",)),
    Scenario(
        "list-sponsor-mailing-by-company-list", *NORTHWIND,
        (offers_list(TRAILHEAD_FROM, subject="From our sponsor: 20% off Trailhead tents"),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "A sponsor's offer sent by Northwind's own offers list, sponsor in From: Sender and "
        "List-Id are the company's and the company signed it, so the sponsor never got the "
        "address.", dns=NW_DNS + TRAILHEAD_DNS, mentions=("Sender header",)),
    Scenario(
        "list-sponsor-mails-directly", *NORTHWIND,
        (Mail(TRAILHEAD_FROM, f"bounce@{TRAILHEAD}", TRAILHEAD_IP, f"mta.{TRAILHEAD}",
              signed_by=(TRAILHEAD,), subject="Your Trailhead member prices",
              headers=(("List-Unsubscribe", f"<https://{TRAILHEAD}/unsub/7741>"),),
              day=44.0, times=3, every=7.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "The sponsor now mails the alias from its own servers, DKIM-signed as itself, with no "
        "trace of Northwind's list: the sponsor has the address.", guilty=True,
        dns=NW_DNS + TRAILHEAD_DNS, mentions=(TRAILHEAD,)),
    Scenario(
        "list-sponsor-p-reject-company-signed", *NORTHWIND,
        (offers_list('"Ridgeline Optics" <hello@ridgeline-optics.example>',
                     subject="From our sponsor: cycling glasses"),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "A sponsor whose own DMARC is p=reject appears in From of the company's offers list; "
        "its DMARC fails, but the company's Sender, List-Id and signature prove the company's "
        "list sent it.",
        dns=(*NW_DNS, spf("ridgeline-optics.example", "203.0.113.170"),
             dmarc("ridgeline-optics.example", "reject"))),
    # --- forged list headers ------------------------------------------------------------------
    Scenario(
        "list-forged-company-list-headers", *NORTHWIND,
        (Mail('"Spring Giveaway" <prizes@prize-centre.example>', "x@bulk-sender.example",
              SPAM_IP, "ylmf-pc", subject="You won a Northwind voucher",
              headers=(("Sender", f"riders-bounces@{NW_LISTS}"),
                       *RIDERS_LIST_HEADERS)),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "A spammer copies the company's Sender and List-Id without its signature or SPF: "
        "headers anyone can write prove nothing, and the spam is unauthenticated.",
        dns=(*NW_DNS, spf("prize-centre.example", "203.0.113.250", "~all"))),
    Scenario(
        "list-affiliate-copies-company-list-headers", *NORTHWIND,
        (Mail('"Peak Saddle Deals" <news@peaksaddle.example>', "bounce@peaksaddle.example",
              "203.0.113.180", "mta.peaksaddle.example", signed_by=("peaksaddle.example",),
              subject="This week's offers",
              headers=(("List-Id", f"Northwind offers <offers.{NW}>"),
                       ("List-Unsubscribe", "<https://peaksaddle.example/u/31>")),
              day=27.0, times=3, every=7.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "An affiliate mails the alias from its own domain, DKIM-signed as itself, with "
        "Northwind's List-Id copied from its template: the copied header is not the company's "
        "signature, and the affiliate has the address.", guilty=True,
        dns=(*NW_DNS, spf("peaksaddle.example", "203.0.113.180"),
             dmarc("peaksaddle.example", "none")),
        mentions=("peaksaddle.example",)),
    Scenario(
        "list-forged-company-list-envelope-spf-fail", *NORTHWIND,
        (Mail('"Riders Club Giveaway" <prizes@prize-centre.example>',
              f"riders-bounces@{NW_LISTS}", SPAM_IP, "ylmf-pc",
              subject="Claim your club voucher",
              headers=(("Sender", f"riders-bounces@{NW_LISTS}"),
                       *RIDERS_LIST_HEADERS)),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "The forger also uses the company's list bounce address as envelope sender, which the "
        "company's SPF -all refuses for this host: it forges the company's own identity, so "
        "spoofed, and someone knows the address is a Northwind customer's.",
        dns=(*NW_DNS, spf("prize-centre.example", "203.0.113.250", "~all"))),
    # --- lists of other organisations ---------------------------------------------------------
    Scenario(
        "list-unrelated-org-announce-list", *NORTHWIND,
        (Mail('"Velo Trade Association" <news@velotrade.example>',
              f"announce-bounces@{VELO_LISTS}", VELO_IP, VELO_LISTS,
              signed_by=(VELO,), subject="VTA member news: spring trade show",
              headers=(("Sender", f"announce-bounces@{VELO_LISTS}"),
                       ("List-Id", f"VTA member news <announce.{VELO_LISTS}>"),
                       ("List-Unsubscribe", f"<https://{VELO_LISTS}/mailman3/lists/announce."
                                            f"{VELO_LISTS}/>, <mailto:announce-leave@"
                                            f"{VELO_LISTS}>"),
                       ("Precedence", "list")),
              day=30.0, times=3, every=14.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "An unrelated organisation's own announcement list, which the person never joined, "
        "mails the alias with List-Id under its own domain and DKIM aligned with its From: "
        "that organisation has the address.", guilty=True, dns=NW_DNS + VELO_DNS,
        mentions=(VELO,)),
    Scenario(
        "list-unrelated-org-discussion-member-post", *NORTHWIND,
        (Mail('"Marco Ruiz" <marco.ruiz@gmail.com>', f"discuss-bounces@{VELO_LISTS}", VELO_IP,
              VELO_LISTS, signed_by=("gmail.com", VELO_LISTS),
              subject="Anyone stocking 12-speed chains?",
              headers=(("Sender", f"discuss-bounces@{VELO_LISTS}"),
                       ("List-Id", f"<discuss.{VELO_LISTS}>"),
                       ("List-Post", f"<mailto:discuss@{VELO_LISTS}>"),
                       ("Precedence", "list")),
              day=30.0, times=3, every=5.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A member's Gmail post on an open discussion list another organisation hosts: open "
        "lists take anyone's subscription, so it is ambiguous who put the alias there; the "
        "conservative reading is leaked, not shared.", dns=NW_DNS + VELO_DNS + GMAIL.dns),
    Scenario(
        "list-unrelated-org-discussion-munged-from", *NORTHWIND,
        (Mail(f'"Tom Baker via Discuss" <discuss@{VELO_LISTS}>', f"discuss-bounces@{VELO_LISTS}",
              VELO_IP, VELO_LISTS, signed_by=(VELO_LISTS,),
              subject="Re: Anyone stocking 12-speed chains?",
              headers=(("Reply-To", "tom.baker@yahoo.com"),
                       ("List-Id", f"<discuss.{VELO_LISTS}>"),
                       ("List-Post", f"<mailto:discuss@{VELO_LISTS}>"),
                       ("Precedence", "list")),
              day=31.0, times=2, every=5.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "The same open discussion list, a Yahoo member's post with the From rewritten to the "
        "list for Yahoo's p=reject: the list domain now authenticates, but it is still a "
        "member's post on an open list, ambiguous, so conservatively leaked.",
        dns=NW_DNS + VELO_DNS + YAHOO.dns),
    Scenario(
        "list-subscription-bomb-confirmations", *NORTHWIND,
        (confirmation(VELO_LISTS, VELO_IP, "discuss", "discuss-confirm+8f2c9e41d07a4b5c93e1",
                      f"Your confirmation is needed to join the discuss@{VELO_LISTS} "
                      "mailing list.", (("Auto-Submitted", "auto-generated"),)),
         confirmation("lists.openmaps.example", "203.0.113.190", "mappers",
                      "mappers-request", "confirm 4c1b0e77a9d2f3c6",
                      (("Reply-To", "mappers-confirm+4c1b0e77a9d2f3c6@lists.openmaps.example"),
                       ("Precedence", "bulk"))),
         confirmation("lists.harbourbirders.example", "203.0.113.200", "sightings",
                      "sightings-confirm+19d0aa7be3", "Your confirmation is needed to join the "
                      "sightings@lists.harbourbirders.example mailing list.",
                      (("Auto-Submitted", "auto-generated"),))),
        (Relation.BACKSCATTER, Relation.BACKSCATTER, Relation.BACKSCATTER), Verdict.LEAKED,
        "Within minutes three unrelated lists ask the alias to confirm a subscription someone "
        "else requested (subscription bombing): automatic replies to forms filled in the "
        "address's name, which prove it is out, not that these organisations were given it.",
        dns=NW_DNS + VELO_DNS + (
            spf("lists.openmaps.example", "203.0.113.190"),
            dmarc("openmaps.example", "none"),
            spf("lists.harbourbirders.example", "203.0.113.200"),
            dmarc("harbourbirders.example", "quarantine"))),
]
