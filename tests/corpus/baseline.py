"""Baseline: the company's own mail, a marketer it sold the list to, spam, forgeries.

The cast: Acme Outfitters (acme-outfitters.example, DMARC p=reject) gave its
alias to nobody else; the other senders are who they say they are unless a
scenario says otherwise.
"""

from __future__ import annotations

from canary.relation import Relation
from canary.report import Verdict
from corpus import Mail, Scenario, Seal

ACME = ("Acme Outfitters", ("acme-outfitters.example",))
ACME_IP, ACME_HELO = "198.51.100.10", "mail.acme-outfitters.example"
MARKETER_IP = "203.0.113.25"
SPAM_IP = "192.0.2.99"


def spf(domain: str, ip: str, all_: str = "-all") -> tuple[str, str, str]:
    return (domain, "TXT", f"v=spf1 ip4:{ip} {all_}")


def dmarc(domain: str, policy: str) -> tuple[str, str, str]:
    return (f"_dmarc.{domain}", "TXT", f"v=DMARC1; p={policy}")


ACME_DNS = (spf("acme-outfitters.example", ACME_IP), dmarc("acme-outfitters.example", "reject"))


def acme_mail(**fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": '"Acme Outfitters" <news@acme-outfitters.example>',
        "mail_from": "bounce@acme-outfitters.example", "client_ip": ACME_IP,
        "helo": ACME_HELO, "signed_by": ("acme-outfitters.example",),
        "subject": "New arrivals for spring"}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


def marketer(domain: str = "dealblaster.example", **fields: object) -> Mail:
    base: dict[str, object] = {
        "from_header": f'"Deal Blaster" <offers@{domain}>', "mail_from": f"bounce@{domain}",
        "client_ip": MARKETER_IP, "helo": f"mta.{domain}", "signed_by": (domain,),
        "subject": "You have been selected for an exclusive offer", "day": 24.0}
    base.update(fields)
    return Mail(**base)  # type: ignore[arg-type]


MARKETER_DNS = (spf("dealblaster.example", MARKETER_IP), dmarc("dealblaster.example", "none"))

