"""Sending alerts: detection, then Apprise to each channel with retries, a rate limit, digests.

`Alerter.run_once` is one pass: it finds the events committed analysis shows
(`data.alerts`), adds what only a running process can see (analysis making
no progress, the disk filling up), queues them for the channels that want
them, and sends what is due. Per channel, at most `rate_limit_per_hour`
messages an hour: many alerts ready at once, or more than the hour allows,
go out as one digest; alerts about old mail (an import) wait until analysis
has nothing left to do and go out together. A channel that fails is retried
with growing pauses for `retry_days`, then its alerts are marked failed,
and `canary report` names it.

The one alert that cannot wait in the queue is "the database cannot be
written", since the queue is in the database: it goes straight to the
channels that want health alerts, once per episode.

A channel's URL may hold a secret. Apprise's own log is kept out of Canary's
(its warnings are collected and every secret part of the URL is taken out
before Canary shows or logs them), and a channel is named by its masked URL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from canary.alerts import (
    AlertsConfig,
    Batch,
    Channel,
    DiskUsage,
    Event,
    InvalidAlertUrl,
    Observation,
    Severity,
    batches,
    disk_event,
    disk_low,
    observe_analysis,
    payload,
    redacted,
    stuck,
    stuck_event,
    trial_event,
    unwritable_event,
)
from canary.errors import CanaryError
from data.alerts import (
    ChannelFilter,
    DueSend,
    analysis_progress,
    claim_due,
    find_events,
    has_due,
    next_due,
    queue_sends,
    record_events,
    record_failure,
    record_sent,
    register_channels,
    release,
    sent_this_hour,
)
from data.database import Store
from data.home import Home
from smtp_listener.limits import DEFAULT_MIN_FREE_BYTES, DEFAULT_MIN_FREE_RATIO

log = logging.getLogger("canary.alerts")

UNWRITABLE_AFTER = timedelta(minutes=1)
"""How long the database must refuse the alerter before it says so, past the queue."""
DISK_CHECK = timedelta(minutes=1)
ERROR_CHARS = 300


# --- Apprise, kept quiet ------------------------------------------------------------------


class _Collected(logging.Handler):
    """Collects Apprise's warnings while Canary sends, instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.lines is not None:
            self.lines.append(record.getMessage())


_APPRISE_LOG = _Collected()
_SETUP = threading.Lock()
_SENDING = threading.Lock()
_ready = False


def _apprise() -> Any:
    """Apprise, with its log routed to `_APPRISE_LOG` only, and its plugins loaded.

    Loading its e-mail plugin imports `imghdr`, which warns of its removal in Python
    3.13 (Apprise's business, not Canary's): that one warning is silenced here.
    """
    global _ready
    with _SETUP:
        if not _ready:
            # Before the import: Apprise logs as it loads, and at DEBUG its URLs' paths.
            logger = logging.getLogger("apprise")
            logger.propagate = False
            logger.addHandler(_APPRISE_LOG)
        import apprise

        if not _ready:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="'imghdr' is deprecated",
                                        category=DeprecationWarning)
                apprise.Apprise.instantiate("json://localhost")
            _ready = True
        return apprise


@contextlib.contextmanager
def _collecting() -> Iterator[list[str]]:
    with _SENDING:
        lines: list[str] = []
        _APPRISE_LOG.lines = lines
        try:
            yield lines
        finally:
            _APPRISE_LOG.lines = None


def _asset(apprise: Any) -> Any:
    """Apprise's settings: one service at a time in this thread, nothing written to disk."""
    options: dict[str, Any] = {"async_mode": False}
    if hasattr(apprise.AppriseAsset, "storage_mode"):
        options["storage_mode"] = "memory"
    return apprise.AppriseAsset(**options)


def check_url(url: str) -> None:
    """Raise `InvalidAlertUrl` unless Apprise can send to `url`."""
    apprise = _apprise()
    with _collecting():
        service = apprise.Apprise.instantiate(url.strip(), asset=_asset(apprise))
    if service is None:
        raise InvalidAlertUrl(url, "is not a URL Apprise can send to")


@dataclass(frozen=True, slots=True)
class Sent:
    ok: bool
    error: str | None = None
    """Why not, with the URL's secrets taken out."""


_NOTIFY_TYPE = {Severity.HIGH: "failure", Severity.MEDIUM: "warning", Severity.LOW: "info"}


