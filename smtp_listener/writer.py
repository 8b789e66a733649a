"""The durable writer: commits accepted mail in groups, in a process of its own.

Every DATA transaction hands its delivery to `DeliveryWriter.store` and
waits. The event loop sends it to the store process at once; the store
process commits, as one group in one transaction (one fsync), everything
that reached it while it committed the last group, and answers each
delivery; only then are the waiting transactions woken to answer 250.

The database work runs in a separate process so that it never holds the
interpreter lock the SMTP loop needs: in a thread of the same process,
SQLite's calls and their fsyncs made every reply wait (the ingest benchmark
measured the listener at half the speed of a bare aiosmtpd Sink that way).

If a group fails, the store process retries each delivery alone, so one bad
message cannot make the others fail; a delivery that still fails raises
`StoreFailed`, which the handler answers with 451. If the store process
dies or hangs, every delivery sent to it and not answered yet is answered
451 and a new process is started.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import sqlite3
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

from sqlalchemy import Connection as SQLConnection
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from canary.errors import CanaryError
from data.database import Store
from data.mailstore import Delivery, ProbeAttempt, record_probes, store_deliveries

log = logging.getLogger("canary.writer")

MAX_GROUP = 256
MAX_GROUP_BYTES = 64 * 1024 * 1024
"""A group is cut at this many raw bytes (one message may exceed it, up to `--max-size`,
at most 1 GiB: well inside the pipe framing's 2 GiB)."""
START_SECONDS = 60.0
LOCK_WAIT_SECONDS = 5.0
"""How long a group waits for a write lock another process holds; then its senders get 451."""
GROUP_SECONDS = 15.0
GROUP_BYTES_PER_SECOND = 5 * 1024 * 1024
"""A group not answered within GROUP_SECONDS (plus its size at this rate) means a store
process that hangs: its senders get 451 and a new process takes over."""
RESTART_FIRST_DELAY = 0.5
RESTART_LONGEST_DELAY = 30.0
_CONTEXT = multiprocessing.get_context("spawn")


class StoreFailed(Exception):
    """The delivery could not be committed; the sender must retry."""


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the client went away meanwhile
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


# --- the store process ----------------------------------------------------


def _unavailable(error: BaseException) -> bool:
    """The database as a whole cannot take writes now (locked, disk full, gone), as opposed
    to one value it refuses: retrying each message alone would only make senders wait."""
    cause = getattr(error, "orig", None) or error
    return isinstance(error, OperationalError | OSError) or isinstance(
        cause, sqlite3.OperationalError | OSError)


def _commit_group(
    connection: SQLConnection, deliveries: list[Delivery], probes: list[ProbeAttempt]
) -> list[str | None]:
    """Commit a group; if one value failed it, retry each delivery alone. One error (or None)
    per delivery."""
    try:
        with connection.begin():
            store_deliveries(connection, deliveries)
            record_probes(connection, probes)
        return [None] * len(deliveries)
    except Exception as error:
        reason = str(getattr(error, "orig", None) or error)[:300]
        if _unavailable(error):
            log.error("group commit of %d message(s) failed: %s; answered 451", len(deliveries),
                      reason)
            return [reason] * len(deliveries)
        # A value the database refuses belongs to one delivery or probe, so the
        # others must not pay for it.
        log.error("group commit of %d message(s) failed: %s; retrying one by one",
                  len(deliveries), reason)
    errors: list[str | None] = []
    for delivery in deliveries:
        try:
            with connection.begin():
                store_deliveries(connection, [delivery])
            errors.append(None)
        except Exception as failure:
            log.error("storing a message failed: %s", failure)
            errors.append(str(failure)[:300])
    for probe in probes:
        try:
            with connection.begin():
                record_probes(connection, [probe])
        except Exception as failure:
            log.error("recording a probe failed: %s", failure)
    return errors


def _store_process(channel: Connection, database_url: str) -> None:
    """Entry point of the store process: commit what it is sent in groups, and answer each
    request, per delivery, once its group is committed."""
    # Ctrl-C and systemd's SIGTERM reach the whole process group; the listener decides
    # when to stop (it commits what is queued first, then closes the pipe).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Errors only: the listener's own process logs each transaction.
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        store = Store(database_url)
        store.check_readable()  # a read: a write lock held elsewhere does not stall it
        connection = store.writer_connection(busy_timeout=LOCK_WAIT_SECONDS)
    except (SQLAlchemyError, OSError, CanaryError, sqlite3.Error) as error:
        reason = getattr(error, "orig", None) or error  # the driver's words, without SQL
        with contextlib.suppress(OSError):
            channel.send(f"cannot open the database ({reason})")
        return
    try:
        channel.send(None)  # ready
        while True:
            try:
                requests = _next_group(channel)
            except (EOFError, OSError):  # the listener is gone
                return
            stopping = requests[-1] is None
            sent = [request for request in requests if request is not None]
            errors = _commit_group(connection, [d for deliveries, _ in sent for d in deliveries],
                                   [p for _, probes in sent for p in probes])
            try:
                answered = 0
                for deliveries, _ in sent:  # an answer per request, in order
                    channel.send(errors[answered:answered + len(deliveries)])
                    answered += len(deliveries)
            except OSError:  # the listener is gone: what was committed stays committed
                return
            if stopping:
                return
            if any(errors):  # start afresh: the connection itself may be what broke
                with contextlib.suppress(Exception):
                    connection.close()
                connection = _reconnect(store)
    finally:
        with contextlib.suppress(Exception):
            connection.close()
        store.dispose()


Request = tuple[list[Delivery], list[ProbeAttempt]] | None
"""What the listener sends: deliveries and probes to commit, or None: stop."""


def _next_group(channel: Connection) -> list[Request]:
    """The requests to commit as one group: the next one (waiting for it), and every one
    that reached the pipe meanwhile, up to `MAX_GROUP` deliveries and `MAX_GROUP_BYTES`. A
    None (stop) ends the list."""
    requests: list[Request] = [channel.recv()]
    count = size = 0
    while (last := requests[-1]) is not None:
        count += len(last[0])
        size += sum(len(delivery.raw) for delivery in last[0])
        if count >= MAX_GROUP or size >= MAX_GROUP_BYTES or not channel.poll():
            break
        requests.append(channel.recv())
    return requests


def _reconnect(store: Store) -> SQLConnection:
    """A fresh writer connection, waiting while the database cannot be opened at all."""
    delay = RESTART_FIRST_DELAY
    while True:
        try:
            return store.writer_connection(busy_timeout=LOCK_WAIT_SECONDS)
        except Exception as error:
            log.error("cannot reopen the database (%s); retrying in %.1f s", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, RESTART_LONGEST_DELAY)


# --- the listener's side --------------------------------------------------


class StoreUnavailable(Exception):
    """The store process could not open the database."""


@dataclass(slots=True)
class _Sent:
    """A request sent to the store process and not answered yet."""

    futures: list[asyncio.Future[None]]
    size: int


class DeliveryWriter:
    """Group commit, driven by the event loop: no thread of its own.

    Each delivery goes to the store process as soon as it is handed over;
    the store process groups what reaches it while it commits (see
    `_next_group`), so no delivery waits in the listener for the store to
    finish a group. While there is no store process (it died and is being
    restarted), deliveries are answered 451 at once, so senders retry
    instead of hanging.
    """

    def __init__(self, store: Store, on_commit: Callable[[bool], None] | None = None) -> None:
        """`on_commit(queued)` hears of each commit, and whether other senders were already
        waiting for the next one."""
        self._database_url = store.url
        self._on_commit = on_commit
        self._waiting: list[tuple[Delivery, asyncio.Future[None]]] = []
        self._probes: list[ProbeAttempt] = []
        self._in_flight: collections.deque[_Sent] = collections.deque()
        """Requests sent, oldest first: the store process answers them in order."""
        self._process: multiprocessing.process.BaseProcess | None = None
        self._stream: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._idle = asyncio.Event()
        self._restarting: asyncio.Task[None] | None = None
        self._reaping: asyncio.Task[None] | None = None
        self._generation = 0
        """Counts store processes, so a lost one's late news cannot touch its successor."""
        self._group_timer: asyncio.TimerHandle | None = None

    @property
    def process_id(self) -> int | None:
        """The store process's pid while it runs (operators and tests signal it)."""
        return self._process.pid if self._process is not None and self._stream else None

    async def start(self) -> None:
        """Start the store process; raise `StoreUnavailable` if it cannot open the database."""
        await self._spawn()
        self._send_next()  # anything that arrived while the process started

    async def store(self, delivery: Delivery) -> None:
        """Return once the delivery is committed durably; raise `StoreFailed` if not."""
        if self._closing:
            raise StoreFailed("the listener is shutting down")
        if self._stream is None:
            raise StoreFailed("the store process is restarting")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((delivery, future))
        self._send_next()
        await future

    def record_probe(self, probe: ProbeAttempt) -> None:
        """Queue a probe for the next group; nobody waits for it."""
        self._probes.append(probe)
        self._send_next()

    async def close(self) -> None:
        """Commit what is waiting, then stop the store process."""
        self._closing = True
        if self._restarting is not None:
            self._restarting.cancel()
        while self._stream is not None and (self._waiting or self._probes or self._in_flight):
            self._idle.clear()
            self._send_next()
            await self._idle.wait()
        self._fail_waiting(StoreFailed("the listener is shutting down"))
        stream = self._stream  # the process may be lost while this waits: keep our own
        if stream is not None:
            with contextlib.suppress(ConnectionError, OSError):
                stream.write(_frame(None))
                await stream.drain()
            stream.close()
        if self._reader is not None:
            await self._reader
        if self._reaping is not None:
            await self._reaping
        if self._process is not None:
            await _reap(self._process)

    async def _spawn(self) -> None:
        ours, theirs = _CONTEXT.Pipe()
        process = _CONTEXT.Process(target=_store_process, args=(theirs, self._database_url),
                                   name="canary-store", daemon=True)
        process.start()
        theirs.close()
        sock = socket.socket(fileno=os.dup(ours.fileno()))
        ours.close()
        reader, stream = await asyncio.open_unix_connection(sock=sock)
        try:
            problem = await asyncio.wait_for(_read_answer(reader), START_SECONDS)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, pickle.PickleError,
                struct.error) as error:
            problem = f"the store process did not start ({error!r})"
        if problem is not None:
            stream.close()
            await _reap(process)
            raise StoreUnavailable(str(problem))
        self._generation += 1
        self._process, self._stream = process, stream
        self._reader = asyncio.get_running_loop().create_task(
            self._read_answers(reader, self._generation))

    def _fail_waiting(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:
            _resolve(future, error)
        self._probes.clear()
        self._idle.set()

    def _send_next(self) -> None:
        """Send each waiting delivery (and the probes recorded meanwhile) to the store
        process as a request of its own: the store process makes the groups."""
        while self._stream is not None and (self._waiting or self._probes):
            waiting, self._waiting = self._waiting[:1], self._waiting[1:]
            probes, self._probes = self._probes, []
            try:
                frame = _frame(([delivery for delivery, _ in waiting], probes))
            except (pickle.PickleError, struct.error, TypeError, ValueError) as error:
                log.error("a delivery could not be sent to the store process: %r", error)
                for _, future in waiting:
                    _resolve(future, StoreFailed(repr(error)))
                continue
            sent = _Sent([future for _, future in waiting],
                         sum(len(delivery.raw) for delivery, _ in waiting))
            self._in_flight.append(sent)
            self._stream.write(frame)
            if len(self._in_flight) == 1:
                self._watch(sent)
        if not (self._waiting or self._probes or self._in_flight):
            self._idle.set()

    def _watch(self, sent: _Sent) -> None:
        """Time the oldest request: the store process answers it next."""
        patience = GROUP_SECONDS + sent.size / GROUP_BYTES_PER_SECOND
        self._group_timer = asyncio.get_running_loop().call_later(
            patience, self._group_hung, sent, self._generation, patience)

    def _group_hung(self, sent: _Sent, generation: int, patience: float) -> None:
        """The store process has not answered a group in time (frozen, stopped, stuck in
        I/O): answer its senders 451 and replace it, rather than keep them waiting."""
        if generation != self._generation or not self._in_flight or self._in_flight[0] is not sent:
            return
        log.error("the store process has not answered for %.0f s; its %d message(s) are "
                  "answered 451 and a new process takes over", patience,
                  sum(len(s.futures) for s in self._in_flight))
        if self._process is not None:
            with contextlib.suppress(OSError, ValueError):
                self._process.kill()  # even a stopped process: it must not commit later
        self._store_process_lost(TimeoutError(f"no answer in {patience:.0f} s"))

    async def _read_answers(self, reader: asyncio.StreamReader, generation: int) -> None:
        while True:
            try:
                errors = await _read_answer(reader)
                if generation != self._generation:
                    return  # a process already given up on
                if not self._in_flight or not isinstance(errors, list) or len(errors) != len(
                        self._in_flight[0].futures):
                    raise ValueError(f"unexpected answer from the store process: {errors!r}")
                if self._group_timer is not None:
                    self._group_timer.cancel()
                    self._group_timer = None
                futures = self._in_flight.popleft().futures
                for future, failure in zip(futures, errors, strict=True):
                    _resolve(future, None if failure is None else StoreFailed(failure))
                if self._in_flight:
                    self._watch(self._in_flight[0])
                if futures and self._on_commit is not None:
                    self._on_commit(bool(self._in_flight or self._waiting))
                self._send_next()
            except (asyncio.IncompleteReadError, ConnectionError, pickle.PickleError,
                    struct.error) as error:
                if generation == self._generation:
                    self._store_process_lost(error)
                return
            except Exception as error:
                # Whatever went wrong, no sender may be left waiting: treat it as
                # a lost store process (451 now, a fresh process for the next group).
                if generation == self._generation:
                    log.exception("reading the store process's answer failed")
                    self._store_process_lost(error)
                return

    def _store_process_lost(self, error: BaseException) -> None:
        if self._stream is None:
            return  # already handled: the process is being replaced
        if self._group_timer is not None:
            self._group_timer.cancel()
            self._group_timer = None
        futures = [future for sent in self._in_flight for future in sent.futures]
        self._in_flight.clear()
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        if self._process is not None:
            # Reaped off the event loop: a process that is slow to die must not stall replies.
            self._reaping = asyncio.get_running_loop().create_task(_reap(self._process))
        if self._closing and not futures:
            self._idle.set()
            return
        # These senders get 451 and retry; a new process takes the next group.
        log.error("the store process failed (%r); %d message(s) answered 451",
                  error, len(futures) + len(self._waiting))
        for future in futures:
            _resolve(future, StoreFailed(f"store process failed: {error!r}"))
        self._fail_waiting(StoreFailed(f"store process failed: {error!r}"))
        if not self._closing:
            self._restarting = asyncio.get_running_loop().create_task(self._restart())

    async def _restart(self) -> None:
        """Start a new store process, waiting longer after each failed attempt."""
        delay = RESTART_FIRST_DELAY
        while not self._closing:
            try:
                await self._spawn()
            except (StoreUnavailable, OSError) as error:
                log.error("cannot start the store process (%s); retrying in %.1f s",
                          error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RESTART_LONGEST_DELAY)
            else:
                self._send_next()
                return


async def _reap(process: multiprocessing.process.BaseProcess) -> None:
    """Wait for a store process that is ending, in a thread; kill it if it will not end."""
    await asyncio.to_thread(process.join, 5)
    if process.is_alive():
        process.kill()
        await asyncio.to_thread(process.join, 5)


async def _read_answer(reader: asyncio.StreamReader) -> object:
    (length,) = struct.unpack("!i", await reader.readexactly(4))
    return pickle.loads(await reader.readexactly(length))


def _frame(message: object) -> bytes:
    """multiprocessing.Connection's framing, so the store process can `recv()` it."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return struct.pack("!i", len(payload)) + payload
