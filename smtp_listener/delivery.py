"""Delivery: the person's own mailbox gets what Canary accepted, labelled, exactly once.

`Deliverer.run_once` makes queue jobs for ready mail (`data.deliveries`),
claims the due ones, decides each one's action from the policy
(`canary.delivery`), and hands the labelled bytes to the destination's
transport: a Maildir (tmp/ → new/ with fsync of the file and the folder), LMTP
(per-recipient replies honoured), IMAP APPEND (imapclient) or SMTP to the
person's own next hop. A temporary failure (connection refused, a timeout,
4xx, disk full) is retried with growing pauses for `retry_for`, then marked
failed; a permanent one (5xx, an unknown folder, a refused login) fails at
once with its reason. Nothing is dropped silently, and Canary never sends a
bounce to anyone.

Maildir and IMAP deliveries are idempotent: the file name comes from the
message's SHA-256, and IMAP is searched for the message's `X-Canary-Id`
before APPEND, so a crash between delivery and its record does not deliver
twice there. Passwords come from a file readable by its owner alone or an
environment variable, never from a URL, and are never logged.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import smtplib
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from canary.delivery import (
    NOT_ANALYSED,
    Action,
    DeliveryConfig,
    Destination,
    DestinationKind,
    Labels,
    prepared,
    retry_delay,
)
from data.database import Store
from data.deliveries import (
    DueJob,
    claim_due,
    create_jobs,
    due_count,
    job_raw,
    next_due,
    record_delivered,
    record_failed,
    record_held,
    record_retry,
    register_destinations,
)
from data.reporting import build_reports

log = logging.getLogger("canary.delivery")

TIMEOUT = 30.0
"""Seconds a transport waits on the other side before calling it a temporary failure."""
BATCH = 100


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""


DELIVERED = Result(Outcome.DELIVERED)


def _temporary(detail: str) -> Result:
    return Result(Outcome.TEMPORARY, detail[:300])


def _permanent(detail: str) -> Result:
    return Result(Outcome.PERMANENT, detail[:300])


class PasswordUnavailable(Exception):
    """The destination's password cannot be read; the message says why (never the password)."""


def password(destination: Destination) -> str:
    """The destination's password, from its 0600 file or its environment variable."""
    if destination.password_env:
        value = os.environ.get(destination.password_env)
        if not value:
            raise PasswordUnavailable(f"the environment variable {destination.password_env} "
                                      "is not set")
        return value
    if destination.password_file:
        path = Path(destination.password_file)
        try:
            mode = path.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise PasswordUnavailable(f"{path} can be read by others; chmod 600 it")
            return path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise PasswordUnavailable(f"{path} cannot be read ({error})") from error
    raise PasswordUnavailable("no password_file or password_env is configured")


# --- transports -------------------------------------------------------------------------


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def deliver_maildir(destination: Destination, message: bytes, job: DueJob) -> Result:
    """tmp/ → new/, with fsync of the file and of new/; named after the message's SHA-256."""
    assert destination.path is not None
    root = Path(destination.path)
    unique = f"{int(job.received_at.timestamp())}.C{job.sha256[:32]}.canary"
    try:
        for sub in ("tmp", "new", "cur"):
            (root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        delivered = [root / "new" / unique, *(root / "cur").glob(unique + ":*")]
        if any(path.exists() for path in delivered):
            return DELIVERED  # a delivery whose record a crash lost
        temporary = root / "tmp" / f"{unique}.{os.getpid()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(message)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, root / "new" / unique)
        _fsync_directory(root / "new")
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN):
            return _temporary(f"Maildir {root}: {error.strerror}")
        return _permanent(f"Maildir {root}: {error.strerror or error}")
    return DELIVERED


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(words.split())}"


def _by_code(code: int, text: bytes | str, what: str) -> Result:
    if 200 <= code < 300:
        return DELIVERED
    detail = f"{what}: {_reply(code, text)}"
    return _permanent(detail) if 500 <= code < 600 else _temporary(detail)


