"""The durable writer: commits accepted mail in groups, in a process of its own.

Every DATA transaction hands its delivery to `DeliveryWriter.store` and
waits. A thread takes everything queued and passes the group to the store
process, which writes it in one transaction and commits (one fsync for the
group); only then are the waiting transactions woken to answer 250.

The database work runs in a separate process so that it never holds the
interpreter lock the SMTP loop needs: in the same process, SQLite's calls
and their fsyncs made every reply wait (the ingest benchmark measured the
listener at half the speed of a bare aiosmtpd Sink that way).

If a group fails, the store process retries each delivery alone, so one bad
message cannot make the others fail; a delivery that still fails raises
`StoreFailed`, which the handler answers with 451. If the store process
dies, the group under way is answered 451 and a new process is started.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from sqlalchemy import Connection as SQLConnection
from sqlalchemy.exc import SQLAlchemyError

from data.database import Store
from data.mailstore import Delivery, ProbeAttempt, record_probes, store_deliveries

log = logging.getLogger("canary.writer")

MAX_GROUP = 256
_STOP = object()
_CONTEXT = multiprocessing.get_context("spawn")


class StoreFailed(Exception):
    """The delivery could not be committed; the sender must retry."""


@dataclass
class _Pending:
    delivery: Delivery
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


@dataclass
class _Group:
    deliveries: list[_Pending] = field(default_factory=list)
    probes: list[ProbeAttempt] = field(default_factory=list)


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the client went away meanwhile
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _resolve_many(outcomes: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    for future, error in outcomes:
        _resolve(future, error)


def _answer(deliveries: list[_Pending], errors: list[str | None]) -> None:
    """Wake every transaction of the group, with one call into each event loop."""
    by_loop: dict[asyncio.AbstractEventLoop,
                  list[tuple[asyncio.Future[None], BaseException | None]]] = {}
    for pending, error in zip(deliveries, errors, strict=True):
        outcome = None if error is None else StoreFailed(error)
        by_loop.setdefault(pending.loop, []).append((pending.future, outcome))
    for loop, outcomes in by_loop.items():
        loop.call_soon_threadsafe(_resolve_many, outcomes)


# --- the store process ----------------------------------------------------


def _commit_group(
    connection: SQLConnection, deliveries: list[Delivery], probes: list[ProbeAttempt]
) -> list[str | None]:
    """Commit a group; on failure retry each delivery alone. One error (or None) each."""
    try:
        with connection.begin():
            store_deliveries(connection, deliveries)
            record_probes(connection, probes)
        return [None] * len(deliveries)
    except (SQLAlchemyError, OSError, ValueError) as error:
        # ValueError: a value the database refuses; it belongs to one delivery
        # or probe, so the others must not pay for it.
        log.error("group commit of %d message(s) failed: %s; retrying one by one",
                  len(deliveries), error)
    errors: list[str | None] = []
    for delivery in deliveries:
        try:
            with connection.begin():
                store_deliveries(connection, [delivery])
            errors.append(None)
        except (SQLAlchemyError, OSError, ValueError) as failure:
            log.error("storing a message failed: %s", failure)
            errors.append(str(failure))
    for probe in probes:
        try:
            with connection.begin():
                record_probes(connection, [probe])
        except (SQLAlchemyError, OSError, ValueError) as failure:
            log.error("recording a probe failed: %s", failure)
    return errors


def _store_process(channel: Connection, database_url: str) -> None:
    """Entry point of the store process: commit each group it is sent, answer per delivery."""
    # Ctrl-C reaches the whole process group; the listener decides when to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Errors only: the listener's own process logs each transaction.
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store = Store(database_url)
    connection = store.writer_connection()
    try:
        while True:
            try:
                request = channel.recv()
            except EOFError:  # the listener is gone
                return
            if request is None:
                return
            deliveries, probes = request
            errors = _commit_group(connection, deliveries, probes)
            channel.send(errors)
            if any(errors):  # start afresh: the connection itself may be what broke
                connection.close()
                connection = store.writer_connection()
    finally:
        connection.close()
        store.dispose()


# --- the listener's side --------------------------------------------------


class DeliveryWriter:
    def __init__(self, store: Store, on_commit: Callable[[], None] | None = None) -> None:
        self._database_url = store.url
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._run, name="canary-writer", daemon=True)
        self._process: multiprocessing.process.BaseProcess | None = None
        self._channel: Connection | None = None

    def start(self) -> None:
        self._thread.start()

    async def store(self, delivery: Delivery) -> None:
        """Return once the delivery is committed durably; raise `StoreFailed` if not."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(delivery, future, loop))
        await future

    def record_probe(self, probe: ProbeAttempt) -> None:
        """Queue a probe for the next group; nobody waits for it."""
        self._queue.put(probe)

    def close(self) -> None:
        """Commit what is queued, then stop the thread and the store process."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _spawn(self) -> Connection:
        ours, theirs = _CONTEXT.Pipe()
        process = _CONTEXT.Process(target=_store_process, args=(theirs, self._database_url),
                                   name="canary-store", daemon=True)
        process.start()
        theirs.close()
        self._process, self._channel = process, ours
        return ours

    def _stop_process(self) -> None:
        if self._channel is not None:
            try:
                self._channel.send(None)
            except OSError:
                pass
            self._channel.close()
        if self._process is not None:
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
        self._process = self._channel = None

    def _next_group(self) -> tuple[_Group, bool]:
        group = _Group()
        stop = False
        item = self._queue.get()
        while True:
            if item is _STOP:
                stop = True
            elif isinstance(item, _Pending):
                group.deliveries.append(item)
            elif isinstance(item, ProbeAttempt):
                group.probes.append(item)
            if len(group.deliveries) >= MAX_GROUP:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return group, stop

    def _run(self) -> None:
        try:
            while True:
                group, stop = self._next_group()
                if group.deliveries or group.probes:
                    self._commit(group)
                if stop:
                    return
        finally:
            self._stop_process()

    def _commit(self, group: _Group) -> None:
        try:
            channel = self._channel or self._spawn()
            channel.send(([p.delivery for p in group.deliveries], group.probes))
            errors: list[str | None] = channel.recv()
        except (EOFError, OSError) as error:
            # The store process died (or could not start): these senders get
            # 451 and retry; the next group gets a fresh process.
            log.error("the store process failed (%r); %d message(s) answered 451",
                      error, len(group.deliveries))
            self._stop_process()
            errors = [f"store process failed: {error!r}"] * len(group.deliveries)
        _answer(group.deliveries, errors)
        if group.deliveries and self._on_commit is not None:
            self._on_commit()
