"""`canary report` as a table stays readable with many companies.

One summary line per company; the evidence only for the companies that need
attention (shared, leaked, or a consent finding), the first `DETAILS_SHOWN` of
them unless `--all`; the summary lists the first `OTHERS_LISTED` of the rest.
Reports are built from plain values and drawn on a recording console, and the
option is checked end to end through the real command.
"""

from __future__ import annotations

import io
import json
import os
import re
from datetime import UTC, datetime, timedelta

import pytest
from commands import Canary, issue, runner
from factories import dkim, make_message
from mailflow import analyse, store_mail
from rich.console import Console

from canary.consent import Consent
from canary.relation import Relation
from canary.report import (
    SENDERS_LISTED,
    AliasView,
    CompanyFacts,
    CompanyReport,
    Sighting,
    company_report,
)
from cli.main import app
from cli.render.terminal import DETAILS_SHOWN, OTHERS_LISTED, render_report
from data.database import Store
from data.home import Home

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KINDS = ("shared", "leaked", "finding", "clean", "quiet")


def seen(n: float, relation: Relation, org: str, slug: str, *, marketing: bool = False,
         dkim_signed: bool = False) -> Sighting:
    return Sighting(received_at=T0 + timedelta(days=n), alias_slug=slug, relation=relation,
                    sender_org=org, message_id=f"<{n}@{org}>", sha256=f"{int(n * 100):064x}",
                    marketing=marketing, authenticated_by=dkim(org) if dkim_signed else None)