def _smtp_session(client: smtplib.SMTP, destination: Destination, message: bytes,
                  mail_from: str, what: str) -> Result:
    """MAIL, RCPT and DATA on an open session; the recipient's own reply decides."""
    assert destination.recipient is not None
    code, text = client.mail(mail_from)
    if code != 250:
        return _by_code(code, text, f"{what} MAIL FROM")
    code, text = client.rcpt(destination.recipient)
    if code not in (250, 251):
        return _by_code(code, text, f"{what} RCPT TO <{destination.recipient}>")
    # LMTP answers DATA once per accepted recipient; Canary sends one recipient.
    code, text = client.data(message)
    return _by_code(code, text, f"{what} DATA")


def deliver_lmtp(destination: Destination, message: bytes, job: DueJob) -> Result:
    what = f"LMTP {destination.key}"
    try:
        if destination.path:
            client = smtplib.LMTP(destination.path, timeout=TIMEOUT)
        else:
            client = smtplib.LMTP(destination.host or "", destination.port or 24,
                                  timeout=TIMEOUT)
        with client:
            return _smtp_session(client, destination, message, job.mail_from, what)
    except (smtplib.SMTPException, OSError) as error:
        return _temporary(f"{what}: {error}")


def _context(destination: Destination) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=destination.cafile)


def deliver_smtp(destination: Destination, message: bytes, job: DueJob) -> Result:
    what = f"SMTP {destination.key}"
    try:
        with smtplib.SMTP(destination.host or "", destination.port or 25,
                          timeout=TIMEOUT) as client:
            client.ehlo()
            if destination.starttls:
                client.starttls(context=_context(destination))
                client.ehlo()
            if destination.user:
                client.login(destination.user, password(destination))
            return _smtp_session(client, destination, message, job.mail_from, what)
    except smtplib.SMTPAuthenticationError as error:
        return _permanent(f"{what}: login refused ({error.smtp_code}); check the password")
    except PasswordUnavailable as error:
        return _permanent(f"{what}: {error}")
    except (smtplib.SMTPException, OSError) as error:
        return _temporary(f"{what}: {error}")


def deliver_imap(destination: Destination, message: bytes, job: DueJob) -> Result:
    """APPEND to the folder, unless a search finds the message there already."""
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError, LoginError

    what = f"IMAP {destination.key}"
    try:
        secret = password(destination)
    except PasswordUnavailable as error:
        return _permanent(f"{what}: {error}")
    try:
        with IMAPClient(destination.host or "", port=destination.port, ssl=destination.tls,
                        ssl_context=_context(destination) if destination.tls else None,
                        timeout=TIMEOUT) as client:
            try:
                client.login(destination.user or "", secret)
            except LoginError:
                return _permanent(f"{what}: login refused; check the user and the password")
            if not client.folder_exists(destination.folder):
                return _permanent(f"{what}: there is no folder {destination.folder!r}; "
                                  "create it or configure another")
            client.select_folder(destination.folder, readonly=True)
            if client.search(["HEADER", "X-Canary-Id", job.sha256]):
                return DELIVERED  # a delivery whose record a crash lost
            client.append(destination.folder, message, msg_time=job.received_at)
    except IMAPClientError as error:
        text = str(error)
        if "TRYCREATE" in text.upper():
            return _permanent(f"{what}: there is no folder {destination.folder!r}")
        return _temporary(f"{what}: {text}")
    except (TimeoutError, OSError, ssl.SSLError) as error:
        return _temporary(f"{what}: {error}")
    return DELIVERED


TRANSPORTS: dict[DestinationKind, Callable[[Destination, bytes, DueJob], Result]] = {
    DestinationKind.MAILDIR: deliver_maildir,
    DestinationKind.LMTP: deliver_lmtp,
    DestinationKind.SMTP: deliver_smtp,
    DestinationKind.IMAP: deliver_imap,
}


