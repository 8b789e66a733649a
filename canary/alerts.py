"""Alerts: what is news, how urgent it is, and how it reads on a phone or in a webhook.

Canary tells the person once, on a channel they already watch, when something
happens: a new unexpected sender on a company's alias, a verdict getting
worse, a likely list broker, a consent finding, a burst of probes, or trouble
with Canary itself. Each event has a kind, a severity and a key that names
the fact it reports, so the same fact is never reported twice.

Channels are Apprise URLs in the `[alerts]` section of canary.toml, each with
the events it wants and a minimum severity. A URL may hold a secret (a token,
a password, an ntfy topic): `masked` is how Canary shows it, and `redacted`
takes its secret parts out of any error text before that is shown or logged.

Alert text is plain and short: the company, the alias, the sender, the
verdict and the command that shows more. It never holds a message body, and
a subject only when the person asks for subjects. The JSON payload for
webhooks is versioned (`SCHEMA_VERSION`, `canary/schemas/alert.schema.json`).
Pure: plain values in and out; nothing here opens a file or a socket.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from canary.authentication import AuthenticatedBy, AuthMethod
from canary.errors import CanaryError, InvalidValue
from canary.events import EVENT_GROUPS as EVENT_GROUPS
from canary.events import KIND_SEVERITY as KIND_SEVERITY
from canary.events import EventKind as EventKind
from canary.events import Severity as Severity
from canary.events import event_names as event_names
from canary.relation import Relation
from canary.wording import iso_time, plural, toml_number, toml_string

if TYPE_CHECKING:  # every command reads the alert settings; the sender rules load when used
    from canary.senders import SenderKind

SCHEMA_VERSION = 1
"""The version of the webhook payload (`alert.schema.json`)."""
LIST_SCHEMA_VERSION = 1
"""The version of `canary alerts list --json` (`alerts.schema.json`)."""

RATE_LIMIT_PER_HOUR = 10
"""Messages one channel gets in an hour at most; what comes beyond waits for one digest."""
DIGEST_AFTER = 5
"""More alerts than this ready at once for a channel go out as one digest."""
RETRY_FOR = timedelta(days=3)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
PROBES_PER_HOUR = 20
"""Probes (mail to never-issued addresses) in an hour that make a `probes` alert."""
ANALYSIS_STUCK_AFTER = timedelta(hours=1)
"""Mail waiting for analysis this long with none analysed meanwhile makes a health alert."""
FAILING_REPORTED_AFTER = timedelta(days=1)
"""A channel failing for longer than this is named by `canary report`."""
HISTORICAL = timedelta(days=1)
"""Events about mail received longer ago than this (an import) wait for analysis to finish
and then go out together, as one digest."""
DIGEST_LISTED = 5
"""Alerts a digest's text names one by one; the rest are counted."""
PAYLOAD_LISTED = 25
"""Alerts a digest's JSON payload carries, most severe first (it stays well under the 32 KB
many services take); `total` counts them all."""


class AlertsConfigError(ValueError):
    """The `[alerts]` section cannot be used; the message says what is wrong."""


class InvalidAlertUrl(InvalidValue):
    def __init__(self, url: str, problem: str) -> None:
        self.url = url
        super().__init__(f"{masked(url)} {problem}; write an Apprise URL such as "
                         "ntfys://ntfy.sh/YOUR-TOPIC (see the README's Alerts section).")


class AlertChannelExists(CanaryError):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        super().__init__(f"{channel.masked} is already an alert channel ({channel.id}); remove "
                         "it first to change its events.")


class UnknownAlertChannel(CanaryError):
    def __init__(self, given: str) -> None:
        self.given = given
        super().__init__(f"No alert channel is {masked(given) if '://' in given else given}; "
                         "see `canary alerts list` for their IDs.")


class NoAlertChannel(CanaryError):
    def __init__(self) -> None:
        super().__init__("No alert channel is configured; add one with `canary alerts add URL`.")


class AlertsNotSent(CanaryError):
    def __init__(self, failed: int, total: int) -> None:
        self.failed, self.total = failed, total
        super().__init__(f"{failed} of {plural(total, 'alert channel')} did not take the test "
                         "alert; the error of each is shown above.")


def new_sender_severity(relation: Relation, kind: SenderKind | None) -> Severity:
    """High for a business authenticated as itself (it makes the company `shared`), low for
    backscatter (it only proves the address is in use), medium for the rest (leaked)."""
    from canary.senders import SenderKind

    if relation is Relation.THIRD_PARTY and (kind or SenderKind.ORGANISATION).identifiable:
        return Severity.HIGH
    if relation is Relation.BACKSCATTER:
        return Severity.LOW
    return Severity.MEDIUM