def company(name: str, kind: str, sender: str = "dealblaster.example") -> CompanyReport:
    """A company whose mail makes it `kind`: shared, leaked, finding (clean, but marketing
    after the opt-out), clean or quiet."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    own = seen(1, Relation.FIRST_PARTY, "acme.example", slug)
    sightings = {
        "shared": (own, seen(3, Relation.THIRD_PARTY, sender, slug, dkim_signed=True)),
        "leaked": (own, seen(3, Relation.UNVERIFIED, sender, slug)),
        "finding": (own, *(seen(n, Relation.FIRST_PARTY, "acme.example", slug, marketing=True)
                           for n in (20, 21))),
        "clean": (own,),
        "quiet": (),
    }[kind]
    consent = (Consent(T0, False, None, opted_out=True),) if kind == "finding" else ()
    return company_report(CompanyFacts(
        name=name, slug=slug, note=None, domains=("acme.example",),
        aliases=(AliasView(f"{slug}.abcdefgh@canary.example.org", slug, T0),),
        sightings=sightings, consent=consent))


def render(reports: list[CompanyReport], *, every: bool = False, width: int = 120) -> str:
    out = io.StringIO()
    render_report(Console(file=out, width=width), reports, 0, every=every)
    return out.getvalue()


def alias_of(r: CompanyReport) -> str:
    return r.aliases[-1].address


def summary_lines(text: str, reports: list[CompanyReport]) -> list[str]:
    """The summary's lines, title and header included: up to the last company's row."""
    lines = text.splitlines()
    rows = [i for i, line in enumerate(lines) if any(alias_of(r) in line for r in reports)]
    return lines[:max(rows) + 1]


def rows(text: str, reports: list[CompanyReport]) -> list[str]:
    """The summary row of each company listed (a company's alias is shown only there)."""
    return [line for line in text.splitlines() if any(alias_of(r) in line for r in reports)]


def mix(count: int) -> list[CompanyReport]:
    """`count` companies of every kind, worst first as the caller gives them."""
    return [company(f"{kind.title()} Co {i:03d}", kind)
            for kind in KINDS for i in range(count // len(KINDS))]


# --- the summary ---------------------------------------------------------------------------------


def test_each_company_is_one_line_of_the_summary() -> None:
    reports = mix(60)
    text = render(reports, every=True)
    for r in reports:
        (row,) = [line for line in text.splitlines() if alias_of(r) in line]
        assert r.name in row and re.search(rf"\b{r.verdict.value}\b", row), row
        assert re.search(rf"\b{r.confidence.value}\b", row), row
    assert len(summary_lines(text, reports)) <= len(reports) + 4, text


def test_the_summary_keeps_the_order_it_is_given() -> None:
    reports = mix(20)[::-1]
    assert [next(r.name for r in reports if alias_of(r) in row)
            for row in rows(render(reports, every=True), reports)] == [r.name for r in reports]


def test_the_why_names_the_first_unexpected_sender_or_the_finding() -> None:
    shared = company("Acme", "shared", sender="dealblaster.example")
    finding = company("Beta Books", "finding")
    clean = company("Fretwork Guitars", "clean")
    text = render([shared, finding, clean], width=160)
    row = dict(zip(("Acme", "Beta Books", "Fretwork Guitars"), rows(text, [shared, finding, clean]),
                   strict=True))
    assert "dealblaster.example" in row["Acme"]
    assert "after_optout" in row["Beta Books"]
    assert not re.search(r"\b(shared|leaked|after_optout|over_frequency)\b",
                         row["Fretwork Guitars"])


def test_by_default_the_summary_lists_every_company_needing_attention_and_counts_the_rest(
) -> None:
    leaked = [company(f"Leaky {i}", "leaked") for i in range(5)]
    clean = [company(f"Clean {i}", "clean") for i in range(OTHERS_LISTED + 8)]
    quiet = [company(f"Quiet {i}", "quiet") for i in range(4)]
    reports = leaked + clean + quiet
    text = render(reports)
    listed = rows(text, reports)
    assert len(listed) == 5 + OTHERS_LISTED
    assert all(any(alias_of(r) in row for row in listed) for r in leaked)
    assert not any(alias_of(r) in text for r in clean[OTHERS_LISTED:] + quiet)
    flat = " ".join(text.split())
    assert "…and 12 more companies with nothing to act on (8 clean, 4 quiet)" in flat
    assert "canary report --all" in flat

    every = render(reports, every=True)
    assert len(rows(every, reports)) == len(reports)
    assert "nothing to act on" not in every


def test_user_strings_are_shown_as_written_not_as_markup() -> None:
    evil = company("[bold]Evil[/] Corp", "leaked", sender="[red]spam.example")
    text = render([evil], width=160)
    (row,) = rows(text, [evil])
    assert "[bold]Evil[/] Corp" in row and "[red]spam.example" in row
    assert "[red]spam.example" in text.split(row, 1)[1], "the evidence shows it too"


def test_a_long_alias_on_a_narrow_terminal_is_folded_not_cut() -> None:
    address = "acme.abcdefgh@mail-aliases.a-rather-long-personal-domain.example.org"
    long = company_report(CompanyFacts(
        name="Acme", slug="acme", note=None, domains=("acme.example",),
        aliases=(AliasView(address, "acme", T0),),
        sightings=(seen(3, Relation.UNVERIFIED, "dealblaster.example", "acme"),)))
    summary = render([long], width=80).split("Acme: leaked")[0].splitlines()
    assert all(len(line) <= 80 for line in summary)
    (header,) = [line for line in summary if "Verdict" in line]
    for word in ("Confidence", "Mail", "Unexpected", "Why"):
        assert word in header, "no column is cut off"
    first_column = header.index("Verdict")
    body = summary[summary.index(header) + 2:]
    assert "leaked" in body[0] and "dealblaster" in body[0], "the reason is cut short"
    assert "".join(line[:first_column].strip() for line in body) == "Acme" + address


def test_an_empty_home_says_how_to_start() -> None:
    text = render([])
    assert "No companies yet" in text and "canary issue NAME" in text


# --- the evidence --------------------------------------------------------------------------------


def test_only_companies_needing_attention_get_their_evidence() -> None:
    shared, leaked, finding, clean, quiet = (company(f"{k.title()} Co", k) for k in KINDS)
    text = render([shared, leaked, finding, clean, quiet])
    assert "Shared Co: unexpected senders" in text
    assert "Leaked Co: unexpected senders" in text
    assert re.search(r"Shared Co: shared, confidence \w+ — ", text)
    assert "e.g. dealblaster.example" in text
    assert re.search(r"Finding Co: after_optout — 2 marketing messages", text)
    assert "Finding Co: unexpected senders" not in text
    for calm in (clean, quiet):
        assert text.count(calm.name) == 1, f"{calm.name} is only in the summary"
    assert "more companies need attention" not in text


def test_the_evidence_stops_after_the_worst_companies_and_says_how_to_see_the_rest() -> None:
    leaked = [company(f"Leaky {i:02d}", "leaked") for i in range(DETAILS_SHOWN + 5)]
    reports = [*leaked, company("Calm", "clean")]
    text = render(reports)
    assert text.count(": unexpected senders") == DETAILS_SHOWN
    for r in leaked[:DETAILS_SHOWN]:
        assert f"{r.name}: unexpected senders" in text
    for r in leaked[DETAILS_SHOWN:]:
        assert text.count(r.name) == 1, f"{r.name} is only in the summary"
    flat = " ".join(text.split())
    assert ("…and 5 more companies need attention: `canary report --all` shows them all, "
            "`canary show NAME` one.") in flat


def test_every_shows_the_evidence_of_every_company_needing_attention() -> None:
    leaked = [company(f"Leaky {i:02d}", "leaked") for i in range(DETAILS_SHOWN + 5)]
    finding = company("Loud Newsletter", "finding")
    text = render([*leaked, finding, company("Calm", "clean")], every=True)
    assert text.count(": unexpected senders") == len(leaked)
    assert "Loud Newsletter: after_optout" in text
    assert "need attention" not in text
    assert text.count("Calm") == 1


def test_a_finding_company_past_the_cap_is_counted_too() -> None:
    leaked = [company(f"Leaky {i:02d}", "leaked") for i in range(DETAILS_SHOWN)]
    text = render([*leaked, company("Loud Newsletter", "finding")])
    assert "Loud Newsletter: after_optout" not in text
    assert "…and 1 more company needs attention" in " ".join(text.split())


# --- through the command -------------------------------------------------------------------------


@pytest.fixture
def canary(home: Home) -> Canary:
    return Canary(home.path)


def test_report_help_explains_all_with_the_real_limits() -> None:
    result = runner.invoke(app, ["report", "--help"])
    assert result.exit_code == 0, result.output
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())
    assert "--all" in text
    assert f"after {DETAILS_SHOWN} such companies" in text
    assert f"lists {OTHERS_LISTED} of the others" in text
    assert f"every accused sender and {SENDERS_LISTED} others of each kind" in text


def test_report_all_shows_every_company_needing_attention(canary: Canary, store: Store) -> None:
    count = DETAILS_SHOWN + 2
    now = datetime.now(UTC)
    for i in range(count):
        address = issue(canary, f"Shop {i:02d}", "--domain", f"shop{i}.example")
        store_mail(store, address, make_message(sender="x@dealblaster.example"), now)
    issue(canary, "Quiet Co")
    analyse(store, os.environ["CANARY_DNS"])

    default = canary("report")
    assert default.exit_code == 0, default.output
    assert default.stdout.count(": unexpected senders") == DETAILS_SHOWN
    assert "…and 2 more companies need attention" in " ".join(default.stdout.split())

    every = canary("report", "--all")
    assert every.exit_code == 0, every.output
    assert every.stdout.count(": unexpected senders") == count
    assert "need attention" not in every.stdout
    assert "Quiet Co" in every.stdout

    def companies(*args: str) -> object:
        return json.loads(canary("report", *args, "--json").stdout)["companies"]

    assert companies("--all") == companies(), "one sender each: every one is listed"


def test_report_lists_a_few_senders_of_each_company_and_show_lists_them_all(
    canary: Canary, store: Store,
) -> None:
    now = datetime.now(UTC)
    address = issue(canary, "Shop", "--domain", "shop.example")
    spammers = [f"spam{i}.example" for i in range(SENDERS_LISTED + 2)]
    for i, spammer in enumerate(spammers):
        store_mail(store, address, make_message(sender=f"x@{spammer}"),
                   now + timedelta(seconds=i))
    analyse(store, os.environ["CANARY_DNS"])

    table = canary("report")
    assert table.exit_code == 0, table.output
    assert "…and 2 more unexpected senders: canary show shop lists every one." in " ".join(
        table.stdout.split())
    assert "spam0.example" in table.stdout and spammers[-1] not in table.stdout

    def shop(*args: str) -> dict[str, object]:
        result = canary(*args, "--json")
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        return document["company"] if "company" in document else document["companies"][0]

    few, every, shown = shop("report"), shop("report", "--all"), shop("show", "shop")
    assert [s["organisation"] for s in few["unexpected_senders"]] == spammers[:SENDERS_LISTED]
    assert few["unlisted_senders"] == {"unexpected": 2, "expected": 0, "unproven": 0}
    for whole in (every, shown):
        assert [s["organisation"] for s in whole["unexpected_senders"]] == spammers
        assert whole["unlisted_senders"] == {"unexpected": 0, "expected": 0, "unproven": 0}
    assert few["verdict"] == every["verdict"] == "leaked"
