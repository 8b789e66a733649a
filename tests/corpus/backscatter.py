"""Backscatter, ARC forwarding and many messages over time.

The cast: Acme Outfitters (acme-outfitters.example, DMARC p=reject), from
`corpus.baseline`, gave its alias to nobody else unless a scenario says it
did; Birch & Pine Home (birchpine.example) publishes DMARC p=none.

Backscatter (`bounce-`): spam sent elsewhere with the alias forged as its
sender comes back as delivery status notifications (RFC 3464), read receipts
(RFC 8098) and automatic replies (RFC 3834) from organisations that never
had the address from the company. However well they authenticate, they show
only that the address is in use: backscatter, never `shared`. A business's
own authenticated newsletter marked `Auto-Submitted: auto-generated` is not
a reply to anything and still counts against the company.

ARC (`arc-`, RFC 8617): a seal is the sealer's word about what it saw on
arrival. The word of the company's own domain, or of a sealer the person
trusts, is believed when the chain verifies; a stranger's seal, a chain
broken after the last seal, or a trusted seal that vouched for another
domain's From, proves nothing about the message as it arrives.

Many messages (`many-`): repeated mail from the same senders over weeks.

Mail that waits for DNS (a DKIM key that times out) is not here: Canary keeps
it pending, but `Scenario.relations` takes `Relation` values and `Relation`
has no pending member, so the harness cannot label it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from canary.relation import Relation
from canary.report import Verdict
from corpus import ALIAS, ISSUED, Mail, Scenario, Seal, arriving, ed25519, rsa_key
from corpus.baseline import (
    ACME,
    ACME_DNS,
    ACME_IP,
    MARKETER_DNS,
    SPAM_IP,
    acme_mail,
    dmarc,
    marketer,
    spf,
)

Record = tuple[str, str, str]

BIRCH = ("Birch & Pine Home", ("birchpine.example",))
BIRCH_IP, BIRCH_HELO = "198.51.100.20", "smtp.birchpine.example"
BIRCH_DNS: tuple[Record, ...] = (spf("birchpine.example", BIRCH_IP, "~all"),
                                 dmarc("birchpine.example", "none"))

SPAMMER_IP = "192.0.2.77"
"""The botnet host that sent the spam with the alias forged as its sender."""
SPAM_ID = "<20260311041652.7731@ylmf-pc>"
SPAM_SUBJECT = "Invoice 2026-0315 overdue"


def birch_mail(**fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": '"Birch & Pine Home" <hello@birchpine.example>',
        "mail_from": "bounces@birchpine.example", "client_ip": BIRCH_IP, "helo": BIRCH_HELO,
        "signed_by": ("birchpine.example",), "subject": "Our spring collection is here"}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


def org_dns(domain: str, ip: str, policy: str = "reject") -> tuple[Record, ...]:
    """SPF for the organisation and for its mail host (a null sender's SPF is its HELO's)."""
    return (spf(domain, ip), spf(f"mx1.{domain}", ip), dmarc(domain, policy))


def returned_headers(recipient: str, subject: str = SPAM_SUBJECT) -> str:
    """The headers of the spam as the bouncing server received it: the alias forged as sender."""
    return (f"Return-Path: <{ALIAS}>\n"
            f"Received: from ylmf-pc (unknown [{SPAMMER_IP}])\n"
            f"\tby mx1.{recipient.rpartition('@')[2]} with ESMTP id 4QzT1X0bJ7z9\n"
            f"\tfor <{recipient}>; Wed, 11 Mar 2026 04:16:52 +0000\n"
            f"From: \"Accounts Receivable\" <{ALIAS}>\n"
            f"To: <{recipient}>\n"
            f"Subject: {subject}\n"
            f"Date: Wed, 11 Mar 2026 05:16:49 +0100\n"
            f"Message-ID: {SPAM_ID}\n")


POSTFIX_FIELDS = f"X-Postfix-Queue-ID: 4QzT1X0bJ7z9\nX-Postfix-Sender: rfc822; {ALIAS}\n"


def dsn(from_header: str, mta: str, recipient: str, status: str, diagnostic: str, *,
        subject: str = "Undelivered Mail Returned to Sender", action: str = "failed",
        extra_headers: str = "", notice: str = "", mta_fields: str = POSTFIX_FIELDS) -> bytes:
    """An RFC 3464 delivery status notification that returns the spam's headers to the alias."""
    boundary = "4QzT1X0bJ7z9.1773202613/" + mta
    text = notice or (
        f"This is the mail system at host {mta}.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients. It's attached below.\n\n"
        f"<{recipient}>: {diagnostic}\n")
    return (
        f"From: {from_header}\n"
        f"To: {ALIAS}\n"
        f"Subject: {subject}\n"
        "Date: Wed, 11 Mar 2026 04:16:53 +0000 (UTC)\n"
        f"Message-ID: <20260311041653.4QzT1X0bJ7z9@{mta}>\n"
        f"{extra_headers}"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        f'\tboundary="{boundary}"\n'
        "Content-Transfer-Encoding: 7bit\n"
        "\n"
        "This is a MIME-encapsulated message.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Notification\n"
        "Content-Type: text/plain; charset=us-ascii\n"
        "\n"
        f"{text}\n"
        f"--{boundary}\n"
        "Content-Description: Delivery report\n"
        "Content-Type: message/delivery-status\n"
        "\n"
        f"Reporting-MTA: dns; {mta}\n"
        f"{mta_fields}"
        "Arrival-Date: Wed, 11 Mar 2026 04:16:52 +0000 (UTC)\n"
        "\n"
        f"Final-Recipient: rfc822; {recipient}\n"
        f"Original-Recipient: rfc822;{recipient}\n"
        f"Action: {action}\n"
        f"Status: {status}\n"
        f"Diagnostic-Code: smtp; {diagnostic}\n"
        "\n"
        f"--{boundary}\n"
        "Content-Description: Undelivered Message Headers\n"
        "Content-Type: text/rfc822-headers\n"
        "\n"
        f"{returned_headers(recipient)}"
        "\n"
        f"--{boundary}--\n").encode()


