"""Which email service provider (ESP) carried a message, and for which of its customers.

An ESP such as Mailchimp, SendGrid or Amazon SES sends on behalf of its
customers: its own domain shows up in a DKIM `d=` tag and in the Return-Path,
and it stamps headers of its own. The fingerprints are package data
(`esps.json`), read and checked once per process.

`identify_esp` takes the strongest evidence first: a DKIM signature that
passed under an ESP signing domain, then an envelope sender under an ESP
bounce domain, then a fingerprint header, which anyone can forge. It also
reads the ESP's customer id from the headers, so two customers of one ESP
stay apart. It never raises on hostile header values, and nothing here does
network or database I/O: the only read is the package data, once.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from canary.authentication import (
    AuthenticatedBy,
    Authentication,
    AuthMethod,
    Result,
)
from canary.domains import domain_in, nearest_listed
from canary.tables import listed_domains, no_unknown_keys

SCHEMA_VERSION = 1

HEADER_VALUE_MAX = 2048
"""Longest header value examined: fingerprints sit at the start, and a bound keeps matching fast."""

CUSTOMER_ID_MAX = 128
"""A captured customer id longer than this is junk, not an id."""

_HEADER_NAME_MAX = 128
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
"""RFC 5322 field name: printable ASCII except the colon."""

# Headers that any sender may write. Their presence says nothing, so a
# fingerprint on one of them only counts when its pattern matches.
_GENERIC_HEADERS = frozenset(
    {
        "feedback-id",
        "x-feedback-id",
        "x-mailer",
        "x-report-abuse",
        "x-report-abuse-to",
        "x-complaints-to",
        "x-abuse",
        "x-csa-complaints",
        "x-campaign",
        "x-campaignid",
        "x-campaign-id",
        "x-cid",
        "x-job",
        "list-id",
        "list-unsubscribe",
        "message-id",
        "precedence",
        "received",
        "return-path",
        "sender",
    }
)

_TOP_KEYS = frozenset({"schema_version", "esps", "comment"})
_ESP_KEYS = frozenset({"name", "signing_domains", "bounce_domains", "headers", "notes",
                       "shared_from"})
_SHARED_FROM_KEYS = frozenset({"domain", "pattern"})
_HEADER_KEYS = frozenset({"name", "customer_id", "pattern", "identifies"})


@dataclass(frozen=True, slots=True)
class HeaderFingerprint:
    name: str
    """The header's name as the table spells it; compared case-insensitively."""
    customer_id: bool
    """The pattern's one group captures the ESP's customer (account or stream)."""
    pattern: re.Pattern[str] | None
    """None: the header's presence is the fingerprint. Else it must match the value."""
    identifies: bool = True
    """False for a header too generic to name the ESP; it only supplies the customer id."""


@dataclass(frozen=True, slots=True)
class SharedFrom:
    """A From domain of the ESP's own into which it rewrites customers' From addresses."""

    domain: str
    """Covers its subdomains (e.g. an account number's label under it)."""
    pattern: re.Pattern[str] | None
    """Applied to the From local part; its `domain` group is the customer's domain. None:
    the rewritten address does not name the customer's domain at all."""


@dataclass(frozen=True, slots=True)
class Esp:
    name: str
    signing_domains: tuple[str, ...]
    """DKIM `d=` domains; each also covers its subdomains."""
    bounce_domains: tuple[str, ...]
    """Return-Path (envelope MAIL FROM) domains; each also covers its subdomains."""
    headers: tuple[HeaderFingerprint, ...]
    shared_from: tuple[SharedFrom, ...] = ()


@dataclass(frozen=True, slots=True)
class EspMatch:
    esp: str
    customer_id: str | None
    """The ESP's customer, when a header names it: the same ESP, another customer."""
    evidence: str
    """Why, in a few words: "DKIM d=mcsv.net", "Return-Path under sendgrid.net"."""


@dataclass(frozen=True, slots=True)
class EspSending:
    """An ESP that sent the message, and whether it authenticated the sending."""

    esp: str
    customer_id: str | None
    authenticated_by: AuthenticatedBy | None
    """The ESP's own domain that passed DKIM or SPF; None when only fingerprint headers
    name the ESP, which anyone can write."""


