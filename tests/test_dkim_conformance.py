"""RFC 8463 appendix A: the dual-signed message, verified through Canary's DNS path.

The message carries an ed25519-sha256 signature (selector `brisbane`) and an
rsa-sha256 one (selector `test`). Their key records are served by a real
authoritative DNS server on loopback, read from the zone file in
`tests/conformance/dkim/`; `check_dkim` must fetch both keys through
Canary's `Resolver` and pass both signatures, and fail both once any signed
byte changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from canary.authentication import Result
from smtp_listener.authenticate import check_dkim
from smtp_listener.resolver import Recorder, Resolver
from smtp_listener.testing.zone_server import Zones, ZoneServer

DKIM_DATA = Path(__file__).resolve().parent / "conformance" / "dkim"
MESSAGE = DKIM_DATA / "rfc8463-dual-signed.eml"
RECORDS = DKIM_DATA / "rfc8463-records.zone"

ED25519_KEY = "brisbane._domainkey.football.example.com"
RSA_KEY = "test._domainkey.football.example.com"

_TXT_LINE = re.compile(r'^(\S+)\s+\d+\s+IN\s+TXT\s+((?:"[^"]*"\s*)+)$')


@pytest.fixture(scope="module")
def conformance() -> Path:
    assert MESSAGE.is_file() and RECORDS.is_file(), f"the RFC 8463 example is not in {DKIM_DATA}"
    return DKIM_DATA


def load_records(zones: Zones, text: str) -> list[str]:
    """Add the zone file's TXT records to `zones`; return their names."""
    names = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(";"):
            continue
        match = _TXT_LINE.match(line)
        assert match, f"unexpected line in {RECORDS.name}: {line}"
        name, strings = match.group(1).rstrip("."), re.findall(r'"([^"]*)"', match.group(2))
        zones.add_txt(name, *strings)
        names.append(name)
    return names


@pytest.fixture(scope="module")
def dns(conformance: Path) -> Iterator[str]:
    zones = Zones()
    names = load_records(zones, RECORDS.read_text(encoding="utf-8"))
    assert sorted(names) == sorted([ED25519_KEY, RSA_KEY])
    with ZoneServer(zones) as (host, port):
        yield f"{host}:{port}"


@pytest.fixture
def resolver(dns: str) -> Resolver:
    return Resolver.from_setting(dns, timeout=0.5, lifetime=1.0)


@pytest.fixture(scope="module")
def signed(conformance: Path) -> bytes:
    return MESSAGE.read_bytes()


def outcome(resolver: Resolver, raw: bytes) -> list[tuple[str, str, str, Result]]:
    results = check_dkim(resolver, Recorder(), raw)
    return [(r.algorithm, r.selector, r.domain, r.result) for r in results]


def test_both_signatures_pass_with_keys_fetched_through_canarys_resolver(
    resolver: Resolver, signed: bytes
) -> None:
    recorder = Recorder()
    before = resolver.queries
    results = check_dkim(resolver, recorder, signed)
    assert [(r.algorithm, r.selector, r.domain, r.result) for r in results] == [
        ("ed25519-sha256", "brisbane", "football.example.com", Result.PASS),
        ("rsa-sha256", "test", "football.example.com", Result.PASS),
    ], [r.reason for r in results]
    assert resolver.queries - before == 2, "each key is one question to the DNS server"
    keys = {answer.name.rstrip("."): answer for answer in recorder.answers}
    assert set(keys) == {ED25519_KEY, RSA_KEY}
    assert keys[ED25519_KEY].rdtype == keys[RSA_KEY].rdtype == "TXT"
    assert keys[ED25519_KEY].records == (
        "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    )
    assert keys[RSA_KEY].records[0].startswith("v=DKIM1; g=*; k=rsa; p=MIGfMA0GCSqGSIb3DQEB")


def test_without_the_keys_in_dns_neither_signature_passes(signed: bytes) -> None:
    with ZoneServer(Zones()) as (host, port):
        resolver = Resolver.from_setting(f"{host}:{port}", timeout=0.5, lifetime=1.0)
        results = outcome(resolver, signed)
    assert [r[1] for r in results] == ["brisbane", "test"]
    assert all(r[3] in (Result.FAIL, Result.PERMERROR) for r in results), results


def test_a_changed_body_byte_fails_both_signatures(resolver: Resolver, signed: bytes) -> None:
    tampered = signed.replace(b"We lost the game.", b"We won the game.")
    assert tampered != signed
    assert [r[3] for r in outcome(resolver, tampered)] == [Result.FAIL, Result.FAIL]


@pytest.mark.parametrize(
    ("original", "changed"),
    [
        (b"Subject: Is dinner ready?", b"Subject: Is dinner ready!"),
        (b"From: Joe SixPack <joe@", b"From: Joe SixPacks <joe@"),
        (b"Date: Fri, 11 Jul 2003 21:00:37", b"Date: Fri, 11 Jul 2003 21:00:38"),
    ],
    ids=["subject", "from", "date"],
)
def test_a_changed_signed_header_fails_both_signatures(
    resolver: Resolver, signed: bytes, original: bytes, changed: bytes
) -> None:
    tampered = signed.replace(original, changed)
    assert tampered != signed
    results = outcome(resolver, tampered)
    assert [(r[0], r[3]) for r in results] == [
        ("ed25519-sha256", Result.FAIL),
        ("rsa-sha256", Result.FAIL),
    ]


def test_an_unsigned_header_added_leaves_both_passing(resolver: Resolver, signed: bytes) -> None:
    """The check is of the signed bytes only: a header added in transit changes nothing."""
    relayed = b"Received: from mx.example.net by mx.example.org; Fri, 11 Jul 2003\n" + signed
    assert [r[3] for r in outcome(resolver, relayed)] == [Result.PASS, Result.PASS]
