"""What the person agreed to, and the two findings that break it.

The person records per company whether they agreed to marketing, how often,
and when they opted out. From the company's own mail (first party or its
processor) Canary finds:

- `after_optout`: marketing received more than `OPTOUT_GRACE` after the
  opt-out, with those messages as evidence;
- `over_frequency`: more marketing than agreed over a rolling window, with
  the observed and the agreed rate.

Marketing is recognised by `List-Unsubscribe`, bulk `Precedence` or sending
through an ESP; receipts, password resets and other transactional mail are
not marketing. Pure: plain values in, plain values out.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.wording import plural

OPTOUT_GRACE = timedelta(days=10)

_TRANSACTIONAL = re.compile(
    r"\b(receipt|invoice|order|shipped|shipping|delivery|delivered|dispatched|password|"
    r"reset|verify|verification|confirm|confirmation|security code|one-time|sign[- ]in|"
    r"log[- ]?in|account (?:update|notice)|payment|refund|booking|reservation|ticket)\b",
    re.IGNORECASE,
)


class Frequency(enum.StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    NEVER = "never"

    @property
    def window(self) -> tuple[timedelta, int]:
        """The rolling window the rate is judged over, and how many messages it allows.

        Several periods per window, so a newsletter that drifts by an hour
        is not reported.
        """
        return _WINDOWS[self]


_WINDOWS = {
    Frequency.DAILY: (timedelta(days=7), 7),
    Frequency.WEEKLY: (timedelta(days=28), 4),
    Frequency.MONTHLY: (timedelta(days=90), 3),
    Frequency.NEVER: (timedelta(days=30), 0),
}


@dataclass(frozen=True, slots=True)
class Consent:
    """One record of what the person agreed to, in force from `since`."""

    since: datetime
    marketing: bool | None
    """None when the person recorded nothing about marketing."""
    frequency: Frequency | None
    opted_out: bool = False

    @property
    def allowed(self) -> Frequency | None:
        """The marketing frequency in force; None when nothing was agreed or refused."""
        if self.opted_out or self.marketing is False:
            return Frequency.NEVER
        return self.frequency


def is_marketing(
    *,
    subject: str | None,
    list_unsubscribe: str | None,
    precedence: str | None,
    esp: str | None,
) -> tuple[bool, str]:
    """Whether a message is marketing, with the reason."""
    if list_unsubscribe:
        return True, "List-Unsubscribe header"
    if precedence and precedence.strip().lower() in ("bulk", "list", "junk"):
        return True, f"Precedence: {precedence.strip().lower()}"
    if subject and _TRANSACTIONAL.search(subject):
        return False, "transactional subject"
    if esp:
        return True, f"sent through {esp}"
    return False, "no marketing signs"


@dataclass(frozen=True, slots=True)
class MarketingMail:
    """A marketing message from the company itself (first party or processor)."""

    received_at: datetime
    message_id: str | None
    sha256: str
    subject: str | None = None


class FindingKind(enum.StrEnum):
    AFTER_OPTOUT = "after_optout"
    OVER_FREQUENCY = "over_frequency"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    summary: str
    messages: tuple[MarketingMail, ...]
    observed: str | None = None
    """E.g. `12 in 7 days`."""
    agreed: str | None = None
    """E.g. `at most 1 a week (4 in 28 days)`."""
    unlisted: int = 0
    """Its messages left out of `messages` (a report that lists only the first few)."""

    @property
    def message_count(self) -> int:
        return len(self.messages) + self.unlisted


def next_consent(
    history: Sequence[Consent],
    since: datetime,
    *,
    marketing: bool | None,
    frequency: Frequency | None,
    opted_out: bool = False,
) -> Consent:
    """The record a change makes, given the history so far (oldest first).

    What the change leaves unsaid carries over from the record in force. An
    opt-out records "never"; opting back in later restores the frequency
    agreed before the opt-out, not "never".
    """
    if opted_out:
        return Consent(since, False, Frequency.NEVER, opted_out=True)
    current = history[-1] if history else None
    if current is not None:
        marketing = current.marketing if marketing is None else marketing
        agreed = current if not current.opted_out else next(
            (c for c in reversed(history) if not c.opted_out), None)
        if frequency is None and agreed is not None:
            frequency = agreed.frequency
    return Consent(since, marketing, frequency)


def consent_at(history: Sequence[Consent], moment: datetime) -> Consent | None:
    """The consent record in force at `moment` (history sorted by `since`)."""
    current = None
    for record in history:
        if record.since <= moment:
            current = record
    return current


def _after_optout(history: Sequence[Consent], mail: Sequence[MarketingMail]) -> Finding | None:
    """Marketing more than `OPTOUT_GRACE` into whichever opt-out was in force when it came."""
    late = [(m, record) for m in mail
            if (record := consent_at(history, m.received_at)) is not None
            and record.opted_out and m.received_at > record.since + OPTOUT_GRACE]
    if not late:
        return None
    last, optout = late[-1]
    days = (last.received_at - optout.since).days
    return Finding(
        FindingKind.AFTER_OPTOUT,
        f"{plural(len(late), 'marketing message')} more than {OPTOUT_GRACE.days} days after the "
        f"opt-out of {optout.since:%Y-%m-%d}, the last {days} days after it",
        tuple(m for m, _ in late),
    )


def _agreed_text(frequency: Frequency) -> str:
    window, allowed = frequency.window
    if frequency is Frequency.NEVER:
        return "no marketing"
    return f"{frequency.value} ({allowed} in {window.days} days)"


def _over_frequency(
    history: Sequence[Consent], mail: Sequence[MarketingMail]
) -> Finding | None:
    """The rolling window with the most marketing over what was agreed, if any.

    Mail after an opt-out is `after_optout`'s business, with its grace period.
    """
    # Each message is judged by the agreement in force when it came: a change of
    # frequency applies from its date, and after an opt-out see `_after_optout`.
    judged = [None if (record := consent_at(history, m.received_at)) is None
              or record.opted_out else record.allowed for m in mail]
    times = [m.received_at for m in mail]
    # Per frequency, how many messages before each index were sent under it: a window's
    # count is one subtraction, so the whole scan stays O(n log n).
    before: dict[Frequency, list[int]] = {}
    for agreed in {f for f in judged if f is not None}:
        running = [0]
        for then in judged:
            running.append(running[-1] + (then is agreed))
        before[agreed] = running
    worst: tuple[int, Frequency, int, int] | None = None
    for index, frequency in enumerate(judged):
        if frequency is None:
            continue
        window, allowed = frequency.window
        # Half a period of slack, so mail sent exactly as agreed, give or take the
        # sender's queue or the length of a month, is never a breach.
        end = times[index] + window - (window / (2 * allowed) if allowed else timedelta())
        stop = bisect.bisect_left(times, end, lo=index)  # the mail is oldest first
        excess = before[frequency][stop] - before[frequency][index] - allowed
        if excess > 0 and (worst is None or excess > worst[0]):
            worst = (excess, frequency, index, stop)
    if worst is None:
        return None
    _, frequency, first, stop = worst
    messages = [mail[j] for j in range(first, stop) if judged[j] is frequency]
    window, _allowed = frequency.window
    return Finding(
        FindingKind.OVER_FREQUENCY,
        f"{len(messages)} marketing messages in {window.days} days; agreed: "
        f"{_agreed_text(frequency)}",
        tuple(messages),
        observed=f"{len(messages)} in {window.days} days",
        agreed=_agreed_text(frequency),
    )


def consent_findings(
    history: Sequence[Consent], marketing: Sequence[MarketingMail]
) -> tuple[Finding, ...]:
    """The findings for one company's own marketing mail, given its consent history."""
    ordered_history = sorted(history, key=lambda c: c.since)
    ordered_mail = sorted(marketing, key=lambda m: m.received_at)
    findings = [
        f for f in (_after_optout(ordered_history, ordered_mail),
                    _over_frequency(ordered_history, ordered_mail))
        if f is not None
    ]
    return tuple(findings)
