"""The report the database sums up is the report of every message.

`canary report` (and alerts, delivery tagging and triage) read the mail
summed up by company, sender and relation in a few set-based queries;
`show` and the HTML export read every message. Whatever the mail, both must
give the same verdicts, confidence, counts, senders, examples, findings and
brokers: the JSON documents are compared whole, on real SQLite files and
on a real PostgreSQL, over homes generated from many seeds and after the
person flags senders and changes consent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from homes import START, fill_home
from sqlmodel import SQLModel

from canary.consent import Frequency
from canary.report import EVIDENCE_SHOWN, SENDERS_LISTED, report_document
from cli.render.documents import show_document
from data.database import Store
from data.registry import flag_sender, record_consent
from data.reporting import build_reports
from data.summary import company_view

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ACCUSABLE_KINDS = {"organisation", "merchant"}
CITED_FIRST = ["spoofed", "impersonation", "third_party", "backscatter", "unverified"]


def capped(company: dict[str, Any], limit: int) -> dict[str, Any]:
    """The company as `canary report` lists it: every accused sender (an identifiable
    business as a third party) and the first `limit` others of each list, forged and
    look-alike mail before spam, with the rest counted."""
    shown, unlisted = dict(company), {}
    for name in ("unexpected", "expected", "unproven"):
        senders = company[f"{name}_senders"]
        accused = {index for index, s in enumerate(senders)
                   if s["relation"] == "third_party" and s["kind"] in ACCUSABLE_KINDS}
        others = [index for index in range(len(senders)) if index not in accused]
        if name == "unexpected":
            others.sort(key=lambda index: CITED_FIRST.index(senders[index]["relation"]))
        chosen = accused | set(others[:limit])
        shown[f"{name}_senders"] = [s for index, s in enumerate(senders) if index in chosen]
        unlisted[name] = max(len(others) - limit, 0)
    shown["unlisted_senders"] = unlisted
    return shown


def both_documents(store: Store, names: tuple[str, ...] = ()) -> tuple[Any, Any]:
    with store.reading() as session:
        summed = build_reports(session, names, timeline=False)
        every = build_reports(session, names, timeline=True)
    assert all(report.timeline == () for report in summed.companies)
    return (report_document(summed.companies, NOW, summed.probes),
            report_document(every.companies, NOW, every.probes))


def assert_same_reports(store: Store) -> dict[str, Any]:
    summed, every = both_documents(store)
    for mine, theirs in zip(summed["companies"], every["companies"], strict=True):
        assert mine == theirs, mine["name"]
    assert summed == every
    # `canary report` reads only the first few messages of each finding, and counts the rest.
    with store.reading() as session:
        listed = build_reports(session, timeline=False, listed=EVIDENCE_SHOWN)
        whole = build_reports(session, timeline=True)
    assert (report_document(listed.companies, NOW, listed.probes, evidence_limit=EVIDENCE_SHOWN)
            == report_document(whole.companies, NOW, whole.probes,
                               evidence_limit=EVIDENCE_SHOWN))
    # `canary report` lists a few senders of each list, and counts the rest.
    for limit in (1, SENDERS_LISTED):
        with store.reading() as session:
            few = build_reports(session, timeline=False, senders=limit)
            few_every = build_reports(session, timeline=True, senders=limit)
        document = report_document(few.companies, NOW, few.probes)
        assert document == report_document(few_every.companies, NOW, few_every.probes)
        assert document["companies"] == [capped(c, limit) for c in every["companies"]]
        assert document["brokers"] == every["brokers"]
        for company in document["companies"]:
            if company["verdict"] == "shared":  # the business the reason names is listed
                named = company["confidence_reason"].split(":")[0]
                assert named in {s["organisation"] for s in company["unexpected_senders"]}
    # One company asked for by name reads only its own mail, and still agrees.
    name = every["companies"][-1]["name"]
    one, one_every = both_documents(store, (name,))
    assert one["companies"] == one_every["companies"]
    return every


def new_store(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    store.create_schema()
    return store


@pytest.mark.parametrize("seed", range(12))
def test_summed_reports_equal_message_by_message_reports_on_sqlite(
    tmp_path: Path, seed: int,
) -> None:
    store = new_store(tmp_path / "canary.db")
    try:
        fill_home(store, companies=6, messages=400, seed=seed)
        document = assert_same_reports(store)
        # The generated mail reaches every part of the report, or the comparison says little.
        companies = document["companies"]
        assert {c["verdict"] for c in companies} & {"shared", "leaked"}
        assert any(c["counts"]["pending"] and c["counts"]["failed"] for c in companies)
        assert any(c["findings"] for c in companies)
        assert any(len(s["authenticated_by"]) > 1
                   for c in companies for s in c["unexpected_senders"])

        # The person acts on the report; the two ways of reading it still agree.
        with store.writing() as session:
            flag_sender(session, "Company 1", "dealblaster.example", NOW)
            record_consent(session, "Company 2", marketing=True, frequency=Frequency.MONTHLY,
                           now=START + timedelta(hours=1))
            record_consent(session, "Company 3", marketing=False, frequency=None,
                           now=START + timedelta(days=3))
        assert_same_reports(store)
    finally:
        store.dispose()


def test_summed_reports_equal_message_by_message_reports_on_postgresql(
    postgres_url: str,
) -> None:
    store = Store(postgres_url)
    store.create_schema()
    try:
        for seed in range(4):
            with store.writer_connection() as connection, connection.begin():
                for table in reversed(SQLModel.metadata.sorted_tables):
                    connection.execute(table.delete())
            fill_home(store, companies=6, messages=400, seed=seed)
            assert_same_reports(store)
    finally:
        store.dispose()


@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_show_reads_only_the_latest_messages_and_shows_the_same(
    tmp_path: Path, limit: int,
) -> None:
    """`canary show` sums the mail up like the report and reads only the latest `--limit`
    messages for its timeline: the same document as from every message."""
    store = new_store(tmp_path / "canary.db")
    try:
        fill_home(store, companies=3, messages=300, seed=limit)
        with store.reading() as session:
            (every,) = build_reports(session, ["Company 2"]).companies
            latest = company_view(session.connection().connection.driver_connection,
                                  "Company 2", limit)
        shown = show_document(latest, limit)
        assert shown == show_document(every, limit)
        assert len(shown["timeline"]) == min(limit, shown["timeline_total"])
        assert shown["timeline_total"] > 50
    finally:
        store.dispose()


def test_report_lists_the_first_messages_of_each_finding_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    """Consent findings kept from before: `canary report` reads only the messages it lists."""
    store = new_store(tmp_path / "canary.db")
    try:
        fill_home(store, companies=10, messages=3000, seed=3, realistic=True)
        every = assert_same_reports(store)
        counts = [f["message_count"] for c in every["companies"] for f in c["findings"]]
        assert max(counts) > EVIDENCE_SHOWN
    finally:
        store.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_report_reads_one_moment_while_the_person_acts(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """A report reads its counts, senders and flags in several statements. What the person
    commits meanwhile is in the next report, never in half of this one (on PostgreSQL each
    statement would otherwise see its own moment: counts of before, senders of after)."""
    url = (f"sqlite:///{tmp_path / 'canary.db'}" if backend == "sqlite"
           else request.getfixturevalue("postgres_url"))
    store = Store(url)
    store.create_schema()
    try:
        fill_home(store, companies=8, messages=2000, seed=3, realistic=True)
        before, _ = both_documents(store)
        shared = next(c for c in before["companies"] if c["verdict"] == "shared")
        broker = next(s["organisation"] for s in shared["unexpected_senders"]
                      if s["relation"] == "third_party" and s["kind"] in ACCUSABLE_KINDS)
        with store.reading() as session:
            first = build_reports(session, (), timeline=False)
            with store.writing() as writer:  # the person flags the broker meanwhile
                flag_sender(writer, shared["name"], broker, NOW)
            again = build_reports(session, (), timeline=False)
        assert (report_document(again.companies, NOW, again.probes)
                == report_document(first.companies, NOW, first.probes) == before)
        after, _ = both_documents(store)
        (company,) = [c for c in after["companies"] if c["name"] == shared["name"]]
        assert {s["flagged"] for s in company["unexpected_senders"]
                if s["organisation"] == broker} == {True}
    finally:
        store.dispose()
