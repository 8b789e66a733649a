"""Platforms that send in their own name for a merchant, and ESPs' shared From domains.

A payment, point-of-sale, invoicing, booking, ticketing, support or shop
platform mails a merchant's customers from the platform's own domain and
names the merchant somewhere: the display name (plain, or with a pattern
such as "<merchant> via DocuSign"), the Reply-To address or its display
name, a tenant subdomain (acme.zendesk.com), the From local part, the
subject or a header (`canary/platforms.json`). When it names the company
the mail is the company's processor's; when it names another merchant that
merchant has the address; when it names nobody it is the platform's own
mail and proves nothing. An ESP that rewrites an unauthenticated or
free-mail From into a shared domain of its own (`shared_from` in
`canary/esps.json`) encodes the customer in the local part (Constant
Contact, Mailchimp) or only in the display name (Brevo).

The cast: each company declares its own domain; every platform signs with
DKIM as its own domain, aligned with its From domain, and publishes SPF
and DMARC. Merchants other than the company are who they say they are,
unless a scenario says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from canary.relation import Relation
from canary.report import Verdict
from corpus import Mail, Scenario
from corpus.baseline import dmarc, spf

# --- the companies ------------------------------------------------------------------------------

Company = tuple[str, tuple[str, ...]]

ACME: Company = ("Acme Outfitters", ("acme-outfitters.example",))
NONNA: Company = ("Osteria Nonna", ("osterianonna.example",))
MEGAMART: Company = ("MegaMart", ("megamart.example",))
BRIGHTPATH: Company = ("Brightpath Consulting", ("brightpath.example",))
LOTUS: Company = ("Lotus Yoga Studio", ("lotusyoga.example",))
DEVCONF: Company = ("DevConf Berlin", ("devconf.example",))
SEAVIEW: Company = ("Seaview Lodge", ("seaviewlodge.example",))
HARBOR: Company = ("Harbor Books", ("harborbooks.example",))
BLOOM: Company = ("Bloom", ("bloomflowers.example",))

ACME_IP = "198.51.100.10"


Records = tuple[tuple[str, str, str], ...]


def company_dns(company: Company, ip: str, policy: str = "reject") -> Records:
    """The company's own SPF and DMARC records."""
    domain = company[1][0]
    return (spf(domain, ip), dmarc(domain, policy))


ACME_DNS = company_dns(ACME, ACME_IP)
NONNA_DNS = company_dns(NONNA, "198.51.100.11", "quarantine")
MEGAMART_DNS = company_dns(MEGAMART, "198.51.100.12")
BRIGHTPATH_DNS = company_dns(BRIGHTPATH, "198.51.100.13", "none")
LOTUS_DNS = company_dns(LOTUS, "198.51.100.14", "quarantine")
DEVCONF_DNS = company_dns(DEVCONF, "198.51.100.15")
SEAVIEW_DNS = company_dns(SEAVIEW, "198.51.100.16", "none")
HARBOR_DNS = company_dns(HARBOR, "198.51.100.17", "quarantine")
BLOOM_DNS = company_dns(BLOOM, "198.51.100.18", "none")


# --- the platforms ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sender:
    """A platform's (or an ESP's) sending: DKIM domain, server, envelope and DMARC policy."""

    signer: str
    """The DKIM d= domain, aligned with the From domain."""
    ip: str
    helo: str
    mail_from: str
    policy: str = "reject"
    """The DMARC policy of the signer's organisational domain."""

    @property
    def dns(self) -> Records:
        envelope = self.mail_from.rpartition("@")[2]
        return (spf(envelope, self.ip), dmarc(self.signer, self.policy))

    def mail(self, from_header: str, subject: str, *,
             reply_to: str | None = None, headers: tuple[tuple[str, str], ...] = (),
             body: str = "Thank you.\n", day: float = 10.0, times: int = 1,
             every: float = 3.0) -> Mail:
        """A message this platform authenticated: DKIM by its domain, from its own server."""
        extra = ((("Reply-To", reply_to),) if reply_to else ()) + headers
        return Mail(from_header, self.mail_from, self.ip, self.helo, (self.signer,), subject,
                    extra, body, day, times=times, every=every)


STRIPE = Sender("stripe.com", "198.51.100.41", "mail-41.stripe.com",
                "bounces+8f2c1a@bounce.stripe.com")
PAYPAL = Sender("paypal.com", "198.51.100.42", "mx0.slc.paypal.com", "service@paypal.com")
SQUARE = Sender("squareup.com", "198.51.100.43", "o43.messaging.squareup.com",
                "bounces+3310@messaging.squareup.com")
SUMUP = Sender("sumup.com", "198.51.100.44", "mta-44.sumup.com", "bounce@mail.sumup.com")
TOAST = Sender("toasttab.com", "198.51.100.45", "o45.toasttab.com",
               "bounces+11927@em.toasttab.com")
CLOVER = Sender("clover.com", "198.51.100.46", "o46.clover.com", "bounces+5521@em.clover.com")
XERO = Sender("xero.com", "198.51.100.47", "smtp-47.post.xero.com",
              "bounce-b41c9@post.xero.com")
QUICKBOOKS = Sender("intuit.com", "198.51.100.48", "mail48.notification.intuit.com",
                    "bounces@notification.intuit.com")
