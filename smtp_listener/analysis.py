"""Analysis of stored mail, off the SMTP reply path.

`analyse_pending` reads messages not analysed yet, works out who sent them
(`canary.message`, then SPF, DKIM and DMARC through the one resolver) and
hands that to `canary.analysis.attribute`, which decides the ESP, the
relation to the alias's company and whether it is marketing; the result is
stored with the DNS answers it used. The listener's analyst thread calls it
as mail arrives; `canary analyse` calls `analyse_all` for mail stored while
no listener ran. Reading commands never analyse.

A temporary DNS failure is stored as `temperror` and the message is tried
again later, with growing pauses; it is never settled as unauthenticated
because of a timeout. A failure of analysis itself is Canary's, never
evidence about the sender: the message stays stored and unclassified with
its problem, is tried again a few times with pauses, then set aside and
counted in the report. Results are committed as they come, a few at a time
(`SAVE_WITHIN`: one disk sync for a group, not one per message); a group that
cannot be committed is saved one message at a time, and a result the
database refuses counts as such a failure. The analyst thread survives any
error.

Most of analysis is waiting for DNS, so a batch is analysed `PARALLEL`
messages at a time; the resolver asks each question once however many
messages wait for its answer, and results are saved in the order the mail
was stored. In the listener, analysis gives way to a burst of incoming mail
for up to two seconds (`Backlog`).
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session

from canary.analysis import Analysis, attribute
from canary.authentication import Result
from canary.message import read_message
from data.analyses import (
    PendingMessage,
    claim_pending,
    claimed_messages,
    pending_count,
    pending_messages,
    save_analyses,
    save_failure,
    save_temporary_failure,
    with_sealers,
)
from data.database import Store
from data.tallies import review_consent
from smtp_listener.authenticate import EnvelopeFacts, authenticate
from smtp_listener.resolver import DEFAULT_LIFETIME, DEFAULT_TIMEOUT, Resolver

log = logging.getLogger("canary.analysis")

BATCH = 50
PARALLEL = 8
"""Messages of a batch analysed at once (their DNS questions in flight together)."""
SAVE_WITHIN = 0.25
"""Seconds a known result may wait to be committed with the next ones (the listener)."""
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(hours=6)
MAX_FAILURES = 3
"""Failed analyses of one message before it is set aside (a bug of Canary's, not the mail's)."""
DNS_BUDGET = 20.0
DNS_RETRY_FOR = timedelta(days=3)
BURST_PAUSE = 0.25
"""Seconds without senders queueing for the store after which a burst of mail counts as over."""
FIRST_LOOK = 0.05
"""Seconds analysis waits after a commit to an idle listener: a burst shows by then."""
LONGEST_DEFERRAL = 2.0
"""The longest committed mail waits for analysis because a burst goes on."""


@dataclass(frozen=True, slots=True)
class AnalysisConfig:
    """How to analyse, as plain values a worker process can be handed."""

    dns: str | None = None
    """`HOST[:PORT]` of the resolver; None for the system's."""
    timeout: float = DEFAULT_TIMEOUT
    lifetime: float = DEFAULT_LIFETIME
    trusted_upstream: tuple[str, ...] = ()
    trusted_sealers: tuple[str, ...] = ()
    budget: float = DNS_BUDGET
    dns_retry_for: timedelta = DNS_RETRY_FOR

    def settings(self) -> AnalysisSettings:
        resolver = Resolver.from_setting(self.dns, timeout=self.timeout, lifetime=self.lifetime)
        return AnalysisSettings(resolver, self.trusted_upstream, self.trusted_sealers,
                                self.budget, self.dns_retry_for)


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    resolver: Resolver
    trusted_upstream: tuple[str, ...] = ()
    """authserv-ids whose Authentication-Results headers are believed."""
    trusted_sealers: tuple[str, ...] = ()
    """ARC sealers whose record of a message's authentication is believed."""
    budget: float = DNS_BUDGET
    """Seconds of DNS one message may use per attempt; then it waits for a later one."""
    dns_retry_for: timedelta = DNS_RETRY_FOR
    """How long a message waiting on DNS is tried again before it is settled with what is
    known, saying so."""

    @classmethod
    def from_setting(cls, dns: str | None, trusted_upstream: tuple[str, ...] = (),
                     trusted_sealers: tuple[str, ...] = ()) -> AnalysisSettings:
        """Settings for `--dns HOST[:PORT]` (None: the system resolver)."""
        return cls(Resolver.from_setting(dns), trusted_upstream, trusted_sealers)


