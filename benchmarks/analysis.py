"""Analysis speed: parse, authenticate and classify, against a bare parse.

Serves a sender's SPF, RSA-2048 DKIM key and DMARC record from a real DNS
server on loopback, signs about 20 KB marketing messages with that key, warms
Canary's resolver cache, then measures in the same run:

  (a) `email.message_from_bytes` on every message (the baseline);
  (b) Canary's `analyse_message`: headers, SPF, every DKIM signature, DMARC,
      the ESP table and classification.

It prints both rates and their ratio. Targets: at least 500 messages per
second on one core, and at least 0.3 of the bare-parse rate.

Usage: python benchmarks/analysis.py [--messages 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import email
import email.policy
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from canary.attribution import CompanyContext
from data.analyses import PendingMessage
from smtp_listener.analysis import AnalysisSettings, analyse_message
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones, ZoneServer

SENDER = "news.shop.example"
SENDER_IP = "198.51.100.10"
ALIAS_DOMAINS = ("shop.example",)


def make_key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    return private, base64.b64encode(public).decode()


def make_messages(count: int, private_key: bytes) -> list[bytes]:
    messages = []
    paragraph = ("Our autumn collection is here: hand-finished goods, free returns and a "
                 "loyalty bonus for you. ") * 4
    for number in range(count):
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"] = f'"Shop News" <news@{SENDER}>'
        message["To"] = "shop.abcdefgh@canary.example.org"
        message["Subject"] = f"Autumn offers, issue {number}"
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(domain=SENDER)
        message["List-Unsubscribe"] = f"<mailto:unsubscribe@{SENDER}>"
        message.set_content((paragraph + "\n") * 40)
        message.add_alternative(
            f"<html><body>{'<p>' + paragraph + '</p>' * 1}{'<td></td>' * 600}</body></html>",
            subtype="html",
        )
        raw = message.as_bytes()
        signature = dkim.sign(raw, b"s2048", SENDER.encode(), private_key,
                              include_headers=[b"From", b"To", b"Subject", b"Date",
                                               b"Message-ID"])
        messages.append(bytes(signature) + raw)
    return messages


def pending(messages: list[bytes]) -> list[PendingMessage]:
    return [
        PendingMessage(number, "", raw, CompanyContext(frozenset(ALIAS_DOMAINS), ("Shop",)),
                       SENDER_IP, f"bounce@{SENDER}", f"mta.{SENDER}", 0)
        for number, raw in enumerate(messages)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    private_key, public_key = make_key()
    zones = Zones()
    zones.add_txt(SENDER, f"v=spf1 ip4:{SENDER_IP} -all")
    zones.add_txt(f"s2048._domainkey.{SENDER}", "v=DKIM1; k=rsa; p=", public_key)
    zones.add_txt(f"_dmarc.{SENDER}", "v=DMARC1; p=reject")
    messages = make_messages(args.messages, private_key)
    size = sum(len(m) for m in messages) / len(messages)
    items = pending(messages)

    with ZoneServer(zones) as (host, port):
        settings = AnalysisSettings(Resolver([host], port=port))
        first = analyse_message(items[0], settings)  # warms the DNS cache
        assert not hasattr(first, "problem"), first
        assert first.attribution.relation.value == "first_party", first

        best_parse = best_canary = 0.0
        for _ in range(args.rounds):
            start = time.perf_counter()
            for raw in messages:
                email.message_from_bytes(raw)
            best_parse = max(best_parse, len(messages) / (time.perf_counter() - start))

            queries = settings.resolver.queries
            start = time.perf_counter()
            for item in items:
                analyse_message(item, settings)
            best_canary = max(best_canary, len(items) / (time.perf_counter() - start))
            assert settings.resolver.queries == queries, "the DNS cache was not warm"

    ratio = best_canary / best_parse
    print(f"messages: {len(messages)} of {size / 1024:.1f} KB, RSA-2048 DKIM, warm DNS cache")
    print(f"bare email.message_from_bytes: {best_parse:8.0f} msg/s")
    print(f"canary parse+auth+classify:    {best_canary:8.0f} msg/s  (target >= 500)")
    print(f"ratio: {ratio:.2f} (target >= 0.30)")


if __name__ == "__main__":
    main()
