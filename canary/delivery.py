"""Delivery to the person's own mailbox: where, what to do with each message, its labels.

Canary delivers what it accepted, and only to the destinations the person
configured: a Maildir, LMTP (Dovecot's, usually), IMAP APPEND into a mailbox
at any provider, or SMTP to a next hop the person owns. No message content,
envelope or header ever chooses a destination. Per relation (and per
company) a policy says `deliver`, `tag` (deliver with a Subject prefix) or
`hold` (keep in Canary, deliver nothing until released).

Labels are prepended, and nothing else changes: an `Authentication-Results`
with Canary's authserv-id (RFC 8601) and `X-Canary-*` headers. Headers of
those names already in the message are removed first, so no sender can
forge Canary's labels; for `deliver`, the bytes after the labels are the
bytes received, so the original DKIM signatures still verify. Pure: plain
values in and out; nothing here opens a file or a socket.
"""

from __future__ import annotations

import enum
import math
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from email.header import Header

from canary.authentication import Authentication, Result
from canary.relation import Relation
from canary.wording import toml_number, toml_string

ANALYSIS_WAIT = timedelta(minutes=10)
"""How long delivery waits for analysis before delivering labelled "not analysed yet"."""
RETRY_FOR = timedelta(days=5)
"""How long a temporary failure is retried before the delivery is marked failed."""
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
LABEL_PREFIX = "x-canary-"
NOT_ANALYSED = "pending"
"""The relation label of a message delivered before analysis settled."""
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:")


class DestinationKind(enum.StrEnum):
    MAILDIR = "maildir"
    LMTP = "lmtp"
    IMAP = "imap"
    SMTP = "smtp"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    """Waiting for its turn, for analysis, or for a retry."""
    DELIVERED = "delivered"
    HELD = "held"
    """Kept in Canary by the policy until the person releases or drops it."""
    FAILED = "failed"
    """A permanent failure, or temporary ones for longer than `RETRY_FOR`."""
    DROPPED = "dropped"
    """The person chose not to deliver it; the evidence is kept."""


class Action(enum.StrEnum):
    DELIVER = "deliver"
    TAG = "tag"
    """Deliver with a Subject prefix naming the company and the sender."""
    HOLD = "hold"
    """Keep in Canary; deliver nothing until the person releases it."""


class DestinationError(ValueError):
    """A destination URL that cannot be used; the message says how to write it."""


@dataclass(frozen=True, slots=True)
class Destination:
    """One configured place to deliver to. `key` names it in the queue and in output."""

    kind: DestinationKind
    key: str
    """The URL as configured, without secrets: how the queue and the person name it."""
    path: str | None = None
    """Maildir directory, or LMTP unix socket."""
    host: str | None = None
    port: int | None = None
    tls: bool = False
    """IMAPS (TLS from the start)."""
    starttls: bool = False
    user: str | None = None
    folder: str = "INBOX"
    recipient: str | None = None
    """The mailbox to deliver to over LMTP or SMTP."""
    password_file: str | None = None
    password_env: str | None = None
    cafile: str | None = None
    """A certificate to trust for TLS (a self-signed server of the person's own)."""


_OPTIONS = {"recipient", "password_file", "password_env", "cafile", "starttls"}
_SECRET_OPTION = re.compile(r"(?i)([?&][^=&]*pass[^=&]*=)[^&]*")
_USERINFO = re.compile(r"^([a-z]+://[^/@?#]*?):[^/@?#]*@", re.IGNORECASE)
USAGE = ("write maildir:/PATH, lmtp:HOST:PORT?recipient=USER, imaps://USER@HOST/FOLDER?"
         "password_file=PATH or smtp://HOST:PORT?recipient=YOU@DOMAIN")


def redacted(url: str) -> str:
    """The URL as error messages may show it: no password, no password option's value."""
    text = _USERINFO.sub(r"\1:***@", url.strip()[:300])
    return _SECRET_OPTION.sub(r"\1***", text)


def _options(query: str, allowed: set[str], url: str) -> dict[str, str]:
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - allowed)
    if unknown and not allowed:
        raise DestinationError(f"{redacted(url)!r} takes no options")
    if unknown:
        raise DestinationError(f"{redacted(url)!r} has unknown option(s) {', '.join(unknown)}; "
                               f"known: {', '.join(sorted(allowed))}")
    return options


def _port(text: str | None, default: int, url: str) -> int:
    if text is None or text == "":
        return default
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise DestinationError(f"{redacted(url)!r} has no valid port (1-65535)")
    return int(text)


