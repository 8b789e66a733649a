"""What a stored message says about its sender, read from its headers.

`read_message` takes the raw bytes exactly as received and returns plain
facts: From, Return-Path, DKIM `d=` domains, List-Unsubscribe, Message-ID,
Date and Subject. It never raises on hostile input (NUL bytes, non-UTF-8
headers, missing or repeated From, huge headers): what it cannot read is
listed in `problems`, so the message stays stored and marked.

It never returns the body, and nothing here logs.
"""

from __future__ import annotations

import email.header
import email.parser
import email.policy
import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from canary.domains import normalise_domain, organisational_domain
from canary.errors import InvalidDomain

HEADER_TEXT_MAX = 512
"""Longest header text kept: enough for evidence, bounded against huge headers."""
HEADERS_KEPT = 200
REPLY_TO_KEPT = 5

_DKIM_D_TAG = re.compile(r"(?:^|;)\s*d\s*=\s*([^;\s]+)", re.IGNORECASE)


class _KeepHeaderBytes(email.policy.Compat32):
    """compat32, except that a header holding 8-bit bytes comes back as text with
    surrogate escapes. compat32 wraps it in a `Header` whose str() turns every such
    byte into U+FFFD, which loses RFC 6532 UTF-8 headers (SMTPUTF8 mail)."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_PARSER = email.parser.BytesHeaderParser(policy=_KeepHeaderBytes())


@dataclass(frozen=True, slots=True)
class MessageFacts:
    from_addresses: tuple[str, ...]
    """Every address of every From header, in order (usually exactly one)."""
    from_domain: str | None
    from_org: str | None
    """Organisational domain of the first From address."""
    from_orgs: tuple[str, ...]
    """Organisational domains of all From addresses, for the repeated-From trick."""
    return_path: str | None
    dkim_domains: tuple[str, ...]
    list_unsubscribe: str | None
    message_id: str | None
    date: datetime | None
    subject: str | None
    problems: tuple[str, ...]
    authentication_results: tuple[str, ...] = ()
    """Authentication-Results values, topmost first."""
    headers: tuple[tuple[str, str], ...] = ()
    """The first `HEADERS_KEPT` headers (name, raw value cut to `HEADER_TEXT_MAX`) for
    fingerprints; undecoded (bytes that are not UTF-8 as `\\xNN`, see `storable`), and
    never the body."""
    precedence: str | None = None
    from_name: str | None = None
    """The display name of the first From address, decoded."""
    reply_to: tuple[tuple[str, str], ...] = ()
    """(display name, address) of each Reply-To address."""
    sender: str | None = None
    """The Sender header's address: who sent it for the author (a list server, an assistant)."""
    list_id: str | None = None
    """The List-Id header, as written."""
    auto_submitted: str | None = None
    """The Auto-Submitted header's keyword (`auto-replied`, `auto-generated`), lower case."""
    content_type: str | None = None
    """The top-level media type, lower case (`multipart/report` for a delivery report)."""
    list_post: str | None = None
    """The List-Post header: `<mailto:…>` on a list anyone can post to, `NO` on an
    announcement list."""
    in_reply_to: str | None = None

    @property
    def from_address(self) -> str | None:
        return self.from_addresses[0] if self.from_addresses else None

    @classmethod
    def unreadable(cls, problem: str) -> MessageFacts:
        """Facts of a message nothing could be read from."""
        return cls((), None, None, (), None, (), None, None, None, None, (problem,))


_STRAY_SURROGATES = re.compile("[\ud800-\udc7f\udd00-\udfff]")
"""Surrogates other than the escapes of bytes that are not UTF-8 (U+DC80 to U+DCFF)."""


def storable(text: str, bad_bytes: str = "backslashreplace") -> str:
    """Text as received, in a form any database can store.

    Python keeps bytes that are not UTF-8 as surrogate escapes (aiosmtpd, the
    email parser), which no database accepts: they become `\\xNN` (with
    `bad_bytes="replace"`, U+FFFD). A stray surrogate, which a hostile
    charset (`unicode-escape`, `utf-7`) decodes into, becomes U+FFFD. Anything
    else is unchanged.
    """
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", bad_bytes)
    except UnicodeEncodeError:
        text = _STRAY_SURROGATES.sub("\ufffd", text)
        return text.encode("utf-8", "surrogateescape").decode("utf-8", bad_bytes)


def _text(value: object, limit: int = HEADER_TEXT_MAX) -> str:
    """Header value as readable text: encoded words decoded, bad bytes replaced."""
    raw = str(value)
    if not raw.isascii():
        # 8-bit header: UTF-8 as RFC 6532 allows, anything else replaced below.
        raw = storable(raw, "replace")
    try:
        parts = email.header.decode_header(raw)
        text = "".join(
            # decode_header hands back unencoded runs as raw-unicode-escape bytes.
            part.decode(charset or "raw-unicode-escape", "replace")
            if isinstance(part, bytes) else part
            for part, charset in parts
        )
    except (LookupError, ValueError, email.errors.HeaderParseError):
        text = raw
    text = storable(text, "replace")
    text = " ".join(text.replace("\x00", "").split())
    return text[:limit]


