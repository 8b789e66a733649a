"""What the shipped tables (`esps.json`, `platforms.json`, `shared_tenants.json`) check
alike when they are loaded: each fault raises `ValueError` naming where it is, so a
contributor's edit that breaks a table is refused in one sentence, never half read.
"""

from __future__ import annotations

from collections.abc import Mapping

from canary.domains import normalise_domain, organisational_domain
from canary.errors import InvalidDomain


def no_unknown_keys(mapping: Mapping[str, object], allowed: frozenset[str], where: str) -> None:
    """Refuse a key the table does not define: a misspelt one would be silently ignored."""
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}.")


def listed_domain(domain: object, where: str) -> str:
    """A domain name as a table must write it: valid, lower case, in A-labels."""
    if not isinstance(domain, str):
        raise ValueError(f"{where}: {domain!r} is not a domain name.")
    try:
        normal = normalise_domain(domain)
    except InvalidDomain as error:
        raise ValueError(f"{where}: {error}") from error
    if normal != domain:
        raise ValueError(f"{where}: write {domain!r} as {normal!r} (lower case, A-labels).")
    return domain


def listed_domains(raw: object, where: str, owner: str) -> tuple[str, ...]:
    """A list of domain names, each as `listed_domain` wants it, below a public suffix
    (`owner` says whose domain it should be: "an ESP's") and listed once."""
    if not isinstance(raw, list):
        raise ValueError(f"{where} must be a list of domain names.")
    domains: list[str] = []
    for entry in raw:
        domain = listed_domain(entry, where)
        if organisational_domain(domain) is None:
            raise ValueError(f"{where}: {domain!r} is a public suffix, not {owner} domain.")
        if domain in domains:
            raise ValueError(f"{where}: {domain!r} is listed twice.")
        domains.append(domain)
    return tuple(domains)
