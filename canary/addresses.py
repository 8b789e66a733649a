"""Addresses people already gave out, and what old mail says about where it went.

Many people traced leaks by hand before Canary: a catch-all domain where
each shop got `shopname@their-domain.example`, or plus addresses such as
`me+shopname@mailbox.example`. Canary adopts those addresses as aliases and
reads years of mail sent to them. This module holds the pure rules:

- `AddressPatterns`: the person's catch-all domains (any local part is one
  of their addresses) and sub-address bases (`me@mailbox.example` with the
  separators `+` or `-`), configured once in `canary.toml`;
- `recipients`: the addresses a stored message was delivered to, best
  evidence first: the envelope recipient headers a provider adds
  (`Delivered-To`, `X-Original-To`, `Envelope-To`), then To and Cc;
- `receipt`: when the person's provider received it (its topmost `Received`
  header), else the Date header, flagged as such;
- `mapping_rows`: the address → company mapping a person writes (CSV or
  TOML) for `canary adopt --from`.

Pure: nothing here reads files or the network; callers hand in text.
"""

from __future__ import annotations

import csv
import email.utils
import io
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from canary.domains import normalise_domain
from canary.errors import InvalidDomain, InvalidValue
from canary.wording import toml_string

ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
"""Headers a receiving provider writes with the envelope recipient, most reliable first."""
ADDRESS_HEADERS = ("to", "cc")
SEPARATORS = ("+", "-")
LOCAL_PART_MAX = 64
_RECEIVED_FROM = re.compile(r"^\s*from\s+(\S+)(?:\s+\(([^)]*)\))?", re.IGNORECASE)
_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")


class InvalidMapping(InvalidValue):
    """A mapping file that cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class SubAddress:
    """A base address whose sub-addresses are the person's: `me@mailbox.example` + `+`."""

    local: str
    domain: str
    separators: tuple[str, ...] = ("+",)

    @property
    def address(self) -> str:
        return f"{self.local}@{self.domain}"


@dataclass(frozen=True, slots=True)
class AddressPatterns:
    """Which addresses are the person's, besides Canary's own aliases."""

    catch_all: tuple[str, ...] = ()
    """Domains where any local part is one of the person's addresses."""
    sub_addresses: tuple[SubAddress, ...] = ()

    def owns(self, address: str) -> bool:
        """Whether an address is one the person gives out (a catch-all or sub-address); the
        base address of sub-addresses, the person's own mailbox, is not."""
        local, _, domain = address.rpartition("@")
        if not local:
            return False
        if domain in self.catch_all:
            return True
        for base in self.sub_addresses:
            if domain != base.domain:
                continue
            # The base address itself is the person's own mailbox, given to no one in
            # particular: only its sub-addresses are aliases.
            if any(local.startswith(base.local + sep) and len(local) > len(base.local) + 1
                   for sep in base.separators):
                return True
        return False


def normalise_address(text: str) -> str | None:
    """`Shop@Example.ORG` → `shop@example.org`; None for anything that is no address."""
    _, address = email.utils.parseaddr(text.strip())
    local, at, domain = address.rpartition("@")
    if not at or not local or len(local) > LOCAL_PART_MAX or any(c.isspace() for c in local):
        return None
    try:
        return f"{local.lower()}@{normalise_domain(domain)}"
    except InvalidDomain:
        return None


def parse_sub_address(text: str) -> SubAddress:
    """`me@mailbox.example` (separator `+`) or `me@mailbox.example/+-` (both)."""
    address, _, separators = text.partition("/")
    normal = normalise_address(address)
    if normal is None:
        raise InvalidValue(f"{text!r} is not an address; write ME@DOMAIN or ME@DOMAIN/+-.")
    chosen = tuple(dict.fromkeys(separators)) or ("+",)
    if any(sep not in SEPARATORS for sep in chosen):
        raise InvalidValue(f"{text!r}: the separators may be + and -.")
    local, _, domain = normal.rpartition("@")
    return SubAddress(local, domain, chosen)