def notify(channel: Channel, title: str, body: str, severity: Severity) -> Sent:
    """Send one message to one channel; what went wrong, if it did, without secrets."""
    apprise = _apprise()
    with _collecting() as lines:
        try:
            notifier = apprise.Apprise(asset=_asset(apprise))
            if not notifier.add(channel.url):
                return Sent(False, f"{channel.masked}: not a URL Apprise can send to")
            ok = bool(notifier.notify(title=title, body=body,
                                      notify_type=apprise.NotifyType(_NOTIFY_TYPE[severity]),
                                      body_format=apprise.NotifyFormat.TEXT))
        except Exception as raised:
            # Apprise's plugins raise what they like; one channel must not stop the others.
            lines.append(f"{type(raised).__name__}: {raised}")
            ok = False
    if ok:
        return Sent(True)
    said = "; ".join(dict.fromkeys(line.strip() for line in lines if line.strip()))
    error = redacted(said or "the service did not take the alert", [channel.url])
    return Sent(False, error[:ERROR_CHARS])


def send_batch(channel: Channel, batch: Batch, subjects: bool, now: datetime) -> Sent:
    """One alert or one digest to one channel: the versioned JSON payload to a JSON webhook,
    plain text to the rest."""
    if channel.json_body:
        body = json.dumps(payload(batch.events, now, subjects=subjects, digest=batch.digest),
                          ensure_ascii=False)
    else:
        body = batch.text(subjects)
    severity = max((e.severity for e in batch.events), key=lambda s: s.rank)
    return notify(channel, batch.title(), body, severity)


# --- the alerter --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Everything an alerter needs besides its store, as plain values."""

    config: AlertsConfig = field(default_factory=AlertsConfig)
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES
    """The listener's free-space floor: the disk alert comes at twice it."""
    min_free_ratio: float = DEFAULT_MIN_FREE_RATIO
    watch_analysis: bool = True
    """Watch analysis for progress (a running listener), or not (one pass from the CLI)."""
    unwritable_after: timedelta = UNWRITABLE_AFTER
    home: Path | None = None
    """The home whose config `config` came from: a running listener reads its `[alerts]`
    again when the file changes (`canary alerts add`, `remove`), with no restart."""


@dataclass
class Pass:
    """What one pass did, for `canary alerts run` and the logs."""

    events: int = 0
    """New events recorded."""
    sent: int = 0
    """Messages sent (an alert or a digest each)."""
    alerts: int = 0
    """Alerts they carried."""
    digests: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed


