"""Hostile authentication input: analysis never crashes and still classifies sensibly.

Broken DKIM signatures and key records, a 6 kB TXT record that only fits over
TCP, an SPF include loop, internationalised domains, several From headers and
garbage DMARC records. Each message goes through `analyse_message` (the code
the analyst runs, without its safety net, so any exception fails the test)
with Canary's real resolver asking a real DNS server on loopback; the IDN case
goes over SMTP with SMTPUTF8.
"""

from __future__ import annotations

import hashlib
import json
import re
import smtplib
from collections.abc import Callable

import pytest
from conftest import issue, start_listener
from factories import dkim, make_message, spf
from mailflow import rows, wait_for
from signing import DkimKey, crlf, rsa_key

from canary.analysis import Analysis
from canary.attribution import CompanyContext
from canary.authentication import Result
from canary.relation import Relation
from data.analyses import PendingMessage
from data.database import Store
from data.home import Home
from data.models import Message
from smtp_listener.analysis import AnalysisSettings, analyse_message
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones

ACME = ("acme.example",)
ACME_IP = "198.51.100.10"
DEALS_IP = "203.0.113.25"
FORGER_IP = "203.0.113.66"
UDP_ANSWER_LIMIT = 1232
"""The largest UDP answer Canary's resolver accepts (dnspython's EDNS payload)."""


@pytest.fixture(scope="module")
def acme_key() -> DkimKey:
    return rsa_key("acme.example", "s1")


@pytest.fixture(scope="module")
def deals_key() -> DkimKey:
    return rsa_key("dealblaster.example", "k2024")


@pytest.fixture
def world(zones: Zones, acme_key: DkimKey, deals_key: DkimKey) -> Zones:
    zones.add_txt("acme.example", f"v=spf1 ip4:{ACME_IP} -all")
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject")
    acme_key.publish(zones)
    zones.add_txt("dealblaster.example", f"v=spf1 ip4:{DEALS_IP} -all")
    deals_key.publish(zones)
    return zones


def analyse(
    resolver: Resolver, raw: bytes, *, peer_ip: str, mail_from: str,
    company: tuple[str, ...] = ACME, helo: str | None = "mta.sender.example",
) -> Analysis:
    """Analyse one stored message the way the analyst does; an exception fails the test."""
    raw = crlf(raw)
    pending = PendingMessage(1, hashlib.sha256(raw).hexdigest(), raw,
                             CompanyContext(frozenset(company)), peer_ip, mail_from, helo, 0)
    result = analyse_message(pending, AnalysisSettings(resolver))
    assert isinstance(result, Analysis), f"not settled: {result}"
    assert result.authentication is not None
    return result


def acme_mail(**headers: str) -> bytes:
    return crlf(make_message(sender='"Acme" <news@acme.example>', subject="Your order",
                             headers=headers))


# --- malformed DKIM signatures and keys -----------------------------------------------------


def _without_d(signature: bytes) -> bytes:
    return re.sub(rb"(?<=[;\s])d=acme\.example;", b"", signature)


def _b_not_base64(signature: bytes) -> bytes:
    return re.sub(rb"b=[A-Za-z0-9+/=\s]+$", b"b=@@@not*base64!!!\r\n", signature)


def _duplicate_d(signature: bytes) -> bytes:
    return signature.replace(b"d=acme.example;", b"d=acme.example; d=dealblaster.example;", 1)


def _label_too_long(signature: bytes) -> bytes:
    """A d= that DNS cannot carry (a 70-byte label), with i= to match so the key is looked up."""
    long_name = b"a" * 70 + b".acme.example"
    return (signature.replace(b"d=acme.example;", b"d=" + long_name + b";", 1)
            .replace(b"i=@acme.example;", b"i=@" + long_name + b";", 1))


def _garbage(signature: bytes) -> bytes:
    return b"DKIM-Signature: \xff\xfe;;; === this is = not ; a tag=list ;;\r\n"


def _no_tags(signature: bytes) -> bytes:
    return b"DKIM-Signature:\r\n"


def _unknown_algorithm(signature: bytes) -> bytes:
    return signature.replace(b"a=rsa-sha256", b"a=rsa-md5", 1)


