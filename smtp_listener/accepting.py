"""The listening sockets and their accept loop, the same on any asyncio event loop.

`loop.create_server` leaves accepting to the event loop, and event loops do
it differently when the process is out of file descriptors:

- asyncio's own loop stops accepting for a second and calls the exception
  handler, so the connections wait in the kernel's backlog until a
  descriptor is free;
- uvloop (libuv) closes a spare descriptor it keeps, accepts every waiting
  connection and closes it at once: senders see the connection dropped
  without a greeting, and nothing tells Canary it ran out.

Canary accepts itself instead (`loop.add_reader` and `socket.accept`, then
`loop.connect_accepted_socket`), as asyncio does: out of descriptors, it
says so (`Clients.accept_failed`), stops accepting for `ACCEPT_RETRY_DELAY`
seconds and tries again, leaving the connections waiting in the backlog.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

from smtp_listener.limits import Clients

log = logging.getLogger("canary.listener")

BACKLOG = 100
"""asyncio's default `listen` backlog, and the most connections accepted per wake-up."""
ACCEPT_RETRY_DELAY = 1.0
"""Seconds before accepting again after running out of descriptors (asyncio's too)."""
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def bind(host: str | None, port: int, backlog: int = BACKLOG) -> list[socket.socket]:
    """Listening sockets for every address `host` resolves to, as `loop.create_server` binds
    them: SO_REUSEADDR, IPv6 sockets IPv6 only, non-blocking. '' or None: all interfaces."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            try:
                sock = socket.socket(family, kind, proto)
            except OSError:
                continue  # a family this host cannot open (as asyncio: skipped)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as error:
                # asyncio's wording; OSError(EACCES, …) is a PermissionError, EADDRINUSE kept.
                raise OSError(error.errno, f"error while attempting to bind on address "
                              f"{address!r}: {(error.strerror or '').lower()}") from None
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Acceptor:
    """Accepts connections on `sockets` and gives each to a new protocol on `loop`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[socket.socket],
                 protocol_factory: Callable[[], asyncio.BaseProtocol], clients: Clients) -> None:
        self._loop = loop
        self.sockets = sockets
        self._protocol_factory = protocol_factory
        self._clients = clients
        self._serving = False
        self._retries: dict[int, asyncio.TimerHandle] = {}
        self._connecting: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._serving:
            return
        self._serving = True
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _accept(self, sock: socket.socket) -> None:
        for _ in range(BACKLOG):
            try:
                connection, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return  # nothing (more) waiting
            except OSError as error:
                if error.errno not in _OUT_OF_RESOURCES:
                    log.warning("could not accept a connection: %s", error)
                    return
                # The connections stay in the backlog; look again in a second.
                self._clients.accept_failed()
                self._loop.remove_reader(sock.fileno())
                self._retries[sock.fileno()] = self._loop.call_later(
                    ACCEPT_RETRY_DELAY, self._resume, sock)
                return
            connection.setblocking(False)
            task = self._loop.create_task(self._connect(connection))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)

    def _resume(self, sock: socket.socket) -> None:
        self._retries.pop(sock.fileno(), None)
        if self._serving:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    async def _connect(self, connection: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, connection)
        except OSError as error:  # the client left already (reset), or out of memory
            log.info("could not set up an accepted connection: %s", error)
            connection.close()

    def close(self) -> None:
        """Stop accepting and close the listening sockets (not the connections)."""
        if not self.sockets:
            return
        self._serving = False
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self.sockets = []
