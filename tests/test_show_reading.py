"""`canary show` reads the summed-up mail with plain SQL (`data.summary`).

On the default SQLite home it needs only the standard library's sqlite3, so
the command starts without loading SQLAlchemy; with `--db` and on
PostgreSQL the same SQL runs through SQLAlchemy's connection. Every way must
show what the report computed message by message (the timeline reading,
through SQLAlchemy) shows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from commands import Canary, build_demo_home, issue, run_counting_imports
from factories import make_message
from mailflow import store_mail
from sqlalchemy import update
from sqlmodel import col, select

from canary.relation import Relation
from cli.render.documents import show_document
from data.database import Store, sqlite_url
from data.home import Home
from data.models import Message
from data.reporting import build_reports
from data.tallies import recount

LIMIT = 3


def message_by_message(store: Store) -> dict[str, dict[str, object]]:
    """`show --json --limit 3` of every company, as computed from every message."""
    with store.reading() as session:
        every = build_reports(session, timeline=True)
    return {report.name: show_document(report, LIMIT) for report in every.companies}


def test_show_on_the_sqlite_home_equals_through_sqlalchemy_and_every_message(
    tmp_path: Path,
) -> None:
    home = build_demo_home(tmp_path)
    canary = Canary(home)
    store = Home(home).store()
    try:
        expected = message_by_message(store)
    finally:
        store.dispose()
    assert len(expected) == 3
    for name, document in expected.items():
        quick = canary.json("show", name, "--limit", str(LIMIT))
        through_sqlalchemy = canary.json("show", name, "--limit", str(LIMIT),
                                         "--db", sqlite_url(home / "canary.db"))
        assert quick == through_sqlalchemy == document, name
    # The demo reaches what the reading reads: a verdict from tallies, kept consent
    # findings, a timeline cut at the limit.
    shown = [canary.json("show", name)["company"] for name in expected]
    assert {"shared", "clean"} <= {company["verdict"] for company in shown}
    assert any(company["findings"] for company in shown)
    assert any(len(expected[name]["timeline"]) == LIMIT  # type: ignore[arg-type]
               for name in expected)


def test_canary_show_and_report_start_without_sqlalchemy(tmp_path: Path) -> None:
    canary = Canary(tmp_path / "home")
    assert canary("init", "--domain", "canary.example.org").exit_code == 0
    address = issue(canary, "Acme", "--domain", "acme.example")
    code, heavy, stdout = run_counting_imports(canary, "show", "acme", "--json")
    assert (code, heavy) == (0, [])
    assert run_counting_imports(canary, "report", "--json")[:2] == (0, [])
    company = json.loads(stdout)["company"]
    assert (company["name"], company["aliases"][0]["address"]) == ("Acme", address)


def test_show_names_an_unknown_company(tmp_path: Path) -> None:
    """(An outdated home is refused like `canary aliases` refuses it: test_directory.)"""
    canary = Canary(tmp_path / "home")
    assert canary("init", "--domain", "canary.example.org").exit_code == 0
    issue(canary, "Acme")
    unknown = canary("show", "Globex")
    assert unknown.exit_code == 1
    assert unknown.stderr.strip() == (
        "Error: No company called 'Globex'; `canary aliases` lists them.")


def test_show_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    canary = Canary(tmp_path / "home")
    assert canary("init", "--domain", "canary.example.org", "--db", postgres_url).exit_code == 0
    acme = issue(canary, "Acme", "--domain", "acme.example", "--note", "loyalty card")
    store = Store(postgres_url)
    try:
        for sender in ("news@acme.example", "a@dealblaster.example", "b@dealblaster.example"):
            store_mail(store, acme, make_message(sender=sender), datetime.now(UTC))
        with store.writing() as session:  # two decided, one still waiting for analysis
            ids = sorted(session.exec(select(Message.id)).all())
            for message_id, relation, sender in zip(
                    ids, (Relation.FIRST_PARTY, Relation.THIRD_PARTY),
                    ("acme.example", "dealblaster.example"), strict=False):
                session.execute(update(Message).where(col(Message.id) == message_id)
                                .values(relation=relation.value, sender_org=sender,
                                        sender_kind="organisation", auth_method="dkim",
                                        auth_domain=sender))
            recount(session.connection())
        expected = message_by_message(store)["Acme"]
    finally:
        store.dispose()
    shown = canary.json("show", "Acme", "--limit", str(LIMIT))
    assert shown == expected
    company = shown["company"]
    assert company["verdict"] == "shared" and company["counts"]["pending"] == 1
    assert [s["organisation"] for s in company["unexpected_senders"]] == ["dealblaster.example"]
    # The report reads the same way, with the alert channels' states.
    assert canary("alerts", "add", "json://127.0.0.1:9/hook").exit_code == 0
    assert canary.json("report")["companies"] == [company]
    assert canary.json("alerts", "list")["channels"][0]["pending"] == 0
