"""Runs the listener: the asyncio server, the store process, the worker, shutdown.

`Listener.start` binds and returns the real port (0 picks a free one, as
the demo and the tests do). `Listener.stop` stops accepting, lets
transactions already under way finish for a grace period, closes the rest
with 421, commits what is queued and stops the worker (analysis, delivery).
`serve_forever` runs it until SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from canary.alerts import AlertsConfig
from canary.delivery import DeliveryConfig
from data.database import Store
from data.deliveries import register_destinations
from data.home import DEFAULT_XFORWARD_PEERS
from smtp_listener.accepting import Acceptor, bind
from smtp_listener.alerts import AlertSettings
from smtp_listener.analysis import AnalysisConfig
from smtp_listener.handler import CanaryHandler, CanarySMTP, IssuedAliases
from smtp_listener.limits import (
    DEFAULT_HOST,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_SIZE,
    DEFAULT_PORT,
    ClientLimits,
    Clients,
    DiskSpace,
)
from smtp_listener.worker import Worker, WorkerConfig
from smtp_listener.writer import DeliveryWriter, StoreUnavailable

log = logging.getLogger("canary.listener")

SHUTDOWN_GRACE = 30.0
ALIAS_CACHE_SECONDS = 10.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """The listener's event loop: uvloop's where it is installed (a dependency on Linux and
    macOS; about a third more mail a second, `benchmarks/ingest.py`), else asyncio's.

    `CANARY_EVENT_LOOP=asyncio` chooses asyncio's own loop, should uvloop misbehave on
    some platform. Canary behaves the same on both: it accepts connections itself
    (`smtp_listener.accepting`) and relies on no loop's internals.
    """
    if os.environ.get("CANARY_EVENT_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


@dataclass(frozen=True, slots=True)
class ListenerSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_size: int = DEFAULT_MAX_SIZE
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    shutdown_grace: float = SHUTDOWN_GRACE
    xforward_peers: frozenset[str] = frozenset(DEFAULT_XFORWARD_PEERS)
    """Peers whose XFORWARD (original client address and HELO) is believed."""
    alias_cache_seconds: float = ALIAS_CACHE_SECONDS
    """How long an issued alias is remembered; a retirement takes effect within it."""
    limits: ClientLimits = field(default_factory=ClientLimits)
    """What one client may cost: connections, errors, probes, slow DATA, disk space."""


class Listener:
    def __init__(
        self,
        store: Store,
        *,
        domains: frozenset[str],
        secret: bytes,
        settings: ListenerSettings,
        analysis: AnalysisConfig,
        delivery: DeliveryConfig | None = None,
        alerts: AlertsConfig | None = None,
        alerts_home: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        """`alerts` came from the config of `alerts_home`, when given: the listener follows
        that file's `[alerts]` while it runs."""
        self._store = store
        self._settings = settings
        delivery = delivery or DeliveryConfig()
        self._delivery = delivery
        self._worker = Worker(WorkerConfig(
            store.url, analysis, delivery,
            delivery.authserv_id or (sorted(domains)[0] if domains else "canary"),
            AlertSettings(alerts or AlertsConfig(),
                          min_free_bytes=settings.limits.min_free_bytes,
                          min_free_ratio=settings.limits.min_free_ratio, home=alerts_home)))
        self._writer = DeliveryWriter(store, on_commit=self._worker.notify)
        self.clients = Clients(settings.limits, settings.xforward_peers)
        self._handler = CanaryHandler(
            domains=domains, secret=secret,
            aliases=IssuedAliases(store, settings.alias_cache_seconds),
            writer=self._writer, clock=clock, clients=self.clients,
            disk=DiskSpace(store.directory, settings.limits),
            xforward_peers=settings.xforward_peers, pace=self._worker.pace,
        )
        self._connections: set[CanarySMTP] = set()
        self._acceptor: Acceptor | None = None
        self._hostname = socket.gethostname()

    def _protocol(self) -> CanarySMTP:
        return CanarySMTP(
            self._handler,
            connections=self._connections,
            clients=self.clients,
            data_size_limit=self._settings.max_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self._hostname,
            timeout=self._settings.idle_timeout,
        )

    async def start(self) -> tuple[str, int]:
        """Bind and start accepting; return the bound host and port.

        Raises `StoreUnavailable` if the store process cannot open the database:
        then nothing listens, rather than a listener that can only answer 451.
        """
        # Bound here, accepted by Canary itself: the same on asyncio's loop and uvloop, out of
        # file descriptors too (smtp_listener.accepting).
        self._acceptor = Acceptor(asyncio.get_running_loop(),
                                  bind(self._settings.host, self._settings.port),
                                  self._protocol, self.clients)
        # The worker starts first: its start-up (imports, its first passes) overlaps the store
        # process's, instead of taking the CPU from the first senders.
        self._worker.start()
        try:
            await self._writer.start()
        except StoreUnavailable:
            self._acceptor.close()
            self._worker.detach()
            await asyncio.to_thread(self._worker.stop)
            raise
        # A destination gets the mail received from the moment it is first served: registered
        # before the first 250, so no message falls between start and the first delivery pass.
        await asyncio.to_thread(self._register_destinations)
        self._acceptor.start()
        host, port = self._acceptor.sockets[0].getsockname()[:2]
        log.info("listening on %s port %d", host, port)
        return str(host), int(port)

    def _register_destinations(self) -> None:
        keys = [d.key for d in self._delivery.destinations]
        if keys:
            with self._store.writing() as session:
                register_destinations(session, keys, utc_now())

    async def stop(self) -> None:
        """Stop accepting, finish transactions under way, then close everything."""
        if self._acceptor is not None:
            self._acceptor.close()
        if not self._worker.started:
            await self._writer.close()
            return
        deadline = time.monotonic() + self._settings.shutdown_grace
        while any(c.in_transaction for c in self._connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self._connections):
            await connection.close_for_shutdown()
        await self._writer.close()
        self._worker.detach()
        await asyncio.to_thread(self._worker.stop)
        log.info("listener stopped")

    @property
    def store_process_id(self) -> int | None:
        """The pid of the store process that commits mail, while it runs."""
        return self._writer.process_id

    @property
    def worker_process_id(self) -> int | None:
        """The pid of the worker process that analyses and delivers, while it runs."""
        return self._worker.pid

    def settle(self, timeout: float = 60.0) -> bool:
        """Block until the mail committed so far is analysed and delivered (from a thread
        other than the event loop's: the demo, tests); False if `timeout` ran out first."""
        return self._worker.settle(timeout)

    async def serve_forever(self) -> None:
        """Run until SIGINT or SIGTERM, then shut down cleanly."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await self.stop()


class ListenerThread:
    """Runs a `Listener` on its own event loop in a thread, for the demo and tests.

    `with ListenerThread(listener) as (host, port): …` starts it and, on exit,
    shuts it down the same way SIGTERM does.
    """

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="canary-listener",
                                        daemon=True)

    def __enter__(self) -> tuple[str, int]:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self.listener.start(), self._loop).result()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def settle(self, timeout: float = 60.0) -> bool:
        """Block until the mail committed so far is analysed and delivered; False if `timeout`
        ran out."""
        return self.listener.settle(timeout)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.listener.stop(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
