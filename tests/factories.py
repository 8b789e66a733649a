"""Small factories for test input: raw messages as senders really write them."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from canary.authentication import AuthenticatedBy, AuthMethod


def make_message(
    *,
    sender: str = '"Acme News" <news@acme.example>',
    to: str = "someone@canary.example.org",
    subject: str = "Hello",
    body: str = "Hello there.\n",
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="acme.example")
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def dkim(domain: str) -> AuthenticatedBy:
    """Authenticated by a passing DKIM signature of `domain`."""
    return AuthenticatedBy(AuthMethod.DKIM, domain)


def spf(domain: str) -> AuthenticatedBy:
    """Authenticated by an SPF pass for `domain`."""
    return AuthenticatedBy(AuthMethod.SPF, domain)
