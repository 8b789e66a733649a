"""The report's sender tallies stay equal to a computation from scratch.

`canary report` reads `sendertally` rows, kept current in the same
transaction as each change to the mail: a message analysed, a temporary
DNS failure, analysis set aside, a sender trusted (its mail decided again),
a sender flagged, imported mail judged again after the person trusts their
provider, consent changed, and consent findings worked out and kept. After
every step of many random sequences of these, on real SQLite files and on a
real PostgreSQL, the stored tallies must equal the tallies computed again
from the messages (what `canary analyse --rebuild` does), and the report
read from them must equal the report read message by message.
"""

from __future__ import annotations

import contextlib
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from commands import Canary
from factories import make_message
from sqlmodel import select

from canary.analysis import Analysis, attribute
from canary.authentication import Authentication, DkimResult, DmarcResult, Result, SpfResult
from canary.consent import Frequency
from canary.errors import CanaryError
from canary.message import read_message
from canary.report import report_document
from data.analyses import (
    pending_messages,
    save_analyses,
    save_analysis,
    save_failure,
    save_temporary_failure,
    trust_sender,
)
from data.database import Store
from data.imports import begin_import
from data.mailstore import Delivery, store_deliveries
from data.models import Alias
from data.registry import flag_sender, issue_alias, opt_out, record_consent
from data.reporting import build_reports
from data.tallies import Tally, recount, review_consent, tallies

START = datetime(2026, 3, 1, tzinfo=UTC)
CANARY_DOMAIN = "canary.example.org"
COMPANIES = ("Acme", "Globex", "Initech")
SENDERS = ("acme.example", "globex.example", "initech.example", "dealblaster.example",
           "brokerhub.example", "gmail.com", "spam-mailer.example", "acme-secure.example")


def _authentication(rng: random.Random, domain: str) -> Authentication:
    """What the checks could have found for mail From `domain`: every kind of outcome."""
    way = rng.choice(("dkim", "spf", "none", "forged"))
    dkim = (DkimResult(Result.PASS, domain),) if way == "dkim" else ()
    spf = SpfResult(Result.PASS if way in ("dkim", "spf") else Result.NONE, domain)
    aligned = way in ("dkim", "spf")
    return Authentication(
        spf=spf, dkim=dkim,
        dmarc=DmarcResult(Result.PASS if aligned else Result.FAIL if way == "forged"
                          else Result.NONE, None, domain if aligned else None,
                          domain if way == "dkim" else None, domain if way == "spf" else None))


class Home:
    """A home on a real SQLite file, and the random steps a person's mail takes."""

    def __init__(self, url: str, seed: int, *, create: bool = True) -> None:
        self.rng = random.Random(seed)
        self.grouping = random.Random(seed)
        """Apart, so that the sequences of steps stay as they were."""
        self.store = Store(url)
        if create:
            self.store.create_schema()
        self.now = START
        self.aliases: list[tuple[int, str]] = []
        self.import_id: int | None = None
        with self.store.writing() as session:
            for name in COMPANIES:
                for second in range(self.rng.choice((1, 2))):
                    issue_alias(session, secret=b"s" * 32, name=name, alias_domain=CANARY_DOMAIN,
                                domains=[f"{name.lower()}.example"], note=None,
                                new=bool(second), now=START, marketing=True,
                                frequency=self.rng.choice((Frequency.WEEKLY, None)))
            self.aliases = [(a.id or 0, a.address) for a in session.exec(select(Alias))]
            self.import_id = begin_import(session, "mbox:/tmp/old.mbox", None, START).id

    def deliver(self) -> None:
        """New mail, some of it in the same second as the last, some imported."""
        batch = []
        for _ in range(self.rng.randint(1, 4)):
            self.now += timedelta(seconds=self.rng.choice((0, 0, 1, 3600, 86400 * 3)))
            alias_id, address = self.rng.choice(self.aliases)
            sender = self.rng.choice(SENDERS)
            headers = {"List-Unsubscribe": "<mailto:u@x.example>"} if self.rng.random() < 0.5 \
                else {}
            raw = make_message(sender=f"News <news@{sender}>", to=address,
                               subject=self.rng.choice(("Deals", "Your receipt", "Hello")),
                               body=f"{self.rng.random()}\n", headers=headers)
            batch.append(Delivery(raw, ((alias_id, address),), f"bounce@{sender}", "192.0.2.7",
                                  "mx.example", False, self.now,
                                  import_id=self.import_id if self.rng.random() < 0.3 else None))
        with self.store.writing() as session:
            store_deliveries(session, batch)

    def analyse(self, limit: int = 6) -> None:
        """The due mail: analysed, waiting for DNS, or set aside after analysis failed. The
        analyses are saved one at a time or in groups (as the listener commits them), often
        several of one sender in a group."""
        analysed: list[tuple[int, Analysis, datetime]] = []
        with self.store.writing() as session:
            for message in pending_messages(session, limit, self.now + timedelta(days=365)):
                assert message.raw is not None
                facts = read_message(message.raw)
                domain = (facts.from_orgs or ("unknown.example",))[0]
                roll = self.rng.random()
                if roll < 0.1 and limit < 1000:
                    save_temporary_failure(session, message.id, "DNS timed out",
                                           self.now + timedelta(minutes=5))
                elif roll < 0.15:
                    save_failure(session, message.id, "analysis failed", None, self.now)
                else:
                    analysed.append((message.id, attribute(
                        facts, _authentication(self.rng, domain), message.company,
                        null_sender=False), self.now))
            while analysed:
                size = self.grouping.choice((1, len(analysed)))
                if size == 1:
                    save_analysis(session, *analysed[0])
                else:
                    save_analyses(session, analysed)
                analysed = analysed[size:]

    def trust(self) -> None:
        with contextlib.suppress(CanaryError), self.store.writing() as session:
            trust_sender(session, self.rng.choice(COMPANIES), self.rng.choice(SENDERS),
                         self.now)

    def flag(self) -> None:
        """(A flag the command would refuse, such as of a trusted sender, changes nothing.)"""
        with contextlib.suppress(CanaryError), self.store.writing() as session:
            flag_sender(session, self.rng.choice(COMPANIES), self.rng.choice(SENDERS), self.now)

    def change_consent(self) -> None:
        """The person opts out, or agrees to another frequency."""
        with self.store.writing() as session:
            name = self.rng.choice(COMPANIES)
            if self.rng.random() < 0.5:
                opt_out(session, name, self.now)
            else:
                record_consent(session, name, marketing=True, now=self.now,
                               frequency=self.rng.choice(list(Frequency)))

    def review(self) -> None:
        """The listener, idle, works out consent findings and keeps them."""
        with self.store.writer_connection() as connection, connection.begin():
            review_consent(connection, limit=self.rng.choice((1, None)))

    def judge_imports_again(self) -> None:
        """The person now trusts their provider's results: imported mail is judged again,
        though it was decided before (its tallies count it until then)."""
        with self.store.writing() as session:
            begin_import(session, "mbox:/tmp/old.mbox", f"mx{self.rng.randint(1, 9)}.example",
                         self.now)

    def step(self) -> str:
        action = self.rng.choices(
            (self.deliver, self.analyse, self.trust, self.flag, self.judge_imports_again,
             self.change_consent, self.review),
            weights=(5, 5, 2, 1, 1, 1, 3))[0]
        action()
        return action.__name__