def read_receipt(name: str, address: str, reporting_ua: str) -> bytes:
    """An RFC 8098 message disposition notification for the spam, sent to its forged sender."""
    boundary = "----=_NextPart_000_01DA_5C3E1A2B.8F7D6E5C"
    return (
        f'From: "{name}" <{address}>\n'
        f"To: {ALIAS}\n"
        f"Subject: Read: {SPAM_SUBJECT}\n"
        "Date: Wed, 11 Mar 2026 09:02:11 +0000\n"
        f"Message-ID: <MDN.5C3E1A2B@{address.rpartition('@')[2]}>\n"
        f"In-Reply-To: {SPAM_ID}\n"
        "MIME-Version: 1.0\n"
        "Content-Type: multipart/report; report-type=disposition-notification;\n"
        f'\tboundary="{boundary}"\n'
        "\n"
        f"--{boundary}\n"
        "Content-Type: text/plain; charset=utf-8\n"
        "\n"
        f"Your message\n\n  To: {address}\n  Subject: {SPAM_SUBJECT}\n"
        "  Sent: Wednesday, 11 March 2026 05:16\n\n"
        "was read on Wednesday, 11 March 2026 09:02.\n"
        "\n"
        f"--{boundary}\n"
        "Content-Type: message/disposition-notification\n"
        "\n"
        f"Reporting-UA: {reporting_ua}\n"
        f"Final-Recipient: rfc822;{address}\n"
        f"Original-Message-ID: {SPAM_ID}\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n"
        "\n"
        f"--{boundary}--\n").encode()


def auto_reply(from_header: str, mail_from: str, ip: str, helo: str, subject: str,
               headers: tuple[tuple[str, str], ...], body: str,
               signed_by: tuple[str, ...] = ()) -> Mail:
    """An automatic answer to the spam, addressed to the alias it claimed to come from."""
    return Mail(from_header, mail_from, ip, helo, signed_by=signed_by, subject=subject,
                headers=(("In-Reply-To", SPAM_ID), ("References", SPAM_ID), *headers),
                body=body, day=9.0)


def keys_of(mail: Mail) -> tuple[Record, ...]:
    """The DKIM and ARC keys a message sealed beforehand needs published."""
    found: list[Record] = []
    for domain in mail.signed_by:
        key = ed25519(domain)
        found.append((f"{key.selector}._domainkey.{domain}", "TXT", key.record))
    for sealer in dict.fromkeys(s.sealer for s in mail.seals):
        key = rsa_key(sealer)
        found.append((f"{key.selector}._domainkey.{sealer}", "TXT", key.record))
    return tuple(found)


def changed_after_last_seal(mail: Mail, footer: bytes) -> Mail:
    """The mail as its last sealer passed it on, then given a footer by a hop that does not
    seal (a gateway's disclaimer): its ARC chain no longer verifies."""
    sealed = arriving(mail, ISSUED + timedelta(days=mail.day, minutes=-2), 1)
    return replace(mail, raw=sealed + footer.replace(b"\n", b"\r\n"), signed_by=(), seals=())


# --- the cast of the backscatter stories ---------------------------------------------------

NORTHWIND_IP = "203.0.113.40"
NORTHWIND_DNS = org_dns("northwind-trading.example", NORTHWIND_IP)
FABRIKAM_IP = "203.0.113.45"
FABRIKAM_DNS = org_dns("fabrikam-logistics.example", FABRIKAM_IP)
GMAIL_IP, GMAIL_HELO = "198.51.100.41", "mail-sor-f41.google.com"
GMAIL_DNS: tuple[Record, ...] = (spf(GMAIL_HELO, GMAIL_IP), spf("gmail.com", GMAIL_IP, "~all"),
                                 dmarc("googlemail.com", "none"), dmarc("gmail.com", "none"))
OLDHOST_IP = "203.0.113.50"
HARBOR_IP = "198.51.100.90"
HARBOR_DNS = org_dns("harbor-legal.example", HARBOR_IP, "quarantine")
CONTOSO_IP = "198.51.100.95"
CONTOSO_DNS = org_dns("contoso-pharma.example", CONTOSO_IP)
LUMEN_IP = "198.51.100.96"
LUMEN_DNS = org_dns("lumenlabs.example", LUMEN_IP)
BERGWERK_IP = "203.0.113.60"
BERGWERK_DNS = org_dns("bergwerk-maschinen.example", BERGWERK_IP, "quarantine")
LINDENBLICK_IP = "203.0.113.61"
LINDENBLICK_DNS = org_dns("ferienhof-lindenblick.example", LINDENBLICK_IP, "none")
BAYSIDE_IP = "203.0.113.62"
BAYSIDE_DNS = org_dns("bayside-bikes.example", BAYSIDE_IP, "none")
CLOUDNEST_IP = "198.51.100.97"
CLOUDNEST_DNS = org_dns("cloudnest-hosting.example", CLOUDNEST_IP)
MAILSHIELD_IP = "198.51.100.98"
MAILSHIELD_DNS = org_dns("mailshield.example", MAILSHIELD_IP)

POSTFIX_DSN = Mail(
    "", "", NORTHWIND_IP, "mx1.northwind-trading.example",
    raw=dsn("MAILER-DAEMON@mx1.northwind-trading.example (Mail Delivery System)",
            "mx1.northwind-trading.example", "j.harlow@northwind-trading.example", "5.1.1",
            "550 5.1.1 <j.harlow@northwind-trading.example>: Recipient address rejected: "
            "User unknown in local recipient table",
            extra_headers="Auto-Submitted: auto-replied\n"),
    day=9.0)

GMAIL_DSN = Mail(
    "", "", GMAIL_IP, GMAIL_HELO, signed_by=("googlemail.com",),
    raw=dsn("Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "mx.google.com",
            "ruth.okafor1986@gmail.com", "5.2.2",
            "552-5.2.2 The recipient's inbox is out of storage space. Please direct the "
            "recipient to https://support.google.com/mail/?p=OverQuotaPerm",
            subject="Delivery Status Notification (Failure)", mta_fields="",
            notice="** Address not found **\n\nYour message wasn't delivered to "
                   "ruth.okafor1986@gmail.com because the recipient's inbox is full.\n"),
    day=9.0)

