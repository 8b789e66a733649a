"""What one client may cost the listener: connections, errors, probes, time, disk.

An internet-facing SMTP server limits each client so that one cannot take
the service from everyone else. Canary follows Postfix's defaults where
Postfix has one, and says where it differs:

- connections in all: 100 (Postfix: `default_process_limit` 100);
- connections per client address: 50 (`smtpd_client_connection_count_limit`
  50); beyond either, `421 4.7.0` at once;
- error replies per session: 20, then `421` and close
  (`smtpd_hard_error_limit` 20);
- RCPTs to never-issued addresses per client address per minute: 60, then
  `450 4.7.1` (Postfix has no such limit by default; Canary records each
  probe, so it bounds what a guesser can make it write);
- command lines: 512 octets plus extensions (RFC 5321), held in a 64 KiB
  buffer at most; DATA lines may be as long as the message;
- DATA: the idle timeout (300 s) plus one second per 500 bytes received, then
  `421 4.4.2` (Postfix 3.7's per-request deadline with
  `smtpd_min_data_rate` 500);
- free space at MAIL FROM: 100 MB or 1 % of the disk, whichever is larger,
  else `452 4.3.1` (Postfix: `queue_minfree`, at least 1.5 times the message
  size limit);
- while analysis is more than a few seconds behind, a new transaction waits
  for it at MAIL FROM, at most 1 s, and then goes on (Postfix's
  `in_flow_delay` 1 s, for its queue manager): a burst that goes on is
  taken at the pace analysis keeps, never refused for it.

Relays allowed to XFORWARD (a Postfix in front of Canary) speak for many
clients, so the per-client limits do not apply to them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Where the listener listens, and how much it takes per message and per idle client.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2525
DEFAULT_MAX_SIZE = 25 * 1024 * 1024
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 50
DEFAULT_ERROR_LIMIT = 20
DEFAULT_PROBE_LIMIT = 60
"""RCPTs to never-issued addresses per client address per minute."""
DEFAULT_MIN_DATA_RATE = 500
"""Bytes per second a message must keep arriving at, beyond the idle timeout."""
DEFAULT_MIN_FREE_BYTES = 100 * 1024 * 1024
DEFAULT_MIN_FREE_RATIO = 0.01
COMMAND_LINE_LIMIT = 512
"""RFC 5321's command line; aiosmtpd adds room for the SIZE and SMTPUTF8 extensions."""
STREAM_LIMIT = 64 * 1024
"""Bytes buffered while looking for a line end: commands longer than a line are refused
and never held in memory whole; DATA lines longer than this are read in pieces."""
log = logging.getLogger("canary.listener")

PROBE_WINDOW = 60.0
SAME_PASS_SECONDS = 0.25
"""Connections accepted this soon after a failed accept came in the same accept pass, before
it (the acceptor then pauses a second before it tries again): they prove nothing is free."""
DISK_CHECK_SECONDS = 1.0
IN_FLOW_DELAY = 1.0
"""The longest a new transaction waits while analysis is behind (Postfix's `in_flow_delay`)."""


@dataclass(frozen=True, slots=True)
class ClientLimits:
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT
    error_limit: int = DEFAULT_ERROR_LIMIT
    probe_limit: int = DEFAULT_PROBE_LIMIT
    min_data_rate: int = DEFAULT_MIN_DATA_RATE
    min_free_bytes: int = DEFAULT_MIN_FREE_BYTES
    min_free_ratio: float = DEFAULT_MIN_FREE_RATIO


