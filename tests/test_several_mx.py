"""Several MXes on one PostgreSQL database: one secret, each message stored and analysed once.

A real throw-away PostgreSQL cluster (tests/servers/postgres.py) and real
`canary serve` processes on loopback. The second MX joins with `canary init
--join URL`, which takes the secret and domains from the database, so it can
never answer 550 to the first one's aliases.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from commands import Canary, assert_one_sentence, assert_usage_error
from conftest import CANARY_DOMAIN
from faults.servers import Serve, poll, serving
from mailflow import mail, store_mail
from sqlmodel import col, select

from data.analyses import (
    PENDING_BYTES,
    claim_pending,
    claimed_messages,
    pending_count,
    pending_messages,
)
from data.database import Store
from data.home import Home
from data.mailstore import Delivery, store_deliveries
from data.models import Alias, Message
from data.registry import issue_alias
from data.tallies import recount, tallies
from smtp_listener.analysis import (
    AnalysisSettings,
    analyse_all,
    analyse_message,
    save_results,
)

pytestmark = pytest.mark.slow


def wait_until_blocked(postgres_url: str, what: str) -> None:
    """Return once a session of the database waits for a lock: the command or group under
    test, blocked on a row another transaction of the test holds."""
    watcher = Store(postgres_url)

    def blocked() -> bool:
        with watcher.reading() as session:
            return bool(session.connection().exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()").scalar())

    try:
        poll(blocked, what, timeout=20)
    finally:
        watcher.dispose()


@pytest.fixture
def first(tmp_path: Path, postgres_url: str) -> tuple[Canary, str]:
    """The first MX: a home whose database is the shared PostgreSQL one, and Acme's alias."""
    canary = Canary(tmp_path / "mx1")
    made = canary("init", "--domain", CANARY_DOMAIN, "--db", postgres_url)
    assert made.exit_code == 0, made.output
    issued = canary("issue", "Acme", "--domain", "acme.example")
    assert issued.exit_code == 0, issued.output
    return canary, issued.stdout.strip()


@pytest.mark.usefixtures("first")
def test_a_second_mx_joins_with_the_same_secret_and_domains(tmp_path: Path,
                                                            postgres_url: str) -> None:
    second = Canary(tmp_path / "mx2")
    joined = second("init", "--join", postgres_url)
    assert joined.exit_code == 0, joined.output
    one, two = Home(tmp_path / "mx1"), Home(tmp_path / "mx2")
    assert one.secret() == two.secret()
    assert two.config().domains == one.config().domains == (CANARY_DOMAIN,)
    assert two.config().database == postgres_url
    assert (tmp_path / "mx2" / "secret").stat().st_mode & 0o777 == 0o600


def test_a_home_of_its_own_on_a_shared_database_is_refused(
    tmp_path: Path, postgres_url: str, first: tuple[Canary, str]
) -> None:
    other = Canary(tmp_path / "elsewhere")
    assert_one_sentence(other("init", "--domain", CANARY_DOMAIN, "--db", postgres_url),
                        "--join")
    assert not (tmp_path / "elsewhere" / "canary.toml").exists()


def test_joining_needs_a_shared_database_with_a_home(
    tmp_path: Path, postgres_cluster: object, postgres_url: str
) -> None:
    canary = Canary(tmp_path / "mx2")
    assert_one_sentence(canary("init", "--join", postgres_url), "no Canary home")
    assert_one_sentence(canary("init", "--join", f"sqlite:///{tmp_path / 'x.db'}"),
                        "PostgreSQL")
    assert_usage_error(canary("init", "--join", postgres_url, "--domain", "x.example"),
                       "--domain")