def recipients(headers: Sequence[tuple[str, str]]) -> list[str]:
    """Every address the message was delivered to, envelope headers first, each once."""
    found: dict[str, None] = {}
    for wanted in (ENVELOPE_HEADERS, ADDRESS_HEADERS):
        values = [v for k, v in headers if k.strip().lower() in wanted]
        for _, address in email.utils.getaddresses(values):
            if (normal := normalise_address(address)) is not None:
                found.setdefault(normal, None)
    return list(found)


@dataclass(frozen=True, slots=True)
class Receipt:
    """When and from where the person's provider received a message."""

    at: datetime | None
    estimated: bool
    """True when the time is the sender's Date header, not the provider's receipt."""
    peer_ip: str | None = None
    helo: str | None = None


def _aware(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date(text: str) -> datetime | None:
    try:
        parsed = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return _aware(parsed) if parsed is not None else None


def receipt(headers: Sequence[tuple[str, str]]) -> Receipt:
    """The topmost `Received` header's date and client (the provider's own receipt), else
    the Date header, flagged as an estimate."""
    for name, value in headers:
        if name.strip().lower() != "received":
            continue
        _, semicolon, when = value.rpartition(";")
        at = _date(when) if semicolon else None
        if at is None:
            continue
        client = _RECEIVED_FROM.match(" ".join(value.split()))
        helo = client.group(1)[:255] if client else None
        ip = _IP.search(client.group(2) or "") if client else None
        return Receipt(at, False, ip.group(1) if ip else None, helo)
    date = next((_date(v) for k, v in headers if k.strip().lower() == "date"), None)
    return Receipt(date, True)


@dataclass(frozen=True, slots=True)
class MappingRow:
    """One line of a mapping file: this address was given to this company."""

    address: str
    company: str
    domains: tuple[str, ...] = ()
    issued: datetime | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AddressMapping:
    rows: list[MappingRow] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    """Addresses listed without a company: left for the person to fill in."""


def _issued(text: object, where: str) -> datetime | None:
    if text in (None, ""):
        return None
    if isinstance(text, datetime):
        return _aware(text)
    try:
        return _aware(datetime.fromisoformat(str(text).strip()))
    except ValueError:
        raise InvalidMapping(f"{where}: {text!r} is not a date; write YYYY-MM-DD.") from None


def _row(values: Mapping[str, object], where: str) -> MappingRow | str | None:
    raw_address = str(values.get("address") or "").strip()
    if not raw_address:
        return None
    address = normalise_address(raw_address)
    if address is None:
        raise InvalidMapping(f"{where}: {raw_address!r} is not an address.")
    company = str(values.get("company") or "").strip()
    if not company:
        return address
    domains_value = values.get("domains") or ()
    if isinstance(domains_value, str):
        domains_value = domains_value.replace(";", " ").replace(",", " ").split()
    if not isinstance(domains_value, list | tuple):
        raise InvalidMapping(f"{where}: domains must be a list of domains.")
    note = str(values.get("note") or "").strip() or None
    return MappingRow(address, company, tuple(str(d) for d in domains_value),
                      _issued(values.get("issued"), where), note)


def _records(text: str, name: str, table: str, first_column: str
             ) -> Iterable[tuple[str, Mapping[str, object]]]:
    """(where, values) of each record of a CSV file with a header row, or of each `[[table]]`
    of a TOML file."""
    if name.lower().endswith(".toml"):
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise InvalidMapping(f"{name} is not valid TOML: {error}.") from error
        tables = document.get(table, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise InvalidMapping(f"{name}: write one [[{table}]] table per {table}.")
        return ((f"{name} [[{table}]] #{n}", t) for n, t in enumerate(tables, 1))
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or first_column not in [f.strip().lower()
                                                         for f in reader.fieldnames]:
        raise InvalidMapping(f"{name}: the first line must name the columns, starting with "
                             f"{first_column}.")
    return ((f"{name} line {reader.line_num}",
             {(k or "").strip().lower(): v for k, v in row.items()}) for row in reader)


def mapping_rows(text: str, name: str) -> AddressMapping:
    """Read a mapping: CSV with a header row (address, company, domains, issued, note), or
    TOML with `[[alias]]` tables of the same keys."""
    mapping = AddressMapping()
    for where, values in _records(text, name, "alias", "address"):
        row = _row(values, where)
        if isinstance(row, MappingRow):
            mapping.rows.append(row)
        elif isinstance(row, str):
            mapping.unassigned.append(row)
    return mapping


@dataclass(frozen=True, slots=True)
class CompanyRow:
    """One line of a file of companies to issue aliases to (`canary issue --from`)."""

    name: str
    domains: tuple[str, ...] = ()
    note: str | None = None
    marketing: bool | None = None
    frequency: str | None = None
    at: datetime | None = None


_YES = {"yes": True, "y": True, "true": True, "1": True,
        "no": False, "n": False, "false": False, "0": False}


def company_rows(text: str, name: str) -> list[CompanyRow]:
    """Read companies to issue: CSV with a header row (name, domains, note, marketing,
    frequency, at) or TOML with `[[company]]` tables of the same keys."""
    rows = []
    for where, values in _records(text, name, "company", "name"):
        company = str(values.get("name") or "").strip()
        if not company:
            continue
        domains = values.get("domains") or ()
        if isinstance(domains, str):
            domains = domains.replace(";", " ").replace(",", " ").split()
        if not isinstance(domains, list | tuple):
            raise InvalidMapping(f"{where}: domains must be a list of domains.")
        marketing_value = values.get("marketing")
        marketing = None
        if marketing_value not in (None, ""):
            marketing = (marketing_value if isinstance(marketing_value, bool)
                         else _YES.get(str(marketing_value).strip().lower()))
            if marketing is None:
                raise InvalidMapping(f"{where}: marketing is yes or no, not {marketing_value!r}.")
        frequency = str(values.get("frequency") or "").strip().lower() or None
        rows.append(CompanyRow(company, tuple(str(d) for d in domains),
                               str(values.get("note") or "").strip() or None, marketing,
                               frequency, _issued(values.get("at"), where)))
    return rows


def mapping_csv(rows: Iterable[tuple[str, str, tuple[str, ...], datetime | None]]) -> str:
    """A mapping file to edit: address, company (empty, or a guess), domains, issued."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["address", "company", "domains", "issued", "note"])
    for address, company, domains, issued in rows:
        writer.writerow([address, company, " ".join(domains),
                         f"{issued:%Y-%m-%d}" if issued else "", ""])
    return out.getvalue()


def read_patterns(table: object) -> AddressPatterns:
    """The `[addresses]` table of canary.toml; `InvalidValue` says what is wrong."""
    if table is None:
        return AddressPatterns()
    if not isinstance(table, dict):
        raise InvalidValue("[addresses] must be a table")
    catch_all = table.get("catch_all", [])
    subs = table.get("sub_addresses", [])
    if not isinstance(catch_all, list) or not all(isinstance(d, str) for d in catch_all):
        raise InvalidValue("addresses.catch_all must be a list of domains")
    if not isinstance(subs, list) or not all(isinstance(a, str) for a in subs):
        raise InvalidValue("addresses.sub_addresses must be a list such as [\"me@mail.example/+\"]")
    try:
        domains = tuple(dict.fromkeys(normalise_domain(d) for d in catch_all))
    except InvalidDomain as error:
        raise InvalidValue(f"addresses.catch_all: {error}") from error
    return AddressPatterns(domains, tuple(parse_sub_address(a) for a in subs))


def patterns_toml(patterns: AddressPatterns) -> list[str]:
    """The `[addresses]` section as canary.toml lines."""
    def quoted(values: Iterable[str]) -> str:
        return "[" + ", ".join(toml_string(v) for v in values) + "]"

    return [
        "",
        "[addresses]",
        "# Addresses you gave out before Canary: domains where any local part is yours",
        "# (catch-all), and base addresses whose sub-addresses are yours (me@mail.example/+-).",
        f"catch_all = {quoted(patterns.catch_all)}",
        "sub_addresses = " + quoted(f"{s.address}/{''.join(s.separators)}"
                                    for s in patterns.sub_addresses),
    ]
