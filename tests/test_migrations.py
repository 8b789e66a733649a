"""Schema migrations: a home made by release 0.1.0 is upgraded by `canary upgrade`.

The 0.1.0 home is a real database that release made (its demo, then flag,
trust, retire and issue), kept as SQL in `tests/data/home-0.1.0.sql`. Until
it is upgraded every command refuses it with one sentence; afterwards its
evidence reads as before, in the typed form. The same migrations run on a
real PostgreSQL, and a migrated database has exactly the tables the code
declares.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from commands import Canary, assert_one_sentence
from homes import fill_home
from sqlmodel import SQLModel

from canary.report import EVIDENCE_SHOWN
from data import schema
from data.database import Store, sqlite_url
from data.summary import consent_histories, kept_findings

RELEASE_HOME = Path(__file__).parent / "data" / "home-0.1.0.sql"
CONFIG = 'domains = ["aliases.example.net"]\n'


@pytest.fixture
def old_home(tmp_path: Path) -> Canary:
    """A home whose database release 0.1.0 made, untouched since."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "canary.toml").write_text(CONFIG)
    (home / "secret").write_bytes(b"s" * 32)
    with closing(sqlite3.connect(home / "canary.db")) as db:
        db.executescript(RELEASE_HOME.read_text(encoding="utf-8"))
    return Canary(home)


