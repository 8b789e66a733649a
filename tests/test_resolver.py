"""The resolver under parallel analysis: a question in flight is asked once.

Analysis runs several messages at once (`smtp_listener.analysis.PARALLEL`),
and a burst of one company's mail asks the same SPF, DKIM and DMARC
questions many times over. The resolver sends each to the (real, loopback)
DNS server once and lets the others wait for that answer, including when
the server stays silent: a burst must not multiply the timeouts.
"""

from __future__ import annotations

import threading

import pytest

from canary.authentication import DnsAnswer
from smtp_listener.resolver import DnsTemporaryFailure, Resolver
from smtp_listener.testing.zone_server import Zones

THREADS = 8


def ask_together(resolver: Resolver, name: str, rdtype: str) -> list[object]:
    """Ask the same question from THREADS threads at the same moment; each one's outcome."""
    start = threading.Barrier(THREADS)
    outcomes: list[object] = [None] * THREADS

    def ask(slot: int) -> None:
        start.wait()
        try:
            outcomes[slot] = resolver.lookup(name, rdtype)
        except DnsTemporaryFailure as error:
            outcomes[slot] = error

    threads = [threading.Thread(target=ask, args=(slot,)) for slot in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.fixture
def zones() -> Zones:
    zones = Zones()
    zones.add_txt("shop.example", "v=spf1 ip4:198.51.100.10 -all")
    zones.add_timeout("slow.example")
    return zones


def test_one_question_asked_by_many_threads_goes_to_the_server_once(
    resolver: Resolver,
) -> None:
    outcomes = ask_together(resolver, "shop.example", "TXT")
    assert resolver.queries == 1
    assert all(isinstance(answer, DnsAnswer) for answer in outcomes), outcomes
    assert {answer.records for answer in outcomes if isinstance(answer, DnsAnswer)} == {
        ("v=spf1 ip4:198.51.100.10 -all",)}


def test_a_silent_server_costs_one_timeout_not_one_per_message(resolver: Resolver) -> None:
    outcomes = ask_together(resolver, "slow.example", "TXT")
    assert all(isinstance(outcome, DnsTemporaryFailure) for outcome in outcomes), outcomes
    assert resolver.queries == 1, "every waiting thread got the one remembered failure"
