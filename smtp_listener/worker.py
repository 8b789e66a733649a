"""The listener's worker process: analysis, delivery and alerts, beside the SMTP loop.

Analysing a message (parsing, DKIM's arithmetic, DNS) and delivering it
take CPU the SMTP loop must not wait for: in a thread of the listener's own
process they compete for its interpreter lock and slow every reply. So they
run in a process of their own, which the listener starts, wakes after each
commit (a byte on a socket, never a wait), asks to settle (the demo and the
tests wait for the mail so far to be analysed, delivered and alerted on), and stops. The
database is the only state: a worker that dies or is killed loses nothing; a
message it was analysing stays pending, a delivery it was making is retried
(at most once more, in the documented window).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import multiprocessing.process
import os
import select
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from canary.delivery import DeliveryConfig
from data.database import Store
from smtp_listener.alerts import Alerter, AlertSettings, wait_seconds
from smtp_listener.analysis import AnalysisConfig, Analyst
from smtp_listener.delivery import Deliverer
from smtp_listener.limits import IN_FLOW_DELAY, Pace

log = logging.getLogger("canary.worker")

_CONTEXT = multiprocessing.get_context("spawn")
POLL_SECONDS = 0.1
DELIVERY_IDLE_SECONDS = 5.0
"""A delivery pass runs at least this often, for retries and for mail waiting on analysis."""
ALERT_IDLE_SECONDS = 5.0
"""An alert pass runs at least this often: retries, and watching analysis and the disk."""
COMMIT = b"c"
QUEUED = b"q"
"""A commit with other senders already waiting for the next one: a burst."""
BEHIND = b"b"
KEEPING_UP = b"k"
"""What the worker tells the listener: analysis has fallen behind, or has caught up."""
LAG_LIMIT = 2.0
"""Seconds the oldest mail may wait for analysis before new transactions are slowed."""
NEWS_EVERY = 0.01
"""The worker hears of commits at most this often: each wakes its process."""
WORKER_NICENESS = 10
STOP_SECONDS = 2.0
"""How long shutdown waits for the worker before killing it: it never waits on DNS."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything the worker process needs, as plain values."""

    database_url: str
    analysis: AnalysisConfig
    delivery: DeliveryConfig
    authserv_id: str
    alerts: AlertSettings = field(default_factory=AlertSettings)


