"""Forgeries: the company's domain under DMARC policies of every strength, its ESP's other
customers, SPF without DMARC, and look-alike domains.

The cast:

- MegaMart (megamart.example): its own MTA at 198.51.100.20; its DMARC policy changes from
  scenario to scenario (reject, quarantine, none, broken), so each one says which it uses.
- Harbor Coffee (harborcoffee.example, DMARC p=none): sends its newsletter through Twilio
  SendGrid (user id 27184596) and its receipts through Mailgun and Postmark.
- Quillfeather Stationery (quillfeather.example): an SPF record ending in -all and no DMARC
  record; sends through Amazon SES.
- Old Mill Tea Rooms (oldmill.example): publishes no SPF and no DMARC at all.
- Tove (tove.example) and Fable (fable.example): short names, next to honest neighbours.

Botnet forgeries come from 192.0.2.0/24, the companies' own servers from 198.51.100.0/25,
ESPs from 198.51.100.128/25 and 203.0.113.0/25, other businesses and phishers from
203.0.113.0/24.
"""

from __future__ import annotations

from canary.relation import Relation
from canary.report import Verdict
from corpus import ALIAS, Mail, Scenario
from corpus.baseline import dmarc, spf

Record = tuple[str, str, str]
Records = tuple[Record, ...]

RCPT = ALIAS.replace("@", "=")
"""The alias as an ESP's VERP bounce address encodes it."""

BOTNET_IP, BOTNET_HELO = "192.0.2.77", "WIN-Q4H2RK7LMP"

# --- MegaMart -----------------------------------------------------------------------------------

MEGA = ("MegaMart", ("megamart.example",))
MEGA_DOMAIN = "megamart.example"
MEGA_IP, MEGA_HELO = "198.51.100.20", "mta1.megamart.example"


def mega_dns(policy: str) -> Records:
    return (spf(MEGA_DOMAIN, MEGA_IP), dmarc(MEGA_DOMAIN, policy))


def mega_dmarc_record(record: str) -> Records:
    """MegaMart's SPF and a DMARC record written out in full (sp=, pct=, rua=…)."""
    return (spf(MEGA_DOMAIN, MEGA_IP), (f"_dmarc.{MEGA_DOMAIN}", "TXT", record))


def mega_mail(**fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": '"MegaMart" <deals@megamart.example>',
        "mail_from": "bounces@megamart.example", "client_ip": MEGA_IP, "helo": MEGA_HELO,
        "signed_by": (MEGA_DOMAIN,), "subject": "This week's MegaMart deals"}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


def forgery(**fields: object) -> Mail:
    """A botnet message claiming MegaMart's own From domain."""
    base: dict[str, object] = {
        "from_header": '"MegaMart Security" <security@megamart.example>',
        "mail_from": "info@throwaway-mailer.example", "client_ip": BOTNET_IP,
        "helo": BOTNET_HELO, "subject": "Unusual sign-in to your MegaMart account",
        "body": "We blocked a sign-in attempt. Confirm your details within 24 hours.\n"}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


# --- senders that are who they say they are -----------------------------------------------------

MARKETER = "cratedeals.example"
MARKETER_IP = "203.0.113.25"
MARKETER_DNS = (spf(MARKETER, MARKETER_IP), dmarc(MARKETER, "none"))


def marketer(**fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": '"Crate Deals" <offers@cratedeals.example>',
        "mail_from": "bounce@cratedeals.example", "client_ip": MARKETER_IP,
        "helo": "mta.cratedeals.example", "signed_by": (MARKETER,),
        "subject": "Members-only: 60% off kitchenware", "day": 31.0}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


def own_domain_sender(domain: str, display: str, ip: str, *, policy: str = "reject",
                      **fields: object) -> tuple[Mail, Records]:
    """Mail from a domain its sender owns, SPF- and DKIM-authenticated as itself, and its DNS."""
    base: dict[str, object] = {
        "from_header": f'"{display}" <hello@{domain}>', "mail_from": f"bounce@{domain}",
        "client_ip": ip, "helo": f"mail.{domain}", "signed_by": (domain,), "day": 20.0}
    base.update(fields)
    return Mail(**base), (spf(domain, ip), dmarc(domain, policy))  # type: ignore[arg-type]


# --- Harbor Coffee and its ESPs -----------------------------------------------------------------

HARBOR = ("Harbor Coffee", ("harborcoffee.example",))
HARBOR_DOMAIN = "harborcoffee.example"
HARBOR_IP = "198.51.100.30"

