"""Shared-tenant domains: registrable domains that many unrelated senders share.

Normally the sender of a message is the organisation behind its From domain,
the registrable domain from the Public Suffix List. That list's private
section already splits hosts such as `foo.herokuapp.com` into their own
registrable domains. Some domains it does not split are still shared by
thousands of senders who have nothing to do with each other: gmail.com,
googlegroups.com, onmicrosoft.com. Treating such a domain as one
organisation would merge them all into one sender, and one of them mailing
an alias would look like another leaking it: a false accusation.

The table of these domains is package data (`shared_tenants.json`), read and
checked once per process. `sender_identity` applies the rule that says who
the sender is on such a domain:

| kind           | the sender is                                   | e.g.                      |
|----------------|-------------------------------------------------|---------------------------|
| (not listed)   | the registrable domain                          | `acme.co.uk`              |
| `mailbox`      | the full address                                | `jane.doe@gmail.com`      |
| `group`        | the list, by its List-Id under the domain, else | `mygroup.groups.io`,      |
|                | the full address (the group's own address)      | `mygroup@googlegroups.com`|
| `cloud_tenant` | the label directly under the domain; the full   | `contoso.onmicrosoft.com` |
|                | address when the host is the domain itself      |                           |

It must never make two different senders look like one. When in doubt it
keeps them apart (the full address), which can only weaken a link, never
invent one. Nothing here does network, DNS or database I/O or reads the
environment: the only read is the package data, once.
"""

from __future__ import annotations

import enum
import functools
import importlib.resources
import json
import re
import types
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from canary.domains import normalise_domain, organisational_domain
from canary.errors import InvalidDomain
from canary.tables import listed_domain, no_unknown_keys

SCHEMA_VERSION = 1

LOCAL_PART_MAX = 64
"""RFC 5321's limit on the local part; anything longer is not an address."""

LIST_ID_MAX = 255
"""RFC 2919: a list identifier is at most 255 octets."""

_SOURCE_MAX = 2048
_OPERATOR_MAX = 200
_TOP_KEYS = frozenset({"schema_version", "comment", "domains"})
_ENTRY_KEYS = frozenset({"domain", "kind", "operator", "source"})
_LIST_ID_ATOM = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)+$")
"""RFC 2919 list-id: a dot-atom of at least two atoms, compared in lower case."""


class TenantKind(enum.StrEnum):
    MAILBOX = "mailbox"
    """A mailbox provider: each address is its own sender."""
    GROUP = "group"
    """A group or list host: each group or list is its own sender."""
    CLOUD_TENANT = "cloud_tenant"
    """Each customer gets the label directly under the domain: `contoso.onmicrosoft.com`."""


@dataclass(frozen=True, slots=True)
class SharedDomain:
    domain: str
    """The registrable domain, lower case, A-labels."""
    kind: TenantKind
    operator: str
    """Who runs it, for people to read: "Google (Gmail)"."""


@functools.cache
def load_shared_domains() -> Mapping[str, SharedDomain]:
    """The shared-domain table shipped with Canary, checked; read once per process.

    Keyed by registrable domain. Raises `ValueError` naming the fault when
    the table is malformed.
    """
    try:
        text = (
            importlib.resources.files("canary").joinpath("shared_tenants.json").read_text("utf-8")
        )
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(
            f"The shared-domain table canary/shared_tenants.json cannot be read: {error}"
        ) from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"The shared-domain table canary/shared_tenants.json is not valid JSON: {error}"
        ) from error
    return parse_tenants(data)


def parse_tenants(data: object) -> Mapping[str, SharedDomain]:
    """Check a decoded shared-domain table and build it; raises `ValueError` naming the fault."""
    if not isinstance(data, dict):
        raise ValueError("The shared-domain table must be a JSON object.")
    no_unknown_keys(data, _TOP_KEYS, "The shared-domain table")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"The shared-domain table has schema_version {data.get('schema_version')!r}; "
            f"this Canary reads {SCHEMA_VERSION}."
        )
    if not isinstance(data.get("comment", ""), str):
        raise ValueError("The shared-domain table's comment must be a string.")
    entries = data.get("domains")
    if not isinstance(entries, list) or not entries:
        raise ValueError('The shared-domain table needs a non-empty "domains" list.')
    table: dict[str, SharedDomain] = {}
    for number, entry in enumerate(entries, 1):
        shared = _parse_entry(entry, number)
        if shared.domain in table:
            raise ValueError(f"The shared-domain table lists {shared.domain!r} twice.")
        table[shared.domain] = shared
    return types.MappingProxyType(table)