FRESHBOOKS = Sender("freshbooks.com", "198.51.100.49", "o49.freshbooks.com",
                    "bounces+77012@em.freshbooks.com", "quarantine")
ZENDESK = Sender("zendesk.com", "198.51.100.50", "out50.pod17.zendesk.com",
                 "bounces@zendesk.com")
ZOHODESK = Sender("zohodesk.com", "198.51.100.51", "sender51.zohodesk.com",
                  "bounce-zdk@bounce.zohodesk.com", "none")
FRESHDESK = Sender("freshdesk.com", "198.51.100.52", "o52.freshdesk.com",
                   "bounces+4410@email.freshdesk.com", "quarantine")
SHOPIFY = Sender("shopifyemail.com", "198.51.100.53", "mail53.shopifyemail.com",
                 "bounces+61100@shopifyemail.com", "none")
KAJABI = Sender("kajabimail.net", "198.51.100.54", "o54.f.kajabimail.net",
                "bounces+23441@f.kajabimail.net", "none")
SUBSTACK = Sender("substack.com", "198.51.100.55", "mx55.mg.substack.com",
                  "bounce@mg.substack.com", "none")
ETSY = Sender("etsy.com", "198.51.100.56", "mta-56.etsy.com", "bounce@mail.etsy.com")
BOOKING = Sender("booking.com", "198.51.100.57", "mailout57.booking.com",
                 "bounce@property.booking.com")
OPENTABLE = Sender("opentable.com", "198.51.100.58", "o58.opentable.com",
                   "bounces+9012@em.opentable.com")
MINDBODY = Sender("mindbodyonline.com", "198.51.100.59", "smtp59.mindbodyonline.com",
                  "bounce@mail.mindbodyonline.com", "quarantine")
EVENTBRITE = Sender("eventbrite.com", "198.51.100.60", "o60.event.eventbrite.com",
                    "bounces+3390@event.eventbrite.com")
TITO = Sender("tito.io", "198.51.100.61", "mail61.tito.io", "bounces@mail.tito.io", "none")
CALENDLY = Sender("calendly.com", "198.51.100.62", "o62.calendly.com",
                  "bounces+1207@em.calendly.com", "quarantine")
PATREON = Sender("patreon.com", "198.51.100.63", "o63.patreon.com",
                 "bounces+5560@email.patreon.com")
DOCUSIGN = Sender("docusign.net", "198.51.100.64", "mail64.na3.docusign.net",
                  "dse_NA3@docusign.net")
TRUSTPILOT = Sender("trustpilotmail.com", "198.51.100.65", "o65.trustpilotmail.com",
                    "bounces+7781@trustpilotmail.com")

SPAM_IP = "192.0.2.77"

# --- the ESPs' shared From domains --------------------------------------------------------------

CC_IP = "203.0.113.30"
CC_DNS: Records = (spf("in.constantcontact.com", CC_IP), dmarc("ccsend.com", "reject"))
CC_HEADERS_HARBOR = (("X-Roving-Id", "1102345678.1099"), ("X-Mailer", "Roving Constant Contact"),
                     ("X-Feedback-ID", "96:0:1102345678:CTCT"))
CC_HEADERS_PINEWOOD = (("X-Roving-Id", "1187730211.2047"),
                       ("X-Mailer", "Roving Constant Contact"),
                       ("X-Feedback-ID", "96:0:1187730211:CTCT"))
CC_HEADERS_CARL = (("X-Roving-Id", "1190458832.0031"), ("X-Mailer", "Roving Constant Contact"))


def constant_contact(from_header: str, subject: str, headers: tuple[tuple[str, str], ...],
                     *, day: float = 10.0) -> Mail:
    """A campaign Constant Contact sent (DKIM d=ccsend.com) from its own servers."""
    return Mail(from_header, "bounce-ctct-7c1e@in.constantcontact.com", CC_IP,
                "ccm30.constantcontact.com", ("ccsend.com",), subject,
                headers, "Read this email in your browser.\n", day)


MC_IP = "203.0.113.31"
MC_ENVELOPE = "mail41.suw11.mcdlv.net"
MC_DNS: Records = (spf(MC_ENVELOPE, MC_IP), dmarc("mailchimpapp.com", "reject"))


def mailchimp(from_header: str, subject: str, user: str, reply_to: str) -> Mail:
    """A Mailchimp campaign from a free-mail account, rewritten into send.mailchimpapp.com."""
    return Mail(from_header, f"bounce-mc.us21_158203746.6102934-{user[:6]}@{MC_ENVELOPE}",
                MC_IP, MC_ENVELOPE, ("mcsv.net", "send.mailchimpapp.com"), subject,
                (("Reply-To", reply_to), ("X-MC-User", user),
                 ("List-Unsubscribe", f"<https://gmail.us21.list-manage.com/unsubscribe?u={user}>")),
                "View this email in your browser.\n", 12.0)


BREVO_IP = "203.0.113.32"
BREVO_ENVELOPE = "a8e3.d.sender-sib.com"
BREVO_DNS: Records = (spf(BREVO_ENVELOPE, BREVO_IP), dmarc("brevosend.com", "none"))