SENDGRID = "Twilio SendGrid"
SENDGRID_IP, SENDGRID_HELO = "198.51.100.141", "o1.ptr8831.sendgrid.net"
HARBOR_SENDGRID_ID = "27184596"
OTHER_SENDGRID_ID = "41930277"
SENDGRID_DNS: Records = (
    ("sendgrid.net", "TXT", "v=spf1 ip4:198.51.100.128/26 -all"),
    ("em4412.harborcoffee.example", "TXT", "v=spf1 include:sendgrid.net -all"),
)
HARBOR_DNS: Records = (
    (HARBOR_DOMAIN, "TXT", f"v=spf1 ip4:{HARBOR_IP} include:sendgrid.net -all"),
    dmarc(HARBOR_DOMAIN, "none"),
    *SENDGRID_DNS,
)


def sendgrid_mail(customer: str | None = HARBOR_SENDGRID_ID, *, aligned: bool = False,
                  **fields: object) -> Mail:
    """Through SendGrid: its own d=sendgrid.info, and Harbor's too when `aligned`."""
    headers: list[tuple[str, str]] = [("X-SG-EID", "u001.Xq3k9LzT0bAcPq7h2VnB4w")]
    if customer is not None:
        headers.append(("X-Feedback-ID", f"{customer}:SG:0:SG"))
    envelope = ("em4412.harborcoffee.example" if aligned else "sendgrid.net")
    base: dict[str, object] = {
        "from_header": '"Harbor Coffee" <hello@harborcoffee.example>',
        "mail_from": f"bounces+{customer or '0'}-7c1e-{RCPT}@{envelope}",
        "client_ip": SENDGRID_IP, "helo": SENDGRID_HELO,
        "signed_by": (HARBOR_DOMAIN, "sendgrid.info") if aligned else ("sendgrid.info",),
        "subject": "New single-origin beans are in", "headers": tuple(headers)}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


MAILGUN_IP, MAILGUN_HELO = "203.0.113.70", "m70-113.mailgun.net"
HARBOR_MAILGUN_ID = "5f9c2a1b3d4e5f6a7b8c9d0e"
OTHER_MAILGUN_ID = "63b1e0f47a2c9d8e5f601a2b"
MAILGUN_DNS: Records = (
    ("mailgun.org", "TXT", "v=spf1 ip4:203.0.113.64/27 -all"),
    ("mg.harborcoffee.example", "TXT", "v=spf1 include:mailgun.org -all"),
    ("mg.parcel-notice.example", "TXT", "v=spf1 include:mailgun.org -all"),
    dmarc("parcel-notice.example", "none"),
)


def mailgun_mail(customer: str, mg_domain: str, signed_by: tuple[str, ...],
                 **fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": '"Harbor Coffee" <orders@harborcoffee.example>',
        "mail_from": f"bounce+3a9f1c.{customer[:6]}-{RCPT}@{mg_domain}",
        "client_ip": MAILGUN_IP, "helo": MAILGUN_HELO, "signed_by": signed_by,
        "subject": "Your Harbor Coffee order #10482",
        "headers": (("X-Mailgun-Sid", "WyI4ZjM0NyIsICJzaG9wIiwgIjE3ZTAiXQ=="),
                    ("X-Mailgun-Variables", '{"order": "10482"}'),
                    ("X-Feedback-Id", f"{customer}:mailgun"))}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


# --- Quillfeather Stationery: SPF, no DMARC -------------------------------------------------------

QUILL = ("Quillfeather Stationery", ("quillfeather.example",))
QUILL_DOMAIN = "quillfeather.example"
QUILL_IP, QUILL_HELO = "198.51.100.40", "smtp.quillfeather.example"
SES_IP, SES_HELO = "203.0.113.12", "a12-34.smtp-out.amazonses.com"
QUILL_SES_ID = "1.us-east-1.Mh2sdPdxnI9P0tUpfp8Ej3M7RMQdHe/NJ7rfvmr0nr8="
OTHER_SES_ID = "1.us-east-1.q8xZ3T0bC4W9u2LkYv7pHnR6eJd1sF5gA0mNiXoQtUc="
SES_DNS: Records = (("amazonses.com", "TXT", "v=spf1 ip4:203.0.113.0/27 -all"),)
QUILL_DNS: Records = (
    (QUILL_DOMAIN, "TXT", f"v=spf1 ip4:{QUILL_IP} include:amazonses.com -all"),
    *SES_DNS,
)



def quill_mail(**fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": '"Quillfeather Stationery" <studio@quillfeather.example>',
        "mail_from": "studio@quillfeather.example", "client_ip": QUILL_IP, "helo": QUILL_HELO,
        "subject": "Autumn notebooks and fountain-pen inks"}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


def ses_mail(account: str, **fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": '"Quillfeather Stationery" <orders@quillfeather.example>',
        "mail_from": "0100018e5c1f2a3b-6d1e0c77-2f4a-4b8e-9c3d-7a1b2c3d4e5f-000000@amazonses.com",
        "client_ip": SES_IP, "helo": SES_HELO, "signed_by": ("amazonses.com",),
        "subject": "Your order has shipped",
        "headers": (("X-SES-Outgoing", "2026.03.12-203.0.113.12"),
                    ("Feedback-ID", f"{account}:AmazonSES"))}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


