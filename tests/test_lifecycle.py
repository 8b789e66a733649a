"""An alias's life: `canary retire` and `canary rotate`, seen from a sending server and a report.

Commands run through typer's CliRunner on a real home in tmp_path; mail is
sent with `smtplib` to the real listener on loopback, and what a sender sees
(the RCPT reply) and what the user sees (`report --json`, `aliases --json`)
are checked after each step.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from commands import ALIAS, Canary, assert_one_sentence, assert_usage_error, expected_tag
from conftest import CANARY_DOMAIN, RunningListener, start_listener
from mailflow import connect, deliver, mail, store_mail, wait_for

from data.database import Store
from data.home import Home


@pytest.fixture
def canary(home: Home) -> Canary:
    return Canary(home.path)


def issue(canary: Canary, name: str, *options: str) -> str:
    result = canary("issue", name, *options)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def rcpt(running: RunningListener, address: str) -> tuple[int, bytes]:
    with connect(running) as client:
        client.ehlo()
        client.mail("news@acme.example")
        return client.rcpt(address)


def send(running: RunningListener, address: str, subject: str) -> tuple[int, bytes]:
    """Deliver one message from Acme; return the final reply (RCPT's if it was refused)."""
    replies, data = deliver(running, [address],
                            mail(sender="news@acme.example", to=address, subject=subject))
    return data if data is not None else replies[0]


def company(canary: Canary, name: str) -> dict[str, Any]:
    (found,) = canary.json("report", "--company", name)["companies"]
    assert isinstance(found, dict)
    return found


def aliases(canary: Canary) -> dict[str, dict[str, Any]]:
    return {a["address"]: a for a in canary.json("aliases")["aliases"]}


def today() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d}"


# --- retire -------------------------------------------------------------------------------------


def test_retire_with_reject_refuses_mail_at_rcpt(canary: Canary, store: Store,
                                                 listener: RunningListener) -> None:
    acme = issue(canary, "Acme", "--domain", "acme.example")
    # Mail from before the retirement (stored directly, so the listener has not cached
    # the alias as accepted; see the next tests for a listener that has).
    store_mail(store, acme, mail(sender="news@acme.example", to=acme), datetime.now(UTC))

    result = canary("retire", "Acme", "--reply", "reject")
    assert result.exit_code == 0, result.output
    assert acme in result.stdout and "550" in result.stdout

    code, text = rcpt(listener, acme)
    assert code == 550
    assert text.startswith(b"5.7.1")
    assert b"retired" in text.lower()
    with connect(listener) as client:
        client.ehlo()
        client.mail("news@acme.example")
        assert client.rcpt(acme)[0] == 550
        assert client.docmd("DATA")[0] == 503, "nothing was accepted, so no DATA"

    found = company(canary, "Acme")
    assert found["counts"]["total"] == 1, "only the mail from before the retirement"
    (alias,) = found["aliases"]
    assert alias["address"] == acme
    assert alias["retired_at"].startswith(today())
    assert alias["retire_reply"] == "reject"
    # Refusing a retired alias is not a probe of a never-issued address.
    assert canary.json("report")["probes"] == 0


def test_a_fresh_listener_refuses_a_retired_alias_from_the_first_rcpt(
    canary: Canary, home: Home, store: Store,
) -> None:
    acme = issue(canary, "Acme")
    assert canary("retire", "Acme", "--reply", "reject").exit_code == 0
    running = start_listener(home, store)
    try:
        code, text = rcpt(running, acme)
    finally:
        running.stop()
    assert (code, text[:5]) == (550, b"5.7.1")
    assert b"retired" in text.lower()


def test_retirement_reaches_a_running_listener_within_its_cache_time(
    canary: Canary, home: Home, store: Store,
) -> None:
    # The listener caches "this alias exists" briefly; a short cache keeps the test fast.
    acme = issue(canary, "Acme")
    running = start_listener(home, store, alias_cache_seconds=0.3)
    try:
        assert rcpt(running, acme)[0] == 250  # now cached as accepted
        assert canary("retire", "Acme", "--reply", "reject").exit_code == 0

        def refused() -> tuple[int, bytes] | None:
            reply = rcpt(running, acme)
            return reply if reply[0] == 550 else None

        reply = wait_for(refused, "RCPT to the retired alias to be refused", timeout=5)
    finally:
        running.stop()
    assert reply is not None and reply[1].startswith(b"5.7.1")


def test_retire_with_accept_keeps_recording_and_is_the_default(
    canary: Canary, listener: RunningListener,
) -> None:
    acme = issue(canary, "Acme", "--domain", "acme.example")
    result = canary("retire", "Acme")
    assert result.exit_code == 0, result.output
    assert acme in result.stdout and "still recorded" in result.stdout

    assert send(listener, acme, "after retirement")[0] == 250

    found = company(canary, "Acme")
    assert found["counts"]["total"] == 1
    (alias,) = found["aliases"]
    assert (alias["messages"], alias["retire_reply"]) == (1, "accept")
    assert alias["retired_at"].startswith(today())
    listed = aliases(canary)[acme]
    assert (listed["retire_reply"], listed["messages"]) == ("accept", 1)