def brevo(from_header: str, subject: str, account: str, *, from_own_domain: bool = False,
          day: float = 12.0) -> Mail:
    """A Brevo campaign: rewritten to <local>@<account>.brevosend.com, or, when
    `from_own_domain`, sent from Harbor's own domain and signed by it."""
    signers = ("harborbooks.example", "mailin.fr") if from_own_domain else (
        "brevosend.com", "mailin.fr")
    return Mail(from_header, f"bounces-28-{account}@{BREVO_ENVELOPE}", BREVO_IP,
                "smtp-relay.sendinblue.com", signers, subject,
                (("X-Mailin-Client", account),
                 ("Feedback-ID", f"28:{account}_-1:{account}:Sendinblue"),
                 ("X-Mailer", "Sendinblue")),
                "Unsubscribe at any time.\n", day)


# --- the scenarios ------------------------------------------------------------------------------

SCENARIOS: list[Scenario] = [
    # Stripe: display name (plain, or "<merchant> via Stripe"), subject, account id in local part.
    Scenario(
        "platform-stripe-receipt-for-the-company", *ACME,
        (STRIPE.mail('"Acme Outfitters" <receipts+acct_1OxAcme4Zq9LkT2b@stripe.com>',
                     "Your receipt from Acme Outfitters #1457-3021"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Stripe, DKIM-signed as stripe.com, sends Acme's receipt with Acme as the display "
        "name: Acme's payment processor.", dns=ACME_DNS + STRIPE.dns, mentions=("Stripe",)),
    Scenario(
        "platform-stripe-invoice-from-another-merchant", *ACME,
        (STRIPE.mail('"Trailhead Supply Co. via Stripe" '
                     "<invoice+statements+acct_1PbTrail7Hq2mN4c@stripe.com>",
                     "New invoice from Trailhead Supply Co.", day=30.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Stripe sends an invoice that Trailhead Supply Co. addressed to the alias: that merchant "
        "holds the address Acme was given.", guilty=True, dns=ACME_DNS + STRIPE.dns,
        mentions=("Trailhead Supply Co.",)),
    Scenario(
        "platform-stripe-own-notice", *ACME,
        (STRIPE.mail('"Stripe" <notifications@stripe.com>', "Confirm your email address"),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "Stripe writing in its own name names no merchant: Acme may take payments through it, "
        "so the mail proves nothing either way.", dns=ACME_DNS + STRIPE.dns),
    Scenario(
        "platform-stripe-receipt-short-public-name", *ACME,
        (STRIPE.mail('"Acme Outfitters" <receipts+acct_1OxAcme4Zq9LkT2b@stripe.com>',
                     "Your receipt from Acme Outfitters #1457-3021", day=4.0),
         STRIPE.mail('"ACME" <receipts+acct_1OxAcme4Zq9LkT2b@stripe.com>',
                     "Your receipt from ACME #1457-3022",
                     body="Receipt from ACME.\n"
                          "Questions? Contact help@acme-outfitters.example.\n"),),
        (Relation.PROCESSOR, Relation.PROCESSOR), Verdict.CLEAN,
        "A later Stripe receipt under the short public name ACME comes from the same Stripe "
        "account (acct_1OxAcme4Zq9LkT2b) as Acme Outfitters' first one and points to Acme's "
        "help address: Acme's own processor, not another business.",
        dns=ACME_DNS + STRIPE.dns),

    # PayPal: the merchant only in the subject.
    Scenario(
        "platform-paypal-receipt-for-the-company", *ACME,
        (PAYPAL.mail('"PayPal" <service@paypal.com>',
                     "Receipt for Your Payment to Acme Outfitters"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "PayPal's receipt names Acme Outfitters as the payee in the subject and is signed by "
        "paypal.com: Acme's payment processor.", dns=ACME_DNS + PAYPAL.dns,
        mentions=("subject",)),
    Scenario(
        "platform-paypal-account-notice", *ACME,
        (PAYPAL.mail('"PayPal" <service@paypal.com>',
                     "You checked out as a guest: finish setting up your account"),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "PayPal's own account mail names no merchant: Acme may take PayPal, so it proves "
        "nothing either way.", dns=ACME_DNS + PAYPAL.dns),
    Scenario(
        "platform-paypal-phishing-fails-dmarc", *ACME,
        (Mail('"PayPal" <service@paypal.com>', "notice@mailer-7.example", SPAM_IP, "localhost",
              subject="Your account has been limited"),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "A PayPal look-alike from a botnet host fails paypal.com's DMARC p=reject: phishing "
        "that proves the address is out, not who has it.", dns=ACME_DNS + PAYPAL.dns),

    # Square: plain display name, Reply-To at the company's domain.
    Scenario(
        "platform-square-receipt-display-name", *NONNA,
        (SQUARE.mail('"Osteria Nonna" <receipts@messaging.squareup.com>',
                     "Receipt from Osteria Nonna"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Square's receipt carries Osteria Nonna as the display name and is signed by "
        "squareup.com: the restaurant's point of sale.", dns=NONNA_DNS + SQUARE.dns,
        mentions=("display name",)),
    Scenario(
        "platform-square-invoice-reply-to-company-domain", *NONNA,
        (SQUARE.mail('"Nonna\'s Catering" <invoicing@messaging.squareup.com>',
                     "Invoice #000112 from Nonna's Catering",
                     reply_to='"Catering desk" <catering@osterianonna.example>'),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "A Square invoice under the restaurant's catering trading name, whose Reply-To is an "
        "address at osterianonna.example: the restaurant's own invoice.",
        dns=NONNA_DNS + SQUARE.dns, mentions=("reply to",)),
    Scenario(
        "platform-square-another-seller", *NONNA,
        (SQUARE.mail('"Harbor Bakery" <noreply@messaging.squareup.com>',
                     "Fresh this week at Harbor Bakery: 20% off sourdough",
                     reply_to='"Harbor Bakery" <hello@harborbakery.example>', day=21.0,
                     times=3, every=7.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Square sends Harbor Bakery's promotions to the alias given to Osteria Nonna: another "
        "seller has the address.", guilty=True, dns=NONNA_DNS + SQUARE.dns,
        mentions=("Harbor Bakery",)),
    Scenario(
        "platform-square-forged-receipt", *NONNA,
        (Mail('"Osteria Nonna" <receipts@messaging.squareup.com>', "x@bulk-sender.example",
              SPAM_IP, "ylmf-pc", subject="Your refund is waiting: confirm your card"),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "A receipt in Square's name and the restaurant's, from a host squareup.com's SPF and "
        "DKIM do not cover, fails its DMARC p=reject: phishing, not the restaurant's processor.",
        dns=NONNA_DNS + SQUARE.dns),

    # The company's name in a close variant, across several platforms.
    Scenario(
        "platform-sumup-receipt-upper-case-name", *MEGAMART,
        (SUMUP.mail('"MEGAMART" <no-reply@sumup.com>', "Your receipt"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "SumUp's card receipt names MEGAMART, the company's name in capitals, as the merchant: "
        "its own till.", dns=MEGAMART_DNS + SUMUP.dns),
    Scenario(
        "platform-sumup-own-mail", *MEGAMART,
        (SUMUP.mail('"SumUp" <no-reply@sumup.com>', "Save your receipts with a SumUp account"),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "SumUp writing as itself names no merchant: it proves nothing about MegaMart either "
        "way.", dns=MEGAMART_DNS + SUMUP.dns),
    Scenario(
        "platform-clover-receipt-store-number", *MEGAMART,
        (CLOVER.mail('"Clover" <app@clover.com>', "Your receipt from MegaMart Store #12"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Clover's receipt from MegaMart Store #12 is one of MegaMart's own branches.",
        dns=MEGAMART_DNS + CLOVER.dns, mentions=("subject",)),
    Scenario(
        "platform-quickbooks-invoice-legal-name", *MEGAMART,
        (QUICKBOOKS.mail('"MegaMart Ltd" <quickbooks@notification.intuit.com>',
                         "Invoice 1042 from MegaMart Ltd"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "A QuickBooks invoice from MegaMart Ltd, the company's legal name, signed by intuit.com.",
        dns=MEGAMART_DNS + QUICKBOOKS.dns),
    Scenario(
        "platform-freshdesk-tenant-subdomain", *MEGAMART,
        (FRESHDESK.mail('"Customer Care" <support@megamart.freshdesk.com>',
                        "Re: Ticket #48213 Missing item in delivery"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "A Freshdesk reply from the megamart tenant: MegaMart's own help desk.",
        dns=MEGAMART_DNS + FRESHDESK.dns, mentions=("tenant subdomain",)),

    # Toast and OpenTable: restaurants named in the subject.
    Scenario(
        "platform-toast-receipt-subject", *NONNA,
        (TOAST.mail('"Toast" <noreply@toasttab.com>',
                    "Online Order Receipt for $48.60 at Osteria Nonna - 12 Harbour St"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Toast's online-order receipt names Osteria Nonna in the subject: the restaurant's "
        "point of sale.", dns=NONNA_DNS + TOAST.dns, mentions=("subject",)),
    Scenario(
        "platform-toast-receipt-other-restaurant", *NONNA,
        (TOAST.mail('"Toast" <noreply@toasttab.com>',
                    "Receipt for $23.10 at Smokehouse 41 - 9 Mill Rd", day=40.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Toast, authenticated as toasttab.com, mails Smokehouse 41's receipt to the alias given "
        "to Osteria Nonna: the other restaurant's Toast account holds it.", guilty=True,
        dns=NONNA_DNS + TOAST.dns, mentions=("Smokehouse 41",)),
    Scenario(
        "platform-opentable-reservation-confirmed", *NONNA,
        (OPENTABLE.mail('"OpenTable" <reservations@opentable.com>',
                        "Your reservation at Osteria Nonna is confirmed"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "OpenTable confirms a table at Osteria Nonna: the restaurant's booking service.",
        dns=NONNA_DNS + OPENTABLE.dns),

    # Invoicing: subject, a person as display name, Reply-To display name.
    Scenario(
        "platform-xero-invoice-person-display-name", *BRIGHTPATH,
        (XERO.mail('"Dana Whitfield" <messaging-service@post.xero.com>',
                   "Invoice INV-0193 from Brightpath Consulting Ltd for Jordan Ames",
                   reply_to='"Dana Whitfield" <dana@brightpath.example>'),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Xero's invoice shows the partner's name but the subject and Reply-To name Brightpath: "
        "the company's accounting platform.", dns=BRIGHTPATH_DNS + XERO.dns),
    Scenario(
        "platform-xero-invoice-other-business", *BRIGHTPATH,
        (XERO.mail('"Lumen Web Studio" <messaging-service@post.xero.com>',
                   "Invoice INV-2207 from Lumen Web Studio for Jordan Ames",
                   reply_to='"Lumen Web Studio" <accounts@lumenweb.example>', day=33.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "A Xero invoice from Lumen Web Studio, a business the alias was never given to: "
        "Brightpath passed the client's address on.", guilty=True,
        dns=BRIGHTPATH_DNS + XERO.dns, mentions=("Lumen Web Studio",)),
    Scenario(
        "platform-freshbooks-reply-to-display-name", *BRIGHTPATH,
        (FRESHBOOKS.mail('"FreshBooks" <noreply@freshbooks.com>',
                         "Reminder: invoice 0042 is overdue",
                         reply_to='"Brightpath Consulting" <brightpath.billing@gmail.com>'),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "FreshBooks' reminder names Brightpath Consulting only as the display name of its "
        "Reply-To (a Gmail billing box): the company's invoicing platform.",
        dns=BRIGHTPATH_DNS + FRESHBOOKS.dns, mentions=("reply to",)),
    Scenario(
        "platform-freshbooks-other-business", *BRIGHTPATH,
        (FRESHBOOKS.mail('"FreshBooks" <noreply@freshbooks.com>',
                         "Northwind Design sent you an invoice (0087)",
                         reply_to='"Northwind Design" <billing@northwind-design.example>',
                         day=28.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "FreshBooks delivers an invoice from Northwind Design to the alias Brightpath was "
        "given: Northwind has the address.", guilty=True,
        dns=BRIGHTPATH_DNS + FRESHBOOKS.dns, mentions=("Northwind Design",)),
    Scenario(
        "platform-docusign-reply-to-company", *BRIGHTPATH,
        (DOCUSIGN.mail('"Dana Whitfield via DocuSign" <dse_NA3@docusign.net>',
                       "Please DocuSign: Brightpath engagement letter 2026.pdf",
                       reply_to='"Dana Whitfield" <dana@brightpath.example>'),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "A DocuSign envelope from a Brightpath partner whose Reply-To is at brightpath.example: "
        "the company's signing service.", dns=BRIGHTPATH_DNS + DOCUSIGN.dns,
        mentions=("DocuSign",)),
    Scenario(
        "platform-docusign-other-firm", *BRIGHTPATH,
        (DOCUSIGN.mail('"Keller & Moss LLP via DocuSign" <dse_NA3@docusign.net>',
                       "Please DocuSign: Referral partner agreement",
                       reply_to='"Keller & Moss LLP" <contracts@kellermoss.example>',
                       day=45.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Keller & Moss LLP sends a DocuSign envelope to the alias given to Brightpath: the "
        "law firm was given the address.", guilty=True, dns=BRIGHTPATH_DNS + DOCUSIGN.dns,
        mentions=("Keller & Moss LLP",)),

    # Support desks: tenant subdomains.
    Scenario(
        "platform-zendesk-tenant-subdomain", *ACME,
        (ZENDESK.mail('"Customer Care" <support@acmeoutfitters.zendesk.com>',
                      "[Acme Outfitters] Re: Where is my order #10432?"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "A Zendesk reply from the acmeoutfitters tenant: Acme's own help desk.",
        dns=ACME_DNS + ZENDESK.dns, mentions=("tenant subdomain",)),
    Scenario(
        "platform-zendesk-other-tenant", *ACME,
        (ZENDESK.mail('"Peak Gear Support" <support@peakgear.zendesk.com>',
                      "Complete your Peak Gear warranty registration", day=26.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Peak Gear's Zendesk writes to the alias Acme was given: the gear brand Acme resells "
        "received its customers' addresses.", guilty=True, dns=ACME_DNS + ZENDESK.dns,
        mentions=("peakgear",)),
    Scenario(
        "platform-zohodesk-phishing-portal", *ACME,
        (ZOHODESK.mail('"PayPal Resolution Center" <support@paypal-resolution.zohodesk.com>',
                       "Your account access has been limited", day=18.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A Zoho Desk portal someone named paypal-resolution sends PayPal phishing: Zoho "
        "authenticated its tenant, but a phisher's portal is no business Acme dealt with, so "
        "the address is out, not shared.", dns=ACME_DNS + ZOHODESK.dns),

    # Shops and marketplaces.
    Scenario(
        "platform-shopify-order-confirmation", *ACME,
        (SHOPIFY.mail('"Acme Outfitters" <store+52841963@shopifyemail.com>',
                      "Order #10432 confirmed",
                      reply_to='"Acme Outfitters" <orders@acme-outfitters.example>'),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Shopify rewrote Acme's unauthenticated store address to shopifyemail.com, keeping "
        "Acme's name and Reply-To: Acme's own shop.", dns=ACME_DNS + SHOPIFY.dns,
        mentions=("Shopify",)),
    Scenario(
        "platform-shopify-another-store", *ACME,
        (SHOPIFY.mail('"Summit Trail Co" <store+61100422@shopifyemail.com>',
                      "Welcome! Here's 10% off your first order",
                      reply_to='"Summit Trail Co" <hello@summittrail.example>', day=35.0,
                      times=4, every=5.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Another Shopify store, Summit Trail Co, starts mailing the alias given to Acme: its "
        "list reached that store.", guilty=True, dns=ACME_DNS + SHOPIFY.dns,
        mentions=("Summit Trail Co",)),
    Scenario(
        "platform-etsy-purchase-shop-name", *ACME,
        (ETSY.mail('"Etsy Transactions" <transaction@etsy.com>',
                   "Your Etsy Purchase from AcmeOutfitters (3219876543)"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Etsy's receipt names the shop AcmeOutfitters, Acme's name run together as Etsy shop "
        "names are: Acme's own marketplace shop.", dns=ACME_DNS + ETSY.dns),
    Scenario(
        "platform-trustpilot-review-invitation", *ACME,
        (TRUSTPILOT.mail('"Acme Outfitters" <noreply.invitations@trustpilotmail.com>',
                         "How did we do? Review your recent order",
                         reply_to="service@acme-outfitters.example"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Trustpilot's review invitation in Acme's name with Acme's Reply-To: a service Acme "
        "uses.", dns=ACME_DNS + TRUSTPILOT.dns),
    Scenario(
        "platform-substack-list-imported-elsewhere", *ACME,
        (Mail('"Acme Outfitters" <news@acme-outfitters.example>',
              "bounce@acme-outfitters.example", ACME_IP, "mail.acme-outfitters.example",
              ("acme-outfitters.example",), "New arrivals for spring", times=3, every=7.0),
         SUBSTACK.mail('"Sam Ortiz from Gravel & Grit" <gravelandgrit@substack.com>',
                       "Gravel & Grit #12: the best budget bikepacking bags", day=38.0,
                       times=4, every=7.0)),
        (Relation.FIRST_PARTY, Relation.THIRD_PARTY), Verdict.LEAKED,
        "After Acme's own newsletters, the Substack newsletter Gravel & Grit starts arriving: "
        "the address is out, but a publication on substack.com is a tenant of a shared domain, "
        "often one person, not an identifiable business (as tenant-substack-publication).",
        dns=ACME_DNS + SUBSTACK.dns, mentions=("Substack",)),
    Scenario(
        "platform-substack-company-publication", *ACME,
        (SUBSTACK.mail('"Jo Park from Acme Outfitters Field Notes" <acmefieldnotes@substack.com>',
                       "Field Notes: testing six tents in a Highland gale"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Acme's own Substack publication, named after the author in the display name: the "
        "company's newsletter platform.", dns=ACME_DNS + SUBSTACK.dns),

    # Creators, studios, events, bookings.
    Scenario(
        "platform-kajabi-local-part-domain", *LOTUS,
        (KAJABI.mail('"Maya Chen" <maya=lotusyoga.example@f.kajabimail.net>',
                     "Week 3 of Foundations: your practice video"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Kajabi encodes the creator's own domain, lotusyoga.example, in the local part: the "
        "studio's online course, sent by its teacher.", dns=LOTUS_DNS + KAJABI.dns,
        mentions=("from local part",)),
    Scenario(
        "platform-kajabi-other-creator", *LOTUS,
        (KAJABI.mail('"Ryan Blake" <ryan=ryanblakefitness.example@f.kajabimail.net>',
                     "Free 7-day shred challenge starts Monday", day=31.0, times=2),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Kajabi mails for ryanblakefitness.example, a fitness business the alias was never "
        "given to: the studio's list reached it.", guilty=True, dns=LOTUS_DNS + KAJABI.dns,
        mentions=("ryanblakefitness.example",)),
    Scenario(
        "platform-mindbody-class-booking", *LOTUS,
        (MINDBODY.mail('"Lotus Yoga Studio" <Business276828@mindbodyonline.com>',
                       "You're booked: Vinyasa Flow, Tue 7:00 am"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Mindbody's booking confirmation in the studio's name: its scheduling platform.",
        dns=LOTUS_DNS + MINDBODY.dns),
    Scenario(
        "platform-mindbody-other-studio", *LOTUS,
        (MINDBODY.mail('"CoreFit Pilates" <Business311904@mindbodyonline.com>',
                       "New client special: 3 classes for $39", day=27.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "CoreFit Pilates' Mindbody account mails the alias given to Lotus Yoga: another studio "
        "got the client list.", guilty=True, dns=LOTUS_DNS + MINDBODY.dns,
        mentions=("CoreFit Pilates",)),
    Scenario(
        "platform-calendly-sender-header", *LOTUS,
        (CALENDLY.mail('"Maya Chen" <notifications@calendly.com>',
                       "Confirmed: Private session with Maya Chen on Tuesday, 17 March 2026",
                       headers=(("X-Calendly-Sender-Email", "maya@lotusyoga.example"),)),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Calendly's audit header names the host as maya@lotusyoga.example: a booking with the "
        "studio's own teacher.", dns=LOTUS_DNS + CALENDLY.dns, mentions=("header",)),
    Scenario(
        "platform-calendly-free-mailbox-host", *LOTUS,
        (CALENDLY.mail('"Dan Kowalski" <notifications@calendly.com>',
                       "Invitation: Free discovery call with Dan Kowalski",
                       reply_to="dan.kowalski.coach@gmail.com",
                       headers=(("X-Calendly-Sender-Email", "dan.kowalski.coach@gmail.com"),),
                       day=22.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "A Calendly host whose only identity is a person's name and a Gmail mailbox: the "
        "address reached someone, but no identifiable business (conservative label).",
        dns=LOTUS_DNS + CALENDLY.dns),
    Scenario(
        "platform-eventbrite-organiser-reply-to", *DEVCONF,
        (EVENTBRITE.mail('"Conference Team" <noreply@event.eventbrite.com>',
                         "Your DevConf schedule and venue details",
                         reply_to='"Conference Team" <team@devconf.example>'),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Eventbrite's organiser message answers to team@devconf.example: the conference's "
        "ticketing platform.", dns=DEVCONF_DNS + EVENTBRITE.dns, mentions=("reply to",)),
    Scenario(
        "platform-eventbrite-own-account-mail", *DEVCONF,
        (EVENTBRITE.mail('"Eventbrite" <noreply@order.eventbrite.com>',
                         "Finish setting up your Eventbrite account"),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "Eventbrite writing as itself names no organiser: DevConf sells tickets there, so it "
        "proves nothing either way.", dns=DEVCONF_DNS + EVENTBRITE.dns),
    Scenario(
        "platform-eventbrite-other-organiser", *DEVCONF,
        (EVENTBRITE.mail('"Berlin Startup Nights" <noreply@campaign.eventbrite.com>',
                         "You're invited: Startup Nights #14",
                         reply_to="hello@startupnights.example", day=50.0, times=2,
                         every=14.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Another organiser's Eventbrite invitations reach the DevConf alias: DevConf shared "
        "its attendee list with Berlin Startup Nights.", guilty=True,
        dns=DEVCONF_DNS + EVENTBRITE.dns, mentions=("Berlin Startup Nights",)),
    Scenario(
        "platform-tito-event-name", *DEVCONF,
        (TITO.mail('"DevConf Berlin 2026" <support@tito.io>',
                   "Your ticket for DevConf Berlin 2026"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Tito's ticket mail names the event DevConf Berlin 2026, the company's name with the "
        "year: its ticketing platform.", dns=DEVCONF_DNS + TITO.dns),
    Scenario(
        "platform-booking-property-message", *SEAVIEW,
        (BOOKING.mail('"Seaview Lodge through Booking.com" '
                      "<4821937465-kq7d.x3pn.rt5w@property.booking.com>",
                      "We look forward to welcoming you on Friday"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Booking.com relays a message from Seaview Lodge, named in its \"through Booking.com\" "
        "display name: the lodge's booking channel.", dns=SEAVIEW_DNS + BOOKING.dns,
        mentions=("display name",)),
    Scenario(
        "platform-patreon-creator-post", *HARBOR,
        (PATREON.mail('"Harbor Books (via Patreon)" <bingo@patreon.com>',
                      "New post: March staff picks"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Patreon delivers the shop's own post as \"Harbor Books (via Patreon)\": its membership "
        "platform.", dns=HARBOR_DNS + PATREON.dns),

    # A name that merely contains the company's.
    Scenario(
        "platform-square-receipt-short-company-name", *BLOOM,
        (SQUARE.mail('"Bloom" <receipts@messaging.squareup.com>', "Receipt from Bloom",
                     reply_to="hello@bloomflowers.example"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Square's receipt from Bloom, the florist, with its own Reply-To: its point of sale.",
        dns=BLOOM_DNS + SQUARE.dns),
    Scenario(
        "platform-square-name-contains-the-company", *BLOOM,
        (SQUARE.mail('"Bloomfield Farm Shop" <noreply@messaging.squareup.com>',
                     "Spring at Bloomfield: 15% off seed potatoes",
                     reply_to='"Bloomfield Farm Shop" <hello@bloomfieldfarm.example>',
                     day=29.0, times=3, every=7.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Bloomfield Farm Shop, with its own domain bloomfieldfarm.example, is not Bloom the "
        "florist just because its name starts with Bloom: another seller has the address.",
        guilty=True, dns=BLOOM_DNS + SQUARE.dns),

    # Constant Contact: <local>-<domain>@shared1.ccsend.com, or a label under ccsend.com.
    Scenario(
        "espfrom-constant-contact-company", *HARBOR,
        (constant_contact('"Harbor Books" <news-harborbooks.example@shared1.ccsend.com>',
                          "Harbor Books: March new releases", CC_HEADERS_HARBOR),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Constant Contact rewrote Harbor's unauthenticated From into its shared domain, "
        "keeping harborbooks.example in the local part, and signed as ccsend.com: Harbor's ESP.",
        dns=HARBOR_DNS + CC_DNS, mentions=("harborbooks.example",)),
    Scenario(
        "espfrom-constant-contact-other-business", *HARBOR,
        (constant_contact('"Pinewood Garden Centre" '
                          "<info-pinewoodgarden.example@shared1.ccsend.com>",
                          "Spring planting days: 2-for-1 on perennials", CC_HEADERS_PINEWOOD,
                          day=25.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Constant Contact authenticated a campaign for pinewoodgarden.example, another "
        "business, to the alias given to Harbor Books.", guilty=True, dns=HARBOR_DNS + CC_DNS,
        mentions=("pinewoodgarden.example",)),
    Scenario(
        "espfrom-constant-contact-gmail-customer", *HARBOR,
        (constant_contact('"Carl\'s Coffee" <carlscoffee-gmail.com@shared1.ccsend.com>',
                          "Carl's Coffee loyalty card: double stamps this week",
                          CC_HEADERS_CARL, day=25.0),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "The Constant Contact customer is carlscoffee@gmail.com, a free mailbox: the address is "
        "out, but no identifiable business is proven to hold it.", dns=HARBOR_DNS + CC_DNS,
        mentions=("carlscoffee",)),
    Scenario(
        "espfrom-constant-contact-forged", *HARBOR,
        (Mail('"Harbor Books" <news-harborbooks.example@shared1.ccsend.com>',
              "x@bulk-sender.example", SPAM_IP, "ylmf-pc", (),
              "Your gift card balance is about to expire", day=20.0),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "Constant Contact's rewrite format with Harbor's domain, sent from a botnet host "
        "without ccsend.com's signature: a forgery, not Harbor's ESP.",
        dns=HARBOR_DNS + CC_DNS),
    Scenario(
        "espfrom-constant-contact-label-company", *HARBOR,
        (constant_contact('"Harbor Books" <news@harborbooks.ccsend.com>',
                          "Harbor Books: author evening on 24 March", CC_HEADERS_HARBOR),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Harbor chose the label harborbooks under ccsend.com for its Constant Contact From, "
        "signed by ccsend.com in Harbor's name: its ESP, not a business it gave the address to.",
        dns=HARBOR_DNS + CC_DNS),
    Scenario(
        "espfrom-constant-contact-label-other-business", *HARBOR,
        (constant_contact('"Pinewood Garden Centre" <info@pinewoodgarden.ccsend.com>',
                          "Spring planting days: 2-for-1 on perennials", CC_HEADERS_PINEWOOD,
                          day=25.0),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "A Constant Contact campaign for Pinewood Garden Centre under its own ccsend.com label "
        "reaches Harbor's alias: Pinewood has it, not Constant Contact itself.", guilty=True,
        dns=HARBOR_DNS + CC_DNS, mentions=("pinewoodgarden",)),

    # Mailchimp: a free-mail From becomes <local>.<domain>@send.mailchimpapp.com.
    Scenario(
        "espfrom-mailchimp-gmail-rewrite", *HARBOR,
        (mailchimp('"Book Bargain Hunter" <bookbargains.gmail.com@send.mailchimpapp.com>',
                   "This week's Kindle deals under $2", "8f3c1e9a2b7d4c6e5f0a1b2c3",
                   "bookbargains@gmail.com"),),
        (Relation.THIRD_PARTY,), Verdict.LEAKED,
        "Mailchimp authenticated a campaign whose sender is the Gmail mailbox "
        "bookbargains@gmail.com: the address is out, but a mailbox is no business.",
        dns=HARBOR_DNS + MC_DNS, mentions=("bookbargains",)),
    Scenario(
        "espfrom-mailchimp-gmail-named-like-the-company", *HARBOR,
        (mailchimp('"Harbor Books" <harborbooks.gmail.com@send.mailchimpapp.com>',
                   "Harbor Books: staff picks for March", "a71d0c3e98b24f5e6d7c8b9a0",
                   "harborbooks@gmail.com"),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "A Mailchimp newsletter in Harbor Books' name from the Gmail box harborbooks@gmail.com: "
        "likely the shop's own list, not provably so, and nothing in it points at anyone else "
        "(conservative label).", dns=HARBOR_DNS + MC_DNS),

    # Brevo: <local>@<account>.brevosend.com, the customer only in the display name.
    Scenario(
        "espfrom-brevo-other-business", *HARBOR,
        (brevo('"Pinewood Garden Centre" <hello@11564950.brevosend.com>',
               "Your garden this weekend: free compost with every order", "11564950"),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "Brevo authenticated a campaign from its account 11564950 in the name of Pinewood "
        "Garden Centre, another business, to Harbor's alias.", guilty=True,
        dns=HARBOR_DNS + BREVO_DNS, mentions=("Pinewood Garden Centre",)),
    Scenario(
        "espfrom-brevo-company-display-name", *HARBOR,
        (brevo('"Harbor Books" <hello@20481236.brevosend.com>',
               "Your Harbor Books order has shipped", "20481236"),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Brevo rewrote Harbor's unauthenticated From into its account subdomain and kept "
        "\"Harbor Books\" as the display name: Harbor's ESP, the company's own mail.",
        dns=HARBOR_DNS + BREVO_DNS),
    Scenario(
        "espfrom-brevo-company-account-confirmed", *HARBOR,
        (brevo('"Harbor Books" <news@harborbooks.example>', "Harbor Books: April events",
               "20481236", from_own_domain=True, day=8.0),
         brevo('"Harbor Books" <hello@20481236.brevosend.com>',
               "Your Harbor Books order has shipped", "20481236", day=15.0)),
        (Relation.PROCESSOR, Relation.PROCESSOR), Verdict.CLEAN,
        "Harbor's own newsletter proves Brevo account 20481236 is Harbor's; the rewritten "
        "shipping notice comes from that same account in Harbor's name.",
        dns=HARBOR_DNS + BREVO_DNS),
]
