"""`canary aliases` reads the alias directory with plain SQL.

On the default SQLite home it needs only the standard library's sqlite3, so
the command starts without loading SQLAlchemy; with `--db` (and on
PostgreSQL) the same SQL runs through SQLAlchemy's connection. Both ways
must list the same thing, and what they list must match the stored rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from commands import Canary, build_demo_home, issue, run_counting_imports
from factories import make_message
from mailflow import rows, store_mail
from sqlalchemy import update
from sqlmodel import col, select

from canary.relation import Relation
from data.database import Store, sqlite_url
from data.home import Home
from data.models import Alias, Company, CompanyDomain, Message


def expected_listing(store: Store) -> dict[str, dict[str, Any]]:
    """Each alias's company, domains and counts, worked out from the rows in Python."""
    companies = {c["id"]: c for c in rows(store, Company)}
    domains: dict[int, list[str]] = {}
    for d in rows(store, CompanyDomain):
        domains.setdefault(d["company_id"], []).append(d["domain"])
    messages = rows(store, Message)
    listing = {}
    for alias in rows(store, Alias):
        company = companies[alias["company_id"]]
        mine = [m for m in messages if m["alias_id"] == alias["id"]]
        listing[alias["address"]] = {
            "company": company["name"], "note": company["note"],
            "domains": sorted(domains.get(company["id"], [])),
            "messages": len(mine),
            "unexpected": sum(1 for m in mine
                              if m["relation"] and not Relation(m["relation"]).expected),
            "retired": alias["retired_at"] is not None,
        }
    return listing


def as_listed(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["address"]: {"company": a["company"], "note": a["note"], "domains": a["domains"],
                           "messages": a["messages"], "unexpected": a["unexpected"],
                           "retired": a["retired_at"] is not None}
            for a in document["aliases"]}


def test_the_sqlite_home_lists_the_same_as_through_sqlalchemy_and_as_stored(
    tmp_path: Path,
) -> None:
    home = build_demo_home(tmp_path)
    canary = Canary(home)
    first = canary.json("aliases")["aliases"][0]["company"]
    assert canary("rotate", first).exit_code == 0  # a retired alias, and two for one company
    quick = canary.json("aliases")
    through_sqlalchemy = canary.json("aliases", "--db", sqlite_url(home / "canary.db"))
    assert quick == through_sqlalchemy

    store = Home(home).store()
    try:
        expected = expected_listing(store)
    finally:
        store.dispose()
    assert as_listed(quick) == expected
    # The demo home has every kind of row the directory reads.
    assert any(a["unexpected"] for a in expected.values())
    assert any(a["retired"] for a in expected.values())
    assert any(a["domains"] for a in expected.values())
    assert any(a["note"] for a in expected.values())
    companies = [a["company"] for a in quick["aliases"]]
    assert companies == sorted(companies)


def test_canary_aliases_starts_without_sqlalchemy(tmp_path: Path) -> None:
    canary = Canary(tmp_path / "home")
    assert canary("init", "--domain", "canary.example.org").exit_code == 0
    address = issue(canary, "Acme", "--domain", "acme.example")
    code, heavy, stdout = run_counting_imports(canary, "aliases", "--json")
    assert (code, heavy) == (0, [])
    (listed,) = json.loads(stdout)["aliases"]
    assert (listed["company"], listed["address"], listed["domains"]) == (
        "Acme", address, ["acme.example"])


@pytest.mark.parametrize("command", [("aliases",), ("show", "Acme"), ("report",)])
def test_an_outdated_sqlite_home_is_refused_by_the_quick_reading(
    tmp_path: Path, command: tuple[str, ...],
) -> None:
    canary = Canary(tmp_path / "home")
    assert canary("init", "--domain", "canary.example.org").exit_code == 0
    issue(canary, "Acme")
    store = Home(canary.home).store()
    try:
        with store.writing() as session:
            session.connection().exec_driver_sql("UPDATE alembic_version SET version_num='0006'")
    finally:
        store.dispose()
    refused = canary(*command)
    assert refused.exit_code == 1
    assert "canary upgrade" in refused.stderr


def test_the_directory_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    canary = Canary(tmp_path / "home")
    assert canary("init", "--domain", "canary.example.org", "--db", postgres_url).exit_code == 0
    acme = issue(canary, "Acme", "--domain", "acme.example", "--note", "loyalty card")
    issue(canary, "Beta Books")
    assert canary("retire", "Beta Books").exit_code == 0
    store = Store(postgres_url)
    try:
        for sender in ("news@acme.example", "a@dealblaster.example", "b@dealblaster.example"):
            store_mail(store, acme, make_message(sender=sender), datetime.now(UTC))
        with store.writing() as session:
            ids = sorted(session.exec(select(Message.id)).all())
            for message_id, relation in zip(ids, (Relation.FIRST_PARTY, Relation.THIRD_PARTY),
                                            strict=False):
                session.execute(update(Message).where(col(Message.id) == message_id)
                                .values(relation=relation.value))
        expected = expected_listing(store)
    finally:
        store.dispose()
    listed = canary.json("aliases")
    assert as_listed(listed) == expected
    assert expected[acme]["messages"] == 3 and expected[acme]["unexpected"] == 1
    (beta,) = [a for a in listed["aliases"] if a["company"] == "Beta Books"]
    assert beta["retired_at"] is not None and beta["retire_reply"] == "accept"
    for alias in listed["aliases"]:
        issued = datetime.fromisoformat(alias["issued_at"].replace("Z", "+00:00"))
        assert abs((datetime.now(UTC) - issued).total_seconds()) < 300