def _domain_of(address: str) -> str | None:
    _, at, domain = address.rpartition("@")
    if not at:
        return None
    try:
        return normalise_domain(domain.strip("<> "))
    except InvalidDomain:
        return None


def _first(headers: list[str] | None) -> str | None:
    return _text(headers[0]) if headers else None


def _header_block(raw: bytes) -> bytes:
    """The header section alone: parsing the body would cost time and tell nothing."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[: min(ends) + 2] if ends else raw


DELIVERY_HEADERS = frozenset({"delivered-to", "x-original-to", "envelope-to",
                              "x-envelope-to", "to", "cc", "received", "date", "return-path"})
DELIVERY_VALUE_MAX = 64 * 1024
"""A To or Cc header may name many recipients: kept much longer than other header text."""


def delivery_headers(raw: bytes) -> list[tuple[str, str]]:
    """The headers that say where and when a message was delivered (recipients, Received,
    Date, Return-Path), topmost first, decoded and bounded; never raises."""
    message = _PARSER.parsebytes(_header_block(raw.replace(b"\x00", b"")))
    return [(str(name), _text(value, DELIVERY_VALUE_MAX)) for name, value in message.items()
            if str(name).strip().lower() in DELIVERY_HEADERS]


def read_message(raw: bytes) -> MessageFacts:
    """Read the sender facts of one raw message; never raises."""
    problems: list[str] = []
    if b"\x00" in raw:
        problems.append("message contains NUL bytes")
        raw = raw.replace(b"\x00", b"")
    message = _PARSER.parsebytes(_header_block(raw))
    if message.defects:
        problems.append(f"{len(message.defects)} header defect(s)")

    from_headers = [_text(v, 4 * HEADER_TEXT_MAX) for v in message.get_all("From") or []]
    if not from_headers:
        problems.append("no From header")
    elif len(from_headers) > 1:
        problems.append(f"{len(from_headers)} From headers")
    named = [(name, address.lower()) for name, address in email.utils.getaddresses(from_headers)
             if "@" in address]
    addresses = tuple(address for _, address in named)
    if from_headers and not addresses:
        problems.append("From header has no address")
    domains = [_domain_of(a) for a in addresses]
    orgs = tuple(org for d in domains if d and (org := organisational_domain(d)))
    from_domain = domains[0] if domains else None
    from_org = organisational_domain(from_domain) if from_domain else None
    if addresses and from_org is None:
        problems.append("From domain has no organisational domain")

    dkim_domains: list[str] = []
    for signature in message.get_all("DKIM-Signature") or []:
        match = _DKIM_D_TAG.search(str(signature).replace("\r\n", "").replace("\n", ""))
        if match and (domain := _domain_of("@" + match.group(1))):
            dkim_domains.append(domain)

    date: datetime | None = None
    if date_text := _first(message.get_all("Date")):
        try:
            parsed = email.utils.parsedate_to_datetime(date_text)
            date = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
        except (TypeError, ValueError, IndexError, OverflowError):
            problems.append("unreadable Date header")

    reply_to = tuple(
        (_text(name), address.lower())
        for name, address in email.utils.getaddresses(
            [_text(v, 4 * HEADER_TEXT_MAX) for v in message.get_all("Reply-To") or []])
        if "@" in address
    )[:REPLY_TO_KEPT]
    senders = [a.lower() for _, a in email.utils.getaddresses(
        [_text(v) for v in message.get_all("Sender") or []]) if "@" in a]
    auto = _first(message.get_all("Auto-Submitted"))
    return MessageFacts(
        from_addresses=addresses,
        from_domain=from_domain,
        from_org=from_org,
        from_orgs=orgs,
        return_path=_first(message.get_all("Return-Path")),
        dkim_domains=tuple(dict.fromkeys(dkim_domains)),
        list_unsubscribe=_first(message.get_all("List-Unsubscribe")),
        message_id=_first(message.get_all("Message-ID")),
        date=date,
        subject=_first(message.get_all("Subject")),
        problems=tuple(problems),
        authentication_results=tuple(
            _text(v, 4 * HEADER_TEXT_MAX) for v in message.get_all("Authentication-Results") or []
        ),
        headers=tuple(
            (storable(str(name)[:100]), storable(str(value)[:HEADER_TEXT_MAX]))
            for name, value in message.items()[:HEADERS_KEPT]
        ),
        precedence=_first(message.get_all("Precedence")),
        from_name=_text(named[0][0]) or None if named else None,
        reply_to=reply_to,
        sender=senders[0] if senders else None,
        list_id=_first(message.get_all("List-Id")),
        auto_submitted=_keyword(auto),
        content_type=_media_type(message.get("Content-Type")),
        list_post=_first(message.get_all("List-Post")),
        in_reply_to=_first(message.get_all("In-Reply-To")),
    )


def _keyword(value: str | None) -> str | None:
    """`auto-replied` from `auto-replied (vacation)` or `auto-replied; owner-email=…`."""
    if not value:
        return None
    words = value.replace(";", " ").replace("(", " ").split()
    return words[0].lower() if words else None


def _media_type(value: object) -> str | None:
    """`multipart/report` from `multipart/report; report-type=delivery-status; …`."""
    if value is None:
        return None
    media = _text(value).split(";", 1)[0].strip().lower()
    return media if "/" in media else None
