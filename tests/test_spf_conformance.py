"""The openspf RFC 7208 test suite, run through Canary's own SPF check and DNS path.

Each YAML document of `tests/conformance/spf/rfc7208-tests.yml` becomes
the data of one real authoritative DNS server on loopback (`ZoneServer`);
every case is checked with `check_spf`, whose pyspf asks Canary's
`Resolver`, which asks that server over UDP (and TCP when truncated). No
DNS stub: what passes here passes through the code that runs in production.

The zone data follows the suite's own conventions, as its reference harness
(pyspf's `test/testspf.py`) reads them:

- a TXT value given as a list is one record of several strings;
- a name with SPF (type 99) records and no TXT entry serves the same text
  as TXT too; `TXT: NONE` says the name has no TXT record at all;
- a bare `TIMEOUT` makes every type not listed before it time out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import spf

from smtp_listener.authenticate import EnvelopeFacts, check_spf
from smtp_listener.resolver import Recorder, Resolver
from smtp_listener.testing.zone_server import Zones, ZoneServer

try:
    import yaml
except ImportError:  # PyYAML is a test dependency; test_suite_is_present says so
    yaml = None

SUITE = Path(__file__).resolve().parent / "conformance" / "spf" / "rfc7208-tests.yml"

KNOWN_DIFFERENCES: dict[str, str] = {
    "ptr-cname-loop": (
        "The suite's harness hands raw CNAME records to pyspf, which spots the loop "
        "(loop4 -> CNAME.example.com -> cname.example.com -> itself) and skips the name. Over "
        "real DNS the loop is the resolver's error: dnspython stops with 'The CNAME chain is "
        "too long' (a recursive resolver answers SERVFAIL), which Canary, like pyspf's own "
        "dnspython driver, reports as temperror, not as a name to skip (RFC 7208 5.5)."
    ),
}
"""Cases Canary cannot pass through its DNS path, by case name, with the reason."""

DEFAULT_EXPLANATION = "DEFAULT"
"""The suite's word for "the checker's own default explanation" (pyspf's, here)."""


@dataclass(frozen=True)
class Case:
    document: int
    description: str
    name: str
    helo: str
    host: str
    mailfrom: str
    expected: tuple[str, ...]
    spec: str
    explanation: str | None


def _absolute(name: str) -> str:
    """Presentation form of a domain-name rdata field: absolute, so no origin is appended."""
    return name if name.endswith(".") else name + "."


def _strings(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def load_zones(zonedata: dict[str, Any]) -> Zones:
    """The suite's `zonedata` as served DNS data (see the module docstring).

    The suite's `[{TXT: …}, TIMEOUT]` answers TXT and times out on the rest.
    """
    zones = Zones()
    for name, entries in (zonedata or {}).items():
        if entries == "TIMEOUT":
            entries = ["TIMEOUT"]
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        answered: set[str] = set()
        for entry in entries:
            if entry == "TIMEOUT":
                zones.add_timeout(name, answering=tuple(sorted(answered)))
                break
            for rdtype, value in entry.items():
                if value == "NONE":
                    continue
                answered.add(rdtype)
                if rdtype in ("TXT", "SPF"):
                    zones.add_txt(name, *_strings(value), rdtype=rdtype)
                    if rdtype == "SPF" and not has_txt:
                        zones.add_txt(name, *_strings(value), rdtype="TXT")
                        answered.add("TXT")
                elif rdtype == "MX":
                    preference, exchange = value
                    zones.add(name, "MX", f"{preference} {_absolute(exchange)}")
                elif rdtype in ("PTR", "CNAME"):
                    zones.add(name, rdtype, _absolute(value))
                else:
                    zones.add(name, rdtype, str(value))
    return zones


def _documents() -> list[dict[str, Any]]:
    if not SUITE.is_file() or yaml is None:
        return []
    with SUITE.open("rb") as stream:
        return [d for d in yaml.safe_load_all(stream) if d]


DOCUMENTS = _documents()


def _cases() -> list[Any]:
    params = []
    for index, document in enumerate(DOCUMENTS):
        for name, data in document["tests"].items():
            result = data["result"]
            case = Case(index, document["description"], name, str(data.get("helo", "")),
                        str(data["host"]), str(data.get("mailfrom", "")),
                        tuple(result) if isinstance(result, list) else (result,),
                        str(data.get("spec", "")), data.get("explanation"))
            marks = []
            if name in KNOWN_DIFFERENCES:
                marks.append(pytest.mark.xfail(reason=KNOWN_DIFFERENCES[name], strict=True))
            params.append(pytest.param(case, id=f"{document['description']}::{name}",
                                       marks=marks))
    return params


CASES = _cases()


def test_suite_is_present() -> None:
    """The suite ships in the repository: every case below must have been read."""
    assert SUITE.is_file(), f"the SPF conformance suite is not at {SUITE}"
    assert yaml is not None, "PyYAML (the test extra's `pyyaml`) is needed to read the suite"
    assert len(CASES) == 203, "the suite's README counts 203 cases"
    assert set(KNOWN_DIFFERENCES) <= {p.values[0].name for p in CASES}


class DocumentServers:
    """One loopback DNS server per YAML document, started when its first case runs."""

    def __init__(self) -> None:
        self._running: dict[int, tuple[ZoneServer, str]] = {}

    def address(self, document: int) -> str:
        if document not in self._running:
            server = ZoneServer(load_zones(DOCUMENTS[document].get("zonedata") or {}))
            host, port = server.start()
            self._running[document] = (server, f"{host}:{port}")
        return self._running[document][1]

    def stop(self) -> None:
        for server, _ in self._running.values():
            server.stop()


@pytest.fixture(scope="module")
def servers() -> Iterator[DocumentServers]:
    running = DocumentServers()
    yield running
    running.stop()


@pytest.mark.parametrize("case", CASES or [None])
def test_rfc7208_case(case: Case, servers: DocumentServers) -> None:
    # Generous for a busy machine; the few cases of a server that never answers wait it out.
    resolver = Resolver.from_setting(servers.address(case.document), timeout=0.5, lifetime=1.5)
    recorder = Recorder()
    result = check_spf(resolver, recorder, EnvelopeFacts(case.host, case.mailfrom, case.helo))
    assert result.result.value in case.expected, (
        f"RFC 7208 {case.spec}: expected {' or '.join(case.expected)}, Canary says "
        f"{result.result.value} ({result.explanation})"
    )
    if case.explanation is not None and result.result.value == "fail":
        expected = (spf.EXPLANATIONS["fail"] if case.explanation == DEFAULT_EXPLANATION
                    else case.explanation)
        assert result.explanation == expected
