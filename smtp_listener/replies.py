"""Every SMTP reply Canary gives, by name.

A failure of Canary's own is always a 4xx, so the sending server keeps the
message and retries; Canary never answers 500 for its own bugs. A reply is
a value with its code: code compares by number, logs show the code, and
`str()` is the line aiosmtpd sends.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    status: str
    """The enhanced status code (RFC 3463), e.g. `5.7.1`."""
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300


OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "OK")
RECIPIENT_OK = Reply(250, "2.1.5", "OK")
STORED = Reply(250, "2.0.0", "Message stored")
RELAY_DENIED = Reply(550, "5.7.1",
                     "Relaying denied: this server only receives mail for its own domains")
RETIRED = Reply(550, "5.7.1", "This address was retired by its owner and no longer accepts mail")
NO_SUCH_ALIAS = Reply(550, "5.1.1", "No such recipient here")
TOO_BIG = Reply(552, "5.3.4", "Message exceeds the size limit")
STORE_FAILED = Reply(451, "4.3.0", "Temporary failure storing the message, please retry later")
INTERNAL_ERROR = Reply(451, "4.3.0", "Temporary local problem, please retry later")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, please retry later")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, please retry later")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors in this session, closing")
TOO_MANY_PROBES = Reply(450, "4.7.1",
                        "Too many unknown recipients from your address, please slow down")
DATA_TOO_SLOW = Reply(421, "4.4.2", "The message is arriving too slowly, closing")
NO_SPACE = Reply(452, "4.3.1", "Insufficient system storage, please retry later")
XFORWARD_DENIED = Reply(550, "5.7.0", "XFORWARD is accepted only from trusted relays")
XFORWARD_SYNTAX = Reply(501, "5.5.4", "Syntax: XFORWARD attribute=value ... before MAIL")


def code_of(line: str) -> int | None:
    """The three-digit code at the start of a reply line aiosmtpd wrote, if any."""
    head = line[:3]
    return int(head) if head.isdigit() and (len(line) == 3 or line[3] in " -") else None
