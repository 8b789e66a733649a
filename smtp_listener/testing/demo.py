"""The demo's world and its tour: `canary demo` runs it, the tests reuse it.

The tour creates a home, issues aliases for three fictional companies,
starts the real listener on a free loopback port and sends a realistic mail
stream with smtplib. Authentication is real: the tour serves its own DNS
zones on loopback (SPF, DKIM keys it generates, DMARC), signs mail with
those keys, and passes each message's original client address to Canary
with XFORWARD, as a Postfix relay in front of Canary would. The listener's
clock is the tour's own, so six weeks of mail arrive in seconds with their
story intact, and the listener's analyst settles it before the tour ends.
Nothing here touches the network beyond loopback.
"""

from __future__ import annotations

import base64
import email.policy
import smtplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import dkim
import nacl.signing

from canary.alerts import Event
from canary.consent import Frequency
from canary.delivery import DEFAULT_ACTIONS, Action, DeliveryPolicy
from canary.relation import Relation
from data.alerts import recorded_events
from data.deliveries import JobListing, held
from data.home import init_home
from data.registry import issue_alias, opt_out
from data.reporting import build_reports
from data.summary import Reports
from smtp_listener.analysis import AnalysisConfig
from smtp_listener.server import Listener, ListenerSettings, ListenerThread
from smtp_listener.testing.zone_server import Zones, ZoneServer

DEMO_DOMAIN = "aliases.example.net"
DAYS = 42
SELECTOR = "demo"


@dataclass(frozen=True, slots=True)
class Company:
    name: str
    domain: str
    note: str
    marketing: bool
    frequency: Frequency


GUITARS = Company("Fretwork Guitars", "fretwork.example", "boutique guitar shop",
                  True, Frequency.WEEKLY)
RETAILER = Company("MegaMart", "megamart.example", "online retailer, loyalty card sign-up",
                   True, Frequency.WEEKLY)
LIBRARY = Company("Northwind Library", "northwind-library.example", "library card",
                  False, Frequency.NEVER)
RETAILER_OPTOUT_DAY = 14


@dataclass(frozen=True, slots=True)
class Sender:
    """A mail server in the demo's world: its address, HELO and signing domain."""

    ip: str
    helo: str
    mail_from: str
    signing_domains: tuple[str, ...]
    """DKIM d= domains it signs with, in order (an ESP signs as its customer and itself)."""


FRETWORK_MTA = Sender("198.51.100.10", "mail.fretwork.example", "bounce@fretwork.example",
                      ("fretwork.example",))
MEGAMART_MTA = Sender("198.51.100.20", "mx1.megamart.example", "orders@megamart.example",
                      ("megamart.example",))
# SendGrid with MegaMart's domain authenticated: it signs as megamart.example (a key
# MegaMart delegated to it) and as itself.
MEGAMART_VIA_ESP = Sender("203.0.113.50", "o1.ptr.sendgrid.net",
                          "bounces+2291@em.sendgrid.net", ("megamart.example", "sendgrid.net"))
LIBRARY_MTA = Sender("198.51.100.30", "mail.northwind-library.example",
                     "loans@northwind-library.example", ("northwind-library.example",))
MARKETER = Sender("192.0.2.77", "mta.dealblaster.example", "bounce@dealblaster.example",
                  ("dealblaster.example",))
# Square sends card receipts in its own name, naming the shop as the display name.
SQUARE = Sender("74.125.200.27", "mail.messaging.squareup.com",
                "bounces@messaging.squareup.com", ("squareup.com",))
SPAMMER = Sender("192.0.2.200", "ylmf-pc", "winner@prize-centre.example", ())
SPOOFER = Sender("192.0.2.66", "localhost", "security@megamart.example", ())
SIGNERS = (FRETWORK_MTA, MEGAMART_MTA, MEGAMART_VIA_ESP, LIBRARY_MTA, MARKETER, SQUARE)


