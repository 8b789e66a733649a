"""How a message's sender stands to the company whose alias it reached.

The vocabulary of attribution (`canary.attribution` decides it), in a module
of its own so that readers of stored verdicts, such as `canary aliases`, need
not load the rules.
"""

from __future__ import annotations

import enum


class Relation(enum.StrEnum):
    FIRST_PARTY = "first_party"
    PROCESSOR = "processor"
    THIRD_PARTY = "third_party"
    UNVERIFIED = "unverified"
    SPOOFED = "spoofed"
    IMPERSONATION = "impersonation"
    BACKSCATTER = "backscatter"
    UNPROVEN = "unproven"

    @property
    def expected(self) -> bool:
        """Mail the company may send: its own, or a service's sending for it."""
        return self in (Relation.FIRST_PARTY, Relation.PROCESSOR)

    @property
    def unexpected(self) -> bool:
        """Mail that shows the address reached someone other than the company."""
        return not self.expected and self is not Relation.UNPROVEN
