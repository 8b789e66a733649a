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
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, AnyStr, cast

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session, syntax
from sqlalchemy.exc import SQLAlchemyError

from canary.aliases import RecipientKind, check_recipient
from canary.message import storable
from data.database import Store
from data.mailstore import Delivery, IssuedAddress, ProbeAttempt, issued_alias
from smtp_listener import replies
from smtp_listener.limits import STREAM_LIMIT, Clients, DiskSpace, Pace, data_deadline
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


def _storable(address: str) -> bool:
    """Whether an address can be looked up at all: bytes that are not UTF-8 (kept as
    surrogate escapes) are no alias's."""
    try:
        address.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
        clients: Clients,
        disk: DiskSpace,
        xforward_peers: frozenset[str] = frozenset(),
        pace: Pace | None = None,
    ) -> None:
        self._domains = domains
        self._secret = secret
        self._aliases = aliases
        self._writer = writer
        self._clock = clock
        self._clients = clients
        self._disk = disk
        self._xforward_peers = xforward_peers
        self._pace = pace or Pace()
        self._disk_full_logged = False

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

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: CanaryEnvelope, address: str,
        mail_options: list[str],
    ) -> str:
        await self._pace.wait()
        if not self._disk.enough():
            if not self._disk_full_logged:
                log.error("the disk holding the database is nearly full: new mail gets 452 "
                          "until there is room")
                self._disk_full_logged = True
            return str(replies.NO_SPACE)
        if self._disk_full_logged:
            log.warning("there is room on the disk again: accepting mail")
            self._disk_full_logged = False
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return str(replies.SENDER_OK)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: CanaryEnvelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        recipient = check_recipient(address, self._domains, self._secret)
        issued = None
        if recipient.kind is not RecipientKind.FOREIGN and _storable(recipient.address):
            # Besides Canary's own aliases, an address adopted on a canary domain (a
            # catch-all the person used before) is an alias too: the store says.
            try:
                issued = await self._aliases.lookup(recipient.address)
            except SQLAlchemyError as error:
                log.warning("peer=%s rcpt=<%s> answered 451: the database cannot be read (%s)",
                            _peer_ip(session), address, type(error).__name__)
                return str(replies.INTERNAL_ERROR)
        if issued is not None and not issued.rejected:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            envelope.alias_ids.setdefault(address, issued.alias_id)
            return str(replies.RECIPIENT_OK)
        if issued is not None:
            reply = replies.RETIRED
        elif recipient.kind is RecipientKind.FOREIGN:
            reply = replies.RELAY_DENIED
        elif self._clients.probe(envelope.client_addr or _peer_ip(session)):
            reply = replies.TOO_MANY_PROBES  # counted, not written: a flood stays in memory
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


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>")
"""`<local@domain>` with a dot-atom local part and a plain domain (RFC 5321 4.1.2)."""