def demo_zones(keys: dict[str, nacl.signing.SigningKey]) -> Zones:
    """The DNS the demo's senders publish: SPF, DKIM keys and DMARC."""
    zones = Zones()
    for sender in (FRETWORK_MTA, MEGAMART_MTA, LIBRARY_MTA, MARKETER, SQUARE):
        zones.add_txt(sender.mail_from.rpartition("@")[2], f"v=spf1 ip4:{sender.ip} -all")
    zones.add_txt("em.sendgrid.net", f"v=spf1 ip4:{MEGAMART_VIA_ESP.ip} ~all")
    zones.add_txt("prize-centre.example", "v=spf1 ip4:203.0.113.250 ~all")
    for domain, key in keys.items():
        public = base64.b64encode(bytes(key.verify_key)).decode()
        zones.add_txt(f"{SELECTOR}._domainkey.{domain}", f"v=DKIM1; k=ed25519; p={public}")
    zones.add_txt("_dmarc.fretwork.example", "v=DMARC1; p=quarantine")
    zones.add_txt("_dmarc.megamart.example", "v=DMARC1; p=reject")
    zones.add_txt("_dmarc.dealblaster.example", "v=DMARC1; p=none")
    zones.add_txt("_dmarc.squareup.com", "v=DMARC1; p=reject")
    return zones


@dataclass(frozen=True, slots=True)
class Mail:
    day: float
    to: Company
    sender: Sender
    from_header: str
    subject: str
    body: str
    marketing: bool = True
    extra: tuple[tuple[str, str], ...] = ()


class DemoClock:
    """The listener's clock during the demo: set to each message's moment."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at_day(self, day: float) -> datetime:
        self.now = self.start + timedelta(days=day)
        return self.now


def mail_stream() -> Iterator[Mail]:
    """Six weeks: a daily shop, a retailer whose list reaches a marketer, a quiet library."""
    picks = ["a 1962 reissue Strat", "hand-wound pickups", "a parlour guitar", "flatwound strings",
             "a tube amp kit", "a walnut ukulele", "a fuzz pedal"]
    for day in range(1, DAYS):
        yield Mail(day + 0.375, GUITARS, FRETWORK_MTA,
                   '"Fretwork Guitars" <news@mail.fretwork.example>',
                   f"Today's pick: {picks[day % len(picks)]}", "Hello from the workshop. " * 60)
    for day in range(2, DAYS, 7):
        yield Mail(day + 0.5, RETAILER, MEGAMART_VIA_ESP,
                   '"MegaMart Deals" <deals@megamart.example>', "This week's deals for you",
                   "Weekly deals. " * 40,
                   extra=(("X-SG-EID", "u001.MegaMartDeals7731"),))
    yield Mail(3.6, RETAILER, MEGAMART_MTA, '"MegaMart Orders" <orders@megamart.example>',
               "Your order #40213 has shipped", "Thanks for your order.", marketing=False)
    for day in range(24, DAYS, 3):
        yield Mail(day + 0.8, RETAILER, MARKETER,
                   '"Deal Blaster Media" <offers@dealblaster.example>',
                   "You have been selected for an exclusive offer", "Act now. " * 50)
    yield Mail(33.2, RETAILER, SPAMMER, '"Prize Centre" <winner@prize-centre.example>',
               "Claim your reward", "You won. " * 20)
    yield Mail(36.1, RETAILER, SPOOFER, '"MegaMart Security" <security@megamart.example>',
               "Verify your loyalty account", "Click here to verify. " * 10, marketing=False)
    yield Mail(9.4, LIBRARY, LIBRARY_MTA, '"Northwind Library" <loans@northwind-library.example>',
               "Your library card is ready", "Welcome to the library.", marketing=False)
    # You bought strings in the shop; its card terminal mails the receipt through Square.
    yield Mail(12.7, GUITARS, SQUARE, '"Fretwork Guitars" <noreply@messaging.squareup.com>',
               "Your receipt from Fretwork Guitars", "Flatwound strings, £14.00. Thank you!",
               marketing=False,
               extra=(("Reply-To", '"Fretwork Guitars" <shop@fretwork.example>'),))


def build_message(
    mail: Mail, to_address: str, sent: datetime, keys: dict[str, nacl.signing.SigningKey]
) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = mail.from_header
    message["To"] = to_address
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(sent)
    message["Message-ID"] = make_msgid(domain=mail.sender.helo)
    if mail.marketing:
        message["List-Unsubscribe"] = f"<mailto:unsubscribe@{mail.to.domain}>"
        message["Precedence"] = "bulk"
    for name, value in mail.extra:
        message[name] = value
    message.set_content(mail.body)
    # Real marketing mail carries HTML with very long lines; Canary keeps them intact.
    message.add_alternative(f"<html><body><p>{mail.body}</p>{'<td></td>' * 200}</body></html>",
                            subtype="html")
    raw = message.as_bytes()
    signatures = b""
    for domain in mail.sender.signing_domains:
        seed = base64.b64encode(bytes(keys[domain]))
        signatures += dkim.sign(raw, SELECTOR.encode(), domain.encode(), seed,
                                signature_algorithm=b"ed25519-sha256",
                                include_headers=[b"From", b"To", b"Subject", b"Date",
                                                 b"Message-ID"])
    return signatures + raw


def _send(client: smtplib.SMTP, mail: Mail, to: str, raw: bytes) -> None:
    """Deliver as a relay in front of Canary would: XFORWARD the original client first."""
    code, text = client.docmd("XFORWARD", f"ADDR={mail.sender.ip} HELO={mail.sender.helo}")
    if code != 250:
        raise smtplib.SMTPResponseException(code, text)
    client.sendmail(mail.sender.mail_from, [to], raw)


DEMO_POLICY = DeliveryPolicy(actions={**DEFAULT_ACTIONS, Relation.SPOOFED: Action.HOLD})
"""The demo's delivery: unexpected mail tagged (the default), forgeries of a company held."""


