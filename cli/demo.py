"""`canary demo`: a self-contained tour on loopback, with no network.

It creates a temporary home, issues aliases for three fictional companies,
starts the real listener on a free loopback port and sends a realistic mail
stream with smtplib. The listener's clock is the demo's own, so six weeks of
mail arrive in seconds with their story intact. Then it prints the report.
"""

from __future__ import annotations

import smtplib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from canary.report import Verdict
from cli.output import console as make_console
from cli.report import build_reports, render_report
from cli.workspace import Workspace
from data.home import init_home
from data.registry import issue_alias
from smtp_listener.server import Listener, ListenerSettings, ListenerThread

app = typer.Typer()

DEMO_DOMAIN = "aliases.example.net"
DAYS = 42


@dataclass(frozen=True, slots=True)
class Company:
    name: str
    domain: str
    note: str


GUITARS = Company("Fretwork Guitars", "fretwork.example", "boutique guitar shop, daily mail")
RETAILER = Company("MegaMart", "megamart.example", "online retailer, loyalty card sign-up")
LIBRARY = Company("Northwind Library", "northwind-library.example", "library card")


@dataclass(frozen=True, slots=True)
class Mail:
    day: float
    to: Company
    sender: str
    subject: str
    body: str
    marketing: bool = True


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
    """Six weeks of mail: a daily shop, a retailer whose list leaks, a quiet library."""
    picks = ["a 1962 reissue Strat", "hand-wound pickups", "a parlour guitar", "flatwound strings",
             "a tube amp kit", "a walnut ukulele", "a fuzz pedal"]
    for day in range(1, DAYS):
        yield Mail(day + 0.375, GUITARS, '"Fretwork Guitars" <news@mail.fretwork.example>',
                   f"Today's pick: {picks[day % len(picks)]}",
                   "Hello from the workshop. " * 60)
    for day in range(2, DAYS, 7):
        yield Mail(day + 0.5, RETAILER, '"MegaMart Deals" <deals@megamart.example>',
                   "This week's deals for you", "Weekly deals. " * 40)
    yield Mail(3.6, RETAILER, '"MegaMart Orders" <orders@megamart.example>',
               "Your order #40213 has shipped", "Thanks for your order.", marketing=False)
    for day in range(24, DAYS, 3):
        yield Mail(day + 0.8, RETAILER, '"Deal Blaster Media" <offers@dealblaster.example>',
                   "You have been selected for an exclusive offer", "Act now. " * 50)
    yield Mail(33.2, RETAILER, '"Prize Centre" <winner@prize-centre.example>',
               "Claim your reward", "You won. " * 20)
    yield Mail(9.4, LIBRARY, '"Northwind Library" <loans@northwind-library.example>',
               "Your library card is ready", "Welcome to the library.", marketing=False)


def build_message(mail: Mail, to_address: str, sent: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = to_address
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(sent)
    message["Message-ID"] = make_msgid(domain=mail.sender.rsplit("@", 1)[1].rstrip(">"))
    if mail.marketing:
        message["List-Unsubscribe"] = f"<mailto:unsubscribe@{mail.to.domain}>"
        message["Precedence"] = "bulk"
    message.set_content(mail.body)
    # Real marketing mail carries HTML with very long lines; Canary keeps them intact.
    message.add_alternative(f"<html><body><p>{mail.body}</p>{'<td></td>' * 200}</body></html>",
                            subtype="html")
    return message


def run_demo(console: Console, home: Path) -> Verdict:
    """Run the whole tour in `home`; return the retailer's verdict."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=DAYS)
    clock = DemoClock(start)
    created = init_home(home, [DEMO_DOMAIN])
    space = Workspace(created, created.config(), created.store())
    try:
        addresses = {}
        with space.store.writing() as session:
            for company in (GUITARS, RETAILER, LIBRARY):
                issued = issue_alias(session, secret=space.secret, name=company.name,
                                     alias_domain=DEMO_DOMAIN, domains=[company.domain],
                                     note=company.note, new=False, now=start)
                addresses[company] = issued.address
                console.print(f"Issued [bold]{issued.address}[/] to {company.name}")

        listener = Listener(space.store, domains=frozenset(space.config.domains),
                            secret=space.secret, settings=ListenerSettings(port=0), clock=clock)
        with ListenerThread(listener) as (host, port):
            console.print(f"Listener running on {host}:{port}; sending six weeks of mail…")
            with smtplib.SMTP(host, port, timeout=10) as client:
                client.ehlo("mx.sender.example")
                for mail in sorted(mail_stream(), key=lambda m: m.day):
                    sent = clock.at_day(mail.day)
                    to = addresses[mail.to]
                    client.send_message(build_message(mail, to, sent), to_addrs=[to])
                code, text = _try_rcpt(client, f"megamart@{DEMO_DOMAIN}")
                console.print(f"A guessed address on your domain gets: {code} {text}")
                code, text = _try_rcpt(client, "someone@elsewhere.example")
                console.print(f"A relay attempt gets: {code} {text}")
        console.print()
        reports, probes = build_reports(space, None)
        render_report(console, reports, probes)
        retailer = next(r for r in reports if r.name == RETAILER.name)
        senders = ", ".join(s.organisation for s in retailer.unexpected)
        console.print(
            f"\n[bold]{retailer.name}[/]: verdict [bold red]{retailer.verdict.value}[/]. "
            f"Its alias, given to {retailer.name} alone, now gets mail from {senders}, "
            f"first {retailer.days_to_first_unexpected} days after it was issued."
        )
        return retailer.verdict
    finally:
        space.store.dispose()


def _try_rcpt(client: smtplib.SMTP, address: str) -> tuple[int, str]:
    client.rset()
    client.mail("probe@sender.example")
    code, text = client.rcpt(address)
    client.rset()
    return code, text.decode("ascii", "replace")


@app.command()
def demo(
    keep: Annotated[
        Path | None,
        typer.Option("--keep", help="Keep the demo's home in this new directory, to explore "
                     "with `canary --home DIR report`."),
    ] = None,
) -> None:
    """A self-contained tour on loopback: issues aliases, sends real SMTP, prints the report."""
    console = make_console()
    if keep is not None:
        run_demo(console, keep)
        console.print(f"\nThe demo's home is kept at {keep}.")
        return
    with tempfile.TemporaryDirectory(prefix="canary-demo-") as directory:
        run_demo(console, Path(directory) / "home")