@dataclass(frozen=True, slots=True)
class TemporaryFailure:
    """DNS could not answer (or Canary ran short of a resource): try again later."""

    problem: str


@dataclass(frozen=True, slots=True)
class AnalysisFailure:
    """Analysis itself failed: Canary's fault, never evidence about the sender."""

    problem: str


def analyse_message(
    message: PendingMessage, settings: AnalysisSettings, *,
    stopping: Callable[[], bool] = lambda: False, now: datetime | None = None,
) -> Analysis | TemporaryFailure | AnalysisFailure:
    """Everything Canary can find out about one stored message.

    While DNS fails, the message waits for a later attempt; after
    `dns_retry_for` it is settled with what is known, and its reason says so.
    """
    if message.raw is None:
        return AnalysisFailure(message.unreadable or "stored message cannot be read back")
    facts = read_message(message.raw)
    envelope = EnvelopeFacts(message.peer_ip, message.mail_from, message.helo)
    auth, answers = authenticate(message.raw, facts, envelope, settings.resolver,
                                 (*settings.trusted_upstream, *message.trusted_upstream),
                                 claimed=message.company.domains, budget=settings.budget,
                                 stopping=stopping, historic=message.historic)
    company = with_sealers(message.company, settings.trusted_sealers)
    if auth.temporary:
        failed = [d.reason for d in auth.dkim if d.result is Result.TEMPERROR]
        problem = ("; ".join([auth.spf.explanation, *failed]).strip("; ")
                   or "temporary DNS failure")
        waited = (now - message.received_at if now and message.received_at else None)
        if message.historic:  # received long ago: count the attempts instead
            waited = _retrying_for(message.attempts)
        if stopping() or waited is None or waited < settings.dns_retry_for:
            return TemporaryFailure(problem)
        analysis = attribute(facts, auth, company, null_sender=message.null_sender,
                             dns_answers=answers)
        return analysis.settled_despite(
            f"DNS still failing after {waited.days} days ({problem[:120]})")
    return attribute(facts, auth, company, null_sender=message.null_sender, dns_answers=answers)


def _retry_delay(attempts: int) -> timedelta:
    return min(FIRST_RETRY * (1 << min(attempts, 16)), LONGEST_RETRY)


def _retrying_for(attempts: int) -> timedelta:
    """How long a message has been retried after `attempts` temporary failures."""
    return sum((_retry_delay(n) for n in range(attempts)), timedelta())


def _analyse_safely(
    message: PendingMessage, settings: AnalysisSettings, stopping: Callable[[], bool],
    now: datetime,
) -> Analysis | TemporaryFailure | AnalysisFailure:
    try:
        return analyse_message(message, settings, stopping=stopping, now=now)
    except (OSError, MemoryError) as error:
        # Canary's own trouble (file descriptors, memory), not the message's: try again later.
        log.warning("analysis of message %s deferred: %r", message.sha256, error)
        return TemporaryFailure(f"local error: {type(error).__name__}")
    except Exception as error:
        # A bug in Canary is not evidence about the sender: the message stays
        # stored, unclassified, with its problem, and the traceback is logged
        # for a bug report. The rest of the mail goes on.
        log.exception("analysis failed on message %s", message.sha256)
        return AnalysisFailure(f"analysis failed: {type(error).__name__}: {error}"[:300])


Outcome = Analysis | TemporaryFailure | AnalysisFailure


