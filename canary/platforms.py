"""Which platform sent a message in its own name for a merchant, and where it names the merchant.

Payment, point-of-sale, invoicing, ticketing, booking, support-desk,
e-commerce, newsletter and form platforms mail a merchant's customers from
the platform's own domain: Stripe sends a shop's receipt from `stripe.com`,
Zendesk a shop's ticket reply from `shop.zendesk.com`. Such a message was
sent *for* the merchant, so the platform is not the company that holds the
address, and the platform table (`platforms.json`, package data, read and
checked once per process) says which domains are platforms and where each
names its merchant: the From display name, the Reply-To, a tenant
subdomain, the From local part, a header or the subject.

This module only decides which platform a domain belongs to and hands back
the platform's rules; it never decides who the merchant is. A merchant named
by a platform is a claim written by whoever holds the platform account
(anyone may open a Zendesk called `paypal-support`), never proof of who sent
the message, and nothing here may treat it as such. The table never lists a
domain that also belongs to an email service provider in `esps.json`: an ESP
sends with its customer's own From domain, a platform with its own.

Nothing here does network, database or environment access: the only reads
are the package data, once.
"""

from __future__ import annotations

import enum
import functools
import importlib.resources
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from canary.domains import domain_in, nearest_listed
from canary.esp import Esp, load_esps
from canary.tables import listed_domains, no_unknown_keys

SCHEMA_VERSION = 1

_HEADER_NAME_MAX = 128
_PATTERN_MAX = 512
"""Longest pattern accepted: a rule is a short anchored expression, not a program."""
_SOURCE_MAX = 2048
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")
"""RFC 5322 field name: printable ASCII except the colon."""
_MERCHANT_GROUP = "merchant"

_TOP_KEYS = frozenset({"schema_version", "comment", "platforms"})
_PLATFORM_KEYS = frozenset(
    {"name", "category", "from_domains", "signing_domains", "merchant", "sources", "notes"}
)
_RULE_KEYS = frozenset({"where", "pattern", "name", "under"})


class MerchantSource(enum.StrEnum):
    """Where in a message a platform names the merchant it sent for."""

    DISPLAY_NAME = "display_name"
    REPLY_TO = "reply_to"
    TENANT_SUBDOMAIN = "tenant_subdomain"
    FROM_LOCAL_PART = "from_local_part"
    HEADER = "header"
    SUBJECT = "subject"


class Category(enum.StrEnum):
    """What a platform does for its merchants."""

    PAYMENTS = "payments"
    POINT_OF_SALE = "point_of_sale"
    INVOICING = "invoicing"
    TICKETING = "ticketing"
    BOOKING = "booking"
    SUPPORT_DESK = "support_desk"
    ECOMMERCE = "ecommerce"
    MARKETING_AUTOMATION = "marketing_automation"
    SCHEDULING = "scheduling"
    SURVEYS_FORMS = "surveys_forms"
    SHIPPING = "shipping"
    CROWDFUNDING = "crowdfunding"
    MARKETPLACE = "marketplace"


_NEEDS_PATTERN = frozenset(
    {MerchantSource.FROM_LOCAL_PART, MerchantSource.HEADER, MerchantSource.SUBJECT}
)
"""Sources whose text is not the merchant as it stands: a pattern must cut the merchant out."""
_TAKES_PATTERN = _NEEDS_PATTERN | {MerchantSource.DISPLAY_NAME}


@dataclass(frozen=True, slots=True)
class MerchantRule:
    source: MerchantSource
    pattern: re.Pattern[str] | None
    """Its named group `merchant` is the merchant; None: the whole text is (display name only)."""
    header: str | None
    """The header's name as the table spells it, for `HEADER`; compared case-insensitively."""
    under: str | None
    """For `TENANT_SUBDOMAIN`: the from-domain the tenant label sits under; None: any of them."""


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    category: Category
    from_domains: tuple[str, ...]
    """Domains seen in the From address of merchant mail; each also covers its subdomains."""
    signing_domains: tuple[str, ...]
    """DKIM `d=` domains; each also covers its subdomains. May be empty."""
    merchant: tuple[MerchantRule, ...]
    """Where the merchant is named, most reliable first."""
    sources: tuple[str, ...]


@functools.cache
def load_platforms() -> tuple[Platform, ...]:
    """The platform table shipped with Canary, checked; read once per process.

    Raises `ValueError` naming the fault when the table is malformed.
    """
    try:
        text = importlib.resources.files("canary").joinpath("platforms.json").read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"The platform table canary/platforms.json cannot be read: {error}"
        ) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"The platform table canary/platforms.json is not valid JSON: {error}"
        ) from error
    return parse_platforms(data)


