"""What Canary alerts about, and how severe each kind is.

Apart from `canary.alerts` (the rules that find events and word them), so
that the command line can offer these choices without loading the rules.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        """1, 2, 3: stored with each event so a channel's minimum is one comparison."""
        return _RANK[self]

    @classmethod
    def of_rank(cls, rank: int) -> Severity:
        return next(s for s, r in _RANK.items() if r == rank)


_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


class EventKind(enum.StrEnum):
    NEW_SENDER = "new_sender"
    """The first message from an organisation that is not the company's own."""
    VERDICT_CHANGED = "verdict_changed"
    """A company's verdict got worse (to leaked or shared) without a new sender saying so."""
    BROKER = "broker"
    """A business seen as a third party on the aliases of several companies."""
    AFTER_OPTOUT = "after_optout"
    OVER_FREQUENCY = "over_frequency"
    PROBES = "probes"
    """A burst of mail to never-issued addresses."""
    DELIVERY_FAILED = "delivery_failed"
    ANALYSIS_STUCK = "analysis_stuck"
    DATABASE_UNWRITABLE = "database_unwritable"
    DISK_LOW = "disk_low"
    TEST = "test"
    """`canary alerts test`: never queued, sent to every channel whatever it wants."""


EVENT_GROUPS: Mapping[str, frozenset[EventKind]] = {
    "all": frozenset(k for k in EventKind if k is not EventKind.TEST),
    "leaks": frozenset({EventKind.NEW_SENDER, EventKind.VERDICT_CHANGED, EventKind.BROKER}),
    "consent": frozenset({EventKind.AFTER_OPTOUT, EventKind.OVER_FREQUENCY}),
    "health": frozenset({EventKind.DELIVERY_FAILED, EventKind.ANALYSIS_STUCK,
                         EventKind.DATABASE_UNWRITABLE, EventKind.DISK_LOW}),
}
"""Names a channel may give instead of listing kinds one by one."""

KIND_SEVERITY: Mapping[EventKind, Severity] = {
    EventKind.BROKER: Severity.MEDIUM,
    EventKind.AFTER_OPTOUT: Severity.MEDIUM,
    EventKind.OVER_FREQUENCY: Severity.MEDIUM,
    EventKind.PROBES: Severity.LOW,
    EventKind.DELIVERY_FAILED: Severity.HIGH,
    EventKind.ANALYSIS_STUCK: Severity.HIGH,
    EventKind.DATABASE_UNWRITABLE: Severity.HIGH,
    EventKind.DISK_LOW: Severity.HIGH,
    EventKind.TEST: Severity.LOW,
}
"""The severity of every kind whose severity does not depend on what it found."""


def event_names() -> str:
    """Every name a channel's `events` may hold, for help and error text."""
    kinds = [k.value for k in EventKind if k is not EventKind.TEST]
    return ", ".join([*EVENT_GROUPS, *kinds])
