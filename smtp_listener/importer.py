"""Reading old mail: mbox files, Maildirs and IMAP folders, for `canary import` and `discover`.

A source yields each message's raw bytes exactly as the person's provider
stored them, with its position for error messages. The standard library's
`mailbox` reads mbox (provider exports with CRLF line ends and very large
files included) and Maildir; `imapclient` reads IMAP, fetching `BODY.PEEK[]`
in batches so nothing is marked read, remembering the folder's UIDVALIDITY
and the last UID stored so a rerun goes on where the last one stopped, and
reconnecting when a connection drops.

Bad input never stops an import: an unreadable message, one over the size
limit or an IMAP connection that keeps failing is a counted problem with
its position, and the import goes on. Nothing here decides who sent a
message: imported mail is analysed like received mail, afterwards.
"""

from __future__ import annotations

import logging
import mailbox
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from canary.addresses import AddressPatterns, receipt, recipients
from canary.delivery import Destination, DestinationError, DestinationKind, parse_destination
from canary.domains import organisational_domain
from canary.errors import InvalidValue
from canary.message import delivery_headers, read_message
from data.database import Store
from data.imports import ImportCounts, begin_import, finish_import, resume_point, store_imported
from data.mailstore import Delivery
from data.registry import alias_addresses
from smtp_listener.delivery import PasswordUnavailable, password

log = logging.getLogger("canary.import")

BATCH = 200
"""Messages stored per transaction."""
IMAP_FETCH = 50
IMAP_RECONNECTS = 5
IMAP_TIMEOUT = 60.0
PROBLEMS_KEPT = 50


class SourceUnavailable(InvalidValue):
    """A source that cannot be read at all; the message says what to check."""


@dataclass(frozen=True, slots=True)
class Item:
    """One message of a source, or the problem reading it."""

    position: str
    raw: bytes | None
    problem: str | None = None
    received: datetime | None = None
    """The provider's own receipt time where the source keeps one (IMAP INTERNALDATE)."""
    resume: str | None = None
    """Where a rerun goes on once this message is stored (IMAP: `UIDVALIDITY:UID`)."""


class Source:
    """A mailbox to read; `items` yields every message from `resume` on."""

    name: str
    """How the person named it, without secrets."""

    def items(self, resume: str | None, max_size: int) -> Iterator[Item]:
        raise NotImplementedError

    def count(self) -> int | None:
        """How many messages there are, if known cheaply (for the progress bar's ETA)."""
        return None

    def close(self) -> None:
        """Let go of the files it holds."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_limited(read: Callable[[int], bytes], max_size: int, position: str) -> Item:
    raw = read(max_size + 1)
    if len(raw) > max_size:
        return Item(position, None, f"over the size limit of {max_size} bytes: skipped")
    return Item(position, raw)


class MailboxFile(Source):
    """An mbox file, or a Maildir directory."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self._path = path
        if path.is_dir():
            if not (path / "cur").is_dir() and not (path / "new").is_dir():
                raise SourceUnavailable(f"{path} is a directory but no Maildir (it has no cur/ "
                                        "or new/); give an mbox file or a Maildir.")
            self._box: mailbox.Mailbox[mailbox.Message] = mailbox.Maildir(
                path, factory=None, create=False)
            self._kind = "Maildir"
        elif path.is_file():
            self._box = mailbox.mbox(path, factory=None, create=False)
            self._kind = "mbox"
        else:
            raise SourceUnavailable(f"{path} does not exist; give an mbox file, a Maildir or "
                                    "imaps://USER@HOST/FOLDER.")

    def count(self) -> int | None:
        try:
            return len(self._box)
        except (OSError, mailbox.Error):
            return None

    def close(self) -> None:
        self._box.close()

    def items(self, resume: str | None, max_size: int) -> Iterator[Item]:
        try:
            keys = list(self._box.iterkeys())
        except (OSError, mailbox.Error) as error:
            raise SourceUnavailable(f"{self.name} cannot be read: {error}.") from error
        for number, key in enumerate(keys, 1):
            position = (f"message {number} of {self.name}" if self._kind == "mbox"
                        else f"{self.name}/{key}")
            try:
                handle = self._box.get_file(key)
                try:
                    item = _read_limited(handle.read, max_size, position)
                finally:
                    handle.close()
                if self._kind == "mbox" and item.raw and item.raw.endswith(b"\r\n\r\n"):
                    # mailbox splits on LF lines: in a CRLF export (a provider's), the empty
                    # line before the next "From " stays with the message. It is the mbox's.
                    item = Item(position, item.raw[:-2])
                yield item
            except (OSError, KeyError, mailbox.Error, ValueError) as error:
                yield Item(position, None, f"unreadable: {error}")


