"""The attribution accuracy corpus: labelled scenarios of real-world mail.

Each `Scenario` is a company (its name and declared domains), the DNS the
senders in the story publish, and one or more messages as they arrive:
real DKIM signatures made with generated keys, real ARC seals, envelope
sender, client address and HELO. `run` serves the DNS on a loopback server,
analyses every message through Canary's real analysis path (SPF, DKIM, DMARC
and ARC through its resolver, then attribution) and builds the company's
report. Each scenario states the relation every message should get, the
verdict, and the one-line reason a careful investigator would give; `guilty`
says whether the company really let an identifiable business have the
address, so the corpus test can count false accusations and misses.

Scenario modules live beside this one (`tests/corpus/<topic>.py`), each with
a `SCENARIOS` list; `tests/test_corpus.py` runs them all.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import dkim
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from canary.analysis import Analysis
from canary.attribution import CompanyContext, company_names, learnable_accounts
from canary.relation import Relation
from canary.report import AliasView, CompanyFacts, CompanyReport, Sighting, Verdict, company_report
from data.analyses import PendingMessage
from smtp_listener.analysis import AnalysisSettings, analyse_message
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones, ZoneServer

ALIAS = "shop.k7f3qd4m@canary.example.org"
ISSUED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SELECTOR = "s1"


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    domain: str
    selector: str
    private: bytes
    """What dkimpy signs with: PEM for RSA, the base64 seed for Ed25519."""
    record: str
    algorithm: bytes


@functools.cache
def ed25519(domain: str, selector: str = SELECTOR) -> Key:
    seed = nacl.signing.SigningKey(hashlib.sha256(f"{selector}.{domain}".encode()).digest())
    public = base64.b64encode(bytes(seed.verify_key)).decode()
    return Key(domain, selector, base64.b64encode(bytes(seed)),
               f"v=DKIM1; k=ed25519; p={public}", b"ed25519-sha256")


@functools.cache
def _rsa_private() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def rsa_key(domain: str, selector: str = "arc") -> Key:
    """An RSA-2048 key (ARC seals must be RSA); one key serves every domain of the corpus."""
    private = _rsa_private()
    pem = private.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    der = private.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    return Key(domain, selector, pem, f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}",
               b"rsa-sha256")


# --- what arrives --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seal:
    """A hop that records what it saw in Authentication-Results and seals it with ARC."""

    sealer: str
    """The sealing domain (ARC-Seal d=)."""
    results: str
    """What it recorded, e.g. `dkim=pass header.d=acme.example; dmarc=pass header.from=…`."""
    authserv_id: str = ""
    """Defaults to `mx.<sealer>`."""
    rewrite_subject: str | None = None
    """A list server's tag it adds to Subject after the original signature: breaks DKIM."""
    footer: bytes = b""
    """Text it appends to the body: breaks the original DKIM body hash."""


@dataclass(frozen=True)
class Mail:
    """One message as it reaches Canary's MX."""

    from_header: str
    mail_from: str
    """The envelope sender; "" for the null sender of bounces."""
    client_ip: str
    helo: str
    signed_by: tuple[str, ...] = ()
    """Domains that DKIM-sign it, in signing order (the first signs innermost)."""
    subject: str = "Hello"
    headers: tuple[tuple[str, str], ...] = ()
    body: str = "Hello there.\n"
    day: float = 10.0
    """Days after the alias was issued."""
    seals: tuple[Seal, ...] = ()
    raw: bytes | None = None
    """The whole message as written, instead of building it (still signed and sealed)."""
    times: int = 1
    """How many such messages, one every `every` days from `day`."""
    every: float = 3.0


@dataclass(frozen=True)
class Scenario:
    name: str
    company: str
    domains: tuple[str, ...]
    mail: tuple[Mail, ...]
    relations: tuple[Relation, ...]
    """The relation each message should get (one per `Mail`, whatever its `times`)."""
    verdict: Verdict
    reason: str
    """Why, as a careful investigator would put it."""
    guilty: bool = False
    """The company really let an identifiable business have the address."""
    dns: tuple[tuple[str, str, str], ...] = ()
    """(name, type, text) records the senders publish, besides their DKIM keys."""
    trusted_sealers: tuple[str, ...] = ()
    trusted_upstream: tuple[str, ...] = ()
    esp_customers: tuple[tuple[str, str], ...] = ()
    """ESP customer ids the person confirmed with `canary trust --esp-customer`."""
    mentions: tuple[str, ...] = ()
    """Words one of Canary's own reasons must contain."""


# --- building messages ---------------------------------------------------------------------------


def _crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _built(mail: Mail, sent: datetime, number: int) -> bytes:
    if mail.raw is not None:
        return _crlf(mail.raw)
    message = EmailMessage()
    message["From"] = mail.from_header
    message["To"] = ALIAS
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(sent)
    message["Message-ID"] = f"<{number}.{int(sent.timestamp())}@{mail.helo}>"
    for name, value in mail.headers:
        message[name] = value
    message.set_content(mail.body)
    return _crlf(message.as_bytes())