def _save_failure(session: Session, message: PendingMessage,
                  result: TemporaryFailure | AnalysisFailure, now: datetime) -> None:
    if isinstance(result, TemporaryFailure):
        save_temporary_failure(session, message.id, result.problem,
                               now + _retry_delay(message.attempts))
    elif isinstance(result, AnalysisFailure):
        failures = message.failures + 1
        retry = now + _retry_delay(failures) if failures < MAX_FAILURES else None
        if retry is None:
            log.error("message %s set aside after %d failed analyses", message.sha256, failures)
        save_failure(session, message.id, result.problem, retry, now)


Analysed = tuple[PendingMessage, Outcome, datetime]
"""A message, what its analysis found, and when."""


def _commit(store: Store, results: list[Analysed], settings: AnalysisSettings) -> None:
    with store.writing() as session:
        save_analyses(session, [(message.id, result, at) for message, result, at in results
                                if isinstance(result, Analysis)], settings.trusted_sealers)
        for message, result, at in results:
            if not isinstance(result, Analysis):
                _save_failure(session, message, result, at)


def save_results(store: Store, results: list[Analysed], settings: AnalysisSettings) -> None:
    """Commit these messages' results, together if they can be.

    A group that cannot be committed is saved again one message per transaction:
    on PostgreSQL two MXes committing groups can deadlock on the tally rows they
    lock, and one message's result must not hold back the others. A result the
    database refuses (not a passing conflict: say a value it cannot store) is
    recorded as a failed analysis, so the message is tried again later and set
    aside after `MAX_FAILURES`, instead of stopping analysis. A database that
    keeps failing (`OperationalError`: unreachable, locked, deadlocked twice)
    raises, and the pass is tried again later.
    """
    if not results:
        return
    try:
        _commit(store, results, settings)
        return
    except Exception as error:
        if len(results) == 1:
            _save_alone(store, results[0], settings, error)
            return
        log.warning("saving %d analysis results together failed (%s); saving each alone",
                    len(results), _brief(error))
    for result in results:
        _save_alone(store, result, settings, None)


def _save_alone(store: Store, result: Analysed, settings: AnalysisSettings,
                failed: Exception | None) -> None:
    """Save one message's result in a transaction of its own, trying twice through a
    passing conflict (a deadlock's loser); record a result the database refuses as a
    failed analysis."""
    message, outcome, at = result
    tries = 0 if failed is None else 1
    while (failed is None or isinstance(failed, OperationalError)) and tries < 2:
        try:
            _commit(store, [result], settings)
            return
        except Exception as error:
            failed, tries = error, tries + 1
    assert failed is not None
    if isinstance(failed, OperationalError) or isinstance(outcome, AnalysisFailure):
        raise failed  # the database's trouble, or not even a failure can be saved
    # A database's refusal is told in a line; a bug of Canary's with its traceback.
    log.error("the analysis of message %s could not be saved: %s", message.sha256,
              _brief(failed), exc_info=None if isinstance(failed, SQLAlchemyError) else failed)
    problem = f"saving the analysis failed: {_brief(failed)}"[:300]
    _commit(store, [(message, AnalysisFailure(problem), at)], settings)


