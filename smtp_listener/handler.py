"""The aiosmtpd handler: decides RCPT replies and commits DATA before 250.

Each hook is a few lines. Recipient rules live in `canary.aliases`, issued
aliases in `data`, and commits in the store process (`smtp_listener.writer`).
A bug anywhere here is
answered 451 by `handle_exception`, never aiosmtpd's default 500, so no
mail is bounced for Canary's own fault. Logs carry the envelope, never a
body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from canary.aliases import RecipientKind, check_recipient
from data.database import Store
from data.mailstore import Delivery, IssuedAddress, ProbeAttempt, issued_alias
from smtp_listener import replies
from smtp_listener.writer import DeliveryWriter, StoreFailed

log = logging.getLogger("canary.listener")

ACTIVITY_GRANULARITY = 1.0
"""Seconds between restarts of the idle timer while a client is sending."""


class CanaryEnvelope(Envelope):
    """aiosmtpd's envelope plus the alias id of each accepted recipient.

    It also carries the XFORWARD attributes of a trusted relay, which hold
    for one transaction, as Postfix sends them.
    """

    def __init__(self) -> None:
        super().__init__()
        self.alias_ids: dict[str, int] = {}
        self.client_addr: str | None = None
        self.client_helo: str | None = None


XFORWARD_ATTRIBUTES = "NAME ADDR PROTO HELO SOURCE"
_UNAVAILABLE = {"[UNAVAILABLE]", "[TEMPUNAVAIL]", ""}


def read_xforward(argument: str) -> dict[str, str]:
    """`ADDR=192.0.2.7 HELO=mx.example` → {"ADDR": …, "HELO": …}, unavailable values dropped."""
    attributes = {}
    for item in argument.split():
        name, equals, value = item.partition("=")
        value = value.strip()
        if equals and value.upper() not in _UNAVAILABLE:
            if name.upper() == "ADDR" and value.upper().startswith("IPV6:"):
                value = value[5:]
            attributes[name.upper()] = value[:255]
    return attributes


class IssuedAliases:
    """Answers "is this address an issued alias?" with a short-lived cache.

    Only positive answers are cached, so an alias issued from another
    terminal is accepted at once; a retirement takes effect within
    `cache_seconds`.
    """

    def __init__(self, store: Store, cache_seconds: float) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[IssuedAddress, float]] = {}

    async def lookup(self, address: str) -> IssuedAddress | None:
        cached = self._cache.get(address)
        now = time.monotonic()
        if cached is not None and now - cached[1] < self._cache_seconds:
            return cached[0]
        issued = await asyncio.to_thread(self._query, address)
        if issued is not None:
            self._cache[address] = (issued, now)
        return issued

    def _query(self, address: str) -> IssuedAddress | None:
        with self._store.reading() as session:
            return issued_alias(session, address)


def storable(text: str) -> str:
    """Envelope text as received, in a form the database can store.

    aiosmtpd keeps bytes that are not UTF-8 as surrogate escapes, which no
    database accepts; they are kept as `\\xNN`. Anything else is unchanged.
    """
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _peer_ip(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "unknown")


class CanaryHandler:
    def __init__(
        self,
        *,
        domains: frozenset[str],
        secret: bytes,
        aliases: IssuedAliases,
        writer: DeliveryWriter,
        clock: Callable[[], datetime],
        xforward_peers: frozenset[str] = frozenset(),
    ) -> None:
        self._domains = domains
        self._secret = secret
        self._aliases = aliases
        self._writer = writer
        self._clock = clock
        self._xforward_peers = xforward_peers

    def may_xforward(self, session: Session) -> bool:
        return _peer_ip(session) in self._xforward_peers

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: CanaryEnvelope, hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.may_xforward(session):
            responses.insert(-1, f"250-XFORWARD {XFORWARD_ATTRIBUTES}")
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: CanaryEnvelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        recipient = check_recipient(address, self._domains, self._secret)
        issued = None
        if recipient.kind is RecipientKind.CANDIDATE:
            issued = await self._aliases.lookup(recipient.address)
        if issued is not None and not issued.rejected:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            envelope.alias_ids.setdefault(address, issued.alias_id)
            return str(replies.RECIPIENT_OK)
        if issued is not None:
            reply = replies.RETIRED
        elif recipient.kind is RecipientKind.FOREIGN:
            reply = replies.RELAY_DENIED
        else:
            reply = replies.NO_SUCH_ALIAS
            self._writer.record_probe(
                ProbeAttempt(self._clock(), _peer_ip(session), storable(recipient.address),
                             storable(envelope.mail_from) if envelope.mail_from else None)
            )
        log.info("peer=%s from=<%s> rcpt=<%s> result=%d %s", _peer_ip(session),
                 envelope.mail_from, address, reply.code, reply.status)
        return str(reply)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: CanaryEnvelope) -> str:
        peer = _peer_ip(session)
        delivery = Delivery(
            raw=envelope.original_content or b"",
            recipients=tuple((envelope.alias_ids[r], storable(r)) for r in envelope.rcpt_tos),
            mail_from=storable(envelope.mail_from or ""),
            peer_ip=storable(envelope.client_addr or peer),
            helo=storable(helo) if (helo := envelope.client_helo or session.host_name) else None,
            tls=session.ssl is not None,
            received_at=self._clock(),
            forwarded_by=peer if envelope.client_addr else None,
        )
        try:
            await self._writer.store(delivery)
        except StoreFailed:
            reply = replies.STORE_FAILED
        else:
            reply = replies.STORED
        log.info("peer=%s from=<%s> rcpt=<%s> size=%d result=%d %s", delivery.peer_ip,
                 delivery.mail_from, ",".join(envelope.rcpt_tos), len(delivery.raw), reply.code,
                 reply.status)
        return str(reply)

    async def handle_exception(self, error: Exception) -> str:
        log.error("internal error answered 451: %r", error, exc_info=error)
        return str(replies.INTERNAL_ERROR)


class CanarySMTP(SMTP):
    """aiosmtpd's SMTP with Canary's envelope and a line limit fit for real mail.

    Marketing mail often has lines far over RFC 5321's 1,000 bytes. The line
    limit is raised just above the size limit, so a long line is accepted and
    an over-size message gets 552, not "line too long".
    """

    def __init__(
        self,
        handler: CanaryHandler,
        *,
        data_size_limit: int,
        connections: set[CanarySMTP],
        **kwargs: Any,
    ) -> None:
        self.line_length_limit = data_size_limit + 1024
        super().__init__(handler, data_size_limit=data_size_limit, **kwargs)
        self._connections = connections
        self._in_data = False
        self._activity_at = 0.0
        self._activity_granularity = min(ACTIVITY_GRANULARITY, self._timeout_duration / 4)

    def _create_envelope(self) -> CanaryEnvelope:
        return CanaryEnvelope()

    def data_received(self, data: bytes) -> None:
        # aiosmtpd restarts the idle timer only when a command arrives, so a
        # message still arriving over a slow link was cut `timeout` seconds
        # after DATA. Any bytes from the client count as activity; the timer
        # is restarted at most every quarter timeout (a second at most), which
        # is cheap enough per chunk.
        if self.transport is not None:
            now = self.loop.time()
            if now - self._activity_at >= self._activity_granularity:
                self._activity_at = now
                self._reset_timeout()
        super().data_received(data)

    async def push(self, status: AnyStr) -> None:
        # A line longer than the line limit (just above the size limit) makes the
        # message over-size too; say so with 552 rather than aiosmtpd's 500.
        if isinstance(status, str) and self._in_data and replies.code_of(status) == 500:
            await super().push(str(replies.TOO_BIG))
        else:
            await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        self._in_data = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._connections.discard(self)
        super().connection_lost(error)

    async def smtp_XFORWARD(self, argument: str | None) -> None:
        """Postfix's XFORWARD: a trusted relay passes the original client's address and HELO."""
        assert self.session is not None and isinstance(self.envelope, CanaryEnvelope)
        handler: CanaryHandler = self.event_handler
        if not handler.may_xforward(self.session):
            await self.push(str(replies.XFORWARD_DENIED))
            return
        if not argument or self.envelope.mail_from is not None:
            await self.push(str(replies.XFORWARD_SYNTAX))
            return
        attributes = read_xforward(argument)
        if "ADDR" in attributes:
            self.envelope.client_addr = attributes["ADDR"]
        if "HELO" in attributes:
            self.envelope.client_helo = attributes["HELO"]
        await self.push(str(replies.OK))

    @property
    def in_transaction(self) -> bool:
        """A MAIL FROM was given and the transaction has not ended yet."""
        return self.envelope is not None and self.envelope.mail_from is not None

    async def close_for_shutdown(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            await self.push(str(replies.SHUTTING_DOWN))
            self.transport.close()