def _sign(raw: bytes, domain: str) -> bytes:
    key = ed25519(domain)
    signature = dkim.sign(raw, key.selector.encode(), domain.encode(), key.private,
                          canonicalize=(b"relaxed", b"relaxed"),
                          signature_algorithm=key.algorithm,
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return bytes(signature) + raw


def _seal(raw: bytes, seal: Seal) -> bytes:
    authserv = seal.authserv_id or f"mx.{seal.sealer}"
    if seal.rewrite_subject is not None:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = [line if not line.lower().startswith(b"subject:") else
                 b"Subject: " + seal.rewrite_subject.encode() + b" " + line[8:].strip()
                 for line in head.split(b"\r\n")]
        raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
    if seal.footer:
        raw = raw + _crlf(seal.footer)
    raw = f"Authentication-Results: {authserv}; {seal.results}\r\n".encode() + raw
    key = rsa_key(seal.sealer)
    headers = dkim.arc_sign(raw, key.selector.encode(), seal.sealer.encode(), key.private,
                            authserv.encode())
    return b"".join(headers) + raw


def arriving(mail: Mail, sent: datetime, number: int) -> bytes:
    """The message's bytes as Canary's MX receives them."""
    raw = _built(mail, sent, number)
    for domain in mail.signed_by:
        raw = _sign(raw, domain)
    for seal in mail.seals:
        raw = _seal(raw, seal)
    return raw


def _zones(scenario: Scenario) -> Zones:
    zones = Zones()
    keys = {d for m in scenario.mail for d in m.signed_by}
    for domain in sorted(keys):
        key = ed25519(domain)
        zones.add_txt(f"{key.selector}._domainkey.{domain}", key.record)
    for sealer in sorted({s.sealer for m in scenario.mail for s in m.seals}):
        key = rsa_key(sealer)
        zones.add_txt(f"{key.selector}._domainkey.{sealer}", key.record)
    for name, rdtype, text in scenario.dns:
        if rdtype == "TIMEOUT":
            zones.add_timeout(name)
        elif rdtype in ("TXT", "SPF"):
            zones.add_txt(name, text, rdtype=rdtype)
        else:
            zones.add(name, rdtype, text)
    return zones


# --- running one --------------------------------------------------------------------------


@dataclass
class Outcome:
    relations: list[Relation | None] = field(default_factory=list)
    """One per `Mail` (the first of its `times`); None while it waits for analysis."""
    reasons: list[str] = field(default_factory=list)
    report: CompanyReport | None = None


def run(scenario: Scenario) -> Outcome:
    """Serve the scenario's DNS on loopback, analyse its mail as Canary does, report."""
    outcome = Outcome()
    company = CompanyContext(frozenset(scenario.domains),
                             company_names(scenario.company, scenario.company.lower()),
                             frozenset(scenario.esp_customers),
                             frozenset(scenario.trusted_sealers))
    sightings: list[Sighting] = []
    with ZoneServer(_zones(scenario)) as (host, port):
        settings = AnalysisSettings(
            Resolver.from_setting(f"{host}:{port}", timeout=0.3, lifetime=0.6),
            scenario.trusted_upstream, scenario.trusted_sealers)
        number = 0
        for mail in scenario.mail:
            first = True
            for repeat in range(mail.times):
                number += 1
                received = ISSUED + timedelta(days=mail.day + repeat * mail.every)
                raw = arriving(mail, received - timedelta(minutes=2), number)
                pending = PendingMessage(number, hashlib.sha256(raw).hexdigest(), raw, company,
                                         mail.client_ip, mail.mail_from, mail.helo, 0)
                result = analyse_message(pending, settings)
                analysed = result if isinstance(result, Analysis) else None
                if analysed is not None:
                    learned = learnable_accounts(analysed.attribution, analysed.esp, company)
                    if not set(learned) <= company.esp_customers:
                        company = CompanyContext(company.domains, company.names,
                                                 company.esp_customers | set(learned),
                                                 company.trusted_sealers)
                attribution = analysed.attribution if analysed else None
                if first:
                    outcome.relations.append(attribution.relation if attribution else None)
                    outcome.reasons.append(attribution.reason if attribution else str(result))
                    first = False
                sightings.append(Sighting(
                    received_at=received, alias_slug="shop",
                    relation=attribution.relation if attribution else None,
                    sender_org=attribution.sender.name if attribution else None,
                    message_id=f"<{number}>", sha256=pending.sha256,
                    authenticated_by=attribution.authenticated_by if attribution else None,
                    reason=attribution.reason if attribution else None,
                    temperror=None if analysed else str(result),
                    sender_kind=attribution.sender.kind if attribution else None,
                    via=attribution.sender.via if attribution else None,
                ))
    facts = CompanyFacts(scenario.company, scenario.company.lower(), None, scenario.domains,
                         (AliasView(ALIAS, "shop", ISSUED, len(sightings)),),
                         tuple(sightings))
    outcome.report = company_report(facts)
    return outcome


def all_scenarios() -> Sequence[Scenario]:
    """Every scenario of every topic module, each name once."""
    from corpus import (
        backscatter,
        baseline,
        forgeries,
        platforms,
        tenants,
    )

    found: list[Scenario] = []
    for module in (baseline, platforms, tenants, forgeries, backscatter):
        found.extend(module.SCENARIOS)
    names = [s.name for s in found]
    assert len(names) == len(set(names)), "two scenarios share a name"
    return found
