"""The attribution accuracy corpus (`tests/corpus/`): every scenario, and the totals.

Each scenario runs through Canary's real analysis path against its own DNS
on loopback and must get the relation it is labelled with for every message,
and the verdict. The totals test fails on any false accusation (`shared` for
a company that did not let a business have the address) and on any miss (a
company that did, not called `shared`); the terminal summary prints the
exact accuracy.
"""

from __future__ import annotations

import pytest
from corpus import Outcome, Scenario, all_scenarios, run

from canary.report import Verdict

SCENARIOS = all_scenarios()
RESULTS: dict[str, tuple[Scenario, Outcome]] = {}
"""Filled as the scenarios run; read by the totals test and the terminal summary."""


def _outcome(scenario: Scenario) -> Outcome:
    if scenario.name not in RESULTS:
        RESULTS[scenario.name] = (scenario, run(scenario))
    return RESULTS[scenario.name][1]


def test_the_corpus_is_large_and_labelled() -> None:
    assert len(SCENARIOS) >= 120
    for scenario in SCENARIOS:
        assert len(scenario.relations) == len(scenario.mail), scenario.name
        assert scenario.reason.endswith(".") and len(scenario.reason) > 20, scenario.name
        assert scenario.guilty == (scenario.verdict is Verdict.SHARED), (
            f"{scenario.name}: only a guilty company is shared, and every guilty one is")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    outcome = _outcome(scenario)
    assert outcome.report is not None
    got = [r.value if r else "pending" for r in outcome.relations]
    expected = [r.value for r in scenario.relations]
    assert got == expected, f"{scenario.reason}\nCanary said: {outcome.reasons}"
    assert outcome.report.verdict is scenario.verdict, (
        f"{scenario.reason}\nCanary said: {outcome.report.confidence_reason}")
    for word in scenario.mentions:
        assert any(word in reason for reason in outcome.reasons), outcome.reasons


def test_no_false_accusation_and_no_miss() -> None:
    for scenario in SCENARIOS:
        _outcome(scenario)
    false = [name for name, (s, o) in RESULTS.items()
             if o.report and o.report.verdict is Verdict.SHARED and not s.guilty]
    missed = [name for name, (s, o) in RESULTS.items()
              if o.report and s.guilty and o.report.verdict is not Verdict.SHARED]
    assert false == [], f"false accusations: {false}"
    assert missed == [], f"missed: {missed}"


def accuracy() -> str | None:
    """One line for the terminal summary, once the corpus ran."""
    if not RESULTS:
        return None
    messages = sum(len(s.relations) for s, _ in RESULTS.values())
    right = sum(got == want for s, o in RESULTS.values()
                for got, want in zip(o.relations, s.relations, strict=False))
    verdicts = sum(o.report is not None and o.report.verdict is s.verdict
                   for s, o in RESULTS.values())
    false = sum(o.report is not None and o.report.verdict is Verdict.SHARED and not s.guilty
                for s, o in RESULTS.values())
    missed = sum(o.report is not None and s.guilty and o.report.verdict is not Verdict.SHARED
                 for s, o in RESULTS.values())
    return (f"attribution corpus: {len(RESULTS)} scenarios; relations {right}/{messages} "
            f"({right / max(messages, 1):.1%}); verdicts {verdicts}/{len(RESULTS)} "
            f"({verdicts / len(RESULTS):.1%}); false accusations {false}; missed {missed}")