def test_two_analysts_claim_different_messages(postgres_url: str,
                                               first: tuple[Canary, str]) -> None:
    store = Store(postgres_url)
    try:
        with store.reading() as session:
            alias_id, address = session.exec(select(Alias.id, Alias.address)).one()
        assert alias_id is not None
        now = datetime.now(UTC)
        with store.writing() as session:
            store_deliveries(session, [
                Delivery(mail(subject=f"m{n}"), ((alias_id, address),), "x@acme.example",
                         "192.0.2.1", "mx.acme.example", False, now) for n in range(10)])
        other = Store(postgres_url)
        try:
            with store.writing() as session_one:
                mine = claim_pending(session_one, 6, now)
                with other.writing() as session_two:  # while the first claim is uncommitted
                    theirs = claim_pending(session_two, 6, now)
            assert (mine, theirs) == (6, 4)
            with store.reading() as session:
                claimed = session.exec(select(Message.claimed_at).where(
                    col(Message.retry_at) > now)).all()
            assert len(claimed) == 10
            with store.writing() as session:
                assert claim_pending(session, 10, now + timedelta(seconds=1)) == 0
        finally:
            other.dispose()
    finally:
        store.dispose()


def test_a_claim_takes_only_the_large_messages_one_batch_reads(
    postgres_url: str, first: tuple[Canary, str],
) -> None:
    """A batch reads at most `PENDING_BYTES` of raw mail. An analyst claims no more than
    that: a message it claimed and left unread would wait out the claim (two minutes)
    instead of going to the next batch or to the other MX."""
    store = Store(postgres_url)
    try:
        with store.reading() as session:
            alias_id, address = session.exec(select(Alias.id, Alias.address)).one()
        assert alias_id is not None
        line = "All the catalogue, page after page.\n"
        body = line * (PENDING_BYTES * 2 // 5 // len(line))  # two fit in a batch, not three
        now = datetime.now(UTC)
        with store.writing() as session:
            store_deliveries(session, [
                Delivery(mail(subject=f"catalogue {n}", body=body), ((alias_id, address),),
                         "x@acme.example", "192.0.2.1", "mx.acme.example", False, now)
                for n in range(3)])
        with store.writing() as session:
            assert claim_pending(session, 50, now) == 2
        with store.reading() as session:
            assert [len(m.raw) > len(body) for m in claimed_messages(session, 50, now)] == [
                True, True]
        with store.writing() as session:  # the third is due at once, for whoever asks
            assert claim_pending(session, 50, now) == 1
    finally:
        store.dispose()


@pytest.fixture
def two_mxes(tmp_path: Path, postgres_url: str, first: tuple[Canary, str], empty_dns: str
             ) -> Iterator[tuple[Serve, Serve, str]]:
    second = Canary(tmp_path / "mx2")
    assert second("init", "--join", postgres_url).exit_code == 0
    with serving(tmp_path / "mx1", tmp_path / "logs1", dns=empty_dns) as one, \
            serving(tmp_path / "mx2", tmp_path / "logs2", dns=empty_dns) as two:
        yield one, two, first[1]


def _rows(url: str) -> list[tuple[int | None, datetime | None]]:
    """(id, analysed_at) of every stored message."""
    store = Store(url)
    try:
        with store.reading() as session:
            return list(session.exec(select(Message.id, Message.analysed_at)).all())
    finally:
        store.dispose()


def test_both_mxes_store_everything_once_and_analyse_it(
    two_mxes: tuple[Serve, Serve, str], postgres_url: str
) -> None:
    one, two, alias = two_mxes
    same = mail(subject="sent to both MXes, as a sending server retrying elsewhere does")
    replies: list[int] = []

    def send(serve: Serve, raw: bytes) -> None:
        replies.append(serve.send(alias, raw).code)

    threads = [threading.Thread(target=send, args=(serve, raw))
               for n in range(20)
               for serve, raw in ((one, mail(subject=f"to mx1 {n}")),
                                  (two, mail(subject=f"to mx2 {n}")), (one, same), (two, same))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert replies == [250] * len(threads)
    rows = _rows(postgres_url)
    assert len(rows) == 41, "forty messages and the one sent to both, stored once"

    def settled() -> bool:
        return all(analysed is not None for _, analysed in _rows(postgres_url))

    poll(settled, "every message analysed", timeout=60)
    # Both listeners counted their messages into the same sender's tally, none lost.
    store = Store(postgres_url)
    try:
        with store.writer_connection() as connection, connection.begin() as transaction:
            kept = tallies(connection)
            recount(connection)
            assert tallies(connection) == kept
            transaction.rollback()
    finally:
        store.dispose()
    assert sum(t.count for t in kept) == 41


def test_a_database_that_stops_costs_451s_and_both_mxes_recover(
    two_mxes: tuple[Serve, Serve, str], postgres_url: str, postgres_cluster: object
) -> None:
    one, two, alias = two_mxes
    cluster = postgres_cluster
    cluster.stop()  # type: ignore[attr-defined]
    try:
        for serve in (one, two):
            outcome = serve.send(alias, mail(subject="while the database is down"))
            assert outcome.code == 451 and outcome.seconds < 30, outcome
    finally:
        cluster.start()  # type: ignore[attr-defined]
    for serve in (one, two):
        poll(lambda serve=serve: serve.send(alias, mail(subject="back")).code == 250,  # type: ignore[misc]
             "250 again once the database is back", timeout=60, interval=1.0)
        assert serve.up()


def test_analysis_results_saved_together_survive_a_deadlock(
    postgres_url: str, empty_dns: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """Two MXes commit groups of analysis results that lock the same tally rows in
    opposite orders, and PostgreSQL aborts one group to break the deadlock. That group
    is saved again, one message at a time: nothing waits for its claim to run out."""
    store = Store(postgres_url)
    store.create_schema()
    settings = AnalysisSettings.from_setting(empty_dns)
    try:
        with store.writing() as session:
            acme = issue_alias(session, secret=b"s" * 32, name="Acme", alias_domain=CANARY_DOMAIN,
                               domains=["acme.example"], note=None, new=False,
                               now=datetime.now(UTC))
        for round_ in ("first", "second"):
            for sender in ("news@acme.example", "offers@dealblaster.example"):
                store_mail(store, acme.address, mail(sender=sender, to=acme.address,
                                                     subject=f"{round_} from {sender}"))
            if round_ == "first":  # the tally rows both groups will lock
                analyse_all(store, settings, lambda: datetime.now(UTC))
        with store.reading() as session:
            pending = pending_messages(session, 10, datetime.now(UTC))
        group = [(message, analyse_message(message, settings), datetime.now(UTC))
                 for message in pending]
        assert [type(result).__name__ for _, result, _ in group] == ["Analysis", "Analysis"]
        first_org, second_org = "acme.example", "dealblaster.example"  # the group's order

        other = store.writer_connection()
        other.begin()
        other.exec_driver_sql("SET LOCAL deadlock_timeout = '30s'")  # the group's wait loses
        lock = ("SELECT id FROM sendertally WHERE organisation = %(organisation)s "
                "AND count > 0 FOR UPDATE")
        assert other.exec_driver_sql(lock, {"organisation": second_org}).all()
        failures: list[BaseException] = []

        def save() -> None:
            try:
                save_results(store, group, settings)
            except BaseException as error:
                failures.append(error)

        saving = threading.Thread(target=save)
        saving.start()
        wait_until_blocked(postgres_url, "the group waiting for the second tally row")
        other.exec_driver_sql(lock, {"organisation": first_org})  # the deadlock
        other.commit()
        other.close()
        saving.join(timeout=60)
        assert not saving.is_alive() and failures == []
        assert "saving 2 analysis results together failed" in caplog.text
        assert "deadlock detected" in caplog.text
        with store.reading() as session:
            assert pending_count(session, datetime.now(UTC) + timedelta(days=1)) == 0
        with store.writer_connection() as connection, connection.begin() as transaction:
            kept = tallies(connection)
            recount(connection)
            assert tallies(connection) == kept
            transaction.rollback()
        assert sum(t.count for t in kept) == 4
    finally:
        store.dispose()


def test_a_command_that_meets_a_deadlock_says_to_run_it_again(
    tmp_path: Path, postgres_url: str, empty_dns: str,
) -> None:
    """`canary trust` recounts the company's tallies while a listener on another MX counts
    into them; PostgreSQL aborts one to break the deadlock. If it is the command, it says
    so in one sentence (not "the database cannot be used"), and nothing of it is kept."""
    canary = Canary(tmp_path / "mx1")
    assert canary("init", "--domain", CANARY_DOMAIN, "--db", postgres_url).exit_code == 0
    address = canary("issue", "Acme", "--domain", "acme.example").stdout.strip()
    store = Store(postgres_url)
    try:
        for sender in ("news@acme.example", "offers@dealblaster.example"):
            store_mail(store, address, mail(sender=sender, to=address))
        analyse_all(store, AnalysisSettings.from_setting(empty_dns), lambda: datetime.now(UTC))
        other = store.writer_connection()
        other.begin()
        other.exec_driver_sql("SET LOCAL deadlock_timeout = '30s'")  # the command's wait loses
        lock = "SELECT id FROM sendertally WHERE organisation = %(organisation)s FOR UPDATE"
        assert other.exec_driver_sql(lock, {"organisation": "dealblaster.example"}).all()
        results: list[Any] = []
        trusting = threading.Thread(
            target=lambda: results.append(canary("trust", "Acme", "dealblaster.example")))
        trusting.start()
        wait_until_blocked(postgres_url, "the command waiting for the second tally row")
        other.exec_driver_sql(lock, {"organisation": "acme.example"})  # the deadlock
        other.commit()
        other.close()
        trusting.join(timeout=60)
        (result,) = results
        assert_one_sentence(result, "run this one again")
        assert "cannot be used" not in result.stderr
        with store.reading() as session:
            trusted = session.connection().exec_driver_sql(
                "SELECT domain FROM companydomain ORDER BY domain").scalars().all()
        assert trusted == ["acme.example"], "the aborted trust left nothing behind"
        again = canary("trust", "Acme", "dealblaster.example")
        assert again.exit_code == 0, again.output
    finally:
        store.dispose()


def test_another_homes_shared_database_is_refused_to_every_command(
    tmp_path: Path, first: tuple[Canary, str], postgres_url: str,
) -> None:
    """An alias issued with another home's secret would be answered 550 by every MX of
    this database: `--db` pointing at a database shared by another home is refused."""
    elsewhere = Canary(tmp_path / "elsewhere")
    assert elsewhere("init", "--domain", CANARY_DOMAIN).exit_code == 0
    for argv in (["issue", "Globex"], ["aliases"], ["report"]):
        assert_one_sentence(elsewhere("--db", postgres_url, *argv), "another Canary home",
                            "canary init --join")
    canary, _ = first
    assert [a["company"] for a in canary.json("aliases")["aliases"]] == ["Acme"]


def test_upgrade_gives_a_database_without_a_shared_home_this_homes_secret(
    tmp_path: Path, first: tuple[Canary, str], postgres_url: str,
) -> None:
    """A database made before shared homes has no record of its secret, so a second MX
    could not join it; `canary upgrade` records the upgrading home's."""
    canary, address = first
    store = Store(postgres_url)
    try:
        with store.writing() as session:
            session.connection().exec_driver_sql("DELETE FROM sharedhome")
    finally:
        store.dispose()
    second = Canary(tmp_path / "mx2")
    assert_one_sentence(second("init", "--join", postgres_url), "no Canary home to join")
    assert canary("upgrade").exit_code == 0
    assert second("init", "--join", postgres_url).exit_code == 0
    assert Home(tmp_path / "mx2").secret() == Home(canary.home).secret()
    assert [a["address"] for a in second.json("aliases")["aliases"]] == [address]


def test_trusting_a_domain_another_mx_trusts_at_the_same_moment_succeeds(
    first: tuple[Canary, str], postgres_url: str,
) -> None:
    """Another command adds the same domain to the company and commits while this one
    waits on it: this one skips the domain it now has, not a unique-key failure."""
    canary, _ = first
    store = Store(postgres_url)
    try:
        other = store.writer_connection()
        other.begin()
        other.exec_driver_sql(
            "INSERT INTO companydomain (company_id, domain, source, added_at) "
            "SELECT id, 'dealblaster.example', 'trusted', now() FROM company")
        results: list[Any] = []
        trusting = threading.Thread(
            target=lambda: results.append(canary("trust", "Acme", "dealblaster.example")))
        trusting.start()
        wait_until_blocked(postgres_url, "the command waiting on the other's row")
        other.commit()
        other.close()
        trusting.join(timeout=60)
        (result,) = results
        assert result.exit_code == 0, result.output
        with store.reading() as session:
            domains = session.connection().exec_driver_sql(
                "SELECT domain FROM companydomain ORDER BY domain").scalars().all()
        assert domains == ["acme.example", "dealblaster.example"]
    finally:
        store.dispose()