@dataclass(frozen=True, slots=True)
class _Index:
    signing: Mapping[str, Esp]
    bounce: Mapping[str, Esp]
    headers: Mapping[str, tuple[tuple[Esp, HeaderFingerprint], ...]]
    """Lower-case header name to the fingerprints that identify an ESP, in table order."""
    customer_headers: Mapping[str, tuple[tuple[str, HeaderFingerprint], ...]]
    """ESP name to its (lower-case name, fingerprint) customer-id headers, in table order."""
    names: frozenset[str]
    """Every lower-case header name the table mentions."""


@functools.cache
def load_esps() -> tuple[Esp, ...]:
    """The ESP table shipped with Canary, checked; read once per process.

    Raises `ValueError` naming the fault when the table is malformed.
    """
    try:
        text = importlib.resources.files("canary").joinpath("esps.json").read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"The ESP table canary/esps.json cannot be read: {error}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"The ESP table canary/esps.json is not valid JSON: {error}") from error
    return parse_esps(data)


def parse_esps(data: object) -> tuple[Esp, ...]:
    """Check a decoded ESP table and build it; raises `ValueError` naming the fault."""
    if not isinstance(data, dict):
        raise ValueError("The ESP table must be a JSON object.")
    no_unknown_keys(data, _TOP_KEYS, "The ESP table")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"The ESP table has schema_version {data.get('schema_version')!r}; "
            f"this Canary reads {SCHEMA_VERSION}."
        )
    entries = data.get("esps")
    if not isinstance(entries, list) or not entries:
        raise ValueError('The ESP table needs a non-empty "esps" list.')
    esps = tuple(_parse_esp(entry, number) for number, entry in enumerate(entries, 1))
    _check_across(esps)
    return esps


def _parse_esp(entry: object, number: int) -> Esp:
    where = f"ESP #{number}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a JSON object.")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where} needs a non-empty name.")
    where = f"ESP #{number} ({name})"
    no_unknown_keys(entry, _ESP_KEYS, where)
    if not isinstance(entry.get("notes", ""), str):
        raise ValueError(f"{where}: notes must be a string.")
    signing = listed_domains(entry.get("signing_domains", []), f"{where} signing_domains",
                             "an ESP's")
    bounce = listed_domains(entry.get("bounce_domains", []), f"{where} bounce_domains",
                            "an ESP's")
    raw_headers = entry.get("headers", [])
    if not isinstance(raw_headers, list):
        raise ValueError(f"{where}: headers must be a list.")
    headers = tuple(
        _parse_header(raw, f"{where} header #{i}") for i, raw in enumerate(raw_headers, 1)
    )
    if not signing and not bounce and not any(h.identifies for h in headers):
        raise ValueError(f"{where} has no domain and no identifying header: nothing can match it.")
    raw_shared = entry.get("shared_from", [])
    if not isinstance(raw_shared, list):
        raise ValueError(f"{where}: shared_from must be a list.")
    shared = tuple(_parse_shared_from(raw, f"{where} shared_from #{i}")
                   for i, raw in enumerate(raw_shared, 1))
    return Esp(name, signing, bounce, headers, shared)


def _parse_shared_from(raw: object, where: str) -> SharedFrom:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a JSON object.")
    no_unknown_keys(raw, _SHARED_FROM_KEYS, where)
    (domain,) = listed_domains([raw.get("domain")], where, "an ESP's")
    source = raw.get("pattern")
    if source is None:
        return SharedFrom(domain, None)
    if not isinstance(source, str) or not source:
        raise ValueError(f"{where}: pattern must be a non-empty string or null.")
    try:
        pattern = re.compile(source)
    except re.error as error:
        raise ValueError(f"{where}: pattern {source!r} is not a regular expression: "
                         f"{error}.") from error
    if "domain" not in pattern.groupindex:
        raise ValueError(f"{where}: pattern {source!r} needs a group named domain.")
    return SharedFrom(domain, pattern)


