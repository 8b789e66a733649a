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
message's SHA-256 and its alias, and IMAP is searched for the message's
`X-Canary-Id` and `X-Canary-Alias` before APPEND, so a crash between
delivery and its record does not deliver twice there (and the same bytes
sent to two aliases, two messages, are both delivered). Passwords come from
a file readable by its owner alone or an environment variable, never from a
URL, and are never logged.
"""

from __future__ import annotations

import enum
import errno
import hashlib
import logging
import os
import secrets
import smtplib
import socket
import ssl
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import repeat
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
    CLAIM_FOR,
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
    release_dead_claims,
    renew_claim,
)
from data.reporting import build_reports

log = logging.getLogger("canary.delivery")

TIMEOUT = 30.0
"""Seconds a transport waits on the other side before calling it a temporary failure."""
BATCH = 32
"""Jobs claimed at once; each claim is renewed as its job starts."""
PARALLEL = 4
"""Deliveries under way at once: transports mostly wait on the other side."""
VERDICT_SECONDS = 60.0
"""How long a company's verdict is reused for its messages' labels."""


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


def delivery_id(job: DueJob) -> str:
    """What names one message's delivery for good: its bytes and its alias.

    The same bytes sent to two aliases are two messages with different labels;
    each is delivered, and each once.
    """
    alias = hashlib.sha256(job.alias.encode("utf-8")).hexdigest()
    return f"{job.sha256[:32]}A{alias[:8]}"


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
    unique = f"{int(job.received_at.timestamp())}.C{delivery_id(job)}.canary"
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
    """MAIL, RCPT and DATA on an open session; the recipient's own reply decides.

    An internationalised address needs the server's SMTPUTF8. Without it, a
    non-ASCII envelope sender is replaced by the null sender (Canary wants no
    bounce anyway, and the stored envelope keeps the original); a non-ASCII
    recipient cannot be reached at all.
    """
    assert destination.recipient is not None
    client.ehlo_or_helo_if_needed()
    options: list[str] = []
    if not (mail_from.isascii() and destination.recipient.isascii()):
        if client.has_extn("smtputf8"):
            options.append("SMTPUTF8")
        elif not destination.recipient.isascii():
            return _permanent(f"{what}: the server does not support SMTPUTF8, needed for the "
                              f"recipient {destination.recipient}")
        else:
            mail_from = ""
    if not message.isascii() and client.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    code, text = client.mail(mail_from, options)
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
            if client.search(["HEADER", "X-Canary-Id", job.sha256,
                              "HEADER", "X-Canary-Alias", job.alias]):
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


@dataclass(frozen=True, slots=True)
class _Outcome:
    job: DueJob
    action: Action
    result: Result | None
    """None: the job was held by the policy."""
    skipped: bool = False
    """Not ours any more, or stopping: nothing was done."""
    retrying: bool = False

    def count(self, done: Pass) -> None:
        if self.skipped:
            return
        if self.result is None:
            done.held += 1
        elif self.result.outcome is Outcome.DELIVERED:
            done.delivered += 1
        elif self.retrying:
            done.retrying += 1
        else:
            done.failed += 1
            done.errors.append(self.result.detail)


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs. A zombie (killed, not yet reaped: in a container
    whose first process reaps nothing, never) runs nothing and holds no claim."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:  # gone since; or no /proc at all, and the signal said alive
        return not Path("/proc/self").exists()
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class Deliverer:
    """Delivers due jobs: a few at once (transports wait on the network), each claimed and
    renewed before it is sent, their outcomes recorded together."""

    store: Store
    config: DeliveryConfig
    authserv_id: str
    clock: Callable[[], datetime]
    _registered: bool = False
    claimant: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:"
                                                  f"{secrets.token_hex(4)}")
    _verdicts: dict[int, tuple[str, float]] = field(default_factory=dict)

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
                freed = release_dead_claims(session, socket.gethostname(), _alive)
                if freed:
                    log.warning("%d deliveries claimed by a process that is gone are taken "
                                "up again", freed)
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
        with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="canary-deliver"
                                ) as pool:
            while not should_stop():
                claimed_at = self.clock()
                with self.store.writing() as session:
                    jobs = claim_due(session, claimed_at, BATCH, self.claimant)
                if not jobs:
                    break
                self._warm_verdicts(jobs)
                for outcome in pool.map(self._deliver, jobs, repeat(destinations),
                                        repeat(should_stop), repeat(claimed_at)):
                    outcome.count(done)
                    if not outcome.skipped:
                        progress(1)
        return done

    def _warm_verdicts(self, jobs: list[DueJob]) -> None:
        """Each company's verdict, for the labels: computed once a minute, not per message."""
        now = time.monotonic()
        wanted = {job.company_id: job.company_slug for job in jobs
                  if self._verdicts.get(job.company_id, ("", 0.0))[1] <= now}
        for company_id, slug in wanted.items():
            with self.store.reading() as session:
                (report,) = build_reports(session, [slug], timeline=False).companies
            self._verdicts[company_id] = (report.verdict.value, now + VERDICT_SECONDS)

    def _deliver(self, job: DueJob, destinations: dict[str, Destination],
                 should_stop: Callable[[], bool], claimed_at: datetime) -> _Outcome:
        action = job.action or self.config.policy.action(job.relation, job.company_slug,
                                                         job.retired_accepting)
        destination = destinations.get(job.destination)
        if destination is None:
            # No longer configured: never delivered anywhere the config does not name.
            return self._record(_Outcome(job, action,
                                         _permanent("this destination is no longer configured")))
        if action is Action.HOLD:
            return self._record(_Outcome(job, action, None))
        if should_stop():
            return _Outcome(job, action, None, skipped=True)
        try:
            if self.clock() - claimed_at > CLAIM_FOR / 2:  # a slow batch: keep it ours
                with self.store.writing() as session:
                    if not renew_claim(session, job.id, self.claimant, self.clock()):
                        return _Outcome(job, action, None, skipped=True)
            with self.store.reading() as session:
                raw = job_raw(session, job)
            labels = Labels(
                authserv_id=self.authserv_id, alias=job.alias, company=job.company,
                relation=job.relation.value if job.relation else NOT_ANALYSED,
                sender=job.sender or "(unknown)",
                verdict=self._verdicts.get(job.company_id, ("pending", 0.0))[0],
                sha256=job.sha256, authentication=job.authentication,
            )
            result = TRANSPORTS[destination.kind](destination, prepared(raw, labels, action),
                                                  job)
        except Exception as error:
            # One message a transport cannot handle must not stop the others (their claims
            # would hold them back): it is retried, and the reason is shown.
            log.exception("delivery of message %d to %s went wrong", job.message_id,
                          job.destination)
            result = _temporary(f"{job.destination}: {type(error).__name__}: {error}")
        return self._record(_Outcome(job, action, result))

    def _record(self, outcome: _Outcome) -> _Outcome:
        """Record one outcome at once: the window in which a crash can deliver a message
        twice stays one message wide."""
        now = self.clock()
        job, action, result = outcome.job, outcome.action, outcome.result
        with self.store.writing() as session:
            if result is None:
                record_held(session, job.id)
            elif result.outcome is Outcome.DELIVERED:
                record_delivered(session, job.id, action, now)
            elif (result.outcome is Outcome.TEMPORARY
                  and now - job.created_at < self.config.retry_for):
                record_retry(session, job.id, action, result.detail,
                             now + retry_delay(job.attempts, self.config.first_retry))
                log.warning("delivery of message %d to %s will be retried: %s",
                            job.message_id, job.destination, result.detail)
                return replace(outcome, retrying=True)
            else:
                record_failed(session, job.id, action, result.detail)
                log.error("delivery of message %d to %s failed: %s", job.message_id,
                          job.destination, result.detail)
        return outcome