def stored_and_recounted(store: Store) -> tuple[list[Tally], list[Tally]]:
    """The tallies as kept, and as computed again from the messages (rolled back)."""
    with store.writer_connection() as connection:
        with connection.begin() as transaction:
            kept = tallies(connection)
            recount(connection)
            again = tallies(connection)
            transaction.rollback()
    return kept, again


def documents(store: Store) -> tuple[object, object]:
    with store.reading() as session:
        summed = build_reports(session, timeline=False)
        every = build_reports(session, timeline=True)
    return (report_document(summed.companies, START, summed.probes),
            report_document(every.companies, START, every.probes))


def run_sequence(home: Home) -> None:
    try:
        done = []
        for _ in range(80):
            done.append(home.step())
            kept, again = stored_and_recounted(home.store)
            assert kept == again, done
            summed, every = documents(home.store)
            assert summed == every, done
        # The sequence reached what it is meant to test.
        assert {"deliver", "analyse", "trust", "judge_imports_again", "change_consent",
                "review"} <= set(done)
        assert sum(t.count for t in kept) > 20
    finally:
        home.store.dispose()


@pytest.mark.parametrize("seed", range(8))
def test_tallies_equal_a_recount_after_every_step(tmp_path: Path, seed: int) -> None:
    run_sequence(Home(f"sqlite:///{tmp_path / 'canary.db'}", seed))


@pytest.mark.parametrize("seed", range(2))
def test_tallies_equal_a_recount_after_every_step_on_postgresql(
    postgres_url: str, seed: int,
) -> None:
    run_sequence(Home(postgres_url, seed))


def test_rebuild_restores_tallies_that_went_wrong(tmp_path: Path) -> None:
    """`canary analyse --rebuild` puts right tallies damaged behind Canary's back (a
    restore by hand, a bug): the report is the messages' again."""
    canary = Canary(tmp_path / "home")
    assert canary("init", "--domain", CANARY_DOMAIN).exit_code == 0
    home = Home(f"sqlite:///{tmp_path / 'home' / 'canary.db'}", seed=99, create=False)
    try:
        for _ in range(12):
            home.deliver()
        home.analyse(limit=1000)  # all of it: `analyse --rebuild` finds nothing to analyse
        expected = documents(home.store)[1]
        with home.store.writer_connection() as connection, connection.begin():
            connection.exec_driver_sql("UPDATE sendertally SET count = count + 5")
            connection.exec_driver_sql(
                "DELETE FROM sendertally WHERE id = (SELECT min(id) FROM sendertally)")
        assert documents(home.store)[0] != expected
    finally:
        home.store.dispose()
    rebuilt = canary.json("analyse", "--rebuild")
    assert rebuilt["analysed"] == 0 and rebuilt["tallies"] > 0
    store = Store(f"sqlite:///{tmp_path / 'home' / 'canary.db'}")
    try:
        summed, every = documents(store)
        assert summed == every == expected
    finally:
        store.dispose()