def parse_platforms(data: object, esps: Sequence[Esp] | None = None) -> tuple[Platform, ...]:
    """Check a decoded platform table and build it; raises `ValueError` naming the fault.

    `esps` is the ESP table whose domains no platform may share; the shipped
    one (`load_esps()`) unless given.
    """
    if not isinstance(data, dict):
        raise ValueError("The platform table must be a JSON object.")
    no_unknown_keys(data, _TOP_KEYS, "The platform table")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"The platform table has schema_version {data.get('schema_version')!r}; "
            f"this Canary reads {SCHEMA_VERSION}."
        )
    if not isinstance(data.get("comment", ""), str):
        raise ValueError("The platform table's comment must be a string.")
    entries = data.get("platforms")
    if not isinstance(entries, list) or not entries:
        raise ValueError('The platform table needs a non-empty "platforms" list.')
    platforms = tuple(_parse_platform(entry, number) for number, entry in enumerate(entries, 1))
    _check_across(platforms)
    _check_against_esps(platforms, load_esps() if esps is None else esps)
    return platforms


def _parse_platform(entry: object, number: int) -> Platform:
    where = f"Platform #{number}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a JSON object.")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{where} needs a non-empty name.")
    where = f"Platform #{number} ({name})"
    no_unknown_keys(entry, _PLATFORM_KEYS, where)
    if not isinstance(entry.get("notes", ""), str):
        raise ValueError(f"{where}: notes must be a string.")
    raw_category = entry.get("category")
    try:
        category = Category(raw_category) if isinstance(raw_category, str) else None
    except ValueError:
        category = None
    if category is None:
        raise ValueError(
            f"{where}: category {raw_category!r} is not one of "
            f"{', '.join(c.value for c in Category)}."
        )
    from_domains = _parse_domains(entry.get("from_domains"), f"{where} from_domains")
    if not from_domains:
        raise ValueError(f"{where} needs at least one from_domain: nothing could match it.")
    signing = _parse_domains(entry.get("signing_domains", []), f"{where} signing_domains")
    raw_rules = entry.get("merchant")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ValueError(f"{where} needs a non-empty merchant list: where is the merchant named?")
    rules = tuple(
        _parse_rule(raw, from_domains, f"{where} merchant rule #{i}")
        for i, raw in enumerate(raw_rules, 1)
    )
    sources = _parse_sources(entry.get("sources"), where)
    return Platform(name, category, from_domains, signing, rules, sources)


def _parse_domains(raw: object, where: str) -> tuple[str, ...]:
    domains = listed_domains(raw, where, "a platform's")
    for index, domain in enumerate(domains):
        for other in domains[:index]:
            if _under(domain, other) or _under(other, domain):
                raise ValueError(
                    f"{where}: {domain!r} and {other!r} overlap; a domain covers its subdomains."
                )
    return domains


def _parse_rule(raw: object, from_domains: tuple[str, ...], where: str) -> MerchantRule:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a JSON object.")
    no_unknown_keys(raw, _RULE_KEYS, where)
    raw_source = raw.get("where")
    try:
        source = MerchantSource(raw_source) if isinstance(raw_source, str) else None
    except ValueError:
        source = None
    if source is None:
        raise ValueError(
            f"{where}: where {raw_source!r} is not one of "
            f"{', '.join(s.value for s in MerchantSource)}."
        )
    where = f"{where} ({source.value})"
    pattern = _parse_pattern(raw.get("pattern"), source, where)
    header: str | None = None
    name = raw.get("name")
    if source is MerchantSource.HEADER:
        if not isinstance(name, str) or len(name) > _HEADER_NAME_MAX or not _FIELD_NAME.match(name):
            raise ValueError(f"{where}: a header rule needs a header field name, not {name!r}.")
        header = name
    elif name is not None:
        raise ValueError(f"{where}: only a header rule takes a header name.")
    under: str | None = None
    raw_under = raw.get("under")
    if raw_under is not None:
        if source is not MerchantSource.TENANT_SUBDOMAIN:
            raise ValueError(f"{where}: only a tenant_subdomain rule takes under.")
        if raw_under not in from_domains:
            raise ValueError(
                f"{where}: under {raw_under!r} is not one of this platform's from_domains."
            )
        under = str(raw_under)
    return MerchantRule(source, pattern, header, under)


