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

from publicsuffixlist import PublicSuffixList

from canary.errors import InvalidDomain

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


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
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
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