class Clients:
    """Counts connections and recent probes per client address, for the whole listener."""

    def __init__(self, limits: ClientLimits, exempt: frozenset[str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._exempt = exempt
        self._clock = clock
        self._connections: collections.Counter[str] = collections.Counter()
        self._total = 0
        self._probes: dict[str, collections.deque[float]] = {}
        self.refused = 0
        """Connections refused over a limit, since start."""
        self.out_of_descriptors = False
        self.descriptor_episodes = 0
        """Times the process ran out of file descriptors, since start."""
        self._failed_at = float("-inf")

    def accept_failed(self) -> None:
        """The listener could not accept a connection for want of file descriptors (it
        pauses accepting, then tries again): said once per episode, not per attempt."""
        self._failed_at = self._clock()
        if not self.out_of_descriptors:
            self.out_of_descriptors = True
            self.descriptor_episodes += 1
            log.error("out of file descriptors: new connections wait until some close "
                      "(episode %d); raise the limit (ulimit -n, LimitNOFILE=) or lower "
                      "--max-connections", self.descriptor_episodes)

    def accepted(self) -> None:
        """A connection was accepted. The accept that took the last free descriptor comes
        just before the failure it causes; only one after the acceptor's pause shows descriptors
        are free again."""
        if self.out_of_descriptors and self._clock() - self._failed_at >= SAME_PASS_SECONDS:
            self.out_of_descriptors = False
            log.warning("file descriptors are free again: accepting connections")

    def exempt(self, address: str) -> bool:
        return address in self._exempt

    def admit(self, address: str) -> str | None:
        """Count a new connection; None if it may stay, else why it may not."""
        if self._total >= self.limits.max_connections:
            self.refused += 1
            return "too many connections"
        if (not self.exempt(address)
                and self._connections[address] >= self.limits.max_connections_per_client):
            self.refused += 1
            return "too many connections from your address"
        self._connections[address] += 1
        self._total += 1
        return None

    def release(self, address: str) -> None:
        if self._connections[address] > 0:
            self._connections[address] -= 1
            self._total -= 1
            if not self._connections[address]:
                del self._connections[address]

    def probe(self, address: str) -> bool:
        """Count an RCPT to a never-issued address; True once the client is over its rate."""
        if self.exempt(address):
            return False
        now = self._clock()
        recent = self._probes.setdefault(address, collections.deque())
        while recent and now - recent[0] > PROBE_WINDOW:
            recent.popleft()
        recent.append(now)
        if len(self._probes) > 10_000:  # bounded memory under a spread-out attack
            stale = [a for a, q in self._probes.items() if now - q[-1] > PROBE_WINDOW]
            for gone in stale:
                del self._probes[gone]
        return len(recent) > self.limits.probe_limit


def data_deadline(idle_timeout: float, received: int, min_rate: int) -> float:
    """Seconds a message may take so far: the idle timeout, plus its size at `min_rate`."""
    return idle_timeout + received / max(min_rate, 1)


class DiskSpace:
    """Whether the disk the mail is stored on has room, checked at most once a second."""

    def __init__(self, path: Path | None, limits: ClientLimits,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._path = path
        self._limits = limits
        self._clock = clock
        self._checked_at = float("-inf")
        self._enough = True

    def enough(self) -> bool:
        if self._path is None:
            return True  # a database server's disk is its own concern
        now = self._clock()
        if now - self._checked_at >= DISK_CHECK_SECONDS:
            self._checked_at = now
            try:
                usage = shutil.disk_usage(self._path)
            except OSError:
                self._enough = True  # cannot tell: the commit will say
            else:
                needed = max(self._limits.min_free_bytes,
                             int(usage.total * self._limits.min_free_ratio))
                self._enough = usage.free >= needed
        return self._enough


class Pace:
    """Slows new transactions while analysis is behind, as Postfix's `in_flow_delay` does.

    The worker reports when analysis falls behind and when it has caught up
    (`smtp_listener.worker`); meanwhile each MAIL FROM waits until it has, at most
    `delay` seconds. Nothing is refused for it.
    """

    def __init__(self, delay: float = IN_FLOW_DELAY) -> None:
        self._delay = delay
        self._keeping_up = asyncio.Event()
        self._keeping_up.set()

    @property
    def behind(self) -> bool:
        return not self._keeping_up.is_set()

    def report(self, behind: bool) -> None:
        if behind:
            self._keeping_up.clear()
        else:
            self._keeping_up.set()

    async def wait(self) -> None:
        """Return once analysis keeps up, or after `delay` seconds."""
        if self._keeping_up.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._keeping_up.wait(), self._delay)