def _parse_pattern(raw: object, source: MerchantSource, where: str) -> re.Pattern[str] | None:
    if raw is None:
        if source in _NEEDS_PATTERN:
            raise ValueError(f"{where} needs a pattern with a named group {_MERCHANT_GROUP!r}.")
        return None
    if source not in _TAKES_PATTERN:
        raise ValueError(f"{where} takes no pattern: the merchant is the whole {source.value}.")
    if not isinstance(raw, str) or not raw or len(raw) > _PATTERN_MAX:
        raise ValueError(
            f"{where}: pattern must be a non-empty string of at most {_PATTERN_MAX} characters."
        )
    try:
        pattern = re.compile(raw)
    except re.error as error:
        raise ValueError(
            f"{where}: pattern {raw!r} is not a regular expression: {error}."
        ) from error
    if set(pattern.groupindex) != {_MERCHANT_GROUP}:
        raise ValueError(
            f"{where}: pattern {raw!r} must have one named group, {_MERCHANT_GROUP!r}, "
            f"not {sorted(pattern.groupindex) or 'none'}."
        )
    return pattern


def _parse_sources(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where} needs at least one source: cite where its facts come from.")
    sources: list[str] = []
    for url in raw:
        if not isinstance(url, str) or len(url) > _SOURCE_MAX:
            raise ValueError(f"{where}: source {url!r} is not a URL.")
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in url):
            raise ValueError(f"{where}: source {url!r} is not an https URL.")
        if url in sources:
            raise ValueError(f"{where}: source {url!r} is listed twice.")
        sources.append(url)
    return tuple(sources)


def _under(domain: str, parent: str) -> bool:
    """Whether `domain` is `parent` or one of its subdomains."""
    return domain == parent or domain.endswith("." + parent)


def _check_across(platforms: tuple[Platform, ...]) -> None:
    """Names unique; each domain, with its subdomains, belongs to one platform."""
    names: set[str] = set()
    for platform in platforms:
        key = platform.name.casefold()
        if key in names:
            raise ValueError(f"The platform table lists {platform.name!r} twice.")
        names.add(key)
    owners: list[tuple[str, str]] = []
    for platform in platforms:
        mine = dict.fromkeys(platform.from_domains + platform.signing_domains)
        for domain in mine:
            for listed, owner in owners:
                if _under(domain, listed) or _under(listed, domain):
                    raise ValueError(
                        f"{domain!r} ({platform.name}) overlaps {listed!r} ({owner}): "
                        "a domain belongs to one platform."
                    )
        owners.extend((domain, platform.name) for domain in mine)


def _check_against_esps(platforms: tuple[Platform, ...], esps: Sequence[Esp]) -> None:
    """No platform domain is, or sits above or below, an ESP's signing or bounce domain."""
    esp_domains = [
        (domain, esp.name) for esp in esps for domain in esp.signing_domains + esp.bounce_domains
    ]
    for platform in platforms:
        for domain in platform.from_domains + platform.signing_domains:
            for listed, esp in esp_domains:
                if _under(domain, listed) or _under(listed, domain):
                    raise ValueError(
                        f"{domain!r} ({platform.name}) overlaps the ESP domain {listed!r} "
                        f"({esp}): an ESP sends with its customer's From domain, "
                        "so the ESP table must own it."
                    )


@dataclass(frozen=True, slots=True)
class _Index:
    sending: Mapping[str, Platform]
    signing: Mapping[str, Platform]


@functools.cache
def _index() -> _Index:
    sending: dict[str, Platform] = {}
    signing: dict[str, Platform] = {}
    for platform in load_platforms():
        sending.update(dict.fromkeys(platform.from_domains, platform))
        signing.update(dict.fromkeys(platform.signing_domains, platform))
    return _Index(sending=sending, signing=signing)


@functools.lru_cache(maxsize=4096)
def _listed(domain: str, signing: bool) -> tuple[Platform, str] | None:
    """The listed domain that `domain` equals or sits under, with its platform."""
    hit = nearest_listed(domain, _index().signing if signing else _index().sending)
    return (hit[1], hit[0]) if hit else None


def platform_for_domain(domain: str) -> tuple[Platform, str] | None:
    """The platform whose from_domains include `domain` or a parent of it, and the listed domain.

    `domain` may also be an address. Hostile or malformed input gives None,
    never an exception.
    """
    host = domain_in(domain)
    if host is None:
        return None
    return _listed(host, False)


def platform_for_signing_domain(domain: str) -> Platform | None:
    """The platform whose signing_domains include the DKIM `d=` domain or a parent of it."""
    host = domain_in(domain)
    if host is None:
        return None
    hit = _listed(host, True)
    return hit[0] if hit else None