EXCHANGE_NDR = Mail(
    "", "", FABRIKAM_IP, "mx1.fabrikam-logistics.example",
    signed_by=("fabrikam-logistics.example",),
    raw=dsn("Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@"
            "fabrikam-logistics.example>", "DB9PR02MB7321.eurprd02.prod.outlook.example",
            "accounts@fabrikam-logistics.example", "5.4.1",
            "550 5.4.1 Recipient address rejected: Access denied. [DB9PR02MB7321]",
            subject=f"Undeliverable: {SPAM_SUBJECT}", mta_fields="",
            extra_headers="X-MS-Exchange-Message-Is-Ndr:\n",
            notice="Your message to accounts@fabrikam-logistics.example couldn't be delivered."
                   "\n\naccounts wasn't found at fabrikam-logistics.example.\n"),
    day=9.0)

QMAIL_BOUNCE = Mail(
    "", "", OLDHOST_IP, "mail.oldhost.example",
    raw=(f"From: MAILER-DAEMON@mail.oldhost.example\nTo: {ALIAS}\n"
         "Subject: failure notice\nDate: 11 Mar 2026 04:17:02 -0000\n"
         "Message-ID: <20260311041702.22817.qmail@mail.oldhost.example>\n\n"
         "Hi. This is the qmail-send program at mail.oldhost.example.\n"
         "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
         "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
         "<sales@oldhost.example>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
         "--- Below this line is a copy of the message.\n\n"
         f"{returned_headers('sales@oldhost.example')}\nPlease find the invoice attached.\n"
         ).encode(),
    day=9.0)

EXCHANGE_OOF = auto_reply(
    '"Tomasz Nowak" <t.nowak@contoso-pharma.example>', "", CONTOSO_IP,
    "mx1.contoso-pharma.example", f"Automatic reply: {SPAM_SUBJECT}",
    (("Auto-Submitted", "auto-generated"), ("X-Auto-Response-Suppress", "All"),
     ("Thread-Topic", SPAM_SUBJECT), ("X-MS-Exchange-Inbox-Rules-Loop",
                                      "t.nowak@contoso-pharma.example")),
    "I am out of the office until 23 March with limited access to email.\n"
    "For urgent matters please contact procurement@contoso-pharma.example.\n",
    signed_by=("contoso-pharma.example",))

WORKSPACE_VACATION = auto_reply(
    '"Priya Raman" <priya@lumenlabs.example>', "priya@lumenlabs.example", LUMEN_IP,
    "mail-lumenlabs.example", f"Re: {SPAM_SUBJECT}",
    (("Auto-Submitted", "auto-replied"), ("Precedence", "bulk")),
    "Thanks for your email. I'm on parental leave until May and won't be reading mail.\n",
    signed_by=("lumenlabs.example",))

SIEVE_VACATION = auto_reply(
    "m.keller@bergwerk-maschinen.example", "", BERGWERK_IP, "mx1.bergwerk-maschinen.example",
    f"Auto: {SPAM_SUBJECT}",
    (("Auto-Submitted", "auto-replied (vacation)"), ("Precedence", "bulk"),
     ("X-Sieve", "Pigeonhole Sieve 0.5.21")),
    "Ich bin bis zum 20. März nicht im Büro. / I am out of the office until 20 March.\n",
    signed_by=("bergwerk-maschinen.example",))

SPAM_ELSEWHERE = Mail(
    '"Accounts Receivable" <billing@invoice-center.example>', "billing@invoice-center.example",
    SPAM_IP, "ylmf-pc", subject=SPAM_SUBJECT, body="Please find the invoice attached.\n",
    day=30.0)

# --- the cast of the ARC stories -----------------------------------------------------------

LISTS_IP, LISTS_HELO = "198.51.100.60", "mail.lists.example"
LISTS_DNS: tuple[Record, ...] = (spf("lists.example", LISTS_IP), dmarc("lists.example", "none"))
FWD_IP, FWD_HELO = "203.0.113.80", "relay.userfwd.example"
"""The person's own forwarding service: it tags the subject and seals what it saw."""
FWD_DNS: tuple[Record, ...] = (spf("userfwd.example", FWD_IP), dmarc("userfwd.example", "none"))
QUICK_IP, QUICK_HELO = "192.0.2.120", "mx.quickforward.example"
"""A forwarding service nobody configured: its seal is its own word."""
QUICK_DNS: tuple[Record, ...] = (spf("quickforward.example", QUICK_IP),)

ACME_PASSED = ("arc=none; dkim=pass header.d=acme-outfitters.example header.s=s1; "
               "spf=pass (lists.example: domain of bounce@acme-outfitters.example designates "
               f"{ACME_IP} as permitted sender) smtp.mailfrom=bounce@acme-outfitters.example; "
               "dmarc=pass (p=reject dis=none) header.from=acme-outfitters.example")
BIRCH_PASSED = ("arc=none; dkim=pass header.d=birchpine.example header.s=s1; "
                "spf=pass smtp.mailfrom=bounces@birchpine.example; "
                "dmarc=pass (p=none dis=none) header.from=birchpine.example")
DEALBLASTER_PASSED = ("arc=none; dkim=pass header.d=dealblaster.example header.s=s1; "
                      "spf=pass smtp.mailfrom=bounce@dealblaster.example; "
                      "dmarc=pass (p=none dis=none) header.from=dealblaster.example")
LIST_FOOTER = (b"\n_______________________________________________\n"
               b"Acme Club mailing list -- acme-club@lists.example\n"
               b"To unsubscribe send an email to acme-club-leave@lists.example\n")
FWD_FOOTER = b"\n--\nForwarded by userfwd.example for shop.k7f3qd4m\n"
GATEWAY_DISCLAIMER = (b"\n[External] This message came from outside your organisation. "
                      b"Do not click links unless you trust the sender.\n")