def test_an_unretired_alias_shows_no_retirement(canary: Canary) -> None:
    acme = issue(canary, "Acme")
    (alias,) = company(canary, "Acme")["aliases"]
    assert (alias["address"], alias["retired_at"], alias["retire_reply"]) == (acme, None, None)
    assert aliases(canary)[acme]["retired_at"] is None


@pytest.mark.parametrize("command", ["retire", "rotate"])
def test_an_unknown_reply_policy_is_refused_and_changes_nothing(canary: Canary,
                                                                command: str) -> None:
    acme = issue(canary, "Acme")
    assert_usage_error(canary(command, "Acme", "--reply", "maybe"), "--reply", "accept",
                       "reject")
    assert list(aliases(canary)) == [acme]
    assert aliases(canary)[acme]["retired_at"] is None


def test_retiring_twice_is_refused_in_one_sentence(canary: Canary) -> None:
    issue(canary, "Acme")
    assert canary("retire", "Acme", "--reply", "reject").exit_code == 0
    assert_one_sentence(canary("retire", "Acme"), "Acme")
    (alias,) = company(canary, "Acme")["aliases"]
    assert alias["retire_reply"] == "reject", "the first retirement's policy stands"


@pytest.mark.parametrize("command", ["retire", "rotate"])
def test_retire_or_rotate_of_an_unknown_company_is_refused(canary: Canary,
                                                           command: str) -> None:
    issue(canary, "Acme")
    assert_one_sentence(canary(command, "Nobody"), "Nobody")


# --- rotate ----------------------------------------------------------------------------------


def test_rotate_issues_a_fresh_alias_and_keeps_the_old_ones_mail(
    canary: Canary, listener: RunningListener,
) -> None:
    old = issue(canary, "Acme", "--domain", "acme.example")
    assert send(listener, old, "to the first alias")[0] == 250

    result = canary("rotate", "Acme")
    assert result.exit_code == 0, result.output
    new = result.stdout.strip()
    assert result.stdout.count("\n") == 1, "one address on stdout: scripts capture it"
    match = ALIAS.match(new)
    assert match, new
    assert (match["slug"], match["domain"]) == ("acme-2", CANARY_DOMAIN)
    assert match["tag"] == expected_tag(canary.secret(), "acme-2")
    assert old in result.stderr

    listed = aliases(canary)
    assert list(listed) == [old, new]
    assert listed[old]["retired_at"] is not None and listed[old]["retire_reply"] == "accept"
    assert listed[new]["retired_at"] is None
    assert listed[new]["domains"] == ["acme.example"]

    # The new alias takes mail; the old one, retired with `accept`, still records it.
    assert send(listener, new, "to the fresh alias")[0] == 250
    assert send(listener, old, "still to the first")[0] == 250

    found = company(canary, "Acme")
    assert [a["address"] for a in found["aliases"]] == [old, new]
    assert {a["address"]: a["messages"] for a in found["aliases"]} == {old: 2, new: 1}
    assert found["counts"]["total"] == 3


def test_rotate_with_reject_refuses_the_old_alias_and_accepts_the_new(
    canary: Canary, listener: RunningListener,
) -> None:
    old = issue(canary, "Acme")
    result = canary("rotate", "Acme", "--reply", "reject")
    assert result.exit_code == 0, result.output
    new = result.stdout.strip()
    code, text = rcpt(listener, old)
    assert (code, text[:5]) == (550, b"5.7.1")
    assert rcpt(listener, new)[0] == 250
    assert aliases(canary)[old]["retire_reply"] == "reject"


def test_rotate_when_the_only_alias_is_already_retired_still_issues_one(canary: Canary) -> None:
    old = issue(canary, "Acme")
    assert canary("retire", "Acme", "--reply", "reject").exit_code == 0
    result = canary("rotate", "Acme")
    assert result.exit_code == 0, result.output
    new = result.stdout.strip()
    assert ALIAS.match(new) and new.startswith("acme-2.")
    assert old not in result.stderr, "nothing was left to retire"
    listed = aliases(canary)
    assert list(listed) == [old, new]
    assert listed[old]["retire_reply"] == "reject", "the earlier retirement is kept as it was"
    assert listed[new]["retired_at"] is None


def test_rotating_again_gives_the_next_number(canary: Canary) -> None:
    first = issue(canary, "Acme")
    second = canary("rotate", "Acme").stdout.strip()
    third = canary("rotate", "acme").stdout.strip()
    assert [re.sub(r"\..*", "", a) for a in (first, second, third)] == ["acme", "acme-2",
                                                                        "acme-3"]
    listed = aliases(canary)
    assert [a["retired_at"] is None for a in listed.values()] == [False, False, True]
