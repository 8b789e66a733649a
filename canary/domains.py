"""Domain names and organisational domains.

The organisation behind a domain is its registrable domain, found with the
Public Suffix List (`publicsuffixlist`, shipped offline). The list is parsed
once per process: parsing it costs 50 ms, far too much per message.
Nothing here does DNS.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Mapping
from typing import TypeVar

from publicsuffixlist import PublicSuffixList

from canary.errors import InvalidDomain

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
DOMAIN_MAX = 253
"""The longest domain name, in characters (RFC 1035)."""
T = TypeVar("T")


_PARSING = threading.Lock()


@functools.cache
def _suffix_list() -> PublicSuffixList:
    with _PARSING:  # once, even when the listener's analysis threads all start at once
        return _parsed()


@functools.cache
def _parsed() -> PublicSuffixList:
    return PublicSuffixList()


def normalise_domain(domain: str) -> str:
    """Lower-case, strip the trailing dot and convert IDNs to A-labels.

    Raises `InvalidDomain` for anything that is not a syntactically valid
    host name.
    """
    text = domain.strip().rstrip(".").lower()
    if not text:
        raise InvalidDomain("A domain name cannot be empty.")
    try:
        ascii_name = text.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise InvalidDomain(f"{domain!r} is not a valid domain name.") from error
    labels = ascii_name.split(".")
    if len(ascii_name) > DOMAIN_MAX or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
        raise InvalidDomain(f"{domain!r} is not a valid domain name, e.g. canary.example.org.")
    return ascii_name


def organisational_domain(domain: str) -> str | None:
    """The registrable domain of `domain`, or None when it has none.

    `news.mail.acme.co.uk` gives `acme.co.uk`. A bare public suffix, an
    invalid name or an address literal gives None.
    """
    try:
        name = normalise_domain(domain)
    except InvalidDomain:
        return None
    registrable: str | None = _suffix_list().privatesuffix(name)
    return registrable


def registrable_or_self(domain: str) -> str:
    """The registrable domain of a declared company domain.

    Raises `InvalidDomain` when the name is invalid or is a public suffix.
    """
    name = normalise_domain(domain)
    registrable = organisational_domain(name)
    if registrable is None:
        raise InvalidDomain(f"{domain!r} is a public suffix, not a company's domain.")
    return registrable


def domain_in(text: str) -> str | None:
    """The domain `text` names, itself or after the `@` of an address such as
    `<bounce@x.example>`, normalised; None when it names none (never an exception, however
    hostile the text)."""
    host = text.rpartition("@")[2].strip().strip("<>").strip()
    if not host or len(host) > DOMAIN_MAX:
        return None
    try:
        return normalise_domain(host)
    except InvalidDomain:
        return None


def nearest_listed(domain: str, table: Mapping[str, T]) -> tuple[str, T] | None:
    """The entry of the normalised `domain` in `table`, else that of its nearest listed
    parent, with the domain it is listed under.

    The walk stops at the organisational domain, so a listing never reaches above a
    registrable domain into a public suffix; a domain without one finds nothing.
    """
    organisation = organisational_domain(domain)
    candidate = domain
    while organisation is not None and candidate:
        if (entry := table.get(candidate)) is not None:
            return candidate, entry
        if candidate == organisation:
            return None
        candidate = candidate.partition(".")[2]
    return None