def via_list(mail: Mail, *seals: Seal) -> Mail:
    """The mail as a list server passes it on: its envelope, host and seals."""
    return replace(mail, mail_from="acme-club-bounces+shop.k7f3qd4m=canary.example.org"
                                   "@lists.example",
                   client_ip=LISTS_IP, helo=LISTS_HELO, seals=seals,
                   headers=(*mail.headers, ("List-Id", "Acme Club <acme-club.lists.example>"),
                            ("Sender", "acme-club-bounces@lists.example")))


def via_forwarder(mail: Mail, *seals: Seal, ip: str = FWD_IP, helo: str = FWD_HELO,
                  envelope: str = "srs0=hx8q=jk=dealblaster.example=offers@userfwd.example"
                  ) -> Mail:
    """The mail as a forwarding service passes it on (SRS envelope, its host, its seals)."""
    return replace(mail, mail_from=envelope, client_ip=ip, helo=helo, seals=seals)


ACME_WITH_RELAY = ("acme-outfitters.example", "acmemail.example")
"""Acme declared with the second domain its forwarding relay runs on."""
RELAY_IP = "198.51.100.77"

LIST_SEAL = Seal("lists.example", ACME_PASSED, rewrite_subject="[Acme Club]", footer=LIST_FOOTER)
LIST_SEAL_BIRCH = Seal("lists.example", BIRCH_PASSED, rewrite_subject="[Birch Friends]",
                       footer=LIST_FOOTER)
FWD_SEAL_DEALBLASTER = Seal("userfwd.example", DEALBLASTER_PASSED, rewrite_subject="[shop]",
                            footer=FWD_FOOTER)

BROKEN_LIST_ACME = changed_after_last_seal(via_list(acme_mail(), LIST_SEAL), GATEWAY_DISCLAIMER)
BROKEN_LIST_BIRCH = changed_after_last_seal(via_list(birch_mail(), LIST_SEAL_BIRCH),
                                            GATEWAY_DISCLAIMER)
BROKEN_FWD_DEALBLASTER = changed_after_last_seal(via_forwarder(marketer(), FWD_SEAL_DEALBLASTER),
                                                 GATEWAY_DISCLAIMER)


