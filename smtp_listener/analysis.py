"""Analysis of stored mail, off the SMTP reply path.

`analyse_pending` reads messages not analysed yet, works out who sent them
(`canary.message`) and how they relate to the alias's company
(`canary.classify`), and stores the result. It is called by the listener's
analyst thread and by commands that report, so mail stored while no
listener ran is analysed too. A message that cannot be read stays stored,
marked with its problem, and analysis goes on with the next one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from canary.classify import classify
from canary.message import MessageFacts, read_message
from data.database import Store
from data.mailstore import pending_messages, save_analysis

log = logging.getLogger("canary.analysis")

BATCH = 200


def analyse_pending(store: Store, clock: Callable[[], datetime], limit: int = BATCH) -> int:
    """Analyse up to `limit` pending messages; return how many were analysed."""
    with store.reading() as session:
        pending = pending_messages(session, limit)
    if not pending:
        return 0
    results = []
    for message in pending:
        try:
            facts = read_message(message.raw)
        except Exception as error:
            # One hostile message must not stop analysis of the rest; it stays
            # stored, marked, and the traceback is logged for a bug report.
            log.exception("message %s could not be read", message.sha256)
            facts = MessageFacts.unreadable(f"unreadable: {type(error).__name__}")
        results.append((message.id, facts, classify(facts.from_orgs, message.company_domains)))
    with store.writing() as session:
        now = clock()
        for message_id, facts, classification in results:
            save_analysis(session, message_id, facts, classification, now)
    return len(results)


def analyse_all(store: Store, clock: Callable[[], datetime]) -> int:
    total = 0
    while count := analyse_pending(store, clock):
        total += count
    return total


class Analyst:
    """A background thread that analyses new mail as the writer commits it."""

    def __init__(self, store: Store, clock: Callable[[], datetime], idle_seconds: float = 2.0):
        self._store = store
        self._clock = clock
        self._idle = idle_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary-analyst", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def notify(self) -> None:
        """New mail was committed."""
        self._wake.set()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stopping.set()
            self._wake.set()
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                done = analyse_pending(self._store, self._clock)
            except SQLAlchemyError as error:
                log.warning("analysis paused by a database error: %s", error)
                done = 0
            if not done:
                self._wake.wait(self._idle)
