"""The durable writer: one thread that commits accepted mail in groups.

Every DATA transaction hands its delivery to `DeliveryWriter.store` and
waits. The thread takes everything queued, writes it in one transaction and
commits (one fsync for the group), then wakes the waiting transactions,
which only then answer 250. If the group fails, each delivery is retried
alone, so one bad message cannot make the others fail; a delivery that
still fails raises `StoreFailed`, which the handler answers with 451.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from data.database import Store
from data.mailstore import Delivery, ProbeAttempt, record_probes, store_deliveries

log = logging.getLogger("canary.writer")

MAX_GROUP = 256


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


_STOP = object()


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the client went away meanwhile
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _resolve_all(deliveries: list[_Pending]) -> None:
    """Wake every committed transaction, with one call into each event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for pending in deliveries:
        by_loop.setdefault(pending.loop, []).append(pending.future)
    for loop, futures in by_loop.items():
        loop.call_soon_threadsafe(_resolve_many, futures)


def _resolve_many(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        _resolve(future, None)


class DeliveryWriter:
    def __init__(self, store: Store, on_commit: Callable[[], None] | None = None) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._run, name="canary-writer", daemon=True)

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
        """Commit what is queued, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

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
        while True:
            group, stop = self._next_group()
            if group.deliveries or group.probes:
                try:
                    self._commit(group)
                except Exception as error:
                    # A bug here must not leave senders waiting forever: they get 451.
                    log.exception("writer failed; the group is answered 451")
                    for pending in group.deliveries:
                        pending.loop.call_soon_threadsafe(
                            _resolve, pending.future, StoreFailed(repr(error))
                        )
            if stop:
                return

    def _commit(self, group: _Group) -> None:
        try:
            with self._store.write_connection() as connection:
                store_deliveries(connection, [p.delivery for p in group.deliveries])
                record_probes(connection, group.probes)
        except (SQLAlchemyError, OSError, ValueError) as error:
            # ValueError: a value the database refuses (e.g. text it cannot encode);
            # it belongs to one delivery or probe, so the others must not pay for it.
            log.error("group commit of %d message(s) failed: %s; retrying one by one",
                      len(group.deliveries), error)
            for pending in group.deliveries:
                self._commit_one(pending)
            self._record_probes_alone(group.probes)
        else:
            _resolve_all(group.deliveries)
        if group.deliveries and self._on_commit is not None:
            self._on_commit()

    def _record_probes_alone(self, probes: list[ProbeAttempt]) -> None:
        for probe in probes:
            try:
                with self._store.write_connection() as connection:
                    record_probes(connection, [probe])
            except (SQLAlchemyError, OSError, ValueError) as failure:
                log.error("recording a probe failed: %s", failure)

    def _commit_one(self, pending: _Pending) -> None:
        error: BaseException | None = None
        try:
            with self._store.write_connection() as connection:
                store_deliveries(connection, [pending.delivery])
        except (SQLAlchemyError, OSError, ValueError) as failure:
            log.error("storing a message failed: %s", failure)
            error = StoreFailed(str(failure))
        pending.loop.call_soon_threadsafe(_resolve, pending.future, error)