class ImapFolder(Source):
    """An IMAP folder, read-only, in UID order."""

    def __init__(self, destination: Destination) -> None:
        self._where = destination
        self.name = destination.key

    def items(self, resume: str | None, max_size: int) -> Iterator[Item]:
        from imapclient.exceptions import IMAPClientError

        last_uid, validity = 0, None
        if resume and ":" in resume:
            validity_text, _, uid_text = resume.partition(":")
            validity, last_uid = int(validity_text), int(uid_text)
        failures = 0
        while True:
            try:
                for item in self._fetch(validity, last_uid, max_size):
                    failures = 0
                    if item.resume:
                        validity_text, _, uid_text = item.resume.partition(":")
                        validity, last_uid = int(validity_text), int(uid_text)
                    yield item
                return
            except (IMAPClientError, OSError, TimeoutError) as error:
                failures += 1
                if failures > IMAP_RECONNECTS:
                    yield Item(f"{self.name} after UID {last_uid}", None,
                               f"the connection kept failing ({error}); run the import "
                               "again to go on")
                    return
                log.warning("IMAP connection to %s failed (%s); reconnecting", self.name,
                            type(error).__name__)
                time.sleep(min(2 ** failures, 30))

    def _fetch(self, validity: int | None, last_uid: int, max_size: int) -> Iterator[Item]:
        from imapclient import IMAPClient
        from imapclient.exceptions import LoginError

        where = self._where
        try:
            secret = password(where)
        except PasswordUnavailable as error:
            raise SourceUnavailable(f"{self.name}: {error}.") from error
        context = None
        if where.tls:
            import ssl

            context = ssl.create_default_context(cafile=where.cafile)
        with IMAPClient(where.host or "", port=where.port, ssl=where.tls, ssl_context=context,
                        timeout=IMAP_TIMEOUT) as client:
            try:
                client.login(where.user or "", secret)
            except LoginError as error:
                raise SourceUnavailable(f"{self.name}: the login was refused; check the user "
                                        "and the password.") from error
            if not client.folder_exists(where.folder):
                raise SourceUnavailable(f"{self.name}: there is no folder {where.folder!r}.")
            selected = client.select_folder(where.folder, readonly=True)
            current = int(selected.get(b"UIDVALIDITY", 0))
            if validity is not None and validity != current:
                last_uid = 0  # the folder was rebuilt: read it all again (nothing is stored twice)
            uids = sorted(u for u in client.search(["UID", f"{last_uid + 1}:*"]) if u > last_uid)
            for start in range(0, len(uids), IMAP_FETCH):
                chunk = uids[start:start + IMAP_FETCH]
                sizes = client.fetch(chunk, ["RFC822.SIZE"])
                wanted = [u for u in chunk if int(sizes.get(u, {}).get(b"RFC822.SIZE", 0))
                          <= max_size]
                fetched = client.fetch(wanted, ["BODY.PEEK[]", "INTERNALDATE"]) if wanted else {}
                for uid in chunk:
                    position = f"{self.name} UID {uid}"
                    resume = f"{current}:{uid}"
                    if uid not in wanted:
                        yield Item(position, None, f"over the size limit of {max_size} bytes: "
                                                   "skipped", resume=resume)
                        continue
                    data = fetched.get(uid, {})
                    raw = data.get(b"BODY[]")
                    if not isinstance(raw, bytes):
                        yield Item(position, None, "the server sent no message", resume=resume)
                        continue
                    internal = data.get(b"INTERNALDATE")
                    received = None
                    if isinstance(internal, datetime):
                        received = (internal.astimezone(UTC) if internal.tzinfo
                                    else internal.replace(tzinfo=UTC))
                    yield Item(position, raw, received=received, resume=resume)


def open_source(text: str) -> Source:
    """An mbox file, a Maildir, or `imaps://USER@HOST/FOLDER?password_file=…`."""
    if "://" in text:
        try:
            where = parse_destination(text)
        except DestinationError as error:
            raise SourceUnavailable(str(error)) from error
        if where.kind is not DestinationKind.IMAP:
            raise SourceUnavailable(f"{where.key}: import reads imap:// or imaps:// folders, "
                                    "mbox files and Maildirs.")
        return ImapFolder(where)
    return MailboxFile(Path(text).expanduser())


# --- import -----------------------------------------------------------------------------


@dataclass
class ImportRun:
    counts: ImportCounts = field(default_factory=ImportCounts)
    problems: list[tuple[str, str]] = field(default_factory=list)
    """(position, problem) of the first `PROBLEMS_KEPT` problems."""
    stopped: bool = False
    """Interrupted (Ctrl-C): a rerun goes on."""


def _delivery(item: Item, raw: bytes, matched: list[tuple[int, str]], import_id: int,
              now: datetime) -> Delivery:
    headers = delivery_headers(raw)
    when = receipt(headers)
    received, estimated = when.at, when.estimated
    if (received is None or estimated) and item.received is not None:
        received, estimated = item.received, False  # the provider's own INTERNALDATE
    if received is None:
        received, estimated = now, True
    return_path = next((v for k, v in headers if k.strip().lower() == "return-path"), "")
    return Delivery(
        raw=raw, recipients=tuple(matched), mail_from=return_path.strip().strip("<>")[:320],
        peer_ip=when.peer_ip or "unknown", helo=when.helo, tls=False, received_at=received,
        import_id=import_id, receipt_estimated=estimated,
    )