class Alerter:
    """Detects events and sends the queue; the listener's worker runs one in a thread."""

    def __init__(self, store: Store, settings: AlertSettings,
                 clock: Callable[[], datetime]) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._registered = False
        self._observation: Observation | None = None
        self._disk_checked: datetime | None = None
        self._trouble_since: datetime | None = None
        self._trouble_told = False
        self._seen: set[str] = set()
        """Keys of the health events this alerter recorded: not looked up again."""
        self._config_stamp: tuple[int, int, int] | None = None

    @property
    def config(self) -> AlertsConfig:
        return self.settings.config

    def _filters(self) -> list[ChannelFilter]:
        return [ChannelFilter(c.key, c.kinds, c.min_severity) for c in self.config.channels]

    def _follow_config(self) -> None:
        """Take up the home's alert settings when its config file has changed."""
        if self.settings.home is None:
            return
        home = Home(self.settings.home)
        try:
            found = home.config_path.stat()
        except OSError:
            return
        # Each save is a new file (`data.home.replace_private`): its inode tells two saves
        # apart even within one tick of a coarse clock, with the same size.
        stamp = (found.st_ino, found.st_mtime_ns, found.st_size)
        if stamp == self._config_stamp:
            return
        self._config_stamp = stamp
        try:
            config = home.config().alerts
        except (CanaryError, OSError) as error:  # a broken file, a bad domain in it…
            log.warning("the alert settings were not taken up, the previous ones stay in "
                        "force: %s", getattr(error, "problem", error))
            return
        if config != self.config:
            self.settings = replace(self.settings, config=config)
            self._registered = False  # new channels get what happens from now on
            log.info("alert settings changed: %d channel(s)", len(config.channels))

    def run_once(self, should_stop: Callable[[], bool] = lambda: False) -> Pass:
        """Find and record new events, queue them, send what is due now."""
        done = Pass()
        self._follow_config()
        now = self.clock()
        try:
            waiting = self._detect(now, done)
        except SQLAlchemyError as error:
            self._database_trouble(error, now)
            return done
        self._trouble_since, self._trouble_told = None, False
        for channel in self.config.channels:
            if should_stop():
                break
            try:
                self._send_channel(channel, now, waiting, done, should_stop)
            except SQLAlchemyError as error:
                self._database_trouble(error, now)
                break
        return done

    def _detect(self, now: datetime, done: Pass) -> bool:
        """Record this pass's events and queue them; whether analysis still has mail to do."""
        with self.store.reading() as session:
            found = find_events(session, now, self.config.probes_per_hour)
            progress = analysis_progress(session)
        health = []
        if self.settings.watch_analysis:
            self._observation = observe_analysis(self._observation, progress.analysed,
                                                 progress.waiting, now)
            if stuck(self._observation, now, self.config.analysis_stuck_after):
                health.append(stuck_event(self._observation, now, progress.temperror))
        if (event := self._disk(now)) is not None:
            health.append(event)
        for event in health:
            if event.key not in self._seen:
                found.add(event)
        if self._registered and not found.events and not found.marks:
            return progress.waiting > 0  # nothing new: no write lock taken
        with self.store.writing() as session:
            if not self._registered:
                register_channels(session, [c.key for c in self.config.channels], now)
                self._registered = True
            done.events += record_events(session, found, now)
            queue_sends(session, self._filters(), now)
        self._seen.update(e.key for e in health)
        return progress.waiting > 0

    def _disk(self, now: datetime) -> Event | None:
        directory = self.store.directory
        if directory is None or (self._disk_checked is not None
                                 and now - self._disk_checked < DISK_CHECK):
            return None
        self._disk_checked = now
        try:
            usage = shutil.disk_usage(directory)
        except OSError:
            return None
        found = DiskUsage(usage.free, usage.total)
        if not disk_low(found, self.settings.min_free_bytes, self.settings.min_free_ratio):
            return None
        return disk_event(found, self.settings.min_free_bytes, self.settings.min_free_ratio,
                          str(Path(directory)), now)

    def _send_channel(self, channel: Channel, now: datetime, analysis_busy: bool, done: Pass,
                      should_stop: Callable[[], bool]) -> None:
        with self.store.reading() as session:
            if not has_due(session, channel.key, now):
                return
            budget = self.config.rate_limit_per_hour - sent_this_hour(session, channel.key, now)
        if budget <= 0:
            return  # the hour is full: they wait, and go out together when it has room
        with self.store.writing() as session:
            due = claim_due(session, channel.key, now, hold_historical=analysis_busy)
        if not due:
            return
        by_id = {d.event.id: d for d in due}
        planned = batches([d.event for d in due if not d.historical], budget,
                          self.config.digest_after, [d.event for d in due if d.historical])
        for number, batch in enumerate(planned):
            sends = [by_id[e.id] for e in batch.events]
            if should_stop():
                left = [by_id[e.id].send_id for b in planned[number:] for e in b.events]
                with self.store.writing() as session:
                    release(session, left)
                return
            result = send_batch(channel, batch, self.config.subjects, self.clock())
            self._record(channel, batch, sends, result, done)

    def _record(self, channel: Channel, batch: Batch, sends: Sequence[DueSend], result: Sent,
                done: Pass) -> None:
        now = self.clock()
        with self.store.writing() as session:
            if result.ok:
                record_sent(session, channel.key, [s.send_id for s in sends], now, batch.digest)
                done.sent += 1
                done.alerts += len(sends)
                done.digests += batch.digest
                return
            error = result.error or "failed"
            given_up = record_failure(session, channel.key, sends, error, now,
                                      self.config.first_retry, self.config.retry_for)
        done.failed += given_up
        done.retrying += len(sends) - given_up
        done.errors.append(f"{channel.masked}: {error}")
        log.warning("alert to %s (%s) not sent, %s: %s", channel.id, channel.masked,
                    "given up" if given_up else "will retry", error)

    def _database_trouble(self, error: SQLAlchemyError, now: datetime) -> None:
        original = getattr(error, "orig", None) or error
        problem = (str(original).strip().splitlines() or [type(original).__name__])[0]
        password = make_url(self.store.url).password
        if password:
            problem = problem.replace(str(password), "***")
        problem = problem[:ERROR_CHARS]
        if self._trouble_since is None:
            self._trouble_since = now
        log.error("alerts paused: the database cannot be used (%s)", problem)
        if self._trouble_told or now - self._trouble_since < self.settings.unwritable_after:
            return
        self._trouble_told = True
        event = unwritable_event(problem, now)
        for channel in self.config.channels:
            if channel.wants(event.kind, event.severity):
                result = send_batch(channel, Batch((event,), False), False, now)
                if not result.ok:
                    log.error("alert to %s (%s) not sent: %s", channel.id, channel.masked,
                              result.error)

    def next_due(self) -> datetime | None:
        with self.store.reading() as session:
            return next_due(session)


def try_channels(channels: Sequence[Channel], now: datetime) -> list[tuple[Channel, Sent]]:
    """Send a test alert to each channel, past the queue; each channel's outcome."""
    return [(channel, send_batch(channel, Batch((trial_event(channel, now),), False), False,
                                 now))
            for channel in channels]


def wait_seconds(due: datetime | None, now: datetime, longest: float) -> float:
    """How long an idle pass loop (alerts, delivery) sleeps: until the next retry, at most
    `longest`."""
    if due is None:
        return longest
    return min(max((due - now).total_seconds(), 0.05), longest)

