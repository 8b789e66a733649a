"""`canary export`: the report as JSON, CSV, Markdown and HTML files others can read.

Every test works on one realistic home made by the demo's tour:
three companies, six weeks of DKIM-signed mail received over real SMTP and
analysed against the demo's own loopback DNS, consent and an opt-out. The
commands run through typer's CliRunner, and what they write is read back
with the standard library (json, csv) and checked against `canary report
--json` of the same home.
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from commands import (
    REPORT_CITES,
    Canary,
    as_reported,
    assert_one_sentence,
    assert_secret_absent,
    assert_usage_error,
    assert_valid_report,
    build_demo_home,
    report_json,
    shown,
)

FORMATS = ("json", "csv", "md", "html")
CSV_COLUMNS = ["company", "alias", "issued_at", "verdict", "confidence", "organisation",
               "relation", "authenticated_by", "first_seen", "last_seen", "count"]


def message_ids(value: Any) -> set[str]:
    """Every `message_id` value anywhere in a report document."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "message_id" and isinstance(item, str):
                found.add(item)
            else:
                found |= message_ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= message_ids(item)
    return found


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_home(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def canary(demo_home: Path) -> Canary:
    return Canary(demo_home)


@pytest.fixture
def report(canary: Canary) -> dict[str, Any]:
    return report_json(canary)


def export(canary: Canary, fmt: str, out: Path, *options: str) -> str:
    result = canary("export", "--format", fmt, "--out", str(out), *options)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert out.name in "".join(result.stderr.split()), "says where it wrote"
    return out.read_text(encoding="utf-8")


# --- the demo home is what the tests expect ------------------------------------------------------


def test_the_demo_home_is_the_realistic_story_the_exports_are_checked_on(
    report: dict[str, Any],
) -> None:
    companies = {c["name"]: c for c in report["companies"]}
    assert set(companies) == {"MegaMart", "Fretwork Guitars", "Northwind Library"}
    megamart = companies["MegaMart"]
    assert megamart["verdict"] == "shared"
    third = [s for s in megamart["unexpected_senders"] if s["relation"] == "third_party"]
    assert [(s["organisation"], s["authenticated_by"]) for s in third] == [
        ("dealblaster.example", [{"method": "dkim", "domain": "dealblaster.example"}])]
    assert [f["kind"] for f in megamart["findings"]] == ["after_optout"]
    assert [f["kind"] for f in companies["Fretwork Guitars"]["findings"]] == ["over_frequency"]
    assert companies["Northwind Library"]["unexpected_senders"] == []


# --- every format ---------------------------------------------------------------------------------


def write(canary: Canary, kind: str, out: Path) -> None:
    """`canary export --format KIND --out OUT`, or `--bundle OUT` for kind `bundle`."""
    options = ["--bundle", str(out)] if kind == "bundle" else ["--format", kind, "--out", str(out)]
    result = canary("export", *options)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("kind", [*FORMATS, "bundle"])
def test_export_writes_a_file_only_the_owner_can_read(canary: Canary, tmp_path: Path,
                                                      kind: str) -> None:
    out = tmp_path / "exports" / f"report.{kind}"
    write(canary, kind, out)
    assert out.stat().st_size > 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", [*FORMATS, "bundle"])
def test_export_over_an_existing_readable_file_makes_it_private(canary: Canary, tmp_path: Path,
                                                               kind: str) -> None:
    # The user exports again to the same name, or to a file another tool created.
    out = tmp_path / f"report.{kind}"
    out.write_bytes(b"old\n")
    out.chmod(0o644)
    write(canary, kind, out)
    assert out.read_bytes() != b"old\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600, "personal evidence left readable by all"


def test_json_export_validates_and_is_the_report(canary: Canary, tmp_path: Path,
                                                 report: dict[str, Any]) -> None:
    document = json.loads(export(canary, "json", tmp_path / "report.json"))
    assert_valid_report(document)
    # The same report, except that the export cites every message of a finding where
    # `canary report --json` cites the first ten (and both say how many there are).
    assert any(finding["message_count"] > REPORT_CITES for company in document["companies"]
               for finding in company["findings"]), "the home has a long finding"
    assert as_reported(document["companies"]) == report["companies"]
    assert document["brokers"] == report["brokers"]
    assert document["probes"] == report["probes"] == 1


def expected_csv_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """The rows the CSV must hold, derived from `canary report --json`."""
    rows = []
    for company in report["companies"]:
        base = {"company": company["name"], "alias": company["aliases"][-1]["address"],
                "issued_at": company["issued_at"][:10], "verdict": company["verdict"],
                "confidence": company["confidence"]}
        if not company["unexpected_senders"]:
            rows.append({**base, "organisation": "", "relation": "", "authenticated_by": "",
                         "first_seen": "", "last_seen": "", "count": "0"})
        for sender in company["unexpected_senders"]:
            rows.append({**base, "organisation": sender["organisation"],
                         "relation": sender["relation"],
                         "authenticated_by": "; ".join(shown(sender["authenticated_by"])),
                         "first_seen": sender["first_seen"][:10],
                         "last_seen": sender["last_seen"][:10], "count": str(sender["count"])})
    return rows


def test_csv_export_has_one_row_per_company_and_unexpected_sender(
    canary: Canary, tmp_path: Path, report: dict[str, Any],
) -> None:
    text = export(canary, "csv", tmp_path / "report.csv")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == CSV_COLUMNS
    rows = list(reader)
    assert rows == expected_csv_rows(report)
    # MegaMart has three unexpected organisations; the clean companies one row each.
    assert [r["company"] for r in rows].count("MegaMart") == 3
    assert [(r["company"], r["organisation"]) for r in rows
            if r["company"] != "MegaMart"] == [("Fretwork Guitars", ""), ("Northwind Library", "")]


def test_markdown_export_gives_each_verdict_sender_and_finding(
    canary: Canary, tmp_path: Path, report: dict[str, Any],
) -> None:
    text = export(canary, "md", tmp_path / "report.md")
    headings = re.findall(r"^## (.+) — (\w+)$", text, re.MULTILINE)
    assert headings == [(c["name"], c["verdict"]) for c in report["companies"]]
    for company in report["companies"]:
        section = text.split(f"## {company['name']} — ", 1)[1].split("\n## ", 1)[0]
        for address in (a["address"] for a in company["aliases"]):
            assert address in section
        for sender in company["unexpected_senders"]:
            row = next((line for line in section.splitlines()
                        if line.startswith(f"| {sender['organisation']} | {sender['relation']} |")),
                       None)
            assert row is not None, f"{sender['organisation']} missing for {company['name']}"
            assert f"| {sender['count']} |" in row
            assert sender["examples"][0]["sha256"] in row
        for found in company["findings"]:
            assert f"**{found['kind']}**" in section
            for message in found["messages"][:10]:
                assert message["sha256"] in section


def company_sections(html: str) -> dict[str, str]:
    """Each company's `<section>` of the HTML report, by the section's id."""
    parts = re.split(r'(?=<section class="company")', html)
    return {re.search(r'id="([^"]+)"', p).group(1): p  # type: ignore[union-attr]
            for p in parts if p.startswith('<section class="company"')}


def test_html_export_is_one_self_contained_file_with_each_verdict_and_a_timeline(
    canary: Canary, tmp_path: Path, report: dict[str, Any],
) -> None:
    html = export(canary, "html", tmp_path / "report.html")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert not re.search(r"https?://", html, re.IGNORECASE), "refers to something online"
    assert not re.search(r"<\s*script", html, re.IGNORECASE)
    assert not re.search(r"<\s*(link|img|iframe|object|embed)\b", html, re.IGNORECASE)
    targets = re.findall(r"\b(?:src|href)\s*=\s*[\"']?([^\"'\s>]*)", html, re.IGNORECASE)
    assert targets, "the summary links to each company's section"
    assert all(t.startswith("#") for t in targets), f"links out of the page: {targets}"

    sections = company_sections(html)
    assert len(sections) == len(report["companies"])
    for company in report["companies"]:
        (section,) = [s for s in sections.values() if f">{company['name']}<" in s]
        assert f'data-verdict="{company["verdict"]}"' in section
        assert re.search(rf">\s*{company['verdict']}\s*<", section, re.IGNORECASE)
        assert "<svg" in section, f"no inline timeline for {company['name']}"
        for sender in company["unexpected_senders"]:
            assert sender["organisation"] in section


# --- only the chosen companies --------------------------------------------------------------------


def others_traces(report: dict[str, Any], chosen: set[str]) -> list[str]:
    """What of the other companies must appear nowhere: names, aliases, Message-IDs."""
    traces: list[str] = []
    for company in report["companies"]:
        if company["name"] in chosen:
            continue
        traces.append(company["name"])
        traces += [a["address"] for a in company["aliases"]]
        traces += [a["address"].partition("@")[0] for a in company["aliases"]]
        traces += sorted(message_ids(company))
    return traces


def chosen_traces(report: dict[str, Any], chosen: set[str]) -> list[str]:
    return [t for c in report["companies"] if c["name"] in chosen
            for t in (c["name"], c["aliases"][0]["address"])]


@pytest.mark.parametrize(
    "chosen",
    [("MegaMart",), ("Fretwork Guitars",), ("MegaMart", "Northwind Library")],
    ids=["megamart", "fretwork", "megamart-and-library"],
)
def test_company_option_exports_only_the_chosen_companies(
    canary: Canary, tmp_path: Path, report: dict[str, Any], chosen: tuple[str, ...],
) -> None:
    options = [o for name in chosen for o in ("--company", name)]
    files: dict[str, bytes] = {}
    for fmt in FORMATS:
        out = tmp_path / f"report.{fmt}"
        export(canary, fmt, out, *options)
        files[out.name] = out.read_bytes()
    bundle = tmp_path / "evidence.zip"
    result = canary("export", "--bundle", str(bundle), *options)
    assert result.exit_code == 0, result.output
    files.update({f"evidence.zip:{n}": d for n, d in zip_members(bundle).items()})

    exported = json.loads(files["report.json"])
    assert [c["name"] for c in exported["companies"]] == [
        c["name"] for c in report["companies"] if c["name"] in chosen]
    for trace in chosen_traces(report, set(chosen)):
        assert trace.encode() in files["report.md"], trace
    others = others_traces(report, set(chosen))
    assert others, "the test must look for something"
    for name, data in files.items():
        for trace in others:
            assert trace.encode() not in data, f"{trace!r} of another company is in {name}"


def test_company_option_with_an_unknown_company_is_refused(canary: Canary,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    assert_one_sentence(canary("export", "--format", "json", "--out", str(out),
                               "--company", "Nobody"), "Nobody")
    assert not out.exists()


# --- what export refuses --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--out", "{tmp}/report.json"],
        ["--format", "json"],
        ["--format", "json", "--out", "{tmp}/report.json", "--bundle", "{tmp}/evidence.zip"],
        ["--out", "{tmp}/report.json", "--bundle", "{tmp}/evidence.zip"],
    ],
    ids=["nothing", "out-without-format", "format-without-out", "out-and-bundle",
         "out-and-bundle-no-format"],
)
def test_export_without_a_clear_target_is_refused_and_writes_nothing(
    canary: Canary, tmp_path: Path, options: list[str],
) -> None:
    argv = [o.replace("{tmp}", str(tmp_path)) for o in options]
    result = canary("export", *argv)
    assert_usage_error(result, "--")  # it names the options to use
    assert not (tmp_path / "report.json").exists()
    assert not (tmp_path / "evidence.zip").exists()


# --- the secret ----------------------------------------------------------------------------------


def test_no_export_contains_the_secret(canary: Canary, tmp_path: Path) -> None:
    files: dict[str, bytes] = {}
    for fmt in FORMATS:
        out = tmp_path / f"report.{fmt}"
        export(canary, fmt, out)
        files[out.name] = out.read_bytes()
    bundle = tmp_path / "evidence.zip"
    assert canary("export", "--bundle", str(bundle)).exit_code == 0
    files.update(zip_members(bundle))
    assert len(files) > len(FORMATS) + 4
    assert_secret_absent(canary.secret(), files)