def _brief(error: Exception) -> str:
    """An error in one line, without the SQL and the values SQLAlchemy appends."""
    first = str(getattr(error, "orig", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {first[0] if first else ''}"


def analyse_pending(
    store: Store,
    settings: AnalysisSettings,
    clock: Callable[[], datetime],
    limit: int = BATCH,
    should_stop: Callable[[], bool] = lambda: False,
    *,
    together: bool = False,
) -> int:
    """Analyse up to `limit` due messages; return how many.

    Results are committed as they come, those already known together (for at most
    `SAVE_WITHIN`), or, `together`, the batch's results in one short transaction
    after all are known (bulk analysis of an import: one commit per batch). No
    lock is held while DNS is asked.
    `should_stop` is asked between messages, so a listener shutting down does
    not wait for a whole batch when DNS is slow.
    """
    now = clock()
    claimed = 0
    if not store.is_sqlite:  # several MXes may share the database: claim before analysing
        with store.writing() as session:
            claimed = claim_pending(session, limit, now)
    with store.reading() as session:
        pending = claimed_messages(session, limit, now) if claimed else pending_messages(
            session, limit, now)
    done = 0
    unsaved: list[Analysed] = []
    for message, result, more in _analyse_many(pending, settings, should_stop, clock):
        if result is None:
            break  # interrupted, not failed: it stays due, as it was
        at = clock()
        unsaved.append((message, result, at))
        done += 1
        # Commit what is known before waiting for the next result, and at least every
        # `SAVE_WITHIN` while results keep coming.
        if not together and (not more or (at - unsaved[0][2]).total_seconds() >= SAVE_WITHIN):
            save_results(store, unsaved, settings)
            unsaved = []
    save_results(store, unsaved, settings)
    return done


def _analyse_many(
    pending: list[PendingMessage], settings: AnalysisSettings, should_stop: Callable[[], bool],
    clock: Callable[[], datetime],
) -> Iterator[tuple[PendingMessage, Outcome | None, bool]]:
    """Each message with its outcome, in order, analysed up to `PARALLEL` at a time (None
    once `should_stop`: the rest stay due), and whether the next outcome is known already."""

    def analyse(message: PendingMessage) -> Outcome | None:
        if should_stop():
            return None
        result = _analyse_safely(message, settings, should_stop, clock())
        return None if isinstance(result, TemporaryFailure) and should_stop() else result

    if len(pending) <= 1:
        yield from ((message, analyse(message), False) for message in pending)
        return
    futures = [_pool().submit(analyse, message) for message in pending]
    try:
        for index, (message, future) in enumerate(zip(pending, futures, strict=True)):
            result = future.result()
            yield message, result, index + 1 < len(futures) and futures[index + 1].done()
    finally:
        for future in futures:
            future.cancel()


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The analysis threads, kept for the process's life: starting them for every batch
    cost the listener a tenth of its analysis time."""
    return ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="canary-analyse")


def due_count(store: Store, clock: Callable[[], datetime]) -> int:
    """How many messages are due for analysis now."""
    with store.reading() as session:
        return pending_count(session, clock())


REVIEWS_PER_PASS = 50
"""Companies whose consent findings an idle listener works out and keeps at a time."""


def review_findings(store: Store, limit: int | None = None) -> int:
    """Work out and keep the consent findings that are missing or stale (of up to `limit`
    companies), so the report need not read every marketing message; return how many."""
    with store.writing() as session:
        return review_consent(session.connection(), limit)


def analyse_all(
    store: Store,
    settings: AnalysisSettings,
    clock: Callable[[], datetime],
    progress: Callable[[int], None] = lambda done: None,
) -> int:
    """Analyse every message due now, then keep the consent findings the mail changed;
    `progress` hears how many each batch looked at."""
    total = 0
    while count := analyse_pending(store, settings, clock, limit=BATCH, together=True):
        total += count
        progress(count)
    review_findings(store)
    return total


class Backlog:
    """When analysis gives way to a burst of incoming mail, from the commits it is told of.

    While senders queue for the listener's store process, analysis waits: the CPU and
    SQLite's one write lock go to answering them (each analysis commit made every sender
    wait for it). It starts once senders have stopped queueing for `pause` seconds, or
    once the oldest mail not analysed has waited `longest`: in a burst that goes on,
    analysis takes its share from then on. Mail arriving at an idle listener, with nobody
    queueing, is analysed `first_look` seconds after it was committed (a burst's first
    commit has nobody queueing behind it yet). `lag` tells the listener how far analysis
    is behind, so that it can slow senders down (`smtp_listener.limits.Pace`).
    """

    def __init__(self, pause: float = BURST_PAUSE, longest: float = LONGEST_DEFERRAL,
                 first_look: float = FIRST_LOOK,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._pause = pause
        self._longest = longest
        self._first_look = first_look
        self._clock = clock
        self._lock = threading.Lock()
        self._queued_at = -math.inf
        """When a commit last had senders queueing behind it."""
        self._committed_at = -math.inf
        """When the last commit was made."""
        self._oldest: float | None = None
        """When the oldest commit not known to be analysed was made (None: none is)."""

    def committed(self, queued: bool) -> None:
        """Mail was committed; `queued`: other senders were already waiting for the next
        commit."""
        now = self._clock()
        with self._lock:
            self._committed_at = now
            if self._oldest is None:
                self._oldest = now
            if queued:
                self._queued_at = now

    def deferral(self) -> float:
        """Seconds analysis should still wait; 0 to go now."""
        now = self._clock()
        with self._lock:
            if self._oldest is None:
                return 0.0
            start = max(self._oldest + self._first_look, self._queued_at + self._pause)
            return max(0.0, min(start, self._oldest + self._longest) - now)

    def lag(self) -> float:
        """Seconds the oldest mail not known to be analysed has waited."""
        now = self._clock()
        with self._lock:
            return 0.0 if self._oldest is None else now - self._oldest

    def pass_started(self) -> float:
        """A pass reads the mail due now; when (for `pass_ended`)."""
        return self._clock()

    def pass_ended(self, started: float, caught_up: bool) -> None:
        """A pass that got through everything due when it `started` leaves only the mail
        committed since (counted from the pass's start: its exact time is not known)."""
        if not caught_up:
            return
        with self._lock:
            self._oldest = started if self._committed_at >= started else None


@dataclass
class Analyst:
    """A background thread that analyses mail as it is committed, each result at once.

    It runs in the listener's worker process (`smtp_listener.worker`), so it
    never competes with the SMTP loop for an interpreter lock. While senders
    queue for the store process it waits (`backlog`), two seconds at most, and
    then analyses while mail keeps arriving. `on_progress` hears of every pass
    that settled something (delivery waits for analysis).
    """

    store: Store
    settings: AnalysisSettings
    clock: Callable[[], datetime]
    idle_seconds: float = 2.0
    on_progress: Callable[[], None] = lambda: None
    _wake: threading.Event = field(default_factory=threading.Event)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _settle: threading.Event = field(default_factory=threading.Event)
    """Asked to report when everything due now is analysed."""
    _settled: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    backlog: Backlog = field(default_factory=Backlog)
    _interrupt: threading.Event = field(default_factory=threading.Event)
    """Ends a wait for a burst to pass: asked to settle or to stop."""

    @property
    def started(self) -> bool:
        return bool(self._threads)

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name="canary-analyst", daemon=True)
        self._threads.append(thread)
        thread.start()

    def notify(self, queued: bool = False) -> None:
        """New mail was committed; `queued`: senders were waiting for the next commit."""
        self.backlog.committed(queued)
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._interrupt.set()
        self._wake.set()
        for thread in self._threads:
            thread.join()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def settle(self, timeout: float) -> bool:
        """Block until every message due now is analysed; False if `timeout` ran out."""
        self._settled.clear()
        self._settle.set()
        self._interrupt.set()
        self._wake.set()
        return self._settled.wait(timeout)

    def _review(self) -> bool:
        """Idle: keep the consent findings new mail made stale, a few companies at a time;
        whether none are left."""
        try:
            return review_findings(self.store, REVIEWS_PER_PASS) < REVIEWS_PER_PASS
        except SQLAlchemyError as error:
            log.warning("consent findings not kept for now: %s", error)
        except Exception:
            log.exception("working out consent findings failed; the report does it instead")
        return True

    def _give_way(self) -> None:
        """Wait while a burst of mail goes on (`Backlog`); never when asked to settle."""
        while not (self._stopping.is_set() or self._settle.is_set()):
            deferral = self.backlog.deferral()
            if deferral <= 0:
                return
            self._interrupt.wait(deferral)
            self._interrupt.clear()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._give_way()
            self._wake.clear()
            settling = self._settle.is_set()
            started = self.backlog.pass_started()
            try:
                done = analyse_pending(self.store, self.settings, self.clock,
                                       should_stop=self._stopping.is_set)
            except SQLAlchemyError as error:
                log.warning("analysis paused by a database error: %s", error)
                done = 0
            except Exception:
                log.exception("analysis pass failed; trying again shortly")
                done = 0
            self.backlog.pass_ended(started, caught_up=done < BATCH)
            if done:
                self.on_progress()
            if not done and settling:
                self._settle.clear()
                self._settled.set()
            if not done and self._review():
                self._wake.wait(self.idle_seconds)
