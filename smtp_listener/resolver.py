"""The one DNS resolver every authentication lookup goes through.

It wraps dnspython with an LRU cache, a per-query timeout and a total
lifetime, and takes its nameservers and port as settings, so tests and the
demo point it at an authoritative server on loopback. A timeout or a server
failure raises `DnsTemporaryFailure`: callers record `temperror` and try the
message again later; they never settle it as unauthenticated.

`Recorder` keeps every answer one message's authentication used, so the
evidence can be re-checked after the keys have rotated.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from canary.authentication import DnsAnswer
from canary.errors import InvalidDnsServer

DEFAULT_TIMEOUT = 2.0
DEFAULT_LIFETIME = 5.0
DEFAULT_CACHE_SIZE = 10_000
NEGATIVE_TTL = 300
"""Seconds an NXDOMAIN or empty answer is remembered."""
FAILURE_TTL = 60.0
"""Seconds a timeout or server failure is remembered: a message with many signatures at a
silent domain costs one timeout per name, not one per signature, and the next messages
none."""


class DnsTemporaryFailure(Exception):
    """The question could not be answered now (timeout, SERVFAIL); ask again later."""


class Lookup(Protocol):
    """Anything that answers DNS questions the way `Resolver` does."""

    lifetime: float

    def lookup(self, name: str, rdtype: str, recorder: Recorder | None = None) -> DnsAnswer: ...


class RecordedAnswers:
    """Answers from a record made at receipt time, for re-checking evidence offline.

    A question the record does not hold is answered as if the name did not
    exist; nothing goes to the network.
    """

    lifetime = 1.0

    def __init__(self, answers: Iterable[DnsAnswer]) -> None:
        self._answers = {(a.name.lower().rstrip("."), a.rdtype): a for a in answers}

    def lookup(self, name: str, rdtype: str, recorder: Recorder | None = None) -> DnsAnswer:
        answer = self._answers.get((name.lower().rstrip("."), rdtype))
        return answer if answer is not None else DnsAnswer(name, rdtype, (), exists=False)


@dataclass
class Recorder:
    """Collects the answers used while authenticating one message, within its time budget.

    Past `deadline` (a `time.monotonic()` value), or once `stopping` says so,
    questions the cache cannot answer fail at once as temporary: one message
    never holds analysis for long, and shutdown does not wait on DNS.
    """

    answers: list[DnsAnswer] = field(default_factory=list)
    deadline: float | None = None
    stopping: Callable[[], bool] = lambda: False

    def out_of_time(self) -> str | None:
        if self.stopping():
            return "analysis is stopping"
        if self.deadline is not None and time.monotonic() > self.deadline:
            return "the message's time budget for DNS ran out"
        return None

    def add(self, answer: DnsAnswer) -> None:
        if answer not in self.answers:
            self.answers.append(answer)


def parse_server(text: str) -> tuple[str, int]:
    """`HOST[:PORT]` → (host, port); IPv6 as `[::1]:5353`."""
    host, port = text, "53"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidDnsServer(text)
    return host, int(port)


class Resolver:
    def __init__(
        self,
        nameservers: Sequence[str] | None = None,
        *,
        port: int = 53,
        timeout: float = DEFAULT_TIMEOUT,
        lifetime: float = DEFAULT_LIFETIME,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        if nameservers:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = list(nameservers)
        else:
            try:
                resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = ["127.0.0.1"]
        resolver.port = port
        resolver.timeout = timeout
        resolver.lifetime = lifetime
        self.lifetime = lifetime
        self.timeout = timeout
        self.server: str | None = None
        """The `HOST[:PORT]` it was made for (`from_setting`), to make another like it."""
        self._resolver = resolver
        self._cache: OrderedDict[tuple[str, str], tuple[float, DnsAnswer | str]] = OrderedDict()
        """Answers, and failures (their text) for `FAILURE_TTL`."""
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._asking: dict[tuple[str, str], threading.Event] = {}
        """Questions on their way to a server: other threads wait for that answer."""
        self.queries = 0
        """Questions sent to a server (cache misses), for tests and benchmarks."""

    @classmethod
    def from_setting(cls, server: str | None, **options: float) -> Resolver:
        """A resolver for `--dns HOST[:PORT]`, or the system's when None."""
        if not server:
            resolver = cls(**options)  # type: ignore[arg-type]
        else:
            host, port = parse_server(server)
            resolver = cls([host], port=port, **options)  # type: ignore[arg-type]
        resolver.server = server
        return resolver

    def lookup(self, name: str, rdtype: str, recorder: Recorder | None = None) -> DnsAnswer:
        """Answer one question; an empty answer for NXDOMAIN or no data."""
        key = (name.lower().rstrip("."), rdtype)
        answer, asking = self._cached(key)
        while asking is not None:  # another thread is asking the same question: wait for it
            asking.wait(self.lifetime)
            answer, asking = self._cached(key)
        if isinstance(answer, str):
            raise DnsTemporaryFailure(f"{answer} (remembered)")
        if answer is None:
            try:
                if recorder is not None and (why := recorder.out_of_time()):
                    raise DnsTemporaryFailure(f"{name} {rdtype}: not asked, {why}")
                now = time.monotonic()
                try:
                    answer, ttl = self._ask(name, rdtype)
                except DnsTemporaryFailure as error:
                    self._remember(key, now + FAILURE_TTL, str(error))
                    raise
                self._remember(key, now + ttl, answer)
            finally:
                self._done_asking(key)
        if recorder is not None:
            recorder.add(answer)
        return answer

    def _cached(
        self, key: tuple[str, str],
    ) -> tuple[DnsAnswer | str | None, threading.Event | None]:
        """The cached answer (or failure); else None and, if another thread is asking, its
        event. With neither, the caller is now the one asking and must `_done_asking`."""
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] > time.monotonic():
                self._cache.move_to_end(key)
                return cached[1], None
            if (asking := self._asking.get(key)) is not None:
                return None, asking
            self._asking[key] = threading.Event()
            return None, None

    def _done_asking(self, key: tuple[str, str]) -> None:
        with self._lock:
            asking = self._asking.pop(key, None)
        if asking is not None:
            asking.set()

    def _remember(self, key: tuple[str, str], until: float, answer: DnsAnswer | str) -> None:
        with self._lock:
            self.queries += 1
            self._cache[key] = (until, answer)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _ask(self, name: str, rdtype: str) -> tuple[DnsAnswer, float]:
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError, ValueError):
            return DnsAnswer(name, rdtype, (), exists=False), NEGATIVE_TTL
        try:
            result = self._resolver.resolve(
                qname, rdtype, search=False, raise_on_no_answer=False
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.YXDOMAIN):
            return DnsAnswer(name, rdtype, (), exists=False), NEGATIVE_TTL
        except (dns.resolver.LifetimeTimeout, dns.resolver.NoNameservers,
                dns.exception.Timeout) as error:
            raise DnsTemporaryFailure(f"{name} {rdtype}: {error}") from error
        ttl = result.rrset.ttl if result.rrset is not None else NEGATIVE_TTL
        return _answer(name, rdtype, result), float(ttl)


def _answer(name: str, rdtype: str, result: dns.resolver.Answer) -> DnsAnswer:
    if result.rrset is None:
        return DnsAnswer(name, rdtype, ())
    records: list[str] = []
    strings: list[tuple[bytes, ...]] = []
    for rdata in result.rrset:
        if rdata.rdtype == dns.rdatatype.TXT:
            parts = tuple(rdata.strings)
            strings.append(parts)
            records.append(b"".join(parts).decode("utf-8", "replace"))
        else:
            records.append(rdata.to_text())
    return DnsAnswer(name, rdtype, tuple(records), tuple(strings))