class _PassLoop:
    """Passes in a thread of their own: when woken (after analysis progress), and every
    few seconds for what is due later.

    `drain` waits for a pass that *started after it asked* and found nothing to do: a
    pass already under way when mail was analysed may have missed it.
    """

    name = "pass"
    idle_seconds = 5.0

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._asked = 0
        """Wakes asked for so far."""
        self._idle_since = -1
        """The newest wake a pass had seen when it started and then found nothing to do."""
        self._thread = threading.Thread(target=self._run, name=f"canary-{self.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> int:
        with self._progress:
            self._asked += 1
            asked = self._asked
        self._wake.set()
        return asked

    def drain(self, timeout: float) -> bool:
        """Run a pass now and wait until one finds nothing left to do."""
        asked = self.wake()
        with self._progress:
            return self._progress.wait_for(lambda: self._idle_since >= asked, timeout)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _pass(self) -> bool:
        """One pass; True if it found something to do."""
        raise NotImplementedError

    def _next_due(self) -> datetime | None:
        """When something retried later is due, if anything is."""
        return None

    def _pause(self) -> float:
        """How long to wait for a wake before the next pass: until the next retry is due,
        at most `idle_seconds`."""
        return wait_seconds(self._next_due(), utc_now(), self.idle_seconds)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            with self._progress:
                seen = self._asked
            try:
                busy = self._pass()
            except Exception:
                log.exception("%s pass failed; trying again shortly", self.name)
                self._wake.wait(self.idle_seconds)
                continue
            if busy:
                continue
            with self._progress:
                self._idle_since = seen
                self._progress.notify_all()
            try:
                pause = self._pause()
            except Exception:
                pause = self.idle_seconds
            self._wake.wait(pause)


class _DeliveryLoop(_PassLoop):
    """Delivery passes: after analysis progress, and every few seconds for retries."""

    name = "delivery"
    idle_seconds = DELIVERY_IDLE_SECONDS

    def __init__(self, deliverer: Deliverer) -> None:
        self.deliverer = deliverer
        super().__init__()

    def _pass(self) -> bool:
        return bool(self.deliverer.run_once(should_stop=self._stopping.is_set).handled)

    def _next_due(self) -> datetime | None:
        return self.deliverer.next_due()


class _AlertLoop(_PassLoop):
    """Alert passes: after analysis progress, and every few seconds for retries and digests."""

    name = "alerts"
    idle_seconds = ALERT_IDLE_SECONDS

    def __init__(self, alerter: Alerter) -> None:
        self.alerter = alerter
        super().__init__()

    def _pass(self) -> bool:
        done = self.alerter.run_once(should_stop=self._stopping.is_set)
        return bool(done.handled or done.events)

    def _next_due(self) -> datetime | None:
        return self.alerter.next_due()


def _worker_process(sock: socket.socket, control: socket.socket, config: WorkerConfig) -> None:
    """Entry point of the worker process. `sock` brings commits (a byte each; end of file:
    the listener is gone), `control` requests to settle (a number each), each answered with
    its number and whether everything was done in time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group
    with contextlib.suppress(OSError):
        # Below the listener and its store process: during a burst the CPU goes to
        # answering senders, and analysis catches up as soon as the burst eases.
        os.nice(WORKER_NICENESS)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store = Store(config.database_url)
    delivery = _DeliveryLoop(Deliverer(store, config.delivery, config.authserv_id, utc_now))
    alerts = _AlertLoop(Alerter(store, config.alerts, utc_now))

    def progress() -> None:
        delivery.wake()
        alerts.wake()

    analyst = Analyst(store, config.analysis.settings(), utc_now, on_progress=progress)
    with contextlib.suppress(BlockingIOError):  # commits made while this process started
        if commits := sock.recv(4096, socket.MSG_DONTWAIT):
            analyst.notify(queued=QUEUED in commits)
    analyst.start()
    delivery.start()
    alerts.start()
    behind = False
    try:
        while not stop.is_set():
            readable, _, _ = select.select([sock, control], [], [], POLL_SECONDS)
            if sock in readable:
                commits = sock.recv(4096)
                if not commits:
                    break  # the listener is gone
                analyst.notify(queued=QUEUED in commits)
            if behind != (analyst.backlog.lag() > LAG_LIMIT):
                behind = not behind
                try:
                    sock.sendall(BEHIND if behind else KEEPING_UP)
                except OSError:
                    break  # the listener is gone
            if control in readable:
                asked = control.recv(4096)  # request numbers, a byte each
                if not asked:
                    break
                complete = (analyst.settle(timeout=60) & delivery.drain(timeout=60)
                            & alerts.drain(timeout=60))
                try:
                    control.sendall(b"".join(bytes((number, complete)) for number in asked))
                except OSError:
                    break  # the listener stopped while this settled: it asks no more
    finally:
        analyst.stop()
        delivery.stop()
        alerts.stop()
        store.dispose()


class Worker:
    """The listener's side: start, wake, settle and stop the worker process.

    It speaks to the worker over two socket pairs, no `multiprocessing` locks or events:
    those are named semaphores that a `kill -9` of the listener's group leaves behind in
    /dev/shm, since it kills the tracker that would remove them too."""

    def __init__(self, config: WorkerConfig) -> None:
        self._config = config
        self.pace = Pace()
        """Told when analysis falls behind and catches up; the handler waits on it."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._told_at = -NEWS_EVERY
        self._news: asyncio.TimerHandle | None = None
        """A notification due, for commits made since the last one."""
        self._queued = False
        self._sock: socket.socket | None = None
        self._control: socket.socket | None = None
        self._settling = threading.Lock()
        self._asked = 0
        """The number of the latest request to settle."""
        self._process: multiprocessing.process.BaseProcess | None = None

    @property
    def started(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        control, their_control = socket.socketpair()
        process = _CONTEXT.Process(target=_worker_process,
                                   args=(theirs, their_control, self._config),
                                   name="canary-worker", daemon=True)
        process.start()
        theirs.close()
        their_control.close()
        ours.setblocking(False)
        self._sock, self._control, self._process = ours, control, process
        with contextlib.suppress(RuntimeError):  # no event loop: nobody to slow down
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(ours.fileno(), self._hear)

    def _hear(self) -> None:
        """The worker says whether analysis is behind (on the event loop)."""
        sock = self._sock
        if sock is None:
            return
        try:
            news = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            news = b""
        if not news:  # the worker is gone: nothing to wait for
            self.detach()
            return
        behind = news[-1:] == BEHIND
        if behind and not self.pace.behind:
            log.warning("analysis is more than %.0f s behind: each new transaction waits up "
                        "to %.0f s until it catches up", LAG_LIMIT, IN_FLOW_DELAY)
        elif self.pace.behind and not behind:
            log.info("analysis has caught up: new mail is taken at full speed again")
        self.pace.report(behind)

    def detach(self) -> None:
        """Stop hearing from the worker (on the event loop, before `stop`): no sender waits
        for it any more."""
        if self._loop is not None and self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
        if self._news is not None:
            self._news.cancel()
            self._news = None
        self._loop = None
        self.pace.report(False)

    def notify(self, queued: bool) -> None:
        """Mail was committed (`queued`: with senders waiting for the next commit): wake
        analysis, at once or, during a burst, within `NEWS_EVERY`. Never blocks; a full
        buffer already wakes it."""
        self._queued = self._queued or queued
        loop = self._loop
        if loop is None:
            self._tell()
        elif self._news is None:
            self._news = loop.call_at(max(self._told_at + NEWS_EVERY, loop.time()), self._tell)

    def _tell(self) -> None:
        self._news = None
        if self._loop is not None:
            self._told_at = self._loop.time()
        queued, self._queued = self._queued, False
        if self._sock is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                self._sock.send(QUEUED if queued else COMMIT)

    def settle(self, timeout: float) -> bool:
        """Block until the mail committed so far is analysed and delivered (not from the
        event loop's thread); False if `timeout` ran out or there is no worker."""
        control = self._control
        if control is None or self._process is None or not self._process.is_alive():
            return False
        with self._settling:
            self._asked = (self._asked + 1) % 256
            deadline = time.monotonic() + timeout
            answer = b""
            try:
                # The request too may wait, behind earlier ones a busy worker has not read.
                control.settimeout(timeout)
                control.sendall(bytes((self._asked,)))
                while True:  # an answer to an earlier request that timed out is skipped
                    control.settimeout(max(deadline - time.monotonic(), 0.001))
                    received = control.recv(2 - len(answer))
                    if not received:
                        return False  # the worker is gone
                    answer += received
                    if len(answer) == 2:
                        if answer[0] == self._asked:
                            return answer[1] == 1
                        answer = b""
            except OSError:  # timed out, or the worker is gone
                return False

    def stop(self, timeout: float = STOP_SECONDS) -> None:
        """Ask the worker to end; kill it if it has not within `timeout`. Nothing is lost: a
        message it was analysing stays pending, a delivery it was making is retried."""
        for channel in (self._sock, self._control):  # end of file: the worker ends
            if channel is not None:
                channel.close()
        self._sock = self._control = None
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                log.warning("the worker did not stop in %.0f s; stopped it (its work is "
                            "resumed at the next start)", timeout)
                self._process.kill()
                self._process.join(5)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None


