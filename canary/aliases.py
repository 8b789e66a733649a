"""Alias addresses: how they are made and how a recipient is recognised.

An alias's local part is `<slug>.<tag>`. The slug names the company; the tag
is the start of HMAC-SHA256(secret, slug) in lower-case base32. Nobody
without the secret can guess a valid alias, and the listener can reject a
forged tag without asking the database.

This module never sees the database and never prints the secret.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass

from canary.domains import normalise_domain
from canary.errors import InvalidCompanyName, InvalidDomain

TAG_LENGTH = 8
"""Base32 characters of the tag: 40 bits, well beyond guessing by probes."""

SLUG_MAX = 40
SECRET_BYTES = 32

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TAG = re.compile(r"^[a-z2-7]+$")


def slugify(name: str) -> str:
    """The alias slug for a company name: `Fretwork Guitars Ltd` → `fretwork-guitars-ltd`."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = _SLUG_CHARS.sub("-", ascii_name.lower()).strip("-")[:SLUG_MAX].strip("-")
    if not slug:
        raise InvalidCompanyName(
            f"{name!r} gives no usable alias; use a name with letters or digits."
        )
    return slug


def company_name(name: str) -> str:
    """A new company's name as kept: trimmed, one line of text (a control character such as
    NUL or a line break would break tables, letters and CSV, and PostgreSQL cannot store
    NUL). Its slug is `slugify`'s to check."""
    text = name.strip()
    if any(unicodedata.category(character) == "Cc" for character in text):
        raise InvalidCompanyName(f"{text!r} holds a control character (a line break, a tab, "
                                 "NUL…); use a name that is one line of plain text.")
    return text


def numbered_slug(slug: str, number: int) -> str:
    """The slug of the `number`th alias of one company: `acme`, `acme-2`, `acme-3`…"""
    return slug if number <= 1 else f"{slug}-{number}"


def alias_tag(secret: bytes, slug: str) -> str:
    """The first `TAG_LENGTH` base32 characters of HMAC-SHA256(secret, slug)."""
    digest = hmac.new(secret, slug.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:TAG_LENGTH]


def alias_local_part(secret: bytes, slug: str) -> str:
    return f"{slug}.{alias_tag(secret, slug)}"


class RetireReply(enum.StrEnum):
    """What mail to a retired alias gets."""

    ACCEPT = "accept"
    """Keep recording: evidence keeps coming, and nobody learns the alias is retired."""
    REJECT = "reject"
    """Refuse at RCPT with 550."""


class DomainSource(enum.StrEnum):
    """How a domain became one of the company's own."""

    DECLARED = "declared"
    """Given when the alias was issued."""
    TRUSTED = "trusted"
    """Confirmed by the person later (`canary trust`)."""


class RecipientKind(enum.Enum):
    """What a RCPT TO address is, as far as the secret and the domains tell."""

    FOREIGN = "foreign"
    """Not one of the canary domains: relaying is refused."""
    NOT_AN_ALIAS = "not_an_alias"
    """On a canary domain, but not of alias form or with a wrong tag: a probe."""
    CANDIDATE = "candidate"
    """A well-formed alias with a valid tag; the store says whether it is issued."""


@dataclass(frozen=True, slots=True)
class Recipient:
    kind: RecipientKind
    address: str
    """The address as normalised for storage (lower case, IDN domain in A-labels)."""
    local_part: str = ""
    domain: str = ""


@functools.lru_cache(maxsize=4096)
def check_recipient(address: str, domains: frozenset[str], secret: bytes) -> Recipient:
    """Classify a RCPT TO address without touching the database.

    A `+detail` suffix on the local part is ignored, so `acme.k7f3qd4m+x@…`
    reaches the alias `acme.k7f3qd4m@…`.
    """
    raw = address.strip().strip("<>")
    local, at, domain_text = raw.rpartition("@")
    if not at or not local:
        return Recipient(RecipientKind.FOREIGN, raw)
    try:
        domain = normalise_domain(domain_text)
    except InvalidDomain:
        return Recipient(RecipientKind.FOREIGN, raw)
    if domain not in domains:
        return Recipient(RecipientKind.FOREIGN, f"{local}@{domain}")
    local = local.lower().partition("+")[0]
    normalised = f"{local}@{domain}"
    slug, dot, tag = local.rpartition(".")
    if not dot or not _SLUG.match(slug) or not _TAG.match(tag) or len(tag) != TAG_LENGTH:
        return Recipient(RecipientKind.NOT_AN_ALIAS, normalised, local, domain)
    if not hmac.compare_digest(tag, alias_tag(secret, slug)):
        return Recipient(RecipientKind.NOT_AN_ALIAS, normalised, local, domain)
    return Recipient(RecipientKind.CANDIDATE, normalised, local, domain)