class CanarySMTP(SMTP):
    """aiosmtpd's SMTP with Canary's envelope, limits per client, and a DATA reader of its own.

    Command lines are read with a small buffer (`STREAM_LIMIT`): a client
    sending an endless command line costs kilobytes, not the message size.
    DATA lines may be as long as the message (marketing mail often has lines
    far over RFC 5321's 1,000 bytes): they are read in pieces up to the size
    limit, and an over-size message gets 552 once it has been read. A
    message must keep arriving at `min_data_rate` beyond the idle timeout, so
    a client trickling bytes cannot hold a connection for ever. After
    `error_limit` error replies the session is closed with 421.
    """

    line_length_limit = STREAM_LIMIT

    def __init__(
        self,
        handler: CanaryHandler,
        *,
        data_size_limit: int,
        connections: set[CanarySMTP],
        clients: Clients,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, data_size_limit=data_size_limit, **kwargs)
        self._connections = connections
        self._clients = clients
        self._client: str | None = None
        self._refused = False
        self._errors = 0
        self._in_data = False
        self._data_started = 0.0
        self._data_bytes = 0
        self._activity_at = 0.0
        self._activity_granularity = min(ACTIVITY_GRANULARITY, self._timeout_duration / 4)

    def _create_envelope(self) -> CanaryEnvelope:
        return CanaryEnvelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """The address of a MAIL or RCPT argument, and what follows it, as aiosmtpd reads it.

        aiosmtpd parses each address with the email header parser and builds a
        class on every call: a fifth of the listener's time per message. The plain
        `<local@domain>` of nearly all mail is read with a regular expression;
        anything else (quoting, comments, a source route, spaces) goes to aiosmtpd.
        """
        plain = PLAIN_PATH.match(arg)
        rest = arg[plain.end():].lstrip(" \t") if plain else ""
        if plain is None or rest.startswith("("):  # a comment: the parser's to read
            try:
                return super()._getaddr(arg)
            except Exception:  # the email parser fails on some hostile input ("<", "0@["):
                return None, None  # a malformed address, 553
        address = plain.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._client is None and not self._refused:  # not the STARTTLS re-entry
            self._clients.accepted()
            peer = transport.get_extra_info("peername")
            client = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
            why = self._clients.admit(client)
            if why is not None:
                self._refused = True
                log.info("peer=%s refused: %s", client, why)
                # Not `isinstance(transport, asyncio.WriteTransport)`: uvloop's transports
                # implement the interface without deriving from asyncio's classes.
                cast(asyncio.WriteTransport, transport).write(
                    f"{replies.TOO_MANY_CONNECTIONS}\r\n".encode())
                transport.close()
                return
            self._client = client
            self._connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        self._connections.discard(self)
        if self._client is not None:
            self._clients.release(self._client)
            self._client = None
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
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
            if self._in_data:
                self._data_bytes += len(data)
                allowed = data_deadline(self._timeout_duration, self._data_bytes,
                                        self._clients.limits.min_data_rate)
                if now - self._data_started > allowed:
                    log.info("peer=%s message arriving too slowly (%d bytes in %.0f s): closed",
                             self._client, self._data_bytes, now - self._data_started)
                    self._close_with(replies.DATA_TOO_SLOW)
                    return
        super().data_received(data)

    def _close_with(self, reply: replies.Reply) -> None:
        if self.transport is not None and not self.transport.is_closing():
            cast(asyncio.WriteTransport, self.transport).write(f"{reply}\r\n".encode())
            self.transport.close()

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        code = replies.code_of(status) if isinstance(status, str) else None
        if code is None or code < 400 or code == 421:
            return
        self._errors += 1
        if (self._errors >= self._clients.limits.error_limit and self._client is not None
                and not self._clients.exempt(self._client)):
            log.info("peer=%s closed after %d errors", self._client, self._errors)
            self._close_with(replies.TOO_MANY_ERRORS)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._in_data = True
        self._data_started, self._data_bytes = self.loop.time(), 0
        try:
            content = await self._read_data()
        finally:
            self._in_data = False
        if content is None:
            self.envelope = self._create_envelope()
            await self.push(str(replies.TOO_BIG))
            return
        self.envelope.content = self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self.envelope = self._create_envelope()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> bytes | None:
        """The message up to the lone dot, dot-unstuffed (RFC 5321 4.5.2); None if it is
        over the size limit (read to its end all the same, keeping none of it)."""
        limit = self.data_size_limit
        data = bytearray()
        size = 0
        at_line_start = True
        too_big = False
        while self.transport is not None:
            try:
                piece = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as error:
                piece = await self._reader.read(error.consumed)
            if at_line_start and piece == b".\r\n":
                return None if too_big else bytes(data)
            size += len(piece)
            if limit and size > limit and not too_big:
                too_big = True
                data = bytearray()
            if not too_big:
                data += piece[1:] if at_line_start and piece.startswith(b".") else piece
            at_line_start = piece.endswith(b"\r\n")
        return None

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