@dataclass(frozen=True, slots=True)
class Tour:
    reports: Reports
    maildir: Path
    """Where the tour's mail was delivered."""
    held: list[JobListing]
    alerts: tuple[Event, ...] = ()
    """The events the tour's mail made, oldest first: what alert channels would get."""


def run_tour(home: Path, say: Callable[[str], None]) -> Tour:
    """Run the whole tour in `home` (a new directory); return the report it ends with."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=DAYS)
    clock = DemoClock(start)
    keys = {domain: nacl.signing.SigningKey.generate()
            for sender in SIGNERS for domain in sender.signing_domains}
    with ZoneServer(demo_zones(keys)) as (dns_host, dns_port):
        dns = f"{dns_host}:{dns_port}"
        maildir = home / "Maildir"
        created = init_home(home, [DEMO_DOMAIN], dns=dns, deliver=[f"maildir:{maildir}"],
                            delivery_policy=DEMO_POLICY)
        config = created.config()
        store = created.store()
        try:
            addresses = {}
            with store.writing() as session:
                for company in (GUITARS, RETAILER, LIBRARY):
                    issued = issue_alias(session, secret=created.secret(), name=company.name,
                                         alias_domain=DEMO_DOMAIN, domains=[company.domain],
                                         note=company.note, new=False, now=start,
                                         marketing=company.marketing,
                                         frequency=company.frequency)
                    addresses[company] = issued.address
                    agreed = (f"marketing {company.frequency.value}" if company.marketing
                              else "no marketing")
                    say(f"Issued [bold]{issued.address}[/] to {company.name} ({agreed})")
                opt_out(session, RETAILER.name, start + timedelta(days=RETAILER_OPTOUT_DAY))
            say(f"On day {RETAILER_OPTOUT_DAY} you opt out of {RETAILER.name}'s marketing.")

            listener = Listener(store, domains=frozenset(config.domains),
                                secret=created.secret(), settings=ListenerSettings(port=0),
                                analysis=AnalysisConfig(dns=dns), delivery=config.delivery,
                                clock=clock)
            with ListenerThread(listener) as (host, port):
                say(f"Listener on {host}:{port}, demo DNS on {dns}; sending six weeks of mail…")
                with smtplib.SMTP(host, port, timeout=10) as client:
                    client.ehlo("relay.example.net")
                    for mail in sorted(mail_stream(), key=lambda m: m.day):
                        sent = clock.at_day(mail.day)
                        to = addresses[mail.to]
                        _send(client, mail, to, build_message(mail, to, sent, keys))
                    code, text = _try_rcpt(client, f"megamart@{DEMO_DOMAIN}")
                    say(f"A guessed address on your domain gets: {code} {text}")
                    code, text = _try_rcpt(client, "someone@elsewhere.example")
                    say(f"A relay attempt gets: {code} {text}")
                listener.settle()
            with store.reading() as session:
                return Tour(build_reports(session), maildir, held(session),
                            tuple(recorded_events(session)))
        finally:
            store.dispose()


def _try_rcpt(client: smtplib.SMTP, address: str) -> tuple[int, str]:
    client.rset()
    client.mail("probe@sender.example")
    code, text = client.rcpt(address)
    client.rset()
    return code, text.decode("ascii", "replace")