# --- look-alikes of MegaMart ----------------------------------------------------------------------

PHISH_IP = "203.0.113.200"


def phish(domain: str, display: str = "MegaMart Security", policy: str = "none",
          **fields: object) -> tuple[Mail, Records]:
    """A phisher on a domain it registered and authenticates properly (SPF, DKIM, DMARC)."""
    base: dict[str, object] = {
        "from_header": f'"{display}" <security@{domain}>', "mail_from": f"bounce@{domain}",
        "client_ip": PHISH_IP, "helo": f"mail.{domain}", "signed_by": (domain,),
        "subject": "Your MegaMart account has been locked",
        "body": "To restore access, confirm your card details within 24 hours.\n", "day": 40.0}
    base.update(fields)
    org = domain.split(".", 1)[1] if domain.count(".") > 1 else domain
    return (Mail(**base),  # type: ignore[arg-type]
            (spf(domain, PHISH_IP), dmarc(org, policy)))


CYRILLIC_MEGAMART = "m\u0435g\u0430m\u0430rt".encode("idna").decode() + ".example"
"""megamart with Cyrillic \u0435 and \u0430: xn--mgmrt-5veb0b.example."""
GREEK_MEGAMART = "meg\u03b1m\u03b1rt".encode("idna").decode() + ".example"
"""megamart with Greek alpha for both a's."""
CYRILLIC_TOVE = "t\u043eve".encode("idna").decode() + ".example"
"""tove with a Cyrillic \u043e."""


def _lookalike(name: str, domain: str, kind: str, policy: str = "none") -> Scenario:
    mail, records = phish(domain, policy=policy)
    return Scenario(
        name, *MEGA, (mail,), (Relation.IMPERSONATION,), Verdict.LEAKED,
        f"{domain} is a {kind} of megamart.example, registered and authenticated by a phisher: "
        "the address is known to be a MegaMart customer's, but nobody MegaMart dealt with "
        "is named.", dns=mega_dns("reject") + records)


# --- the scenarios ------------------------------------------------------------------------------