SCENARIOS: list[Scenario] = [
    # --- backscatter ----------------------------------------------------------------------------
    Scenario(
        "bounce-postfix-dsn-unknown-user", *ACME, (POSTFIX_DSN,), (Relation.BACKSCATTER,),
        Verdict.LEAKED,
        "A Postfix bounce (null sender, multipart/report) returning spam that forged the alias "
        "as its sender: the address is in use by a spammer, Northwind never had it.",
        dns=ACME_DNS + NORTHWIND_DNS),
    Scenario(
        "bounce-gmail-dsn-dkim-signed", *ACME, (GMAIL_DSN,), (Relation.BACKSCATTER,),
        Verdict.LEAKED,
        "Gmail's DKIM-signed delivery failure for a message the alias never sent: Google "
        "authenticated its own bounce, which accuses nobody.", dns=ACME_DNS + GMAIL_DNS),
    Scenario(
        "bounce-exchange-ndr-authenticated", *ACME, (EXCHANGE_NDR,), (Relation.BACKSCATTER,),
        Verdict.LEAKED,
        "An Exchange non-delivery report from Fabrikam's tenant, DKIM-aligned under p=reject, "
        "sent by 'Microsoft Outlook' rather than MAILER-DAEMON: still only a bounce.",
        dns=ACME_DNS + FABRIKAM_DNS),
    Scenario(
        "bounce-qmail-plain-text", *ACME, (QMAIL_BOUNCE,), (Relation.BACKSCATTER,),
        Verdict.LEAKED,
        "An old qmail 'failure notice' in plain text (no delivery-status part) from "
        "MAILER-DAEMON with the null sender: a bounce of forged mail.",
        dns=(*ACME_DNS, spf("mail.oldhost.example", OLDHOST_IP))),
    Scenario(
        "bounce-dsn-from-postmaster-with-envelope", *ACME,
        (Mail("", "postmaster@mailguard.riverbend-clinic.example", "203.0.113.66",
              "mailguard.riverbend-clinic.example", signed_by=("riverbend-clinic.example",),
              raw=dsn("postmaster@mailguard.riverbend-clinic.example",
                      "mailguard.riverbend-clinic.example", "reception@riverbend-clinic.example",
                      "5.7.1", "554 5.7.1 Message rejected: spam score 14.2 exceeds 6.0",
                      subject="Message delivery failed: rejected as spam"),
              day=9.0),),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "A filtering gateway's delivery report from postmaster with a non-null envelope, "
        "DKIM-aligned: it rejected spam in the alias's name and told the forged sender.",
        dns=ACME_DNS + org_dns("riverbend-clinic.example", "203.0.113.66")
        + (spf("mailguard.riverbend-clinic.example", "203.0.113.66"),)),
    Scenario(
        "bounce-delayed-delivery-warning", *ACME,
        (Mail("", "", NORTHWIND_IP, "mx1.northwind-trading.example",
              raw=dsn("MAILER-DAEMON@mx1.northwind-trading.example (Mail Delivery System)",
                      "mx1.northwind-trading.example", "orders@northwind-trading.example",
                      "4.4.1", "451 4.4.1 connection timed out",
                      subject="Delayed Mail (still being retried)", action="delayed",
                      extra_headers="Auto-Submitted: auto-replied\n"),
              day=5.0, times=3, every=0.2),),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "Three 'delayed mail' warnings (Action: delayed) for the same forged message: "
        "repetition does not make a bounce more than a bounce.",
        dns=ACME_DNS + NORTHWIND_DNS),
    Scenario(
        "bounce-read-receipt-outlook", *ACME,
        (Mail("", "d.whitfield@harbor-legal.example", HARBOR_IP, "mx1.harbor-legal.example",
              signed_by=("harbor-legal.example",),
              raw=read_receipt("Dana Whitfield", "d.whitfield@harbor-legal.example",
                               "HARBOR-EX01.harbor-legal.example; Microsoft Exchange Server"),
              day=9.0),),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "A read receipt (message/disposition-notification) from a law firm's employee for spam "
        "that asked for one in the alias's name, DKIM-aligned: backscatter, not a customer "
        "list.", dns=ACME_DNS + HARBOR_DNS),
    Scenario(
        "bounce-exchange-out-of-office-null-sender", *ACME, (EXCHANGE_OOF,),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "An Exchange 'Automatic reply' with the null sender and Auto-Submitted: auto-generated, "
        "In-Reply-To the spam: an out-of-office answer to a forged sender.",
        dns=ACME_DNS + CONTOSO_DNS),
    Scenario(
        "bounce-workspace-vacation-dkim-aligned", *ACME, (WORKSPACE_VACATION,),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "A vacation responder with Auto-Submitted: auto-replied, sent from the person's own "
        "address and DKIM-aligned under p=reject: authentication does not make it a sender "
        "who was given the alias.", dns=ACME_DNS + LUMEN_DNS, mentions=("auto-replied",)),
    Scenario(
        "bounce-gmail-user-vacation", *ACME,
        (auto_reply("Ruth Okafor <ruth.okafor1986@gmail.com>", "ruth.okafor1986@gmail.com",
                    GMAIL_IP, GMAIL_HELO, f"Re: {SPAM_SUBJECT}",
                    (("Auto-Submitted", "auto-replied"), ("Precedence", "bulk")),
                    "I'm travelling until the 20th with no internet access.\n",
                    signed_by=("gmail.com",)),),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "A Gmail user's vacation reply to spam forged in the alias's name: a mailbox's "
        "auto-reply, backscatter.", dns=ACME_DNS + GMAIL_DNS),
    Scenario(
        "bounce-sieve-vacation-null-sender", *ACME, (SIEVE_VACATION,), (Relation.BACKSCATTER,),
        Verdict.LEAKED,
        "A Dovecot Sieve vacation reply ('Auto-Submitted: auto-replied (vacation)', null "
        "sender) to the forged sender.", dns=ACME_DNS + BERGWERK_DNS),
    Scenario(
        "bounce-sieve-vacation-sent-from-recipient", *ACME,
        (auto_reply("info@ferienhof-lindenblick.example", "info@ferienhof-lindenblick.example",
                    LINDENBLICK_IP, "mx1.ferienhof-lindenblick.example",
                    f"Auto: {SPAM_SUBJECT}",
                    (("Auto-Submitted", "auto-replied (vacation)"), ("Precedence", "bulk"),
                     ("X-Sieve", "Pigeonhole Sieve 0.5.21")),
                    "Wir sind in der Winterpause bis 15. März. / We are closed until 15 March.\n",
                    signed_by=("ferienhof-lindenblick.example",)),),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "A Pigeonhole vacation reply sent from the recipient's address "
        "(sieve_vacation_send_from_recipient) and DKIM-aligned: RFC 3834 lets the keyword "
        "carry a comment, 'auto-replied (vacation)' is still an auto-reply.",
        dns=ACME_DNS + LINDENBLICK_DNS),
    Scenario(
        "bounce-qmail-autorespond-without-headers", *ACME,
        (Mail("", "help@bayside-bikes.example", BAYSIDE_IP, "mx1.bayside-bikes.example",
              raw=("Delivered-To: Autoresponder\n"
                   f"To: {ALIAS}\nFrom: help@bayside-bikes.example\n"
                   f"Subject: Re: {SPAM_SUBJECT}\n"
                   "Date: Wed, 11 Mar 2026 04:17:30 -0000\n"
                   "Message-ID: <1773202650.31337.autorespond@mx1.bayside-bikes.example>\n\n"
                   "Thanks for contacting Bayside Bikes! We answer every message within two "
                   "working days.\n\n-------- Original Message --------\n\n"
                   + "".join(f"> {line}\n" for line in
                             returned_headers("help@bayside-bikes.example").splitlines())
                   + "> \n> Please find the invoice attached.\n").encode(),
              day=9.0),),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "qmail's autorespond answers with 'Re:' and the quoted original (From: the alias, sent "
        "from a botnet host) but no Auto-Submitted header and a non-null envelope: SPF-aligned, "
        "it is still an automatic reply to spam, not a shop that was given the address.",
        dns=ACME_DNS + BAYSIDE_DNS),
    Scenario(
        "bounce-helpdesk-ticket-acknowledgement", *ACME,
        (auto_reply('"CloudNest Support" <support@cloudnest-hosting.example>',
                    "support@cloudnest-hosting.example", CLOUDNEST_IP,
                    "mx1.cloudnest-hosting.example", f"[#48213] Re: {SPAM_SUBJECT}",
                    (("Auto-Submitted", "auto-replied"), ("X-Auto-Response-Suppress", "All")),
                    "We received your request and opened ticket #48213. A member of our team "
                    "will get back to you shortly.\n",
                    signed_by=("cloudnest-hosting.example",)),),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "A help desk's ticket acknowledgement (auto-replied) for a 'request' the spam made in "
        "the alias's name: the company's customer never wrote to CloudNest.",
        dns=ACME_DNS + CLOUDNEST_DNS),
    Scenario(
        "bounce-challenge-response-null-sender", *ACME,
        (Mail('"MailShield Verification" <verify@mailshield.example>', "", MAILSHIELD_IP,
              "mx1.mailshield.example", signed_by=("mailshield.example",),
              subject=f"Please confirm your message: {SPAM_SUBJECT}",
              headers=(("In-Reply-To", SPAM_ID),),
              body="r.osei@osei-consulting.example uses MailShield to block spam. To deliver "
                   "your message, click the link below to prove you are a person.\n",
              day=9.0),),
        (Relation.BACKSCATTER,), Verdict.LEAKED,
        "A challenge-response filter's 'please confirm' sent with the null sender to the "
        "forged sender of spam: classic backscatter, however it authenticates.",
        dns=ACME_DNS + MAILSHIELD_DNS),
    Scenario(
        "bounce-storm-from-many-organisations", *ACME,
        (replace(POSTFIX_DSN, times=6, every=0.05), replace(EXCHANGE_NDR, times=4, every=0.05),
         replace(GMAIL_DSN, times=5, every=0.05), replace(EXCHANGE_OOF, times=2, every=0.1),
         replace(SIEVE_VACATION, times=2, every=0.1)),
        (Relation.BACKSCATTER,) * 5, Verdict.LEAKED,
        "A spam run forging the alias brings nineteen bounces and auto-replies from five "
        "organisations in a day: the address leaked, none of them has it from Acme.",
        dns=ACME_DNS + NORTHWIND_DNS + FABRIKAM_DNS + GMAIL_DNS + CONTOSO_DNS + BERGWERK_DNS),
    Scenario(
        "bounce-backscatter-then-marketer", *ACME,
        (POSTFIX_DSN, WORKSPACE_VACATION, marketer(day=40.0, times=4, every=5)),
        (Relation.BACKSCATTER, Relation.BACKSCATTER, Relation.THIRD_PARTY), Verdict.SHARED,
        "Bounces first, then a marketer mailing the alias for weeks, DKIM-aligned as itself: "
        "the backscatter proves nothing, the marketer does.", guilty=True,
        dns=ACME_DNS + NORTHWIND_DNS + LUMEN_DNS + MARKETER_DNS),
    Scenario(
        "bounce-fake-bounce-claiming-the-company", *ACME,
        (Mail('"Mail Delivery System" <MAILER-DAEMON@acme-outfitters.example>', "",
              "192.0.2.66", "localhost", subject="Undelivered messages are waiting",
              headers=(("Auto-Submitted", "auto-replied"),),
              body="3 incoming messages for your account are on hold. Release them here.\n",
              day=12.0),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "A phishing 'bounce' claiming Acme's own MAILER-DAEMON, from a host Acme's SPF refuses: "
        "it fails Acme's p=reject, a forgery of the company, not backscatter of someone else.",
        dns=ACME_DNS),
    Scenario(
        "bounce-auto-generated-newsletter-is-not-backscatter", *ACME,
        (marketer(headers=(("Auto-Submitted", "auto-generated"), ("Precedence", "bulk"),
                           ("List-Unsubscribe", "<https://dealblaster.example/u/8f3k2>")),
                  times=3, every=7),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "A marketer's DKIM-aligned newsletter marked Auto-Submitted: auto-generated is mail "
        "it started itself, not a reply to anything: Deal Blaster has the address.",
        guilty=True, dns=ACME_DNS + MARKETER_DNS, mentions=("dealblaster.example",)),
    Scenario(
        "bounce-own-auto-generated-notification", *ACME,
        (acme_mail(from_header='"Acme Outfitters" <orders@acme-outfitters.example>',
                   subject="Your order A-10482 has shipped",
                   headers=(("Auto-Submitted", "auto-generated"),)),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Acme's own shipping notification, auto-generated and DKIM-aligned: the company's "
        "mail, not backscatter.", dns=ACME_DNS),
    Scenario(
        "bounce-own-notification-with-null-sender", *ACME,
        (acme_mail(from_header='"Acme Outfitters" <no-reply@acme-outfitters.example>',
                   mail_from="", subject="Your password was changed",
                   headers=(("Auto-Submitted", "auto-generated"),)),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Acme's account system sends its notices with the null envelope sender; DKIM aligns "
        "with Acme, so it is the company's own mail, not a bounce.", dns=ACME_DNS),

    # --- ARC ------------------------------------------------------------------------------------
    Scenario(
        "arc-own-relay-subject-tag", ACME[0], ACME_WITH_RELAY,
        (acme_mail(client_ip=RELAY_IP, helo="fwd.acmemail.example",
                   mail_from="srs0=k3jd=ab=acme-outfitters.example=news@acmemail.example",
                   seals=(Seal("acmemail.example", ACME_PASSED,
                               authserv_id="fwd.acmemail.example",
                               rewrite_subject="[Acme Rewards]"),)),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Acme's own relay on its second domain acmemail.example tagged the subject (breaking "
        "Acme's DKIM) and sealed what it verified on arrival: the company's seal vouches for "
        "the company's mail.",
        dns=(*ACME_DNS, spf("acmemail.example", RELAY_IP), dmarc("acmemail.example", "reject")),
        mentions=("ARC",)),
    Scenario(
        "arc-trusted-list-forwards-company", *ACME, (via_list(acme_mail(), LIST_SEAL),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Acme's club list on lists.example tags the subject and adds a footer, breaking DKIM; "
        "the person trusts lists.example, whose seal recorded Acme's DMARC pass.",
        dns=ACME_DNS + LISTS_DNS, trusted_sealers=("lists.example",)),
    Scenario(
        "arc-untrusted-list-forwards-company-reject", *ACME,
        (via_list(acme_mail(), LIST_SEAL),), (Relation.SPOOFED,), Verdict.LEAKED,
        "The same list seal, but nobody trusts lists.example: its word is a stranger's, and the "
        "message as it arrives fails Acme's p=reject.", dns=ACME_DNS + LISTS_DNS),
    Scenario(
        "arc-untrusted-list-forwards-company-p-none", *BIRCH,
        (via_list(birch_mail(), LIST_SEAL_BIRCH),), (Relation.UNPROVEN,), Verdict.CLEAN,
        "Birch & Pine's mail through an untrusted list fails its DMARC p=none: its own mail "
        "mangled by a list, or a forgery, proven neither way.", dns=BIRCH_DNS + LISTS_DNS),
    Scenario(
        "arc-trusted-list-forwards-p-none-company", *BIRCH,
        (via_list(birch_mail(), LIST_SEAL_BIRCH),), (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "With lists.example trusted, its seal's record of Birch & Pine's DKIM and DMARC pass "
        "makes the mangled message the company's own.", dns=BIRCH_DNS + LISTS_DNS,
        trusted_sealers=("lists.example",)),
    Scenario(
        "arc-two-seals-trusted-first", *ACME,
        (via_forwarder(via_list(acme_mail(), LIST_SEAL),
                       LIST_SEAL, Seal("quickforward.example",
                                       "arc=pass (i=1); dkim=fail header.d=acme-outfitters.example;"
                                       " dmarc=fail (p=reject) header.from=acme-outfitters.example",
                                       footer=b"\n-- \nForwarded by QuickForward\n"),
                       ip=QUICK_IP, helo=QUICK_HELO,
                       envelope="srs0=9sd1=ab=lists.example=acme-club-bounces"
                                "@quickforward.example"),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Two hops: the trusted list sealed Acme's DMARC pass (i=1), then an untrusted "
        "forwarder added a footer and sealed again (i=2); the chain verifies, so the trusted "
        "first seal is believed.",
        dns=ACME_DNS + LISTS_DNS + QUICK_DNS, trusted_sealers=("lists.example",)),
    Scenario(
        "arc-two-seals-trusted-second-verified-dkim", *ACME,
        (via_list(acme_mail(),
                  Seal("quickforward.example", ACME_PASSED.replace("lists.example",
                                                                   "quickforward.example")),
                  replace(LIST_SEAL, results=ACME_PASSED.replace(
                      "arc=none", "arc=pass (i=1 d=quickforward.example)"))),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "An untrusted forwarder passed Acme's mail on unchanged and sealed (i=1); the trusted "
        "list then verified Acme's DKIM itself and sealed (i=2) before adding its tag and "
        "footer.", dns=ACME_DNS + LISTS_DNS + QUICK_DNS, trusted_sealers=("lists.example",)),
    Scenario(
        "arc-two-seals-stranger-claims-trusted-denies", *ACME,
        (via_list(Mail('"Acme Security" <security@acme-outfitters.example>',
                       "x@quickforward.example", QUICK_IP, QUICK_HELO,
                       subject="Verify your account"),
                  Seal("quickforward.example",
                       "arc=none; dkim=pass header.d=acme-outfitters.example; "
                       "dmarc=pass header.from=acme-outfitters.example"),
                  Seal("lists.example",
                       "arc=pass (i=1); dkim=none; spf=pass smtp.mailfrom=quickforward.example; "
                       "dmarc=fail (p=reject) header.from=acme-outfitters.example",
                       rewrite_subject="[Acme Club]", footer=LIST_FOOTER)),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "A stranger's first seal claims Acme passed; the trusted list's own record (i=2) says "
        "DMARC failed when it arrived: only the trusted word counts, a p=reject failure.",
        dns=ACME_DNS + LISTS_DNS + QUICK_DNS, trusted_sealers=("lists.example",)),
    Scenario(
        "arc-broken-chain-company-reject", *ACME, (BROKEN_LIST_ACME,), (Relation.SPOOFED,),
        Verdict.LEAKED,
        "A gateway appended a disclaimer after the trusted list's seal, so the ARC chain fails: "
        "the seal no longer speaks for this message, which fails Acme's p=reject.",
        dns=ACME_DNS + LISTS_DNS + keys_of(via_list(acme_mail(), LIST_SEAL)),
        trusted_sealers=("lists.example",)),
    Scenario(
        "arc-broken-chain-company-p-none", *BIRCH, (BROKEN_LIST_BIRCH,), (Relation.UNPROVEN,),
        Verdict.CLEAN,
        "The same broken chain for Birch & Pine, which publishes p=none: its DMARC failure "
        "proves nothing either way.",
        dns=BIRCH_DNS + LISTS_DNS + keys_of(via_list(birch_mail(), LIST_SEAL_BIRCH)),
        trusted_sealers=("lists.example",)),
    Scenario(
        "arc-trusted-forwarder-vouches-third-party", *ACME,
        (via_forwarder(marketer(times=3, every=6), FWD_SEAL_DEALBLASTER),),
        (Relation.THIRD_PARTY,), Verdict.SHARED,
        "The person's own forwarding service (trusted) tagged the subject, breaking Deal "
        "Blaster's DKIM, and sealed that its DMARC passed on arrival: Deal Blaster has the "
        "address.", guilty=True, dns=ACME_DNS + MARKETER_DNS + FWD_DNS,
        trusted_sealers=("userfwd.example",), mentions=("ARC",)),
    Scenario(
        "arc-untrusted-forwarder-third-party", *ACME,
        (via_forwarder(marketer(times=3, every=6), FWD_SEAL_DEALBLASTER),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "The same forwarded marketing, but the sealer is trusted by nobody: Deal Blaster's "
        "name is unauthenticated as it arrives, so nobody is proven to have the address.",
        dns=ACME_DNS + MARKETER_DNS + FWD_DNS),
    Scenario(
        "arc-broken-chain-third-party", *ACME, (BROKEN_FWD_DEALBLASTER,),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "Deal Blaster's mail sealed by the trusted forwarder, then changed by a hop that did "
        "not seal: the failed chain vouches for nothing, the marketer is unauthenticated.",
        dns=ACME_DNS + MARKETER_DNS + FWD_DNS
        + keys_of(via_forwarder(marketer(), FWD_SEAL_DEALBLASTER)),
        trusted_sealers=("userfwd.example",)),
    Scenario(
        "arc-trusted-seal-for-another-from-third-party", *ACME,
        (Mail('"Coupon Crate" <deals@couponcrate.example>', "x@quickforward.example", QUICK_IP,
              QUICK_HELO, subject="Your exclusive coupons", day=20.0,
              seals=(Seal("lists.example", DEALBLASTER_PASSED.replace("arc=none; ", "")),
                     Seal("quickforward.example",
                          "arc=pass (i=1); dkim=none; dmarc=pass "
                          "header.from=couponcrate.example"))),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "The trusted list's seal (i=1) recorded a DMARC pass for dealblaster.example; an "
        "untrusted hop then sealed a message From couponcrate.example: no trusted word covers "
        "Coupon Crate, which is unauthenticated, so it must not be accused.",
        dns=ACME_DNS + QUICK_DNS + (spf("couponcrate.example", "203.0.113.30"),
                                    dmarc("couponcrate.example", "quarantine")),
        trusted_sealers=("lists.example",)),
    Scenario(
        "arc-trusted-seal-for-another-from-company", *ACME,
        (Mail('"Acme Security" <security@acme-outfitters.example>', "x@quickforward.example",
              QUICK_IP, QUICK_HELO, subject="Verify your account", day=20.0,
              seals=(Seal("lists.example", DEALBLASTER_PASSED.replace("arc=none; ", "")),
                     Seal("quickforward.example",
                          "arc=pass (i=1); dkim=none; dmarc=pass "
                          "header.from=acme-outfitters.example"))),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "A trusted seal that vouched for dealblaster.example's DMARC, replayed under an "
        "untrusted re-seal onto a message From Acme: nothing trusted vouches for Acme, and it "
        "fails Acme's p=reject.",
        dns=ACME_DNS + QUICK_DNS, trusted_sealers=("lists.example",)),

    # --- many messages --------------------------------------------------------------------------
    Scenario(
        "many-marketer-every-four-days", *ACME,
        (acme_mail(day=2.0, times=4, every=7), marketer(day=21.0, times=8, every=4)),
        (Relation.FIRST_PARTY, Relation.THIRD_PARTY), Verdict.SHARED,
        "From day 21 a marketer mails the alias every four days for a month, DKIM-aligned as "
        "itself: Acme's list reached it (high confidence).", guilty=True,
        dns=ACME_DNS + MARKETER_DNS, mentions=("dealblaster.example",)),
    Scenario(
        "many-own-newsletter-every-four-days", *ACME,
        (acme_mail(day=2.0, times=8, every=4),), (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Eight of Acme's own newsletters, four days apart, all DKIM-aligned: frequent, but "
        "the company's own.", dns=ACME_DNS),
    Scenario(
        "many-two-marketers", *ACME,
        (marketer(day=18.0, times=5, every=4),
         marketer("couponcrate.example", from_header='"Coupon Crate" <deals@couponcrate.example>',
                  client_ip="203.0.113.30", day=26.0, times=4, every=6)),
        (Relation.THIRD_PARTY, Relation.THIRD_PARTY), Verdict.SHARED,
        "Two unrelated marketers, each authenticated as itself, mail the alias within weeks of "
        "each other: the address was sold or shared.", guilty=True,
        dns=ACME_DNS + MARKETER_DNS + (spf("couponcrate.example", "203.0.113.30"),
                                       dmarc("couponcrate.example", "quarantine"))),
    Scenario(
        "many-two-spammers", *ACME,
        (Mail('"Prize Centre" <winner@prize-centre.example>', "winner@prize-centre.example",
              SPAM_IP, "ylmf-pc", subject="Claim your reward", day=18.0, times=5, every=4),
         Mail('"Crypto Desk" <desk@fastcoin-news.example>', "bounce@mailer.botnet.example",
              "192.0.2.150", "WIN-3K7H2", subject="This coin will 50x", day=26.0, times=4,
              every=6)),
        (Relation.UNVERIFIED, Relation.UNVERIFIED), Verdict.LEAKED,
        "Two spam senders over weeks, neither authenticated: the address leaked, nobody is "
        "proven to have it.",
        dns=(*ACME_DNS, spf("prize-centre.example", "203.0.113.250", "~all"),
             dmarc("fastcoin-news.example", "reject"))),
    Scenario(
        "many-own-mail-plus-one-spam", *ACME,
        (acme_mail(day=1.0, times=6, every=5), SPAM_ELSEWHERE),
        (Relation.FIRST_PARTY, Relation.UNVERIFIED), Verdict.LEAKED,
        "A month of Acme's own mail and one unauthenticated spam: the address is out, but "
        "nothing names a business that has it.",
        dns=(*ACME_DNS, spf("invoice-center.example", "203.0.113.251"))),
    Scenario(
        "many-p-none-company-failing-only", *BIRCH,
        (birch_mail(client_ip="192.0.2.180", helo="out.bulkmail-relay.example",
                    mail_from="bnc@bulkmail-relay.example", signed_by=(), times=4, every=7),),
        (Relation.UNPROVEN,), Verdict.CLEAN,
        "Four messages claiming Birch & Pine from a host its SPF does not list, unsigned, under "
        "p=none: its own mail through an unknown service or a forgery, proven neither way.",
        dns=(*BIRCH_DNS, spf("bulkmail-relay.example", "192.0.2.180"))),
    Scenario(
        "many-p-none-company-failing-plus-marketer", *BIRCH,
        (birch_mail(client_ip="192.0.2.180", helo="out.bulkmail-relay.example",
                    mail_from="bnc@bulkmail-relay.example", signed_by=(), times=3, every=7),
         marketer(day=30.0, times=3, every=5)),
        (Relation.UNPROVEN, Relation.THIRD_PARTY), Verdict.SHARED,
        "Unproven mail in Birch & Pine's name, then a marketer authenticated as itself: the "
        "marketer alone proves the address reached a business.", guilty=True,
        dns=BIRCH_DNS + MARKETER_DNS + (spf("bulkmail-relay.example", "192.0.2.180"),)),
    Scenario(
        "many-own-mail-and-backscatter", *ACME,
        (acme_mail(day=1.0, times=5, every=6), replace(POSTFIX_DSN, day=20.0, times=3, every=0.1),
         replace(EXCHANGE_OOF, day=20.1)),
        (Relation.FIRST_PARTY, Relation.BACKSCATTER, Relation.BACKSCATTER), Verdict.LEAKED,
        "Acme's own newsletters plus a burst of bounces and an out-of-office reply to spam "
        "forged in the alias's name: leaked, no business accused.",
        dns=ACME_DNS + NORTHWIND_DNS + CONTOSO_DNS),
]