def _parse_header(raw: object, where: str) -> HeaderFingerprint:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a JSON object.")
    no_unknown_keys(raw, _HEADER_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _FIELD_NAME.match(name) or len(name) > _HEADER_NAME_MAX:
        raise ValueError(f"{where}: {name!r} is not a header field name.")
    where = f"{where} ({name})"
    customer_id = raw.get("customer_id")
    identifies = raw.get("identifies", True)
    if not isinstance(customer_id, bool) or not isinstance(identifies, bool):
        raise ValueError(f"{where}: customer_id and identifies must be true or false.")
    pattern: re.Pattern[str] | None = None
    source = raw.get("pattern")
    if source is not None:
        if not isinstance(source, str) or not source:
            raise ValueError(f"{where}: pattern must be a non-empty string.")
        try:
            pattern = re.compile(source)
        except re.error as error:
            raise ValueError(
                f"{where}: pattern {source!r} is not a regular expression: {error}."
            ) from error
        if pattern.groups > 1:
            raise ValueError(
                f"{where}: pattern {source!r} has {pattern.groups} groups; at most one."
            )
    if customer_id and (pattern is None or pattern.groups != 1):
        raise ValueError(f"{where}: a customer_id header needs a pattern with one group.")
    if not identifies and not customer_id:
        raise ValueError(
            f"{where}: a header that neither identifies nor gives a customer id is unused."
        )
    if identifies and pattern is None and name.lower() in _GENERIC_HEADERS:
        raise ValueError(f"{where}: any sender may write {name}; give it a pattern.")
    return HeaderFingerprint(name, customer_id, pattern, identifies)


def _check_across(esps: tuple[Esp, ...]) -> None:
    """Names unique; a domain belongs to one ESP; a shared header name always has a pattern."""
    names: dict[str, str] = {}
    for esp in esps:
        key = esp.name.casefold()
        if key in names:
            raise ValueError(f"The ESP table lists {esp.name!r} twice.")
        names[key] = esp.name
    # One owner per domain, signing and bounce alike, so `esp_for_domain` is never ambiguous.
    owners: dict[str, str] = {}
    for esp in esps:
        for domain in (*esp.signing_domains, *esp.bounce_domains,
                       *(shared.domain for shared in esp.shared_from)):
            if owners.setdefault(domain, esp.name) != esp.name:
                raise ValueError(
                    f"{domain!r} is listed under both {owners[domain]} and {esp.name}."
                )
    users: dict[str, set[str]] = {}
    for esp in esps:
        for header in esp.headers:
            if header.identifies:
                users.setdefault(header.name.lower(), set()).add(esp.name)
    for esp in esps:
        for header in esp.headers:
            shared = len(users.get(header.name.lower(), ())) > 1
            if shared and header.identifies and header.pattern is None:
                raise ValueError(
                    f"{esp.name}: header {header.name} is also another ESP's; give it a pattern."
                )


@functools.cache
def _index() -> _Index:
    signing: dict[str, Esp] = {}
    bounce: dict[str, Esp] = {}
    headers: dict[str, list[tuple[Esp, HeaderFingerprint]]] = {}
    customer: dict[str, tuple[tuple[str, HeaderFingerprint], ...]] = {}
    for esp in load_esps():
        signing.update(dict.fromkeys(esp.signing_domains, esp))
        bounce.update(dict.fromkeys(esp.bounce_domains, esp))
        for header in esp.headers:
            if header.identifies:
                headers.setdefault(header.name.lower(), []).append((esp, header))
        customer[esp.name] = tuple((h.name.lower(), h) for h in esp.headers if h.customer_id)
    return _Index(
        signing=signing,
        bounce=bounce,
        headers={name: tuple(found) for name, found in headers.items()},
        customer_headers=customer,
        names=frozenset(h.name.lower() for esp in load_esps() for h in esp.headers),
    )


@functools.lru_cache(maxsize=4096)
def _under(domain: str, bounce: bool) -> tuple[str, Esp] | None:
    """The listed domain that `domain` equals or sits under, with its ESP."""
    return nearest_listed(domain, _index().bounce if bounce else _index().signing)


@functools.cache
def _shared_from() -> Mapping[str, tuple[Esp, SharedFrom]]:
    return {shared.domain: (esp, shared) for esp in load_esps() for shared in esp.shared_from}


def esp_shared_from(domain: str) -> tuple[Esp, SharedFrom] | None:
    """The ESP whose shared From domains include `domain` or a parent of it, and which one."""
    host = domain_in(domain)
    hit = nearest_listed(host, _shared_from()) if host is not None else None
    return hit[1] if hit else None


def esp_for_domain(domain: str) -> Esp | None:
    """The ESP whose signing or bounce domains include `domain` or a parent of it."""
    host = domain_in(domain)
    if host is None:
        return None
    hit = _under(host, False) or _under(host, True)
    return hit[1] if hit else None


def _unfold(value: str) -> str:
    """A header value as one line: folding and runs of whitespace become one space."""
    return " ".join(value[:HEADER_VALUE_MAX].split())


def _fits(header: HeaderFingerprint, value: str) -> bool:
    """Whether a header value carries the fingerprint: present, or matching its pattern."""
    if header.pattern is None:
        return bool(value)
    return header.pattern.search(value) is not None


def _customer_id(esp: Esp, headers: Sequence[tuple[str, str]]) -> str | None:
    """The first customer id the ESP's headers give, in table order."""
    for name, fingerprint in _index().customer_headers.get(esp.name, ()):
        if fingerprint.pattern is None:
            continue
        for header_name, value in headers:
            if header_name == name and (found := fingerprint.pattern.search(value)):
                customer = (found.group(1) or "").strip()
                if 0 < len(customer) <= CUSTOMER_ID_MAX:
                    return customer
    return None


def _known_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers the table knows, as (lower-case name, unfolded value), in message order."""
    names = _index().names
    return [
        (key, _unfold(value))
        for name, value in headers
        if len(name) <= _HEADER_NAME_MAX and (key := name.strip().lower()) in names
    ]


def identify_esp(
    *,
    dkim_pass_domains: Sequence[str],
    return_path_domain: str | None,
    headers: Sequence[tuple[str, str]],
) -> EspMatch | None:
    """The ESP that carried a message, strongest evidence first; None when none did.

    `dkim_pass_domains` holds the `d=` domains of signatures that verified;
    a signature that failed proves nothing and must not be passed. Header
    names compare case-insensitively; values may be folded, empty, huge or
    non-ASCII, and never make this raise.
    """
    known = _known_headers(headers)
    for domain in dkim_pass_domains:
        host = domain_in(domain)
        if host is not None and (hit := _under(host, False)) is not None:
            esp = hit[1]
            return EspMatch(esp.name, _customer_id(esp, known), f"DKIM d={host}")
    if return_path_domain:
        host = domain_in(return_path_domain)
        if host is not None and (hit := _under(host, True)) is not None:
            listed, esp = hit
            return EspMatch(esp.name, _customer_id(esp, known), f"Return-Path under {listed}")
    index = _index()
    for name, value in known:
        for esp, fingerprint in index.headers.get(name, ()):
            if _fits(fingerprint, value):
                return EspMatch(esp.name, _customer_id(esp, known), f"header {fingerprint.name}")
    return None


def esp_sending(headers: Sequence[tuple[str, str]], auth: Authentication) -> EspSending | None:
    """The ESP behind a message, and the passing DKIM or SPF domain of its own, if any."""
    spf_domain = auth.spf.domain if auth.spf.result is Result.PASS else None
    match = identify_esp(dkim_pass_domains=auth.dkim_pass_domains,
                         return_path_domain=spf_domain, headers=headers)
    if match is None:
        return None
    for domain in auth.dkim_pass_domains:
        esp = esp_for_domain(domain)
        if esp is not None and esp.name == match.esp:
            return EspSending(match.esp, match.customer_id,
                              AuthenticatedBy(AuthMethod.DKIM, domain))
    esp = esp_for_domain(spf_domain) if spf_domain else None
    if esp is not None and esp.name == match.esp:
        return EspSending(match.esp, match.customer_id, AuthenticatedBy(AuthMethod.SPF, spf_domain))
    return EspSending(match.esp, match.customer_id, None)
