"""Every SMTP reply Canary gives, by name.

A failure of Canary's own is always a 4xx, so the sending server keeps the
message and retries; Canary never answers 500 for its own bugs.
"""

OK = "250 2.0.0 OK"
RECIPIENT_OK = "250 2.1.5 OK"
STORED = "250 2.0.0 Message stored"
RELAY_DENIED = "550 5.7.1 Relaying denied: this server only receives mail for its own domains"
RETIRED = "550 5.7.1 This address was retired by its owner and no longer accepts mail"
NO_SUCH_ALIAS = "550 5.1.1 No such recipient here"
TOO_BIG = "552 5.3.4 Message exceeds the size limit"
STORE_FAILED = "451 4.3.0 Temporary failure storing the message, please retry later"
INTERNAL_ERROR = "451 4.3.0 Temporary local problem, please retry later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, please retry later"
XFORWARD_DENIED = "550 5.7.0 XFORWARD is accepted only from trusted relays"
XFORWARD_SYNTAX = "501 5.5.4 Syntax: XFORWARD attribute=value ... before MAIL"
