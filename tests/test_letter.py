"""`canary letter`: access, erasure and objection letters, pre-filled with the evidence.

The letters are written for the demo's realistic home (see `test_export`)
and checked against `canary report --json` of the same home: the alias and
its issue date, what the person agreed to, each other organisation that
mailed the alias with its first and last dates. A letter states facts; it
never accuses.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from commands import Canary, assert_one_sentence, assert_secret_absent, build_demo_home, report_json

KINDS = ("access", "erasure", "objection")
LAWS = ("gdpr", "ccpa")
ACCUSATIONS = re.compile(
    r"\b(sold|sell(s|ing)?|illegal(ly)?|unlawful(ly)?|breach(ed|es)?|violat\w*|crim\w*|"
    r"fraud\w*|spam(mer|med)?|guilty|liable)\b",
    re.IGNORECASE,
)
"""Words that claim more than Canary observed."""




@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_home(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def canary(demo_home: Path) -> Canary:
    return Canary(demo_home)


@pytest.fixture
def companies(canary: Canary) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report_json(canary)["companies"]}


def letter(canary: Canary, name: str, *options: str) -> str:
    result = canary("letter", name, *options)
    assert result.exit_code == 0, result.output
    return result.stdout


def facts_part(text: str) -> str:
    """The letter up to its requests: what it says happened."""
    head, found, _ = text.partition("I therefore request")
    assert found, "the letter makes its requests"
    return head


@pytest.mark.parametrize(("kind", "law"), list(itertools.product(KINDS, LAWS)))
def test_every_kind_of_letter_under_each_law(canary: Canary, kind: str, law: str,
                                             companies: dict[str, dict[str, Any]]) -> None:
    text = letter(canary, "MegaMart", "--kind", kind, "--law", law)
    megamart = companies["MegaMart"]
    alias = megamart["aliases"][0]
    assert text.startswith("# ")
    assert "MegaMart" in text
    assert alias["address"] in text
    assert f"On {alias['issued_at'][:10]} I gave you the email address {alias['address']}" in text
    assert ("Art." in text) if law == "gdpr" else ("Cal. Civ. Code" in text)
    assert ("CCPA" in text) == (law == "ccpa")
    numbered = re.findall(r"^\d+\. ", text, re.MULTILINE)
    assert numbered, "the letter lists what it asks for"
    assert "dealblaster.example" in text, "the evidence is in every letter"
    assert not ACCUSATIONS.search(facts_part(text)), ACCUSATIONS.search(facts_part(text))
    assert text.rstrip().endswith("[your name]")


def test_the_gdpr_access_letter_carries_the_evidence_and_asks_for_the_recipients(
    canary: Canary, companies: dict[str, dict[str, Any]],
) -> None:
    text = letter(canary, "MegaMart", "--kind", "access", "--law", "gdpr")
    megamart = companies["MegaMart"]
    third = [s for s in megamart["unexpected_senders"] if s["relation"] == "third_party"]
    assert third, "the demo's marketer"
    for sender in megamart["unexpected_senders"]:
        line = next((ln for ln in text.splitlines()
                     if ln.startswith(f"- {sender['organisation']}:")), None)
        assert line is not None, f"{sender['organisation']} is missing"
        assert f"{sender['count']} message{'' if sender['count'] == 1 else 's'}" in line
        assert f"first on {sender['first_seen'][:10]}" in line
        assert f"last on {sender['last_seen'][:10]}" in line
    marketer = next(ln for ln in text.splitlines() if ln.startswith("- dealblaster.example:"))
    assert "authenticated" in marketer and "DKIM d=dealblaster.example" in marketer
    assert "Art. 15(1)(c)" in text
    assert re.search(r"recipients.*identity", text), "asks who received the address"
    # What was agreed: the opt-out and its date.
    assert f"opted out of your marketing on {megamart['consent']['since'][:10]}" in text
    assert not ACCUSATIONS.search(text), ACCUSATIONS.search(text)


def test_the_letter_states_what_was_agreed(canary: Canary) -> None:
    fretwork = letter(canary, "Fretwork Guitars", "--kind", "access")
    assert "I agreed to receive marketing from you at most weekly." in fretwork
    assert "I never agreed to my address being passed to anyone else." in fretwork
    library = letter(canary, "Northwind Library", "--kind", "access")
    assert "I did not agree to receive marketing from you." in library
    assert "I never agreed to my address being passed to anyone else." in library


def test_a_letter_after_an_opt_out_still_says_sharing_was_never_agreed(canary: Canary) -> None:
    # MegaMart's list reached a marketer; the person had also opted out. The opt-out
    # must not crowd out the statement the whole letter rests on.
    text = letter(canary, "MegaMart", "--kind", "access")
    assert "opted out" in text
    assert "I never agreed to my address being passed to anyone else." in text


def test_a_company_with_only_its_own_mail_is_not_said_to_have_passed_it_on(
    canary: Canary, companies: dict[str, dict[str, Any]],
) -> None:
    # Fretwork Guitars mailed more often than agreed, but nobody else mailed the alias.
    fretwork = companies["Fretwork Guitars"]
    assert fretwork["verdict"] == "clean" and fretwork["findings"]
    text = letter(canary, "Fretwork Guitars", "--kind", "objection")
    assert "organisations other than you" not in text, "claims mail from others"
    # The frequency finding itself is a fact worth stating.
    assert fretwork["findings"][0]["observed"].split(" in ")[0] in text


def test_letter_for_an_unknown_company_is_refused(canary: Canary) -> None:
    assert_one_sentence(canary("letter", "Nobody", "--kind", "access"), "Nobody")


@pytest.mark.parametrize("options", [["--kind", "complaint"], ["--kind", "access", "--law",
                                                                 "hipaa"], []],
                         ids=["unknown-kind", "unknown-law", "no-kind"])
def test_letter_with_a_bad_kind_or_law_is_a_usage_error(canary: Canary,
                                                        options: list[str]) -> None:
    result = canary("letter", "MegaMart", *options)
    assert result.exit_code == 2
    assert result.stdout == ""


def test_letter_out_writes_the_file(canary: Canary, tmp_path: Path) -> None:
    out = tmp_path / "letters" / "megamart-erasure.md"
    out.parent.mkdir()
    result = canary("letter", "MegaMart", "--kind", "erasure", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == "", "the letter goes to the file, not to the screen"
    assert str(out.name) in result.stderr
    text = out.read_text(encoding="utf-8")
    undated = re.compile(r"^Date: .*$", re.MULTILINE)
    assert undated.sub("", text) == undated.sub("", letter(canary, "MegaMart", "--kind",
                                                             "erasure"))
    assert "Art. 17" in text


@pytest.mark.parametrize("name", ["MegaMart", "Fretwork Guitars", "Northwind Library"])
def test_no_letter_contains_the_secret(canary: Canary, name: str, tmp_path: Path) -> None:
    files = {}
    for kind, law in itertools.product(KINDS, LAWS):
        out = tmp_path / f"{kind}-{law}.md"
        assert canary("letter", name, "--kind", kind, "--law", law, "--out", str(out)
                      ).exit_code == 0
        files[out.name] = out.read_bytes()
    assert_secret_absent(canary.secret(), files)