def differences(url: str) -> list[Any]:
    """What separates the database's tables from the ones the code declares."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            found: list[Any] = compare_metadata(context, SQLModel.metadata)
            return found
    finally:
        engine.dispose()


def test_the_code_knows_alembics_newest_revision() -> None:
    assert schema.head_revision() == schema.SCHEMA_REVISION
    versions = Path(schema.__file__).parent / "migrations" / "versions"
    assert tuple(sorted(p.name[:4] for p in versions.glob("0*.py"))) == schema.REVISIONS


@pytest.mark.parametrize("argv", [["report"], ["aliases"], ["issue", "Acme"], ["analyse"]])
def test_an_old_home_is_refused_until_upgraded(old_home: Canary, argv: list[str]) -> None:
    assert_one_sentence(old_home(*argv), "older Canary", "canary upgrade")


def test_upgrade_keeps_every_record_and_types_the_evidence(old_home: Canary) -> None:
    upgraded = old_home.json("upgrade")
    assert (upgraded["from"], upgraded["to"]) == (None, schema.SCHEMA_REVISION)

    report = {c["name"]: c for c in old_home.json("report")["companies"]}
    assert set(report) == {"MegaMart", "Fretwork Guitars", "Northwind Library", "Quiet Co"}
    megamart = report["MegaMart"]
    assert megamart["verdict"] == "shared"
    senders = {s["organisation"]: s for s in megamart["unexpected_senders"]}
    assert senders["dealblaster.example"]["authenticated_by"] == [
        {"method": "dkim", "domain": "dealblaster.example"}]
    assert senders["prize-centre.example"]["authenticated_by"] == [
        {"method": "none", "domain": None}]
    assert senders["prize-centre.example"]["flagged"] is True
    # Stored mail was decided again under the new model, from the raw messages and the
    # authentication recorded at receipt. Release 0.1.0 took SendGrid's signature alone
    # as MegaMart's processor; MegaMart enforces DMARC (p=reject), and any SendGrid
    # customer can sign: those six messages now count as forgeries.
    forged = senders["megamart.example"]
    assert (forged["relation"], forged["count"]) == ("spoofed", 7)
    assert not [s for s in megamart["expected_senders"] if s["relation"] == "processor"]
    assert report["Fretwork Guitars"]["domains"] == ["fretwork-mail.example", "fretwork.example"]
    (library,) = report["Northwind Library"]["aliases"]
    assert library["retire_reply"] == "reject"
    assert megamart["consent"]["opted_out"] is True
    assert sum(c["counts"]["total"] for c in report.values()) == 19

    database = old_home.home / "canary.db"
    with closing(sqlite3.connect(database)) as db:
        (esp,) = db.execute("SELECT DISTINCT esp_auth_method, esp_auth_domain FROM message "
                            "WHERE esp IS NOT NULL").fetchall()
        upstream = {r[0] for r in db.execute(
            "SELECT json_extract(authentication, '$.upstream') FROM messageevidence")}
        evidence, analysed = db.execute(
            "SELECT (SELECT count(*) FROM messageevidence), "
            "(SELECT count(*) FROM message WHERE analysed_at IS NOT NULL)").fetchone()
        tallied = db.execute("SELECT sum(count) FROM sendertally").fetchone()[0]
        decided = db.execute(
            "SELECT count(*) FROM message WHERE relation IS NOT NULL").fetchone()[0]
    assert esp == ("dkim", "sendgrid.net")
    assert upstream == {None}
    # The recorded authentication moved out of the message rows, every message's; the
    # report's tallies were made from the stored mail.
    assert evidence == analysed > 0
    assert tallied == decided > 0
    assert differences(sqlite_url(database)) == []

    again = old_home("upgrade")
    assert again.exit_code == 0 and "up to date" in again.stdout


def test_a_home_newer_than_the_code_is_refused(old_home: Canary) -> None:
    assert old_home("upgrade").exit_code == 0
    with closing(sqlite3.connect(old_home.home / "canary.db")) as db, db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    for argv in (["report"], ["upgrade"]):
        assert_one_sentence(old_home(*argv), "newer Canary")


def test_a_new_home_is_made_at_the_newest_revision(tmp_path: Path) -> None:
    canary = Canary(tmp_path / "new")
    assert canary("init", "--domain", "canary.example.org").exit_code == 0
    url = sqlite_url(canary.home / "canary.db")
    assert differences(url) == []
    store = Store(url)
    try:
        with store.writing() as session:
            assert schema.revision_of(session.connection()) == schema.SCHEMA_REVISION
    finally:
        store.dispose()


def test_the_migrations_run_on_postgresql_and_type_old_rows(postgres_url: str) -> None:
    store = Store(postgres_url)
    try:
        with store.writer_connection() as connection:
            from alembic import command

            # Release 0.1.0's tables, with one row as that release wrote it.
            command.upgrade(schema.alembic_config(connection), "0001")
            connection.commit()
            connection.execute(sa.text(
                "INSERT INTO company (id, name, slug, created_at) VALUES "
                "(1, 'Acme', 'acme', now());"
                "INSERT INTO alias (id, company_id, slug, address, issued_at) VALUES "
                "(1, 1, 'acme', 'acme.x@canary.example.org', now());"
                "INSERT INTO rawmessage (sha256, size, content) VALUES ('aa', 1, 'x');"
                "INSERT INTO message (sha256, alias_id, rcpt_to, mail_from, peer_ip, tls, "
                "received_at, attempts, authenticated_by, esp_authenticated_by, authentication, "
                "relation, sender_org) "
                "VALUES ('aa', 1, 'r', 'm', '192.0.2.1', false, now(), 1, 'SPF acme.example', "
                "NULL, '{\"source\": \"upstream:mx.example\", \"spf\": {}, \"dkim\": [], "
                "\"dmarc\": {}}', 'first_party', 'acme.example')"))
            connection.commit()
        assert store.upgrade_schema() == ("0001", schema.SCHEMA_REVISION)
        with store.reading() as session:
            row = session.connection().execute(sa.text(
                "SELECT auth_method, auth_domain, authentication FROM message "
                "JOIN messageevidence ON messageevidence.message_id = message.id")).one()
            tally = session.connection().execute(sa.text(
                "SELECT relation, organisation, count FROM sendertally")).one()
        assert (row.auth_method, row.auth_domain) == ("spf", "acme.example")
        assert '"upstream": "mx.example"' in row.authentication
        assert tuple(tally) == ("first_party", "acme.example", 1)
        store.check_schema()
    finally:
        store.dispose()
    assert differences(postgres_url) == []


def test_kept_consent_findings_are_split_by_the_upgrade(tmp_path: Path) -> None:
    """Revision 0009 keeps each consent finding's first messages apart from the rest; a
    home at 0008 keeps its findings, every message of them, through the migrations."""
    database = tmp_path / "canary.db"
    store = Store(sqlite_url(database))
    try:
        store.create_schema()
        fill_home(store, companies=4, messages=3000, seed=3, realistic=True)
        with store.reading() as session:
            connection = session.connection().connection.driver_connection
            histories = consent_histories(connection)
            every, listed = (kept_findings(connection, histories, limit)
                             for limit in (None, EVIDENCE_SHOWN))
        # Long findings, whose messages the upgrade has to split.
        assert max(f.message_count for kept in every.values() for f in kept) > EVIDENCE_SHOWN

        # The same reviews as revision 0008 kept them: every message inline.
        with closing(sqlite3.connect(database)) as db, db:
            for company_id, findings, messages in db.execute(
                    "SELECT company_id, findings, messages FROM consentreview").fetchall():
                inline = json.loads(findings)
                for finding, rest in zip(inline, json.loads(messages), strict=True):
                    finding["messages"] += rest
                    del finding["count"]
                db.execute("UPDATE consentreview SET findings = ? WHERE company_id = ?",
                           (json.dumps(inline), company_id))
            db.execute("ALTER TABLE consentreview DROP COLUMN messages")
            db.execute("UPDATE alembic_version SET version_num = '0008'")

        assert store.upgrade_schema() == ("0008", schema.SCHEMA_REVISION)
        with store.reading() as session:
            connection = session.connection().connection.driver_connection
            assert kept_findings(connection, histories) == every
            assert kept_findings(connection, histories, EVIDENCE_SHOWN) == listed
    finally:
        store.dispose()
    assert differences(sqlite_url(database)) == []
