"""When analysis itself fails, the fault is Canary's, never evidence about the sender.

A stored message whose bytes cannot be read back (here: its compressed row
damaged on disk, as a failing disk or a bad restore would) must not be
classified at all, must not make the company `leaked`, must not stop the
analysis of other mail, and must not be retried in a tight loop: it is tried
again after a pause, set aside after a few failures, and counted in the report.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from commands import Canary
from conftest import RunningListener, issue, start_listener
from factories import make_message
from mailflow import analyse, rows, sql, store_mail, wait_for

from data.database import Store
from data.home import Home
from data.models import Message
from smtp_listener.analysis import MAX_FAILURES


def test_a_damaged_stored_message_is_canarys_fault_not_the_senders(
    home: Home, store: Store, empty_dns: str,
) -> None:
    acme = issue(home, store, "Acme", "acme.example").address
    good = make_message(sender="news@acme.example", to=acme, subject="fine")
    bad = make_message(sender="news@acme.example", to=acme, subject="damaged")
    store_mail(store, acme, bad, datetime.now(UTC) - timedelta(minutes=5))
    store_mail(store, acme, good, datetime.now(UTC) - timedelta(minutes=4))
    sql(home, "UPDATE rawmessage SET content = X'00112233' WHERE sha256 = "
              "(SELECT sha256 FROM message ORDER BY id LIMIT 1)")

    clock = [datetime.now(UTC)]
    assert analyse(store, empty_dns, lambda: clock[0]) == 2
    damaged, fine = sorted(rows(store, Message), key=lambda m: m["id"])
    assert fine["relation"] == "first_party", "the damaged row did not stop the rest"
    assert damaged["relation"] is None and damaged["analysed_at"] is None
    assert damaged["failures"] == 1 and "cannot be read back" in damaged["problem"]
    assert damaged["retry_at"] > clock[0], "tried again after a pause, not in a tight loop"
    assert analyse(store, empty_dns, lambda: clock[0]) == 0, "not due again yet"

    for _ in range(MAX_FAILURES - 1):
        clock[0] += timedelta(days=1)
        assert analyse(store, empty_dns, lambda: clock[0]) == 1
    (damaged,) = [m for m in rows(store, Message) if m["id"] == damaged["id"]]
    assert damaged["failures"] == MAX_FAILURES
    assert damaged["set_aside_at"] is not None and damaged["retry_at"] is None
    clock[0] += timedelta(days=30)
    assert analyse(store, empty_dns, lambda: clock[0]) == 0, "set aside for good"

    document = Canary(home.path).json("report")
    (company,) = document["companies"]
    assert company["verdict"] == "clean", "a fault of Canary's is not a leak"
    assert company["counts"]["failed"] == 1
    assert company["counts"]["pending"] == 0
    assert company["unexpected_senders"] == []
    table = Canary(home.path)("report")
    assert "set aside" in table.stdout and "Canary's fault" in table.stdout


def test_the_listeners_analyst_survives_a_damaged_row(home: Home, store: Store) -> None:
    acme = issue(home, store, "Acme", "acme.example").address
    store_mail(store, acme, make_message(sender="news@acme.example", to=acme, subject="bad"))
    sql(home, "UPDATE rawmessage SET content = X'00'")
    running: RunningListener = start_listener(home, store)
    try:
        wait_for(lambda: rows(store, Message)[0]["failures"] == 1, "the first failed attempt")
        # The analyst is still alive: new mail is analysed.
        store_mail(store, acme, make_message(sender="news@acme.example", to=acme,
                                             subject="later"))
        running.settle()
        later = [m for m in rows(store, Message) if m["relation"] == "first_party"]
        assert len(later) == 1
    finally:
        running.stop()


def test_a_company_whose_mail_all_waits_for_analysis_is_pending_not_quiet(
    home: Home, store: Store,
) -> None:
    acme = issue(home, store, "Acme", "acme.example").address
    store_mail(store, acme, make_message(sender="news@acme.example", to=acme))
    (company,) = Canary(home.path).json("report")["companies"]
    assert company["verdict"] == "pending"
    assert company["confidence"] == "low"
    assert company["counts"]["pending"] == 1
    assert "not analysed yet" in company["confidence_reason"]


def test_a_result_the_database_refuses_does_not_hold_back_the_rest(
    home: Home, store: Store, empty_dns: str,
) -> None:
    """The database refuses one message's result (here a trigger does, as a constraint
    would a value it cannot store): the results analysed with it are saved all the same,
    and the refused one counts as a failed analysis, tried again and then set aside,
    instead of stopping analysis at that message for good."""
    acme = issue(home, store, "Acme", "acme.example").address
    for subject in ("first", "refused", "third"):
        store_mail(store, acme, make_message(sender="news@acme.example", to=acme,
                                             subject=subject))
    sql(home, "CREATE TRIGGER refuse BEFORE UPDATE OF relation ON message "
              "WHEN NEW.relation IS NOT NULL AND NEW.subject = 'refused' "
              "BEGIN SELECT RAISE(ABORT, 'refused'); END")

    clock = [datetime.now(UTC)]
    assert analyse(store, empty_dns, lambda: clock[0]) == 3
    first, refused, third = sorted(rows(store, Message), key=lambda m: m["id"])
    assert first["relation"] == third["relation"] == "first_party"
    assert first["subject"] == "first" and third["subject"] == "third"
    assert refused["relation"] is None and refused["failures"] == 1
    assert refused["problem"].startswith("saving the analysis failed: IntegrityError")
    assert refused["retry_at"] > clock[0]

    for _ in range(MAX_FAILURES - 1):
        clock[0] += timedelta(days=1)
        assert analyse(store, empty_dns, lambda: clock[0]) == 1
    (refused,) = [m for m in rows(store, Message) if m["id"] == refused["id"]]
    assert refused["set_aside_at"] is not None and refused["failures"] == MAX_FAILURES
    (company,) = Canary(home.path).json("report")["companies"]
    assert company["counts"]["failed"] == 1 and company["counts"]["pending"] == 0
    assert company["counts"]["total"] == 3