def _host_port(where: str, url: str) -> tuple[str, str]:
    """`host:24` or `[::1]:24` → (host, port text)."""
    if where.startswith("["):
        host, bracket, rest = where[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise DestinationError(f"{redacted(url)!r}: write an IPv6 host as [ADDRESS]:PORT")
        return host, rest[1:]
    if where.count(":") > 1:
        raise DestinationError(f"{redacted(url)!r}: write an IPv6 host as [ADDRESS]:PORT")
    host, _, port = where.partition(":")
    return host, port


def _lmtp(rest: str, url: str) -> Destination:
    where, _, query = rest.partition("?")
    if where.startswith("//"):
        where = where[2:]
    if "@" in where:
        raise DestinationError(f"{redacted(url)!r}: LMTP takes no user or password; give the "
                               "mailbox with ?recipient=USER")
    options = _options(query, {"recipient"}, url)
    recipient = options.get("recipient") or None
    if recipient is None:
        raise DestinationError(f"{redacted(url)!r}: say whose mailbox with ?recipient=USER")
    if where.startswith("/"):
        return Destination(DestinationKind.LMTP, f"lmtp:{where}?recipient={recipient}",
                           path=where, recipient=recipient)
    host, port_text = _host_port(where, url)
    if not host:
        raise DestinationError(f"{redacted(url)!r}: write lmtp:HOST:PORT or lmtp:/path/to/socket")
    port = _port(port_text, 24, url)
    shown = f"[{host}]" if ":" in host else host
    return Destination(DestinationKind.LMTP, f"lmtp:{shown}:{port}?recipient={recipient}",
                       host=host, port=port, recipient=recipient)


def parse_destination(url: str) -> Destination:
    """Read a destination URL; raise `DestinationError` saying how to write it.

    `maildir:PATH`, `lmtp:HOST:PORT?recipient=R`, `lmtp:/SOCKET?recipient=R`,
    `imap://USER@HOST[:PORT]/FOLDER`, `imaps://…` (with `password_file=` or
    `password_env=`), `smtp://HOST[:PORT]?recipient=R[&starttls=yes]`. A
    password in the URL itself is refused, and never repeated in an error: it
    would end up in logs and shells.
    """
    text = url.strip()
    scheme, colon, rest = text.partition(":")
    scheme = scheme.lower()
    if not colon or not rest:
        raise DestinationError(f"{redacted(url)!r} is not a destination; {USAGE}")
    if scheme == "maildir":
        path, _, query = rest.partition("?")
        _options(query, set(), url)
        if not path.startswith("/"):
            raise DestinationError(f"{redacted(url)!r}: give the Maildir as an absolute path")
        return Destination(DestinationKind.MAILDIR, f"maildir:{path}", path=path)
    if scheme == "lmtp":
        return _lmtp(rest, url)
    if _USERINFO.match(text):
        raise DestinationError(f"{scheme}://…: a password in the URL would end up in logs; use "
                               "password_file=PATH (mode 0600) or password_env=NAME")
    if scheme not in ("imap", "imaps", "smtp"):
        raise DestinationError(f"{redacted(url)!r}: Canary delivers to maildir:, lmtp:, "
                               "imap://, imaps:// or smtp:// only")
    parsed = urllib.parse.urlsplit(text)
    if parsed.password is not None:
        raise DestinationError(f"{scheme}://…: a password in the URL would end up in logs; use "
                               "password_file=PATH (mode 0600) or password_env=NAME")
    try:
        given_port = parsed.port
    except ValueError:
        given_port = -1
    if given_port is not None and not 0 < given_port < 65536:
        raise DestinationError(f"{redacted(url)!r} has no valid port (1-65535)")
    if scheme in ("imap", "imaps"):
        options = _options(parsed.query, {"password_file", "password_env", "cafile"}, url)
        if not parsed.username or not parsed.hostname:
            raise DestinationError(f"{redacted(url)!r}: write {scheme}://USER@HOST[:PORT]/FOLDER")
        if not options.get("password_file") and not options.get("password_env"):
            raise DestinationError(f"{redacted(url)!r}: give password_file=PATH (mode 0600) or "
                                   "password_env=NAME")
        folder = urllib.parse.unquote(parsed.path.lstrip("/")) or "INBOX"
        tls = scheme == "imaps"
        port = given_port or (993 if tls else 143)
        key = f"{scheme}://{parsed.username}@{parsed.hostname}:{port}/{folder}"
        return Destination(DestinationKind.IMAP, key, host=parsed.hostname, port=port, tls=tls,
                           user=urllib.parse.unquote(parsed.username), folder=folder,
                           password_file=options.get("password_file"),
                           password_env=options.get("password_env"),
                           cafile=options.get("cafile"))
    options = _options(parsed.query, _OPTIONS, url)
    if not parsed.hostname or not options.get("recipient"):
        raise DestinationError(f"{redacted(url)!r}: write "
                               "smtp://HOST[:PORT]?recipient=YOU@DOMAIN")
    port = given_port or 25
    return Destination(DestinationKind.SMTP,
                       f"smtp://{parsed.hostname}:{port}?recipient={options['recipient']}",
                       host=parsed.hostname, port=port,
                       starttls=options.get("starttls", "").lower() in ("1", "yes", "true"),
                       user=urllib.parse.unquote(parsed.username) if parsed.username else None,
                       recipient=options["recipient"],
                       password_file=options.get("password_file"),
                       password_env=options.get("password_env"),
                       cafile=options.get("cafile"))


DEFAULT_ACTIONS: Mapping[Relation, Action] = {
    relation: Action.DELIVER if not relation.unexpected else Action.TAG for relation in Relation
}
"""Expected mail (and mail that proves nothing) is delivered; unexpected mail is tagged."""


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """What to do with each kind of mail, with overrides per company (by its slug)."""

    actions: Mapping[Relation, Action] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    retired: Action = Action.HOLD
    """For mail to an alias retired with `--reply accept`: still recorded, held by default."""
    pending: Action = Action.DELIVER
    """For mail delivered before its analysis settled."""
    companies: Mapping[str, Mapping[Relation, Action]] = field(default_factory=dict)

    def action(self, relation: Relation | None, company_slug: str, retired: bool) -> Action:
        if retired:
            return self.retired
        if relation is None:
            return self.pending
        override = self.companies.get(company_slug, {})
        return override.get(relation, self.actions.get(relation, DEFAULT_ACTIONS[relation]))


@dataclass(frozen=True, slots=True)
class Labels:
    """What Canary found, as it is written into the delivered message."""

    authserv_id: str
    alias: str
    company: str
    relation: str
    """A `Relation` value, or `pending` when delivered before analysis settled."""
    sender: str
    verdict: str
    sha256: str
    authentication: Authentication | None = None


def _clean(text: str) -> str:
    """Header-safe: one line, printable, bounded."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:300]


def _encoded(text: str) -> str:
    """A header value: as it is in ASCII, else RFC 2047 encoded words (a company called
    `Café Nonna` reaches every mail client intact)."""
    if text.isascii():
        return text
    return Header(text, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _token(text: str | None) -> str:
    """A domain or result as a header token: anything else a message put there is replaced."""
    return re.sub(r"[^A-Za-z0-9._@+-]", "_", text or "")[:255] or "_"


def authentication_results(labels: Labels) -> str:
    """`Authentication-Results: <id>; spf=… dkim=… dmarc=…` (RFC 8601)."""
    auth = labels.authentication
    authserv = _token(labels.authserv_id)
    if auth is None:
        return f"Authentication-Results: {authserv}; none (not analysed yet)"
    parts = [f"spf={auth.spf.result.value}"
             + (f" smtp.mailfrom={_token(auth.spf.domain)}" if auth.spf.domain else "")]
    parts += [f"dkim={d.result.value} header.d={_token(d.domain)}" for d in auth.dkim
              if d.domain]
    if not parts[1:]:
        parts.append("dkim=none")
    dmarc = auth.dmarc.result
    parts.append(f"dmarc={dmarc.value}"
                 + (f" policy.policy={auth.dmarc.policy}" if auth.dmarc.policy else ""))
    if auth.arc.chain is not Result.NONE:
        parts.append(f"arc={auth.arc.chain.value}")
    return f"Authentication-Results: {authserv};\r\n\t" + ";\r\n\t".join(parts)


def label_block(labels: Labels) -> bytes:
    """The header lines Canary prepends, CRLF-terminated."""
    lines = [
        authentication_results(labels),
        f"X-Canary-Alias: {_encoded(_clean(labels.alias))}",
        f"X-Canary-Company: {_encoded(_clean(labels.company))}",
        f"X-Canary-Relation: {_token(labels.relation)}",
        f"X-Canary-Sender: {_encoded(_clean(labels.sender))}",
        f"X-Canary-Verdict: {_token(labels.verdict)}",
        f"X-Canary-Id: {_token(labels.sha256)}",
    ]
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


_COMMENT = re.compile(rb"\([^()]*\)")


def _authserv_id(value: bytes) -> bytes:
    """The authserv-id of an Authentication-Results value, without comments or version."""
    text = value
    while _COMMENT.search(text):
        text = _COMMENT.sub(b" ", text)
    words = text.split(b";", 1)[0].split()
    return words[0].lower() if words else b""


def _forged(name: bytes, value: bytes, authserv_id: str) -> bool:
    lowered = name.lower()
    if lowered.startswith(LABEL_PREFIX.encode()):
        return True
    if lowered == b"authentication-results":
        return _authserv_id(value) == authserv_id.lower().encode()
    return False


_HEADER_END = re.compile(rb"\r?\n\r?\n")


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """(header section with each line's own line end, the rest from the blank line on)."""
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw
    found = _HEADER_END.search(raw)
    if found is None:
        return raw, b""
    first_end = found.start() + (2 if raw[found.start():found.start() + 2] == b"\r\n" else 1)
    return raw[:first_end], raw[first_end:]


def _fields(head: bytes) -> list[bytes]:
    """Header fields, each with its continuation lines."""
    fields: list[list[bytes]] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    return [b"".join(lines) for lines in fields]


def strip_forged_labels(raw: bytes, authserv_id: str) -> bytes:
    """The message without any `X-Canary-*` header or Canary's own Authentication-Results.

    Only the header section is looked at, and nothing else changes; a message
    with none of them comes back as the same bytes.
    """
    head, body = _split(raw)
    kept = []
    changed = False
    for field_bytes in _fields(head):
        match = _HEADER_LINE.match(field_bytes)
        if match and _forged(match.group(1), field_bytes[len(match.group(0)):], authserv_id):
            changed = True
            continue
        kept.append(field_bytes)
    return b"".join(kept) + body if changed else raw


def tag_subject(raw: bytes, tag: str) -> bytes:
    """The message with `tag` put before its Subject (a Subject is added if it has none)."""
    head, body = _split(raw)
    fields = _fields(head)
    for number, field_bytes in enumerate(fields):
        if field_bytes[:8].lower() == b"subject:":
            value = field_bytes[8:].lstrip(b" \t")
            # Between two encoded words a space is not shown (RFC 2047 6.2): keep it inside.
            encoded_next = value.startswith(b"=?") and not tag.isascii()
            prefix = _encoded(tag + " " if encoded_next else tag).encode("ascii") + b" "
            fields[number] = b"Subject: " + prefix + value
            return b"".join(fields) + body
    line_end = b"\r\n" if b"\r\n" in head or not head else b"\n"
    return b"Subject: " + _encoded(tag).encode("ascii") + line_end + raw


def subject_tag(company: str, sender: str) -> str:
    """`[Canary: MegaMart → dealblaster.example]`."""
    return f"[Canary: {_clean(company)} \u2192 {_clean(sender)}]"


def prepared(raw: bytes, labels: Labels, action: Action) -> bytes:
    """The bytes to deliver: forged labels removed, Canary's prepended, tagged if asked."""
    message = strip_forged_labels(raw, labels.authserv_id)
    if action is Action.TAG:
        message = tag_subject(message, subject_tag(labels.company, labels.sender))
    return label_block(labels) + message


def retry_delay(attempts: int, first: timedelta = FIRST_RETRY) -> timedelta:
    """Pause before the next attempt after `attempts` temporary failures: `first`, doubling,
    at most an hour (or `first`, if that is longer)."""
    longest = max(LONGEST_RETRY, first)
    factor = 1 << min(max(attempts, 0), 62)
    return longest if first * 1.0 > longest / factor else min(first * factor, longest)


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """The `[delivery]` section of canary.toml."""

    urls: tuple[str, ...] = ()
    """The destinations as written (they may name a password file or variable, never a
    password)."""
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    analysis_wait: timedelta = ANALYSIS_WAIT
    retry_for: timedelta = RETRY_FOR
    first_retry: timedelta = FIRST_RETRY
    """The pause after the first temporary failure; each next one doubles."""
    authserv_id: str | None = None
    """The authserv-id of Canary's Authentication-Results (default: the first canary domain)."""

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return tuple(parse_destination(url) for url in self.urls)


def _action(value: object, where: str) -> Action:
    try:
        return Action(str(value))
    except ValueError:
        raise DestinationError(f"{where} is {value!r}; use deliver, tag or hold") from None


def _relation_actions(table: object, where: str) -> dict[Relation, Action]:
    if not isinstance(table, Mapping):
        raise DestinationError(f"{where} must be a table")
    actions: dict[Relation, Action] = {}
    for name, value in table.items():
        if name in ("retired", "pending", "companies"):
            continue
        try:
            relation = Relation(name)
        except ValueError:
            raise DestinationError(f"{where} names {name!r}, which is not a relation (one of "
                                   f"{', '.join(r.value for r in Relation)})") from None
        actions[relation] = _action(value, f"{where}.{name}")
    return actions


def read_delivery(table: object) -> DeliveryConfig:
    """The `[delivery]` table of canary.toml; `DestinationError` says what is wrong."""
    if table is None:
        return DeliveryConfig()
    if not isinstance(table, Mapping):
        raise DestinationError("[delivery] must be a table")
    urls = table.get("destinations", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise DestinationError("delivery.destinations must be a list of URLs")
    for url in urls:
        parse_destination(url)
    keys = [parse_destination(url).key for url in urls]
    if len(keys) != len(set(keys)):
        raise DestinationError("delivery.destinations lists one destination twice")
    policy_table = table.get("policy", {})
    actions = {**DEFAULT_ACTIONS, **_relation_actions(policy_table, "delivery.policy")}
    companies_table = policy_table.get("companies", {}) if isinstance(policy_table, Mapping) \
        else {}
    if not isinstance(companies_table, Mapping):
        raise DestinationError("delivery.policy.companies must be a table of tables")
    companies = {str(slug): _relation_actions(value, f"delivery.policy.companies.{slug}")
                 for slug, value in companies_table.items()}
    policy = DeliveryPolicy(
        actions=actions,
        retired=_action(policy_table.get("retired", Action.HOLD.value), "delivery.policy.retired"),
        pending=_action(policy_table.get("pending", Action.DELIVER.value),
                        "delivery.policy.pending"),
        companies=companies,
    )
    wait = _number(table, "analysis_wait_minutes", ANALYSIS_WAIT.total_seconds() / 60,
                   minimum=0, maximum=7 * 24 * 60)
    retry = _number(table, "retry_days", RETRY_FOR.total_seconds() / 86400,
                    minimum=None, maximum=365)
    first = _number(table, "first_retry_seconds", FIRST_RETRY.total_seconds(),
                    minimum=None, maximum=86400)
    authserv = table.get("authserv_id")
    if authserv is not None and (not isinstance(authserv, str)
                                 or not re.fullmatch(r"[A-Za-z0-9._-]{1,255}", authserv)):
        raise DestinationError("delivery.authserv_id must be a host name such as "
                               "canary.example.org")
    return DeliveryConfig(tuple(urls), policy, timedelta(minutes=wait), timedelta(days=retry),
                          timedelta(seconds=first), authserv or None)


def _number(table: Mapping[str, object], key: str, default: float, *, minimum: float | None,
            maximum: float) -> float:
    """A finite number in range; `minimum` None means "more than zero"."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DestinationError(f"delivery.{key} must be a number")
    low_ok = value >= minimum if minimum is not None else value > 0
    if not low_ok or value > maximum:
        least = f"at least {minimum:g}" if minimum is not None else "more than 0"
        raise DestinationError(f"delivery.{key} must be {least} and at most {maximum:g}")
    return float(value)


def delivery_toml(config: DeliveryConfig) -> list[str]:
    """The `[delivery]` section as canary.toml lines (written back by `init --force`)."""
    lines = [
        "",
        "[delivery]",
        "# Where Canary delivers what it accepts; nothing is delivered anywhere else.",
        "# maildir:/PATH, lmtp:HOST:PORT?recipient=USER, lmtp:/SOCKET?recipient=USER,",
        "# imaps://USER@HOST/FOLDER?password_file=PATH (or password_env=NAME),",
        "# smtp://HOST:PORT?recipient=YOU@DOMAIN&starttls=yes",
        "destinations = [" + ", ".join(toml_string(u) for u in config.urls) + "]",
        f"analysis_wait_minutes = {toml_number(config.analysis_wait.total_seconds() / 60)}",
        f"retry_days = {toml_number(config.retry_for.total_seconds() / 86400)}",
        f"first_retry_seconds = {toml_number(config.first_retry.total_seconds())}",
    ]
    if config.authserv_id:
        lines.append(f"authserv_id = {toml_string(config.authserv_id)}")
    lines += ["", "[delivery.policy]",
              "# deliver, tag (a Subject prefix) or hold (until canary release), per relation."]
    lines += [f'{r.value} = "{config.policy.actions.get(r, DEFAULT_ACTIONS[r]).value}"'
              for r in Relation]
    lines += [f'retired = "{config.policy.retired.value}"',
              f'pending = "{config.policy.pending.value}"']
    for slug, actions in sorted(config.policy.companies.items()):
        lines += ["", f"[delivery.policy.companies.{toml_string(slug)}]"]
        lines += [f'{r.value} = "{a.value}"' for r, a in actions.items()]
    return lines