VERDICT_RANK = {"quiet": 0, "pending": 0, "clean": 1, "leaked": 2, "shared": 3}
"""How bad each verdict is (`canary.report.Verdict` values); quiet and pending say nothing."""


def worsened(before: str | None, after: str) -> bool:
    """Whether the verdict got worse, to leaked or shared, from a verdict known before."""
    if before is None:
        return False
    return VERDICT_RANK.get(after, 0) >= 2 and VERDICT_RANK.get(after, 0) > VERDICT_RANK.get(
        before, 0)


def verdict_severity(verdict: str) -> Severity:
    return Severity.HIGH if verdict == "shared" else Severity.MEDIUM


# --- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """One fact worth telling, with what the alert says about it.

    `key` names the fact (`new_sender:<company id>:<sender>`), so detecting it again
    adds nothing.
    """

    kind: EventKind
    key: str
    severity: Severity
    occurred_at: datetime
    """When it happened: the first message's receipt, or when Canary noticed."""
    company: str | None = None
    alias: str | None = None
    sender: str | None = None
    sender_kind: SenderKind | None = None
    relation: Relation | None = None
    authenticated_by: AuthenticatedBy | None = None
    verdict: str | None = None
    previous_verdict: str | None = None
    days_since_issued: int | None = None
    subject: str | None = None
    """The message's subject; shown only when the person enabled subjects."""
    count: int | None = None
    """Probes in the hour, deliveries failed, messages waiting for analysis."""
    companies: tuple[str, ...] = ()
    """A broker's companies."""
    detail: str | None = None
    """A finding's summary, a verdict's reason, a health problem's explanation."""
    id: int | None = None
    """The queue's id, once recorded."""

    @property
    def command(self) -> str:
        """The command that shows more."""
        if self.company and self.kind in _COMPANY_KINDS:
            return f"canary show {shlex.quote(self.company)}"
        return _COMMANDS.get(self.kind, "canary report")

    def to_dict(self) -> dict[str, Any]:
        """What the queue stores of an event (everything but its id)."""
        return {
            "kind": self.kind.value, "key": self.key, "severity": self.severity.value,
            "occurred_at": iso_time(self.occurred_at), "company": self.company,
            "alias": self.alias, "sender": self.sender,
            "sender_kind": self.sender_kind.value if self.sender_kind else None,
            "relation": self.relation.value if self.relation else None,
            "authenticated_by": self.authenticated_by.to_dict()
            if self.authenticated_by else None,
            "verdict": self.verdict, "previous_verdict": self.previous_verdict,
            "days_since_issued": self.days_since_issued, "subject": self.subject,
            "count": self.count, "companies": list(self.companies), "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], event_id: int | None = None) -> Event:
        from canary.senders import SenderKind

        auth = data.get("authenticated_by")
        return cls(
            kind=EventKind(data["kind"]), key=str(data["key"]),
            severity=Severity(data["severity"]),
            occurred_at=datetime.fromisoformat(str(data["occurred_at"]).replace("Z", "+00:00")),
            company=data.get("company"), alias=data.get("alias"), sender=data.get("sender"),
            sender_kind=SenderKind(data["sender_kind"]) if data.get("sender_kind") else None,
            relation=Relation(data["relation"]) if data.get("relation") else None,
            authenticated_by=AuthenticatedBy.from_dict(auth) if auth else None,
            verdict=data.get("verdict"), previous_verdict=data.get("previous_verdict"),
            days_since_issued=data.get("days_since_issued"), subject=data.get("subject"),
            count=data.get("count"), companies=tuple(data.get("companies") or ()),
            detail=data.get("detail"), id=event_id,
        )


_COMPANY_KINDS = frozenset({EventKind.NEW_SENDER, EventKind.VERDICT_CHANGED,
                            EventKind.AFTER_OPTOUT, EventKind.OVER_FREQUENCY})
_COMMANDS = {
    EventKind.DELIVERY_FAILED: "canary deliveries --failed",
    EventKind.TEST: "canary alerts list",
}


def trial_event(channel: Channel, now: datetime) -> Event:
    """The alert `canary alerts test` sends to one channel."""
    return Event(EventKind.TEST, f"test:{channel.key}:{iso_time(now)}",
                 KIND_SEVERITY[EventKind.TEST], now, detail=channel.masked)


# --- wording ----------------------------------------------------------------------------


def _line(text: str, limit: int = 200) -> str:
    """One printable line, bounded: nothing a sender wrote can add lines or controls."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[:limit - 1] + "\u2026"


def _how(event: Event) -> str:
    from canary.senders import SenderKind

    relation = event.relation.value if event.relation else "unknown"
    kind = (f" {event.sender_kind.value}" if event.sender_kind
            and event.sender_kind is not SenderKind.ORGANISATION else "")
    auth = event.authenticated_by
    if auth is None or auth.method is AuthMethod.NONE:
        return f"{relation}{kind}, not authenticated"
    return f"{relation}{kind}, authenticated by {auth}"


def _verdict(event: Event) -> str:
    verdict = event.verdict or "unknown"
    if event.previous_verdict and event.previous_verdict != event.verdict:
        return f"{verdict} (was {event.previous_verdict})"
    return verdict


def _alias_line(event: Event) -> list[str]:
    if not event.alias:
        return []
    issued = (f" (issued {plural(event.days_since_issued, 'day')} before this mail)"
              if event.days_since_issued is not None else "")
    return [f"Alias: {event.alias}{issued}"]


_NEW_SENDER_LINE: dict[Relation | None, str] = {
    Relation.SPOOFED: "Mail forging the company's own domain",
    Relation.IMPERSONATION: "A look-alike of the company",
    Relation.BACKSCATTER: "A bounce or auto-reply",
}


def alert_title(event: Event) -> str:
    """The first line a phone shows."""
    company, sender = _line(event.company or "", 80), _line(event.sender or "", 80)
    match event.kind:
        case EventKind.NEW_SENDER if event.relation is Relation.SPOOFED:
            title = f"{company}: mail forging {sender}"
        case EventKind.NEW_SENDER if event.relation is Relation.IMPERSONATION:
            title = f"{company}: look-alike sender {sender}"
        case EventKind.NEW_SENDER:
            title = f"{company}: new sender {sender}"
        case EventKind.VERDICT_CHANGED:
            title = f"{company} is now {event.verdict}"
        case EventKind.BROKER:
            title = f"Likely list broker: {sender}"
        case EventKind.AFTER_OPTOUT:
            title = f"{company}: marketing after your opt-out"
        case EventKind.OVER_FREQUENCY:
            title = f"{company}: more marketing than you agreed to"
        case EventKind.PROBES:
            title = f"{plural(event.count or 0, 'probe')} in the last hour"
        case EventKind.DELIVERY_FAILED:
            title = (f"{plural(event.count or 0, 'delivery', 'deliveries')} to your mailbox "
                     "failed")
        case EventKind.ANALYSIS_STUCK:
            title = "Analysis is stuck"
        case EventKind.DATABASE_UNWRITABLE:
            title = "Canary cannot write its database"
        case EventKind.DISK_LOW:
            title = "The disk is nearly full"
        case EventKind.TEST:
            title = "Test alert"
    return f"Canary: {title}"


def alert_text(event: Event, subjects: bool = False) -> str:
    """The alert's body: plain lines, the command to see more last. Never a message body;
    the subject only when `subjects` is on."""
    lines: list[str]
    company, sender = _line(event.company or ""), _line(event.sender or "")
    match event.kind:
        case EventKind.NEW_SENDER:
            lines = [f"{_NEW_SENDER_LINE.get(event.relation, 'New sender')} on the alias you "
                     f"gave {company}: {sender}",
                     *_alias_line(event), f"How: {_how(event)}",
                     f"Verdict: {_verdict(event)}"]
            if subjects and event.subject:
                lines.append(f"Subject: {_line(event.subject)}")
        case EventKind.VERDICT_CHANGED:
            lines = [f"{company}'s verdict is now {_verdict(event)}", *_alias_line(event)]
            if event.detail:
                lines.append(f"Why: {_line(event.detail)}")
        case EventKind.BROKER:
            lines = [f"{sender} mails the aliases of "
                     f"{plural(len(event.companies), 'company', 'companies')}: "
                     f"{_line(', '.join(event.companies))}"]
        case EventKind.AFTER_OPTOUT | EventKind.OVER_FREQUENCY:
            lines = [_line(event.detail or event.kind.value), *_alias_line(event),
                     f"Verdict: {_verdict(event)}"]
        case EventKind.PROBES:
            lines = [f"{plural(event.count or 0, 'message')} to addresses never issued on your "
                     "domains in the last hour; Canary refused them (550 5.1.1)."]
        case EventKind.TEST:
            lines = [f"If you can read this, Canary's alerts reach you on {event.detail}."]
        case _:
            lines = [_line(event.detail or event.kind.value, 300)]
    lines.append(f"More: {event.command}")
    return "\n".join(lines)


_KIND_WORDS = {
    EventKind.NEW_SENDER: ("new sender", "new senders"),
    EventKind.VERDICT_CHANGED: ("verdict change", "verdict changes"),
    EventKind.BROKER: ("likely broker", "likely brokers"),
    EventKind.AFTER_OPTOUT: ("marketing after opt-out", "marketing after opt-out"),
    EventKind.OVER_FREQUENCY: ("marketing over the agreed rate", "marketing over the agreed rate"),
    EventKind.PROBES: ("probe burst", "probe bursts"),
    EventKind.DELIVERY_FAILED: ("delivery failure", "delivery failures"),
    EventKind.ANALYSIS_STUCK: ("analysis problem", "analysis problems"),
    EventKind.DATABASE_UNWRITABLE: ("database problem", "database problems"),
    EventKind.DISK_LOW: ("disk warning", "disk warnings"),
    EventKind.TEST: ("test", "tests"),
}


def by_urgency(events: Iterable[Event]) -> list[Event]:
    """Most severe first, then oldest first."""
    return sorted(events, key=lambda e: (-e.severity.rank, e.occurred_at, e.id or 0))


def digest_title(events: Sequence[Event]) -> str:
    return f"Canary: {plural(len(events), 'alert')}"


def digest_text(events: Sequence[Event], subjects: bool = False) -> str:
    """One message for many events: how many of each kind, the most urgent few by name."""
    counts = Counter(e.kind for e in events)
    kinds = ", ".join(f"{n} {_KIND_WORDS[k][0] if n == 1 else _KIND_WORDS[k][1]}"
                      for k, n in sorted(counts.items(), key=lambda kn: (-kn[1], kn[0].value)))
    companies = sorted({e.company for e in events if e.company})
    lines = [f"{plural(len(events), 'alert')} at once: {kinds}"]
    if companies:
        lines.append(f"Companies: {_line(', '.join(companies), 300)}")
    ordered = by_urgency(events)
    for event in ordered[:DIGEST_LISTED]:
        extra = f" ({event.verdict})" if event.kind is EventKind.NEW_SENDER and event.verdict \
            else ""
        lines.append(f"- {alert_title(event).removeprefix('Canary: ')}{extra}")
    if len(ordered) > DIGEST_LISTED:
        lines.append(f"\u2026and {len(ordered) - DIGEST_LISTED} more.")
    lines.append("More: canary report")
    return "\n".join(lines)


def _payload_alert(event: Event, subjects: bool) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind.value,
        "severity": event.severity.value,
        "occurred_at": iso_time(event.occurred_at),
        "title": alert_title(event),
        "text": alert_text(event, subjects),
        "company": event.company,
        "alias": event.alias,
        "sender": event.sender,
        "sender_kind": event.sender_kind.value if event.sender_kind else None,
        "relation": event.relation.value if event.relation else None,
        "authenticated_by": event.authenticated_by.to_dict() if event.authenticated_by
        else None,
        "verdict": event.verdict,
        "previous_verdict": event.previous_verdict,
        "days_since_issued": event.days_since_issued,
        "subject": _line(event.subject) if subjects and event.subject else None,
        "count": event.count,
        "companies": list(event.companies),
        "detail": event.detail,
        "command": event.command,
    }


def payload(events: Sequence[Event], sent_at: datetime, *, subjects: bool = False,
            digest: bool = False) -> dict[str, Any]:
    """The versioned JSON document a webhook receives (`alert.schema.json`)."""
    ordered = by_urgency(events) if digest else list(events)
    return {
        "schema_version": SCHEMA_VERSION,
        "sent_at": iso_time(sent_at),
        "digest": digest,
        "total": len(events),
        "title": digest_title(events) if digest else alert_title(events[0]),
        "text": digest_text(events, subjects) if digest else alert_text(events[0], subjects),
        "alerts": [_payload_alert(e, subjects) for e in ordered[:PAYLOAD_LISTED]],
    }


# --- channels and their secrets ---------------------------------------------------------


_SAFE_OPTIONS = frozenset({
    "to", "from", "name", "cc", "bcc", "reply", "smtp", "mode", "format", "method",
    "priority", "tags", "overflow", "verify", "image", "avatar", "footer", "tts", "batch",
    "retry", "wait", "optional", "rto", "cto", "emojis", "title", "click", "attach",
})
"""URL options whose values say where or how, never who may: shown by `masked`."""
_HOSTNAME = re.compile(r"^(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]|"
                       r"(?=.*[a-z])[a-z0-9-]+(?:\.[a-z0-9-]+)+)$", re.IGNORECASE)
_URL = re.compile(r"^([a-z][a-z0-9+.-]*)://(\S+)$", re.IGNORECASE)
SHORTEST_SECRET = 3
"""Shorter parts of a URL are not taken out of error text: they would only mangle it."""


@dataclass(frozen=True, slots=True)
class _UrlParts:
    scheme: str
    user: str | None
    password: str | None
    host: str
    port: str | None
    path: tuple[str, ...]
    options: tuple[tuple[str, str], ...]


def _parts(url: str) -> _UrlParts:
    """An Apprise URL's parts, read leniently (Apprise's hosts may be tokens with colons)."""
    text = url.strip()
    found = _URL.match(text)
    if not found:
        return _UrlParts("", None, None, "", None, tuple(p for p in text.split("/") if p), ())
    scheme, rest = found.group(1).lower(), found.group(2)
    rest = rest.split("#", 1)[0]
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    user = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        password = secret if colon else None
    host, port = hostport, None
    if not hostport.startswith("["):
        head, colon, tail = hostport.rpartition(":")
        if colon and tail.isdigit():
            host, port = head, tail
    elif "]:" in hostport:
        host, _, port = hostport.rpartition(":")
    options = tuple(urllib.parse.parse_qsl(query, keep_blank_values=True))
    return _UrlParts(scheme, user or None, password, host, port,
                     tuple(p for p in path.split("/") if p), options)


def _hint(text: str) -> str:
    """A secret as `masked` shows it: its first two characters, when it is long."""
    return f"{text[:2]}\u2026" if len(text) >= 10 else "\u2026"


def masked(url: str) -> str:
    """The URL with its secrets hidden, for lists, logs and errors.

    The scheme, a host name and the port are shown; users, passwords, path parts
    (tokens, ntfy topics, webhook ids), hosts that are tokens and option values that
    may be secrets are not.
    """
    parts = _parts(url)
    if not parts.scheme:
        return "\u2026"
    userinfo = ""
    if parts.user is not None or parts.password is not None:
        userinfo = _hint(parts.user or "") + (":***" if parts.password is not None else "") + "@"
    host = parts.host if _HOSTNAME.match(parts.host) else _hint(parts.host)
    port = f":{parts.port}" if parts.port else ""
    path = "".join("/" + _hint(p) for p in parts.path)
    query = "&".join(f"{k}={v if k.lower() in _SAFE_OPTIONS else '***'}"
                     for k, v in parts.options)
    return f"{parts.scheme}://{userinfo}{host}{port}{path}" + (f"?{query}" if query else "")


def secret_parts(url: str) -> list[str]:
    """Every part of the URL that may be a secret, as written and decoded, longest first."""
    parts = _parts(url)
    found = {url.strip()}
    candidates = [parts.user, parts.password, *parts.path,
                  *(v for k, v in parts.options if k.lower() not in _SAFE_OPTIONS)]
    if not _HOSTNAME.match(parts.host):
        candidates.append(parts.host)
    for candidate in candidates:
        if candidate:
            found.update({candidate, urllib.parse.unquote(candidate)})
    return sorted((s for s in found if len(s) >= SHORTEST_SECRET), key=len, reverse=True)


def redacted(text: str, urls: Iterable[str]) -> str:
    """`text` (an error, a log line) with every secret part of `urls` replaced by ***."""
    for url in urls:
        for secret in secret_parts(url):
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, slots=True)
class Channel:
    """One Apprise URL, the events it wants and the least severity it is told about."""

    url: str
    events: tuple[str, ...] = ("all",)
    """Event kinds and group names (`all`, `leaks`, `consent`, `health`)."""
    min_severity: Severity = Severity.MEDIUM

    @property
    def key(self) -> str:
        """How the queue names the channel: a hash of its URL, never the URL."""
        return hashlib.sha256(self.url.strip().encode("utf-8")).hexdigest()[:16]

    @property
    def id(self) -> str:
        """What the person types to name it (`canary alerts remove ID`)."""
        return self.key[:8]

    @property
    def masked(self) -> str:
        return masked(self.url)

    @property
    def kinds(self) -> frozenset[EventKind]:
        return expand_events(self.events)

    @property
    def json_body(self) -> bool:
        """A JSON webhook gets the versioned payload as its message; the rest plain text."""
        return _parts(self.url).scheme in ("json", "jsons")

    def wants(self, kind: EventKind, severity: Severity) -> bool:
        return kind in self.kinds and severity.rank >= self.min_severity.rank


def expand_events(names: Iterable[str]) -> frozenset[EventKind]:
    """Kinds and group names → kinds; `AlertsConfigError` names an unknown one."""
    kinds: set[EventKind] = set()
    for name in names:
        word = name.strip().lower()
        if word in EVENT_GROUPS:
            kinds |= EVENT_GROUPS[word]
            continue
        try:
            kind = EventKind(word)
        except ValueError:
            raise AlertsConfigError(f"{name!r} is not an alert event; use {event_names()}") \
                from None
        if kind is EventKind.TEST:
            raise AlertsConfigError("`test` alerts go to every channel; it is no event to "
                                    "choose")
        kinds.add(kind)
    return frozenset(kinds)


def check_url_form(url: str) -> str:
    """The URL, stripped, if it has the form `scheme://…`; `AlertsConfigError` otherwise."""
    text = url.strip()
    if not _URL.match(text) or len(text) > 2000:
        raise AlertsConfigError(f"{masked(text) if _URL.match(text) else 'the URL'} is not an "
                                "Apprise URL (scheme://…)")
    return text


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The `[alerts]` section of canary.toml."""

    channels: tuple[Channel, ...] = ()
    subjects: bool = False
    """Whether alerts may show a message's subject (never its body)."""
    rate_limit_per_hour: int = RATE_LIMIT_PER_HOUR
    digest_after: int = DIGEST_AFTER
    retry_for: timedelta = RETRY_FOR
    first_retry: timedelta = FIRST_RETRY
    probes_per_hour: int = PROBES_PER_HOUR
    analysis_stuck_after: timedelta = ANALYSIS_STUCK_AFTER

    def channel(self, given: str) -> Channel:
        """The channel named by its ID (or a prefix of it) or its URL."""
        text = given.strip()
        found = [c for c in self.channels if c.url == text or c.key.startswith(text.lower())]
        if len(found) != 1 or len(text) < 4:
            raise UnknownAlertChannel(given)
        return found[0]