_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")


def _not_a_message(raw: bytes) -> str | None:
    """Why these bytes are no message (no header at their start), or None."""
    first = raw.lstrip(b"\r\n").split(b"\n", 1)[0]
    if _FIELD.match(first):
        return None
    return ("not a message: no header at its start (in an mbox, a line beginning 'From ' "
            "in the previous message's body can split it)")


def _matched(raw: bytes, aliases: dict[str, int]) -> list[tuple[int, str]]:
    found: dict[int, str] = {}
    for address in recipients(delivery_headers(raw)):
        local, _, domain = address.rpartition("@")
        alias_id = aliases.get(address) or aliases.get(f"{local.partition('+')[0]}@{domain}")
        if alias_id is not None:
            found.setdefault(alias_id, address)
    return [(alias_id, address) for alias_id, address in found.items()]


def import_mail(
    store: Store, source: Source, *, trusted_authserv_id: str | None, max_size: int,
    clock: Callable[[], datetime], progress: Callable[[ImportCounts], None] = lambda c: None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ImportRun:
    """Store every message of `source` addressed to an alias, once; count the rest.

    Batches are committed as they fill, so an interrupted import keeps what it
    stored and a rerun skips it (counted as duplicates) or, for IMAP, goes on
    after the last UID stored.
    """
    run = ImportRun()
    with store.writing() as session:
        row = begin_import(session, source.name, trusted_authserv_id, clock())
        assert row.id is not None
        import_id = row.id
        aliases = alias_addresses(session)
        resume = resume_point(session, source.name)
    batch: list[Delivery] = []
    batch_resume: str | None = None

    def flush() -> None:
        nonlocal batch, batch_resume
        if batch or batch_resume:
            # Counted once committed: a Ctrl-C during the commit rolls the batch back, and
            # the final flush stores (and counts) it again.
            done = ImportCounts()
            with store.writing() as session:
                store_imported(session, import_id, batch, done, batch_resume)
            run.counts.add(done)
        batch, batch_resume = [], None
        progress(run.counts)

    try:
        for item in source.items(resume, max_size):
            run.counts.read += 1
            problem = item.problem if item.raw is None else _not_a_message(item.raw)
            if item.raw is None or problem:
                run.counts.problems += 1
                if len(run.problems) < PROBLEMS_KEPT:
                    run.problems.append((item.position, problem or "unreadable"))
            elif matched := _matched(item.raw, aliases):
                batch.append(_delivery(item, item.raw, matched, import_id, clock()))
            else:
                run.counts.skipped += 1
            batch_resume = item.resume or batch_resume
            if len(batch) >= BATCH or run.counts.read % BATCH == 0:
                flush()
            if should_stop():
                run.stopped = True
                break
    except KeyboardInterrupt:
        run.stopped = True
    finally:
        flush()
        with store.writing() as session:
            finish_import(session, import_id, run.counts, clock())
    return run


# --- discover ---------------------------------------------------------------------------


@dataclass
class Found:
    """One of the person's addresses seen in a mailbox."""

    address: str
    messages: int = 0
    first: datetime | None = None
    last: datetime | None = None
    senders: Counter[str] = field(default_factory=Counter)
    first_sender: str | None = None
    """The sender organisation of the earliest message: a guess at who was given it."""


def discover(source: Source, patterns: AddressPatterns, canary_domains: frozenset[str],
             known: dict[str, int], max_size: int,
             progress: Callable[[int], None] = lambda n: None) -> tuple[list[Found], int]:
    """The person's addresses a mailbox was sent to, with counts, dates and top senders; and
    how many messages could not be read."""
    found: dict[str, Found] = {}
    problems = 0
    for number, item in enumerate(source.items(None, max_size), 1):
        if number % 100 == 0:
            progress(number)
        if item.raw is None:
            problems += 1
            continue
        headers = delivery_headers(item.raw)
        when = receipt(headers).at or item.received
        sender = read_message(item.raw).from_org
        for address in recipients(headers):
            domain = address.rpartition("@")[2]
            if not (patterns.owns(address) or domain in canary_domains or address in known):
                continue
            entry = found.setdefault(address, Found(address))
            entry.messages += 1
            if sender:
                entry.senders[organisational_domain(sender) or sender] += 1
            if when is not None:
                if entry.first is None or when < entry.first:
                    entry.first, entry.first_sender = when, sender
                if entry.last is None or when > entry.last:
                    entry.last = when
    return sorted(found.values(), key=lambda f: (-f.messages, f.address)), problems