DMARC_POLICY = [
    Scenario(
        "forge-reject-other-envelope", *MEGA, (forgery(),), (Relation.SPOOFED,), Verdict.LEAKED,
        "A botnet claims MegaMart's From with its own envelope domain and fails MegaMart's "
        "enforced DMARC p=reject: a forgery aimed at a MegaMart customer.",
        dns=mega_dns("reject"), mentions=("p=reject",)),
    Scenario(
        "forge-reject-own-envelope", *MEGA,
        (forgery(mail_from="security@megamart.example"),), (Relation.SPOOFED,), Verdict.LEAKED,
        "MegaMart's From and envelope from a server MegaMart's SPF refuses, without its "
        "signature, under p=reject: a forgery.", dns=mega_dns("reject")),
    Scenario(
        "forge-reject-own-mail-then-forgery", *MEGA,
        (mega_mail(times=3, every=7), forgery(day=26.0)),
        (Relation.FIRST_PARTY, Relation.SPOOFED), Verdict.LEAKED,
        "MegaMart's own signed newsletter, then a forgery of its p=reject domain: phishers "
        "know the alias belongs to a MegaMart customer, which shows a leak, not a sale.",
        dns=mega_dns("reject")),
    Scenario(
        "forge-quarantine-other-envelope", *MEGA, (forgery(),), (Relation.SPOOFED,),
        Verdict.LEAKED, "MegaMart enforces p=quarantine and this unsigned botnet mail fails "
        "it: a forgery.", dns=mega_dns("quarantine"), mentions=("p=quarantine",)),
    Scenario(
        "forge-quarantine-own-mail", *MEGA, (mega_mail(times=2, every=14),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Under p=quarantine MegaMart's own mail passes with its aligned DKIM signature.",
        dns=mega_dns("quarantine")),
    Scenario(
        "forge-quarantine-subdomain-from", *MEGA,
        (forgery(from_header='"MegaMart Accounts" <no-reply@account.megamart.example>'),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "A made-up subdomain of MegaMart inherits its p=quarantine (no sp= tag), and the "
        "botnet mail fails it.", dns=mega_dns("quarantine")),
    Scenario(
        "forge-reject-but-subdomains-none", *MEGA,
        (forgery(from_header='"MegaMart Accounts" <no-reply@account.megamart.example>'),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "MegaMart enforces p=reject on its own name but sp=none on subdomains: a failing "
        "subdomain From may be one of its own unaligned services, so it proves nothing.",
        dns=mega_dmarc_record("v=DMARC1; p=reject; sp=none; rua=mailto:dmarc@megamart.example")),
    Scenario(
        "forge-none-but-subdomains-reject", *MEGA,
        (forgery(from_header='"MegaMart Accounts" <no-reply@account.megamart.example>'),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "MegaMart monitors its own name (p=none) but locks subdomains down with sp=reject: "
        "this subdomain From fails an enforced policy.",
        dns=mega_dmarc_record("v=DMARC1; p=none; sp=reject")),
    Scenario(
        "forge-none-botnet", *MEGA, (forgery(),), (Relation.UNPROVEN,), Verdict.CLEAN,
        "MegaMart publishes only p=none, so a failing message may be its own mail through a "
        "service it never aligned: a forgery is likely but not proven.",
        dns=mega_dns("none"), mentions=("p=none",)),
    Scenario(
        "forge-none-botnet-then-marketer", *MEGA, (forgery(), marketer()),
        (Relation.UNPROVEN, Relation.THIRD_PARTY), Verdict.SHARED,
        "The p=none failure proves nothing, but a week later Crate Deals writes to the alias "
        "DKIM-signed as itself: an identifiable business has the address.", guilty=True,
        dns=mega_dns("none") + MARKETER_DNS, mentions=("cratedeals.example",)),
    Scenario(
        "forge-none-own-mail-unknown-service", *MEGA,
        (mega_mail(mail_from="mc-7781@bounce.shopmailer.example", client_ip="203.0.113.140",
                   helo="out-7.shopmailer.example", signed_by=("shopmailer.example",),
                   subject="Your MegaMart receipt"),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "MegaMart's receipt through a mailing service it never aligned (signed and bounced by "
        "shopmailer.example, not in the ESP table) fails its p=none legitimately: proves "
        "nothing either way.",
        dns=(*mega_dns("none"),
             ("bounce.shopmailer.example", "TXT", "v=spf1 ip4:203.0.113.140 -all"),
             dmarc("shopmailer.example", "none"))),
    Scenario(
        "forge-none-own-server-spf-aligned", *MEGA, (mega_mail(signed_by=()),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Under p=none, MegaMart's own server is authorised by its SPF for its own envelope "
        "domain, aligned with From: its own mail.", dns=mega_dns("none")),
    Scenario(
        "forge-none-own-dkim-from-relay", *MEGA,
        (mega_mail(mail_from="bounce@relay.hostingco.example", client_ip="203.0.113.150",
                   helo="relay.hostingco.example"),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Under p=none, MegaMart's mail relayed by its hosting company still carries MegaMart's "
        "own aligned DKIM signature.",
        dns=(*mega_dns("none"), spf("relay.hostingco.example", "203.0.113.150"))),
    Scenario(
        "forge-quarantine-pct-zero", *MEGA, (forgery(),), (Relation.UNPROVEN,), Verdict.CLEAN,
        "MegaMart's p=quarantine with pct=0 asks receivers to enforce on no message at all "
        "(RFC 7489: the rest fall back to p=none), so it is still monitoring and a failure "
        "proves nothing.",
        dns=mega_dmarc_record(
            "v=DMARC1; p=quarantine; pct=0; rua=mailto:dmarc@megamart.example")),
    Scenario(
        "forge-invalid-policy-with-rua", *MEGA, (forgery(),), (Relation.UNPROVEN,),
        Verdict.CLEAN,
        "MegaMart's DMARC record misspells the policy (p=rejected) but has rua=, which RFC "
        "7489 reads as p=none: nothing is enforced, so the failure proves nothing.",
        dns=mega_dmarc_record("v=DMARC1; p=rejected; rua=mailto:dmarc@megamart.example")),
    Scenario(
        "forge-two-dmarc-records", *MEGA, (forgery(),), (Relation.UNPROVEN,), Verdict.CLEAN,
        "MegaMart publishes two DMARC records, so receivers must ignore both; its SPF refuses "
        "the botnet for the From domain but the envelope is another domain's, which proves "
        "nothing on its own.",
        dns=(*mega_dns("reject"), dmarc(MEGA_DOMAIN, "none"))),
]

NO_DMARC = [
    Scenario(
        "forge-nodmarc-from-spf-refuses", *QUILL, (forgery(
            from_header='"Quillfeather Stationery" <studio@quillfeather.example>',
            mail_from="newsletter@bulkblast.example", client_ip="203.0.113.160",
            helo="mx3.bulkblast.example", subject="Clearance: 70% off all journals"),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "Quillfeather has no DMARC; its SPF (-all) does not list this server, but the envelope "
        "is bulkblast.example's, and without DMARC that is no proof of forgery.",
        dns=(*QUILL_DNS, spf("bulkblast.example", "203.0.113.160"))),
    Scenario(
        "forge-nodmarc-own-server", *QUILL, (quill_mail(times=2, every=10),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Quillfeather's own server, listed in its SPF record; no DMARC, but SPF for its own "
        "envelope domain proves it.", dns=QUILL_DNS),
    Scenario(
        "forge-nodmarc-own-then-broker", *QUILL,
        (quill_mail(), marketer(day=45.0, times=4, every=5)),
        (Relation.FIRST_PARTY, Relation.THIRD_PARTY), Verdict.SHARED,
        "Quillfeather's own mail, then Crate Deals, SPF- and DKIM-authenticated as itself, "
        "four times: the address reached an identifiable business.", guilty=True,
        dns=QUILL_DNS + MARKETER_DNS),
    Scenario(
        "forge-nodmarc-own-envelope-refused", *QUILL,
        (forgery(from_header='"Quillfeather Stationery" <studio@quillfeather.example>',
                 mail_from="studio@quillfeather.example",
                 subject="Your order could not be delivered"),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "Quillfeather's own envelope domain from a server its SPF -all refuses: a forgery "
        "even without DMARC.", dns=QUILL_DNS, mentions=("-all",)),
    Scenario(
        "forge-nodmarc-softfail-envelope", "Harbor Tea", ("harbortea.example",),
        (forgery(from_header='"Harbor Tea" <shop@harbortea.example>',
                 mail_from="shop@harbortea.example", subject="Your order could not be shipped"),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "Harbor Tea's SPF ends in ~all (softfail: 'probably not ours') and it has no DMARC: "
        "that is not a refusal, so the message proves nothing.",
        dns=(("harbortea.example", "TXT", "v=spf1 ip4:198.51.100.50 ~all"),)),
    Scenario(
        "forge-nodmarc-dkim-aligned", *QUILL,
        (quill_mail(mail_from="bounce@relay.hostingco.example", client_ip="203.0.113.150",
                    helo="relay.hostingco.example", signed_by=(QUILL_DOMAIN,)),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "No DMARC, but Quillfeather's own DKIM signature verifies: its mail through a relay.",
        dns=(*QUILL_DNS, spf("relay.hostingco.example", "203.0.113.150"))),
    Scenario(
        "forge-publishes-nothing", "Old Mill Tea Rooms", ("oldmill.example",),
        (Mail('"Old Mill Tea Rooms" <bookings@oldmill.example>', "bookings@oldmill.example",
              "203.0.113.170", "mail.oldmill.example", subject="Your table on Saturday"),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Old Mill publishes no SPF and no DMARC: nothing can contradict its From, so it counts "
        "as its own (unauthenticated), as documented.", mentions=("publishes nothing",)),
]

ESP = [
    Scenario(
        "esp-sendgrid-confirmed-customer", *HARBOR, (sendgrid_mail(times=3, every=7),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Harbor's newsletter through SendGrid as user 27184596, the account the person "
        "confirmed as Harbor's; its p=none lets SendGrid's own signature stand.",
        dns=HARBOR_DNS, esp_customers=((SENDGRID, HARBOR_SENDGRID_ID),),
        mentions=("confirmed as the company's",)),
    Scenario(
        "esp-sendgrid-other-customer", *HARBOR,
        (sendgrid_mail(OTHER_SENDGRID_ID, subject="Action needed: update your payment card"),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "Another SendGrid user (41930277) claims Harbor's From; Harbor's account is 27184596: "
        "someone forging Harbor to one of its customers.",
        dns=HARBOR_DNS, esp_customers=((SENDGRID, HARBOR_SENDGRID_ID),)),
    Scenario(
        "esp-sendgrid-unconfirmed", *HARBOR, (sendgrid_mail(OTHER_SENDGRID_ID),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Harbor's From through SendGrid with no account confirmed yet: most likely Harbor's "
        "own ESP, and nothing shows otherwise.", dns=HARBOR_DNS,
        mentions=("not confirmed yet",)),
    Scenario(
        "esp-sendgrid-learned-then-other-customer", *HARBOR,
        (sendgrid_mail(aligned=True),
         sendgrid_mail(OTHER_SENDGRID_ID, day=33.0, subject="Your Harbor gift card expires")),
        (Relation.PROCESSOR, Relation.SPOOFED), Verdict.LEAKED,
        "Harbor's own aligned mail shows its SendGrid account is 27184596; later another "
        "SendGrid user claims Harbor's From: a forgery.", dns=HARBOR_DNS),
    Scenario(
        "esp-sendgrid-learned-then-same-customer", *HARBOR,
        (sendgrid_mail(aligned=True), sendgrid_mail(day=25.0)),
        (Relation.PROCESSOR, Relation.PROCESSOR), Verdict.CLEAN,
        "Harbor's aligned mail shows its SendGrid account; a later message from the same "
        "account without Harbor's signature is still Harbor's.",
        dns=HARBOR_DNS),
    Scenario(
        "esp-sendgrid-confirmed-no-customer-header", *HARBOR, (sendgrid_mail(None),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "Through SendGrid but naming no account, so it can be neither matched to Harbor's "
        "confirmed one nor told apart from it; Harbor's p=none proves nothing.",
        dns=HARBOR_DNS, esp_customers=((SENDGRID, HARBOR_SENDGRID_ID),)),
    Scenario(
        "esp-sendgrid-forged-headers-only", *HARBOR,
        (sendgrid_mail(mail_from="noreply@throwaway-mailer.example", client_ip=BOTNET_IP,
                       helo=BOTNET_HELO, signed_by=()),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "SendGrid headers with Harbor's account id, but from a botnet with no SendGrid "
        "signature: anyone can write headers, and Harbor's p=none proves nothing.",
        dns=HARBOR_DNS, esp_customers=((SENDGRID, HARBOR_SENDGRID_ID),)),
    Scenario(
        "esp-sendgrid-reject-company-other-customer", *MEGA,
        (sendgrid_mail(OTHER_SENDGRID_ID,
                       from_header='"MegaMart Rewards" <rewards@megamart.example>',
                       subject="Claim your 500 MegaMart points"),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "Only SendGrid's own signature, for some SendGrid user, on MegaMart's p=reject From: "
        "a phisher using SendGrid.", dns=mega_dns("reject") + SENDGRID_DNS),
    Scenario(
        "esp-sendgrid-marketer-aligned", *HARBOR,
        (sendgrid_mail(aligned=True), marketer(
            mail_from=f"bounces+41930277-9d2a-{RCPT}@em77.cratedeals.example",
            client_ip=SENDGRID_IP, helo=SENDGRID_HELO, signed_by=(MARKETER, "sendgrid.info"),
            headers=(("X-SG-EID", "u001.Pz8s1KcW0qLdRt5e9YbN2g"),
                     ("X-Feedback-ID", f"{OTHER_SENDGRID_ID}:SG:0:SG")))),
        (Relation.PROCESSOR, Relation.THIRD_PARTY), Verdict.SHARED,
        "Crate Deals mails the alias through SendGrid with its own aligned DKIM signature: "
        "sharing an ESP with Harbor changes nothing, it is an identifiable business.",
        guilty=True,
        dns=HARBOR_DNS + MARKETER_DNS + (
            ("em77.cratedeals.example", "TXT", "v=spf1 include:sendgrid.net -all"),)),
    Scenario(
        "esp-sendgrid-marketer-unaligned", *HARBOR,
        (sendgrid_mail(aligned=True), marketer(
            mail_from=f"bounces+41930277-9d2a-{RCPT}@sendgrid.net", client_ip=SENDGRID_IP,
            helo=SENDGRID_HELO, signed_by=("sendgrid.info",),
            headers=(("X-SG-EID", "u001.Pz8s1KcW0qLdRt5e9YbN2g"),
                     ("X-Feedback-ID", f"{OTHER_SENDGRID_ID}:SG:0:SG")))),
        (Relation.PROCESSOR, Relation.UNVERIFIED), Verdict.LEAKED,
        "A Crate Deals From with only SendGrid's signature: SendGrid proves one of its users "
        "sent it, not that it was Crate Deals, so the address is out but nobody is proven.",
        dns=HARBOR_DNS + MARKETER_DNS),
    Scenario(
        "esp-mailgun-aligned-receipt", *HARBOR,
        (mailgun_mail(HARBOR_MAILGUN_ID, "mg.harborcoffee.example",
                      ("mg.harborcoffee.example", "mailgun.org")),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Harbor's receipt through Mailgun, signed by Harbor's delegated mg. subdomain and by "
        "Mailgun, bounced to Harbor's own mg. domain: its processor.",
        dns=HARBOR_DNS + MAILGUN_DNS),
    Scenario(
        "esp-mailgun-learned-then-other-customer", *HARBOR,
        (mailgun_mail(HARBOR_MAILGUN_ID, "mg.harborcoffee.example",
                      ("mg.harborcoffee.example", "mailgun.org")),
         mailgun_mail(OTHER_MAILGUN_ID, "mg.parcel-notice.example", ("mailgun.org",),
                      subject="Delivery failed: confirm your address", day=38.0)),
        (Relation.PROCESSOR, Relation.SPOOFED), Verdict.LEAKED,
        "Harbor's aligned receipt shows its Mailgun account; then another Mailgun account "
        "(bouncing to mg.parcel-notice.example) claims Harbor's From: a forgery.",
        dns=HARBOR_DNS + MAILGUN_DNS),
    Scenario(
        "esp-mailgun-reject-company-phisher", *MEGA,
        (mailgun_mail(OTHER_MAILGUN_ID, "mg.parcel-notice.example", ("mailgun.org",),
                      from_header='"MegaMart Deliveries" <delivery@megamart.example>',
                      subject="We could not deliver your MegaMart parcel"),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "A Mailgun customer claims MegaMart's p=reject From with only Mailgun's signature: "
        "MegaMart's enforced policy makes it a forgery.", dns=mega_dns("reject") + MAILGUN_DNS),
    Scenario(
        "esp-mailchimp-aligned-reject-company", *MEGA,
        (mega_mail(mail_from=f"bounce-mc.us21_182934.5512-{RCPT}@mail93.suw101.mcdlv.net",
                   client_ip="198.51.100.170", helo="mail93.suw101.mcdlv.net",
                   signed_by=(MEGA_DOMAIN, "mcdlv.net"),
                   headers=(("X-MC-User", "6f1c0e2b8a9d3e4f5a6b7c8d9"),
                            ("X-Report-Abuse", "Please report abuse for this campaign here: "
                             "https://mailchimp.com/contact/abuse/?u=6f1c0e2b8a9d3e4f5a6b7c8d9"
                             "&id=4c1f0a9e2b"))),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "MegaMart's campaign through Mailchimp, signed by MegaMart's delegated key (aligned "
        "under p=reject) and by Mailchimp: its processor.",
        dns=(*mega_dns("reject"),
             ("mail93.suw101.mcdlv.net", "TXT", "v=spf1 ip4:198.51.100.160/27 -all")),
        mentions=("Mailchimp",)),
    Scenario(
        "esp-postmark-aligned", *HARBOR,
        (Mail('"Harbor Coffee" <receipts@harborcoffee.example>',
              "pm_bounces@pm-bounces.harborcoffee.example", "203.0.113.100",
              "mta100.mtasv.net", signed_by=(HARBOR_DOMAIN, "pm.mtasv.net"),
              subject="Receipt for your subscription",
              headers=(("X-PM-Message-Id", "0b3c5a8e-1f2d-4e6a-9b7c-3d2e1f0a9b8c"),
                       ("Feedback-ID", "outbound:s4410:a90213:postmark"))),),
        (Relation.PROCESSOR,), Verdict.CLEAN,
        "Harbor's receipt through Postmark, DKIM-signed by Harbor itself and by Postmark, with "
        "Postmark's bounce subdomain under Harbor's domain.",
        dns=(*HARBOR_DNS,
             ("pm-bounces.harborcoffee.example", "TXT", "v=spf1 include:spf.mtasv.net -all"),
             ("spf.mtasv.net", "TXT", "v=spf1 ip4:203.0.113.96/27 -all"))),
    Scenario(
        "esp-ses-confirmed-nodmarc", *QUILL, (ses_mail(QUILL_SES_ID),), (Relation.PROCESSOR,),
        Verdict.CLEAN,
        "Quillfeather's shipping notice through Amazon SES from the sending account the person "
        "confirmed; it has no DMARC to align with.", dns=QUILL_DNS,
        esp_customers=(("Amazon SES", QUILL_SES_ID),)),
    Scenario(
        "esp-ses-other-account-nodmarc", *QUILL,
        (ses_mail(OTHER_SES_ID, subject="Payment declined: update your card"),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "Another Amazon SES account claims Quillfeather's From, whose confirmed SES account is "
        "a different one: a forgery through the same ESP.", dns=QUILL_DNS,
        esp_customers=(("Amazon SES", QUILL_SES_ID),)),
]

LOOKALIKES = [
    _lookalike("lookalike-cyrillic-homoglyph", CYRILLIC_MEGAMART,
               "homoglyph (Cyrillic \u0435 and \u0430)"),
    _lookalike("lookalike-greek-homoglyph", GREEK_MEGAMART, "homoglyph (Greek \u03b1)"),
    _lookalike("lookalike-typo-swapped", "meagmart.example", "typo (swapped letters)"),
    _lookalike("lookalike-typo-doubled", "megammart.example", "typo (doubled letter)"),
    _lookalike("lookalike-typo-dropped", "megmart.example", "typo (dropped letter)"),
    _lookalike("lookalike-rn-for-m", "megarnart.example", "homoglyph (rn for m)"),
    _lookalike("lookalike-brand-security", "megamart-security.example",
               "brand plus a phishing word"),
    _lookalike("lookalike-secure-brand", "secure-megamart.example",
               "brand plus a phishing word"),
    _lookalike("lookalike-brand-login", "megamart-login.example",
               "brand plus a phishing word", policy="reject"),
    _lookalike("lookalike-other-suffix", "megamart.test", "same name under another suffix"),
]


def _neighbour(name: str, domain: str, display: str, ip: str, subject: str, reason: str,
               company: tuple[str, tuple[str, ...]] = MEGA, extra: Records = ()) -> Scenario:
    mail, records = own_domain_sender(domain, display, ip, subject=subject, times=3, every=9)
    return Scenario(name, *company, (mail,), (Relation.THIRD_PARTY,), Verdict.SHARED, reason,
                    guilty=True, dns=extra + records)


display_name_phish, display_name_dns = phish("acct-review-center.example",
                                             display="MegaMart Security Team")
subdomain_phish, subdomain_dns = phish("megamart.verify-account.example",
                                       display="MegaMart")
TOVE = ("Tove", ("tove.example",))
FABLE = ("Fable", ("fable.example",))
FABLE_DNS: Records = (spf("fable.example", "198.51.100.61"), dmarc("fable.example", "reject"))
fabel_phish, fabel_phish_dns = phish("fabel.example", display="Fable Books",
                                     subject="Confirm the payment for your Fable order")
TOVE_DNS: Records = (spf("tove.example", "198.51.100.60"), dmarc("tove.example", "reject"))
tove_phish, tove_phish_dns = phish(CYRILLIC_TOVE, display="Tove",
                                   subject="Your Tove order is on hold")

NEIGHBOURS = [
    _neighbour(
        "lookalike-neighbour-megaphone", "megaphone.example", "Megaphone Audio",
        "203.0.113.31", "Studio headphones, 20% off this week",
        "Megaphone Audio shares only the prefix 'mega' with MegaMart: an honest, unrelated "
        "business authenticated as itself, so the address reached it.",
        extra=mega_dns("reject")),
    _neighbour(
        "lookalike-neighbour-martinez-plumbing", "martinez-plumbing.example",
        "Martinez Plumbing", "203.0.113.32", "Spring boiler service: book now",
        "Martinez Plumbing merely contains 'mart': an unrelated local business authenticated "
        "as itself mails the alias, so it has the address.", extra=mega_dns("reject")),
    Scenario(
        "lookalike-short-name-homoglyph", *TOVE, (tove_phish,),
        (Relation.IMPERSONATION,), Verdict.LEAKED,
        "tove written with a Cyrillic \u043e: a homoglyph of Tove's own four-letter domain, "
        "registered by a phisher.",
        dns=(*TOVE_DNS, *tove_phish_dns)),
    _neighbour(
        "lookalike-short-name-neighbour", "cove.example", "Cove Kayak Tours", "203.0.113.33",
        "Summer kayak tours are open for booking",
        "cove.example is one letter from Tove's four-letter name but is an honest kayak "
        "business authenticated as itself: too short a name to call that a look-alike.",
        company=TOVE, extra=TOVE_DNS),
    Scenario(
        "lookalike-five-letter-typosquat", *FABLE, (fabel_phish,), (Relation.IMPERSONATION,),
        Verdict.LEAKED, "fabel.example swaps two letters of Fable's five-letter domain and asks "
        "a Fable customer to confirm a payment: a typo-squatting phisher.",
        dns=(*FABLE_DNS, *fabel_phish_dns)),
    _neighbour(
        "lookalike-five-letter-honest-neighbour", "table.example", "Table & Co Furniture",
        "203.0.113.34", "New oak dining tables in store",
        "table.example is one letter from Fable's domain but is a dictionary word and an "
        "honest furniture shop, authenticated as itself and not posing as Fable: the address "
        "reached an identifiable business.",
        company=FABLE, extra=FABLE_DNS),
    Scenario(
        "lookalike-display-name-only", *MEGA, (display_name_phish,),
        (Relation.IMPERSONATION,), Verdict.LEAKED,
        "A throwaway phishing domain that signs as itself but calls itself 'MegaMart Security "
        "Team' and asks for card details: it impersonates MegaMart by name, it is not a "
        "business MegaMart shared with.", dns=mega_dns("reject") + display_name_dns),
    Scenario(
        "lookalike-brand-as-subdomain", *MEGA, (subdomain_phish,),
        (Relation.IMPERSONATION,), Verdict.LEAKED,
        "megamart.verify-account.example puts MegaMart's name in a subdomain of a phishing "
        "domain, authenticated as that domain: impersonation, not a business MegaMart shared "
        "with.", dns=mega_dns("reject") + subdomain_dns),
]


def _named(group: list[Scenario], name: str) -> Scenario:
    return next(s for s in group if s.name == name)


SCENARIOS: list[Scenario] = [
    *DMARC_POLICY, *NO_DMARC, *ESP,
    # Each honest neighbour next to the phisher it could be mistaken for.
    *LOOKALIKES[:5], _named(NEIGHBOURS, "lookalike-neighbour-megaphone"),
    *LOOKALIKES[5:], _named(NEIGHBOURS, "lookalike-neighbour-martinez-plumbing"),
    *(s for s in NEIGHBOURS if "megaphone" not in s.name and "martinez" not in s.name),
]