def _severity(value: object, where: str) -> Severity:
    try:
        return Severity(str(value).lower())
    except ValueError:
        raise AlertsConfigError(f"{where} is {value!r}; use low, medium or high") from None


def read_channel(table: object, where: str) -> Channel:
    if not isinstance(table, Mapping):
        raise AlertsConfigError(f"{where} must be a table with a url")
    url = table.get("url")
    if not isinstance(url, str):
        raise AlertsConfigError(f"{where}.url must be an Apprise URL")
    events = table.get("events", ["all"])
    if isinstance(events, str):
        events = [events]
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events) or not events:
        raise AlertsConfigError(f"{where}.events must be a list of event names")
    expand_events(events)
    return Channel(check_url_form(url), tuple(e.strip().lower() for e in events),
                   _severity(table.get("min_severity", Severity.MEDIUM.value),
                             f"{where}.min_severity"))


def _number(table: Mapping[str, object], key: str, default: float, low: float,
            high: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AlertsConfigError(f"alerts.{key} must be a number")
    if not low <= value <= high:
        raise AlertsConfigError(f"alerts.{key} must be from {low:g} to {high:g}")
    return float(value)


def read_alerts(table: object) -> AlertsConfig:
    """The `[alerts]` table of canary.toml; `AlertsConfigError` says what is wrong."""
    if table is None:
        return AlertsConfig()
    if not isinstance(table, Mapping):
        raise AlertsConfigError("[alerts] must be a table")
    listed = table.get("channels", [])
    if not isinstance(listed, list):
        raise AlertsConfigError("alerts.channels must be a list of tables ([[alerts.channels]])")
    channels = tuple(read_channel(t, f"alerts.channels[{n}]") for n, t in enumerate(listed))
    if len({c.key for c in channels}) != len(channels):
        raise AlertsConfigError("alerts.channels lists one URL twice")
    subjects = table.get("subjects", False)
    if not isinstance(subjects, bool):
        raise AlertsConfigError("alerts.subjects must be true or false")
    return AlertsConfig(
        channels=channels,
        subjects=subjects,
        rate_limit_per_hour=int(_number(table, "rate_limit_per_hour", RATE_LIMIT_PER_HOUR,
                                         1, 3600)),
        digest_after=int(_number(table, "digest_after", DIGEST_AFTER, 1, 10_000)),
        retry_for=timedelta(days=_number(table, "retry_days", RETRY_FOR / timedelta(days=1),
                                         0.0001, 365)),
        first_retry=timedelta(seconds=_number(table, "first_retry_seconds",
                                              FIRST_RETRY.total_seconds(), 0.01, 86400)),
        probes_per_hour=int(_number(table, "probes_per_hour", PROBES_PER_HOUR, 1, 1_000_000)),
        analysis_stuck_after=timedelta(minutes=_number(
            table, "analysis_stuck_minutes", ANALYSIS_STUCK_AFTER / timedelta(minutes=1),
            0.001, 7 * 24 * 60)),
    )


def alerts_toml(config: AlertsConfig) -> list[str]:
    """The `[alerts]` section as canary.toml lines (kept by `init --force`, rewritten by
    `canary alerts add` and `remove`)."""
    lines = [
        "",
        "[alerts]",
        "# Alerts go to the channels below: Apprise URLs (ntfy, Gotify, Matrix, Slack, Discord,",
        "# email, json:// webhooks…). This file is 0600: the URLs may hold tokens.",
        "# subjects: whether an alert may show a message's subject (never its body).",
        f"subjects = {'true' if config.subjects else 'false'}",
        "# At most this many messages per channel an hour; more become one digest.",
        f"rate_limit_per_hour = {config.rate_limit_per_hour}",
        "# More alerts than this ready at once go out as one digest.",
        f"digest_after = {config.digest_after}",
        "# A channel that is down is retried with growing pauses for this long.",
        f"retry_days = {toml_number(config.retry_for / timedelta(days=1))}",
        f"first_retry_seconds = {toml_number(config.first_retry.total_seconds())}",
        "# Mail to never-issued addresses in an hour that makes a `probes` alert.",
        f"probes_per_hour = {config.probes_per_hour}",
        "# Minutes mail may wait for analysis, with none analysed meanwhile, before a",
        "# health alert.",
        f"analysis_stuck_minutes = "
        f"{toml_number(config.analysis_stuck_after / timedelta(minutes=1))}",
    ]
    for channel in config.channels:
        lines += [
            "",
            "[[alerts.channels]]",
            f"url = {toml_string(channel.url)}",
            f"# events: {event_names()}",
            "events = [" + ", ".join(toml_string(e) for e in channel.events) + "]",
            "# min_severity: low, medium or high",
            f'min_severity = "{channel.min_severity.value}"',
        ]
    return lines


# --- what `canary alerts list` shows ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChannelState:
    """How a channel has been doing, from the queue."""

    key: str
    added_at: datetime | None = None
    last_sent_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str | None = None
    pending: int = 0
    failed: int = 0
    """Alerts given up on after `retry_days`."""


def channel_status(state: ChannelState | None) -> str:
    """`ok`, `failing`, `failed` (alerts given up on) or `new` (nothing sent yet)."""
    if state is None:
        return "new"
    if state.failing_since is not None:
        return "failing"
    if state.failed:
        return "failed"
    return "ok" if state.last_sent_at is not None else "new"


def failing_for_days(state: ChannelState, now: datetime) -> bool:
    """What `canary report` names: failing for over a day, or alerts given up on."""
    return bool(state.failed) or (state.failing_since is not None
                                  and now - state.failing_since >= FAILING_REPORTED_AFTER)


def alerts_document(config: AlertsConfig, states: Mapping[str, ChannelState]
                    ) -> dict[str, Any]:
    """`canary alerts list --json` (`alerts.schema.json`): no URL appears unmasked."""
    channels = []
    for channel in config.channels:
        state = states.get(channel.key)
        channels.append({
            "id": channel.id,
            "url": channel.masked,
            "events": list(channel.events),
            "kinds": sorted(k.value for k in channel.kinds),
            "min_severity": channel.min_severity.value,
            "status": channel_status(state),
            "last_sent_at": iso_time(state.last_sent_at) if state and state.last_sent_at
            else None,
            "failing_since": iso_time(state.failing_since) if state and state.failing_since
            else None,
            "last_error": state.last_error if state else None,
            "pending": state.pending if state else 0,
            "failed": state.failed if state else 0,
        })
    return {
        "schema_version": LIST_SCHEMA_VERSION,
        "channels": channels,
        "settings": {
            "subjects": config.subjects,
            "rate_limit_per_hour": config.rate_limit_per_hour,
            "digest_after": config.digest_after,
            "retry_days": config.retry_for / timedelta(days=1),
            "probes_per_hour": config.probes_per_hour,
            "analysis_stuck_minutes": config.analysis_stuck_after / timedelta(minutes=1),
        },
    }


@dataclass(frozen=True, slots=True)
class Batch:
    """What one channel gets in one message: one alert, or a digest of several."""

    events: tuple[Event, ...]
    digest: bool

    def title(self) -> str:
        return digest_title(self.events) if self.digest else alert_title(self.events[0])

    def text(self, subjects: bool) -> str:
        return (digest_text(self.events, subjects) if self.digest
                else alert_text(self.events[0], subjects))


def batches(due: Sequence[Event], budget: int, digest_after: int,
            historical: Sequence[Event] = ()) -> list[Batch]:
    """How a channel's due alerts go out, given how many messages it may still get this hour.

    One message per alert while few are due; one digest of them all when more than
    `digest_after` are due at once, or more than the hour's budget; nothing when the
    budget is spent (they wait, and become one digest when the hour has room again).
    Alerts about old mail (`historical`: an import) always go together, as one digest.
    """
    if budget <= 0 or not (due or historical):
        return []
    planned = []
    if historical:
        planned.append(Batch(tuple(historical), digest=len(historical) > 1))
        budget -= 1
    if not due or budget <= 0:
        return planned
    if len(due) > digest_after or len(due) > budget:
        return [*planned, Batch(tuple(due), digest=len(due) > 1)]
    return [*planned, *(Batch((event,), digest=False) for event in due)]


def retry_delay(attempts: int, first: timedelta = FIRST_RETRY) -> timedelta:
    """The pause after `attempts` failed sends: `first`, doubling, at most an hour."""
    longest = max(LONGEST_RETRY, first)
    return min(first * (1 << min(max(attempts - 1, 0), 30)), longest)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the alerter last saw of analysis, to tell "busy" from "stuck"."""

    analysed: int
    waiting: int
    since: datetime
    """When `analysed` last changed, or nothing was waiting."""


def observe_analysis(before: Observation | None, analysed: int, waiting: int,
                     now: datetime) -> Observation:
    """The new observation: progress (or nothing waiting) restarts the clock."""
    if before is None or waiting == 0 or analysed != before.analysed:
        return Observation(analysed, waiting, now)
    return Observation(analysed, waiting, before.since)


def stuck(observation: Observation, now: datetime, after: timedelta) -> bool:
    return observation.waiting > 0 and now - observation.since >= after


def stuck_event(observation: Observation, now: datetime, temperror: int) -> Event:
    waited = now - observation.since
    minutes = max(int(waited.total_seconds() // 60), 0)
    dns = f", {temperror} of them waiting for DNS to answer" if temperror else ""
    return Event(
        EventKind.ANALYSIS_STUCK, f"analysis_stuck:{iso_time(observation.since)}",
        KIND_SEVERITY[EventKind.ANALYSIS_STUCK], now, count=observation.waiting,
        detail=(f"{plural(observation.waiting, 'message')} waiting for analysis{dns}; none "
                f"analysed for {plural(minutes, 'minute')}. Reports leave them out until "
                "they are analysed."))


@dataclass(frozen=True, slots=True)
class DiskUsage:
    free: int
    total: int


def disk_low(usage: DiskUsage, min_free_bytes: int, min_free_ratio: float) -> bool:
    """Free space under twice what the listener keeps free before it refuses mail (452)."""
    return usage.free < 2 * max(min_free_bytes, int(usage.total * min_free_ratio))


def disk_event(usage: DiskUsage, min_free_bytes: int, min_free_ratio: float, where: str,
               now: datetime) -> Event:
    refuse = max(min_free_bytes, int(usage.total * min_free_ratio))
    return Event(
        EventKind.DISK_LOW, f"disk_low:{now:%Y-%m-%d}", KIND_SEVERITY[EventKind.DISK_LOW], now,
        detail=(f"{usage.free // 2**20} MB free on the disk of {where}; below "
                f"{refuse // 2**20} MB Canary answers 452 and senders retry later. Free some "
                "space."))


def unwritable_event(problem: str, now: datetime) -> Event:
    return Event(
        EventKind.DATABASE_UNWRITABLE, f"database_unwritable:{iso_time(now)}",
        KIND_SEVERITY[EventKind.DATABASE_UNWRITABLE], now,
        detail=(f"Canary cannot write its database ({_line(problem, 200)}); mail gets 451 "
                "and senders retry. Check the disk and the database."))