MALFORMED = {
    "garbage": _garbage,
    "empty": _no_tags,
    "missing-d": _without_d,
    "b-not-base64": _b_not_base64,
    "duplicate-d": _duplicate_d,
    "d-label-too-long": _label_too_long,
    "unknown-algorithm": _unknown_algorithm,
}


@pytest.mark.parametrize("mangle", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_dkim_signature_never_passes_and_the_forgery_stays_spoofed(
    world: Zones, resolver: Resolver, acme_key: DkimKey, mangle: Callable[[bytes], bytes]
) -> None:
    raw = acme_mail()
    bad = mangle(acme_key.signature(raw))
    result = analyse(resolver, bad + raw, peer_ip=FORGER_IP, mail_from="news@acme.example")
    auth = result.authentication
    assert auth is not None
    assert len(auth.dkim) == 1
    assert auth.dkim[0].result in (Result.FAIL, Result.PERMERROR), auth.dkim
    assert result.attribution.relation is Relation.SPOOFED
    assert result.attribution.sender.name == "acme.example"


@pytest.mark.parametrize("mangle", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_signature_does_not_hide_a_good_one_below_it(
    world: Zones, resolver: Resolver, acme_key: DkimKey, mangle: Callable[[bytes], bytes]
) -> None:
    raw = acme_key.sign(acme_mail())
    bad = mangle(acme_key.signature(raw))
    result = analyse(resolver, bad + raw, peer_ip=FORGER_IP, mail_from="news@acme.example")
    auth = result.authentication
    assert auth is not None
    assert [d.result for d in auth.dkim][1:] == [Result.PASS]
    assert auth.dkim[0].result is not Result.PASS
    assert result.attribution.relation is Relation.FIRST_PARTY
    assert result.attribution.authenticated_by == dkim("acme.example")


@pytest.mark.parametrize(
    "record",
    ["v=DKIM1; k=rsa; p=!!!not-base64!!!", "v=DKIM1; k=rsa; p=", "v=DKIM1; k=ed25519; p=AAAA",
     "\x00\x01 binary junk", "v=DKIM1; k=rsa; p=" + "A" * 3000],
    ids=["p-not-base64", "revoked", "wrong-key-type", "binary", "long-garbage-key"],
)
def test_a_garbage_key_record_fails_the_signature_without_a_crash(
    zones: Zones, resolver: Resolver, acme_key: DkimKey, record: str
) -> None:
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject")
    zones.add_txt(acme_key.record_name, record)
    result = analyse(resolver, acme_key.sign(acme_mail()), peer_ip=FORGER_IP,
                     mail_from="news@acme.example")
    auth = result.authentication
    assert auth is not None
    assert [d.result for d in auth.dkim] in ([Result.FAIL], [Result.PERMERROR])
    assert result.attribution.relation is Relation.SPOOFED


# --- big records: TCP fallback --------------------------------------------------------------


def test_a_6kb_dkim_key_record_arrives_over_tcp_and_verifies(
    zones: Zones, resolver: Resolver, acme_key: DkimKey
) -> None:
    record = acme_key.publish(zones, padding=6000)
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject")
    result = analyse(resolver, acme_key.sign(acme_mail()), peer_ip=FORGER_IP,
                     mail_from="news@acme.example")
    assert result.authentication is not None
    assert [d.result for d in result.authentication.dkim] == [Result.PASS]
    assert result.attribution.relation is Relation.FIRST_PARTY
    (key,) = [a for a in result.dns_answers if a.name == acme_key.record_name]
    assert key.records == (record,)
    assert sum(len(s) for s in key.txt_strings[0]) > 6000 > UDP_ANSWER_LIMIT


def test_a_6kb_spf_record_arrives_over_tcp_and_passes(zones: Zones, resolver: Resolver) -> None:
    filler = " ".join(f"ip4:10.{i // 250}.{i % 250}.0/24" for i in range(350))
    record = f"v=spf1 {filler} ip4:{ACME_IP} -all"
    assert len(record) > 6000
    zones.add_txt("acme.example", record)
    result = analyse(resolver, acme_mail(), peer_ip=ACME_IP, mail_from="bounce@acme.example")
    assert result.authentication is not None
    assert result.authentication.spf.result is Result.PASS
    assert result.attribution.relation is Relation.FIRST_PARTY
    assert result.attribution.authenticated_by == spf("acme.example")


# --- SPF include loops ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "records",
    [
        {"loop-a.example": "v=spf1 include:loop-b.example -all",
         "loop-b.example": "v=spf1 include:loop-a.example -all"},
        {"loop-a.example": "v=spf1 include:loop-a.example -all"},
        {"loop-a.example": "v=spf1 redirect=loop-b.example",
         "loop-b.example": "v=spf1 redirect=loop-a.example"},
    ],
    ids=["a-includes-b-includes-a", "includes-itself", "redirect-loop"],
)
def test_an_spf_include_loop_is_permerror_not_a_crash(
    zones: Zones, resolver: Resolver, records: dict[str, str]
) -> None:
    for name, text in records.items():
        zones.add_txt(name, text)
    raw = make_message(sender="Loop <offers@loop-a.example>", subject="Round and round")
    result = analyse(resolver, raw, peer_ip=DEALS_IP, mail_from="offers@loop-a.example")
    assert result.authentication is not None
    assert result.authentication.spf.result is Result.PERMERROR
    assert result.attribution.relation is Relation.UNVERIFIED
    assert "SPF permerror" in result.attribution.reason


def test_an_spf_loop_in_the_companys_record_does_not_make_a_forgery_first_party(
    zones: Zones, resolver: Resolver
) -> None:
    zones.add_txt("acme.example", "v=spf1 include:acme.example -all")
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject")
    result = analyse(resolver, acme_mail(), peer_ip=FORGER_IP, mail_from="news@acme.example")
    assert result.authentication is not None
    assert result.authentication.spf.result is Result.PERMERROR
    assert result.attribution.relation is Relation.SPOOFED


# --- several From addresses -----------------------------------------------------------------


def _two_from(first: str, second: str) -> bytes:
    raw = make_message(sender=first, subject="Hello from both of us")
    return raw.replace(b"From: ", f"From: {second}\nFrom: ".encode(), 1)


@pytest.mark.parametrize("signer", ["acme", "dealblaster"])
@pytest.mark.parametrize(
    "raw",
    [
        _two_from("news@acme.example", "offers@dealblaster.example"),
        _two_from("offers@dealblaster.example", "news@acme.example"),
        make_message(sender="news@acme.example, offers@dealblaster.example"),
    ],
    ids=["company-first", "marketer-first", "one-header-two-addresses"],
)
def test_several_from_addresses_mixing_company_and_marketer_are_spoofed(
    world: Zones, resolver: Resolver, acme_key: DkimKey, deals_key: DkimKey, raw: bytes,
    signer: str,
) -> None:
    key, ip = (acme_key, ACME_IP) if signer == "acme" else (deals_key, DEALS_IP)
    signed = key.sign(raw, headers=(b"from", b"from", b"subject"))
    result = analyse(resolver, signed, peer_ip=ip, mail_from=f"bounce@{key.domain}")
    assert result.authentication is not None
    assert [d.result for d in result.authentication.dkim] == [Result.PASS]
    assert set(result.facts.from_orgs) == {"acme.example", "dealblaster.example"}
    assert result.attribution.relation is Relation.SPOOFED


# --- DMARC record garbage -------------------------------------------------------------------


DMARC_GARBAGE = {
    "no-semicolons": ["v=DMARC1 p=reject"],
    "empty-policy": ["v=DMARC1; p="],
    "unknown-policy": ["v=DMARC1; p=obliterate"],
    "binary": [b"\xff\xfe\x00v=DMARC1;\x00p=reject;\xc3\x28"],
    "only-separators": [";;;;=;=;;"],
    "two-records": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
    "huge": ["v=DMARC1; p=reject; " + "x=" + "y" * 5000],
}


@pytest.mark.parametrize("records", DMARC_GARBAGE.values(), ids=DMARC_GARBAGE.keys())
def test_garbage_dmarc_records_never_crash_and_never_excuse_a_forgery(
    zones: Zones, resolver: Resolver, acme_key: DkimKey, records: list[str | bytes]
) -> None:
    zones.add_txt("acme.example", f"v=spf1 ip4:{ACME_IP} -all")
    acme_key.publish(zones)
    for record in records:
        zones.add_txt("_dmarc.acme.example", record)

    forged = analyse(resolver, acme_mail(), peer_ip=FORGER_IP, mail_from="news@acme.example")
    # Whatever the DMARC record says, acme.example's own SPF -all refuses the forger.
    assert forged.attribution.relation is Relation.SPOOFED, forged.attribution.reason
    own = analyse(resolver, acme_key.sign(acme_mail()), peer_ip=ACME_IP,
                  mail_from="bounce@acme.example")
    assert own.attribution.relation is Relation.FIRST_PARTY
    assert own.attribution.authenticated_by == dkim("acme.example")


def test_a_huge_valid_dmarc_record_still_applies_its_policy(
    zones: Zones, resolver: Resolver
) -> None:
    zones.add_txt("_dmarc.acme.example", "v=DMARC1; p=reject; " + "x=" + "y" * 5000)
    result = analyse(resolver, acme_mail(), peer_ip=FORGER_IP, mail_from="forger@elsewhere.example")
    assert result.authentication is not None
    assert (result.authentication.dmarc.result, result.authentication.dmarc.policy) == (
        Result.FAIL, "reject")
    assert result.attribution.relation is Relation.SPOOFED


# --- internationalised domains over SMTPUTF8 ------------------------------------------------


BUECHER = "bücher.example"
BUECHER_ACE = "xn--bcher-kva.example"
BUECHER_IP = "198.51.100.30"


@pytest.mark.parametrize(
    ("sender", "display", "relation", "org"),
    [
        (f"news@{BUECHER}", "Bücher", "first_party", BUECHER_ACE),
        (f"news@{BUECHER}", "=?utf-8?q?B=C3=BCcher?=", "first_party", BUECHER_ACE),
        # A look-alike of the company's IDN: written to pass for it.
        ("news@bùcher.example", "Bücher", "impersonation", "xn--bcher-1ua.example"),
    ],
    ids=["own-idn-domain", "own-idn-domain-encoded-display-name", "look-alike-idn"],
)
def test_an_idn_sender_over_smtputf8_is_classified_by_its_a_label(
    zones: Zones, home: Home, store: Store, resolver: Resolver, sender: str, display: str,
    relation: str, org: str,
) -> None:
    """RFC 6532 headers: the address in raw UTF-8, the display name raw or as an encoded word."""
    key = rsa_key(BUECHER_ACE, "s1")
    key.publish(zones)
    zones.add_txt(BUECHER_ACE, f"v=spf1 ip4:{BUECHER_IP} -all")
    zones.add_txt(f"_dmarc.{BUECHER_ACE}", "v=DMARC1; p=reject")
    alias = issue(home, store, "Bücherei", BUECHER).address
    body = (f"From: {display} <{sender}>\nTo: {alias}\nSubject: Neue Bücher\n"
            "Date: Mon, 05 Jan 2026 09:00:00 +0000\nMessage-ID: <1@bücher.example>\n"
            "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n\nGrüße.\n").encode()
    raw = key.sign(body) if sender.endswith(BUECHER) else crlf(body)

    started = start_listener(home, store, resolver)
    try:
        with smtplib.SMTP(started.host, started.port, timeout=10) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("smtputf8")
            code, _ = smtp.docmd("XFORWARD", f"ADDR={BUECHER_IP} HELO=mail.{BUECHER_ACE}")
            assert code == 250
            assert smtp.sendmail(sender, [alias], raw, mail_options=["SMTPUTF8"]) == {}
        (message,) = wait_for(
            lambda: [m for m in rows(store, Message) if m["attempts"]], "analysis")
    finally:
        started.stop()
    assert message["from_address"] == sender
    assert message["relation"] == relation, message["reason"]
    assert message["sender_org"] == org
    auth = json.loads(message["authentication"])
    assert auth["spf"]["result"] == ("pass" if relation == "first_party" else "none")
    if relation == "first_party":
        assert [d["result"] for d in auth["dkim"]] == ["pass"]
        assert (message["auth_method"], message["auth_domain"]) == ("dkim", f"{BUECHER_ACE}")