def _parse_entry(entry: object, number: int) -> SharedDomain:
    where = f"Shared domain #{number}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a JSON object.")
    domain = entry.get("domain")
    if not isinstance(domain, str) or not domain:
        raise ValueError(f"{where} needs a domain.")
    where = f"Shared domain #{number} ({domain})"
    no_unknown_keys(entry, _ENTRY_KEYS, where)
    listed_domain(domain, where)
    registrable = organisational_domain(domain)
    if registrable != domain:
        # None: a public suffix, which includes a domain the Public Suffix
        # List's private section already splits. Else: a subdomain.
        found = "a public suffix" if registrable is None else f"under {registrable!r}"
        raise ValueError(f"{where}: {domain!r} is not a registrable domain; it is {found}.")
    kind = entry.get("kind")
    if kind not in {k.value for k in TenantKind}:
        allowed = ", ".join(k.value for k in TenantKind)
        raise ValueError(f"{where}: kind {kind!r} is not one of {allowed}.")
    operator = entry.get("operator")
    if not isinstance(operator, str) or not operator.strip() or len(operator) > _OPERATOR_MAX:
        raise ValueError(f"{where} needs an operator, the name of who runs it.")
    source = entry.get("source")
    if not _is_https_url(source):
        raise ValueError(f"{where} needs a source, an https URL that supports the entry.")
    return SharedDomain(domain, TenantKind(kind), operator)


def _is_https_url(value: object) -> bool:
    if not isinstance(value, str) or len(value) > _SOURCE_MAX:
        return False
    if any(c.isspace() or not c.isprintable() for c in value):
        return False
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname)


def shared_domain(organisation: str) -> SharedDomain | None:
    """The table's entry for `organisation`, or None when it is not a shared domain.

    `organisation` is a registrable domain such as `gmail.com`; a host under
    one (`mail.gmail.com`) is reduced to its registrable domain first, so a
    caller that passes a host still gets the entry. An invalid name gives None.
    """
    registrable = organisational_domain(organisation)
    if registrable is None:
        return None
    return load_shared_domains().get(registrable)


def _split_address(address: str) -> tuple[str, str] | None:
    """(local part, normalised host) of an addr-spec such as `<Jane@Mail.Example>`."""
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    local, at, host = text.rpartition("@")
    if not at or not local or len(local) > LOCAL_PART_MAX:
        return None
    if any(not c.isprintable() or (c.isspace() and c != " ") for c in local):
        return None
    try:
        return local, normalise_domain(host)
    except InvalidDomain:
        return None


def _list_id(value: str | None, domain: str) -> str | None:
    """The list identifier of a List-Id value when it names a list under `domain`."""
    if not value:
        return None
    text = value[: LIST_ID_MAX * 4]
    if (start := text.rfind("<")) != -1:
        end = text.find(">", start)
        if end == -1:
            return None
        text = text[start + 1 : end]
    identifier = text.strip().lower()
    if len(identifier) > LIST_ID_MAX or not _LIST_ID_ATOM.match(identifier):
        return None
    if not identifier.endswith("." + domain):
        return None
    return identifier


def sender_identity(address: str, list_id: str | None = None) -> str | None:
    """Who sent a message from `address`: one key per sender, never one for two senders.

    `address` is the From addr-spec (`jane@gmail.com`). `list_id` is the
    List-Id header's value, if any; it counts only for a group domain, and
    only when it names a list under that same domain, so a List-Id cannot
    move a sender onto another domain. Gives, by the kind of the From's
    registrable domain (see the module's table): the registrable domain, the
    full address, the list, or the tenant domain. The local part is compared
    in lower case, as every listed provider treats it. None when `address`
    is not an address with a valid domain that has a registrable domain.
    """
    split = _split_address(address)
    if split is None:
        return None
    local, host = split
    organisation = organisational_domain(host)
    if organisation is None:
        return None
    shared = load_shared_domains().get(organisation)
    if shared is None:
        return organisation
    full_address = f"{local.lower()}@{host}"
    if shared.kind is TenantKind.GROUP:
        return _list_id(list_id, shared.domain) or full_address
    if shared.kind is TenantKind.CLOUD_TENANT and host != shared.domain:
        tenant = host[: -len(shared.domain) - 1].rpartition(".")[2]
        return f"{tenant}.{shared.domain}"
    return full_address