SCENARIOS = [
    Scenario(
        "own-newsletter", *ACME, (acme_mail(times=4, every=7),), (Relation.FIRST_PARTY,),
        Verdict.CLEAN, "Acme's own newsletter, DKIM-signed by Acme and passing its DMARC.",
        dns=ACME_DNS, mentions=("acme-outfitters.example",)),
    Scenario(
        "own-mail-spf-only", *ACME, (acme_mail(signed_by=()),), (Relation.FIRST_PARTY,),
        Verdict.CLEAN, "Acme's mail server, authorised by Acme's SPF; SPF aligns with From.",
        dns=ACME_DNS),
    Scenario(
        "marketer-after-sale", *ACME,
        (acme_mail(times=3, every=7), marketer(times=6, every=3)),
        (Relation.FIRST_PARTY, Relation.THIRD_PARTY), Verdict.SHARED,
        "Three weeks in, an unrelated marketer writes to the alias, DKIM-signed as itself: "
        "Acme's list reached it.", guilty=True, dns=ACME_DNS + MARKETER_DNS,
        mentions=("dealblaster.example",)),
    Scenario(
        "single-marketer-message", *ACME, (marketer(),), (Relation.THIRD_PARTY,),
        Verdict.SHARED, "One authenticated message from an unrelated business is still proof "
        "the address reached it (confidence medium).", guilty=True, dns=MARKETER_DNS),
    Scenario(
        "marketer-spf-only", *ACME, (marketer(signed_by=()),), (Relation.THIRD_PARTY,),
        Verdict.SHARED, "The marketer's SPF authorises its server and aligns with its From.",
        guilty=True, dns=MARKETER_DNS),
    Scenario(
        "plain-spam", *ACME,
        (Mail('"Prize Centre" <winner@prize-centre.example>', "winner@prize-centre.example",
              SPAM_IP, "ylmf-pc", subject="Claim your reward"),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "Unauthenticated spam: the address is out, but nobody is proven to have it.",
        dns=(spf("prize-centre.example", "203.0.113.250", "~all"),)),
    Scenario(
        "spam-claiming-a-dmarc-domain", *ACME,
        (Mail('"Big Bank" <alerts@bigbank.example>', "x@botnet.example", SPAM_IP, "ylmf-pc"),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "A forgery of some other brand fails that brand's DMARC: it names nobody who has the "
        "address.", dns=(dmarc("bigbank.example", "reject"),)),
    Scenario(
        "forgery-of-the-company", *ACME,
        (Mail('"Acme Security" <security@acme-outfitters.example>',
              "security@acme-outfitters.example", "192.0.2.66", "localhost",
              subject="Verify your account"),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "Claims Acme's domain from a server Acme's SPF refuses, failing its p=reject: someone "
        "knows the address belongs to an Acme customer.", dns=ACME_DNS, mentions=("p=reject",)),
    Scenario(
        "forgery-with-other-envelope", *ACME,
        (Mail('"Acme Security" <security@acme-outfitters.example>', "x@throwaway.example",
              "192.0.2.66", "localhost", subject="Verify your account"),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "Acme's From with another envelope domain still fails Acme's DMARC p=reject.",
        dns=ACME_DNS),
    Scenario(
        "quiet-alias", *ACME, (), (), Verdict.QUIET,
        "No mail has reached the alias yet: nothing to judge.", dns=ACME_DNS),
    Scenario(
        "two-from-headers", *ACME,
        (Mail("", "winner@prize-centre.example", SPAM_IP, "ylmf-pc",
              raw=b"From: Acme <news@acme-outfitters.example>\r\n"
                  b"From: Prize Centre <winner@prize-centre.example>\r\n"
                  b"To: shop.k7f3qd4m@canary.example.org\r\nSubject: Claim your reward\r\n"
                  b"Message-ID: <two-from@ylmf-pc>\r\n\r\nYou won.\r\n"),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "Two From headers, one Acme's: a trick to show Acme's name while another domain "
        "sends.", dns=ACME_DNS),
    Scenario(
        "no-from-at-all", *ACME,
        (Mail("", "x@junk.example", SPAM_IP, "ylmf-pc",
              raw=b"To: shop.k7f3qd4m@canary.example.org\r\nSubject: hi\r\n\r\nbody\r\n"),),
        (Relation.UNVERIFIED,), Verdict.LEAKED,
        "No From at all: junk that proves only that the address is known."),
    Scenario(
        "forged-authentication-results", *ACME,
        (Mail('"Acme Security" <security@acme-outfitters.example>', "x@junk.example",
              "192.0.2.66", "localhost",
              headers=(("Authentication-Results",
                        "mx.acme-outfitters.example; dkim=pass header.d=acme-outfitters.example;"
                        " dmarc=pass"),)),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "An Authentication-Results header written by the sender proves nothing: Canary "
        "believes none it was not told to trust.", dns=ACME_DNS),
    Scenario(
        "trusted-upstream-results", *ACME,
        (Mail('"Acme Outfitters" <news@acme-outfitters.example>', "bounce@relay.example",
              "10.0.0.5", "relay.user.example",
              headers=(("Authentication-Results",
                        "mx.user.example; dkim=pass header.d=acme-outfitters.example; "
                        "spf=pass smtp.mailfrom=acme-outfitters.example; dmarc=pass"),)),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "The person's own MTA checked Acme's signature before relaying and said so; Canary "
        "is told to believe that MTA.", dns=ACME_DNS, trusted_upstream=("mx.user.example",)),
    Scenario(
        "forwarded-through-the-companys-own-relay", *ACME,
        (acme_mail(client_ip="198.51.100.77", helo="fwd.acme-outfitters.example",
                   mail_from="srs0=x@fwd.acme-outfitters.example",
                   seals=(Seal("acme-outfitters.example",
                               "dkim=pass header.d=acme-outfitters.example; spf=pass "
                               "smtp.mailfrom=acme-outfitters.example; dmarc=pass "
                               "header.from=acme-outfitters.example",
                               footer=b"\n-- \nSent through Acme's relay\n"),)),),
        (Relation.FIRST_PARTY,), Verdict.CLEAN,
        "Acme's own forwarder added a footer (breaking the signature) and sealed with ARC what "
        "it verified on arrival: Acme's seal vouches for Acme's mail.", dns=ACME_DNS,
        mentions=("ARC",)),
    Scenario(
        "forged-arc-from-a-stranger", *ACME,
        (Mail('"Acme Security" <security@acme-outfitters.example>', "x@sealer.example",
              "192.0.2.66", "mx.sealer.example", subject="Verify your account",
              seals=(Seal("sealer.example", "dkim=pass header.d=acme-outfitters.example; "
                          "dmarc=pass header.from=acme-outfitters.example"),)),),
        (Relation.SPOOFED,), Verdict.LEAKED,
        "A valid ARC seal from a stranger that claims Acme's DMARC passed is that stranger's "
        "word: Acme's p=reject fails here.", dns=ACME_DNS),
]