# --- one pass ---------------------------------------------------------------------------


@dataclass
class Pass:
    """What one pass did, for `canary deliver` and the logs."""

    delivered: int = 0
    held: int = 0
    retrying: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.delivered + self.held + self.retrying + self.failed


@dataclass
class Deliverer:
    store: Store
    config: DeliveryConfig
    authserv_id: str
    clock: Callable[[], datetime]
    _registered: bool = False

    @property
    def destinations(self) -> dict[str, Destination]:
        return {d.key: d for d in self.config.destinations}

    def queue(self) -> int:
        """Queue the ready mail for every destination; return how many deliveries are due."""
        destinations = self.destinations
        if not destinations:
            return 0
        with self.store.writing() as session:
            if not self._registered:
                register_destinations(session, destinations, self.clock())
                self._registered = True
            create_jobs(session, destinations, self.clock(), self.config.analysis_wait)
            return due_count(session, self.clock())

    def next_due(self) -> datetime | None:
        """When the next retry is due, if one waits."""
        with self.store.reading() as session:
            return next_due(session)

    def run_once(self, progress: Callable[[int], None] = lambda done: None,
                 should_stop: Callable[[], bool] = lambda: False) -> Pass:
        """Queue ready mail, then deliver every job due now; return what happened."""
        done = Pass()
        destinations = self.destinations
        if not destinations:
            return done
        self.queue()
        while not should_stop():
            with self.store.writing() as session:
                jobs = claim_due(session, self.clock(), BATCH)
            if not jobs:
                break
            verdicts: dict[int, str] = {}
            for job in jobs:
                if should_stop():
                    break
                self._one(job, destinations, verdicts, done)
                progress(1)
        return done

    def _verdict(self, job: DueJob, cache: dict[int, str]) -> str:
        if job.company_id not in cache:
            with self.store.reading() as session:
                (report,) = build_reports(session, [job.company_slug]).companies
            cache[job.company_id] = report.verdict.value
        return cache[job.company_id]

    def _one(self, job: DueJob, destinations: dict[str, Destination],
             verdicts: dict[int, str], done: Pass) -> None:
        now = self.clock()
        destination = destinations.get(job.destination)
        action = job.action or self.config.policy.action(job.relation, job.company_slug,
                                                         job.retired_accepting)
        if destination is None:
            # No longer configured: never delivered anywhere the config does not name.
            with self.store.writing() as session:
                record_failed(session, job.id, action, "this destination is no longer "
                                                        "configured")
            done.failed += 1
            return
        if action is Action.HOLD:
            with self.store.writing() as session:
                record_held(session, job.id)
            done.held += 1
            return
        with self.store.reading() as session:
            raw = job_raw(session, job)
        labels = Labels(
            authserv_id=self.authserv_id, alias=job.alias, company=job.company,
            relation=job.relation.value if job.relation else NOT_ANALYSED,
            sender=job.sender or "(unknown)", verdict=self._verdict(job, verdicts),
            sha256=job.sha256, authentication=job.authentication,
        )
        result = TRANSPORTS[destination.kind](destination, prepared(raw, labels, action), job)
        with self.store.writing() as session:
            if result.outcome is Outcome.DELIVERED:
                record_delivered(session, job.id, action, now)
                done.delivered += 1
            elif (result.outcome is Outcome.TEMPORARY
                  and now - job.created_at < self.config.retry_for):
                record_retry(session, job.id, action, result.detail,
                             now + retry_delay(job.attempts, self.config.first_retry))
                done.retrying += 1
                log.warning("delivery of message %d to %s will be retried: %s",
                            job.message_id, job.destination, result.detail)
            else:
                record_failed(session, job.id, action, result.detail)
                done.failed += 1
                done.errors.append(result.detail)
                log.error("delivery of message %d to %s failed: %s", job.message_id,
                          job.destination, result.detail)
