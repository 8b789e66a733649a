"""The `canary` command as a user drives it: typer's CliRunner on real homes in tmp_path.

Every invocation goes through `Canary.__call__`, which also checks that the
home's secret appears in no output, in any usual encoding.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import stat
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer.main
from commands import (
    ALIAS,
    Canary,
    assert_one_sentence,
    assert_usage_error,
    assert_valid_report,
    expected_tag,
    issue,
    runner,
)
from conftest import CANARY_DOMAIN, RunningListener
from factories import make_message
from mailflow import analyse, store_mail

from cli.main import app
from data.database import Store
from data.home import Home, default_home

CONTRACT = {"init", "issue", "aliases", "serve", "report", "show", "trust", "demo"}
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.fixture
def fresh(tmp_path: Path) -> Canary:
    """`canary` on a home that does not exist yet."""
    return Canary(tmp_path / "fresh-home")


@pytest.fixture
def canary(home: Home) -> Canary:
    """`canary` on the initialised home of conftest (domain canary.example.org)."""
    return Canary(home.path)


def deliver(store: Store, address: str, raw: bytes, received_at: datetime) -> None:
    """Store a message and analyse it, as a listener that was running would have."""
    store_mail(store, address, raw, received_at)
    analyse(store, os.environ["CANARY_DNS"])


# --- help ---------------------------------------------------------------------------


def test_the_contract_commands_are_all_registered() -> None:
    assert set(COMMANDS) >= CONTRACT


def test_top_level_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    for name in COMMANDS:
        assert re.search(rf"\b{name}\b", result.stdout), name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    assert (command.help or "").strip(), f"`canary {name}` has no help text"
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert name in result.stdout
    # The command's own description is shown (whitespace-normalised: rich wraps it).
    first_words = " ".join(command.help.split()[:4])
    shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())
    assert first_words in shown


# --- before init -------------------------------------------------------------------------

BEFORE_INIT = {
    "issue": ["issue", "Acme"],
    "aliases": ["aliases"],
    "serve": ["serve", "--port", "0"],
    "report": ["report"],
    "show": ["show", "Acme"],
    "trust": ["trust", "Acme", "acme.example"],
    "flag": ["flag", "Acme", "dealblaster.example"],
    "triage": ["triage"],
    "consent": ["consent", "Acme", "--marketing", "no"],
    "optout": ["optout", "Acme"],
    "retire": ["retire", "Acme"],
    "rotate": ["rotate", "Acme"],
    "letter": ["letter", "Acme", "--kind", "access"],
    "export": ["export", "--format", "json", "--out", "report.json"],
    "analyse": ["analyse"],
    "upgrade": ["upgrade"],
    "held": ["held"],
    "release": ["release", "1"],
    "drop": ["drop", "1"],
    "deliveries": ["deliveries"],
    "deliver": ["deliver"],
    "adopt": ["adopt", "Acme", "shop@me.example"],
    "discover": ["discover", "mail.mbox"],
    "import": ["import", "mail.mbox"],
    "alerts": ["alerts", "list"],
}


def test_every_command_that_needs_a_home_is_checked_before_init() -> None:
    # init creates the home; demo makes its own; verify checks a bundle anywhere.
    assert set(BEFORE_INIT) == set(COMMANDS) - {"init", "demo", "verify"}


@pytest.mark.parametrize("via", ["option", "environment"])
@pytest.mark.parametrize("args", BEFORE_INIT.values(), ids=BEFORE_INIT.keys())
def test_a_command_before_init_says_to_run_canary_init(fresh: Canary, args: list[str],
                                                       via: str) -> None:
    if via == "option":
        result = fresh(*args)
    else:
        result = fresh(*args, env={"CANARY_HOME": str(fresh.home)}, home_option=False)
    assert_one_sentence(result, "canary init")
    assert not fresh.home.exists(), "a failed command must not create the home"


# --- init ------------------------------------------------------------------------------------


def test_init_creates_config_secret_and_database(fresh: Canary) -> None:
    result = fresh("init", "--domain", "Canary.Example.ORG")
    assert result.exit_code == 0, result.output
    assert str(fresh.home) in result.stdout.replace("\n", "")
    assert "canary.example.org" in result.stdout

    config_path = fresh.home / "canary.toml"
    config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    assert config["domains"] == ["canary.example.org"]
    # The config may hold a database URL with its password.
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600

    secret = fresh.home / "secret"
    assert len(secret.read_bytes()) == 32
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600

    database = fresh.home / "canary.db"
    assert database.read_bytes().startswith(b"SQLite format 3\x00")
    assert stat.S_IMODE(database.stat().st_mode) == 0o600


def test_two_homes_get_different_secrets(tmp_path: Path) -> None:
    one, two = Canary(tmp_path / "one"), Canary(tmp_path / "two")
    assert one("init", "--domain", CANARY_DOMAIN).exit_code == 0
    assert two("init", "--domain", CANARY_DOMAIN).exit_code == 0
    assert one.secret() != two.secret()
    # So the same company gets a different, unguessable alias in each.
    assert issue(one, "Acme") != issue(two, "Acme")


def test_init_twice_is_refused_and_changes_nothing(fresh: Canary) -> None:
    assert fresh("init", "--domain", CANARY_DOMAIN).exit_code == 0
    secret = fresh.secret()
    config = (fresh.home / "canary.toml").read_bytes()

    result = fresh("init", "--domain", "other.example")
    assert_one_sentence(result, "--force", str(fresh.home))
    assert fresh.secret() == secret
    assert (fresh.home / "canary.toml").read_bytes() == config


def test_init_force_rewrites_config_but_keeps_secret_and_aliases(fresh: Canary) -> None:
    assert fresh("init", "--domain", CANARY_DOMAIN).exit_code == 0
    secret = fresh.secret()
    acme = issue(fresh, "Acme", "--domain", "acme.example")

    result = fresh("init", "--force", "--domain", "aliases.example.net")
    assert result.exit_code == 0, result.output
    assert fresh.secret() == secret
    assert stat.S_IMODE((fresh.home / "secret").stat().st_mode) == 0o600
    listed = fresh.json("aliases")["aliases"]
    assert [(a["company"], a["address"], a["domains"]) for a in listed] == [
        ("Acme", acme, ["acme.example"])]
    # The new config is in force: new aliases use the new domain.
    assert issue(fresh, "Beta").endswith("@aliases.example.net")


def test_init_with_an_invalid_domain_is_refused_and_creates_nothing(fresh: Canary) -> None:
    result = fresh("init", "--domain", "not a domain")
    assert_one_sentence(result, "not a domain")
    assert not (fresh.home / "secret").exists()


def test_init_with_an_idn_domain_issues_a_label_addresses(fresh: Canary) -> None:
    assert fresh("init", "--domain", "Bücher.example").exit_code == 0
    assert issue(fresh, "Acme").endswith("@xn--bcher-kva.example")


# --- issue -------------------------------------------------------------------------------------


def test_issue_prints_the_alias_address(canary: Canary) -> None:
    result = canary("issue", "Fretwork Guitars Ltd")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1, "one address, one line: scripts capture it"
    match = ALIAS.match(result.stdout.strip())
    assert match, result.stdout
    assert match["slug"] == "fretwork-guitars-ltd"
    assert match["domain"] == CANARY_DOMAIN
    assert match["tag"] == expected_tag(canary.secret(), "fretwork-guitars-ltd")


def test_issue_json(canary: Canary) -> None:
    before = datetime.now(UTC)
    issued = canary.json("issue", "Acme", "--domain", "news.acme.co.uk", "--note", "web shop")
    assert set(issued) >= {"company", "address", "issued_at", "domains", "note"}
    assert issued["company"] == "Acme"
    assert ALIAS.match(issued["address"])
    assert issued["domains"] == ["acme.co.uk"]
    assert issued["note"] == "web shop"
    assert issued["issued_at"].endswith("Z")
    issued_at = datetime.fromisoformat(issued["issued_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= issued_at <= datetime.now(UTC)
    # The address in the JSON is the one that was stored.
    assert [a["address"] for a in canary.json("aliases")["aliases"]] == [issued["address"]]


@pytest.mark.parametrize("again", ["Acme", "ACME", " acme "])
def test_issuing_the_same_company_twice_is_refused(canary: Canary, again: str) -> None:
    first = issue(canary, "Acme")
    result = canary("issue", again)
    assert_one_sentence(result, "--new", first)
    assert [a["address"] for a in canary.json("aliases")["aliases"]] == [first]


def test_issue_new_gives_a_second_alias_and_keeps_the_first(canary: Canary) -> None:
    first = issue(canary, "Acme", "--domain", "acme.example")
    second = issue(canary, "Acme", "--new")
    match = ALIAS.match(second)
    assert match and match["slug"] == "acme-2"
    assert match["tag"] == expected_tag(canary.secret(), "acme-2")
    listed = canary.json("aliases")["aliases"]
    assert [a["address"] for a in listed] == [first, second]
    assert {a["company"] for a in listed} == {"Acme"}
    assert all(a["domains"] == ["acme.example"] for a in listed)
    third = issue(canary, "Acme", "--new")
    assert third.startswith("acme-3.")


def test_declared_domains_are_stored_as_their_organisations(canary: Canary) -> None:
    issued = canary.json("issue", "Acme", "--domain", "news.acme.co.uk",
                         "--domain", "shop.acme.co.uk", "--domain", "Mail.Acme-Mail.example")
    assert issued["domains"] == ["acme-mail.example", "acme.co.uk"]
    assert canary.json("aliases")["aliases"][0]["domains"] == ["acme-mail.example", "acme.co.uk"]


@pytest.mark.parametrize("bad", ["bad..domain", "co.uk", "under_score.example"])
def test_an_invalid_declared_domain_is_refused_and_nothing_is_issued(canary: Canary,
                                                                     bad: str) -> None:
    result = canary("issue", "Acme", "--domain", "acme.example", "--domain", bad)
    assert_one_sentence(result, bad)
    assert canary.json("aliases")["aliases"] == []


def test_a_name_without_letters_is_refused(canary: Canary) -> None:
    assert_one_sentence(canary("issue", "!!!"))
    assert canary.json("aliases")["aliases"] == []


def test_issue_on_a_domain_that_is_not_a_canary_domain_is_refused(canary: Canary) -> None:
    result = canary("issue", "Acme", "--alias-domain", "elsewhere.example")
    assert_one_sentence(result, "elsewhere.example", CANARY_DOMAIN)


# --- aliases ------------------------------------------------------------------------------------


def test_aliases_on_an_empty_home_says_how_to_issue(canary: Canary) -> None:
    result = canary("aliases")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "canary issue" in result.stderr
    assert canary.json("aliases")["aliases"] == []


def test_aliases_lists_company_address_issued_domains_and_messages(
    canary: Canary, store: Store,
) -> None:
    acme = issue(canary, "Acme", "--domain", "acme.example", "--note", "loyalty card")
    beta = issue(canary, "Beta Books")
    deliver(store, acme, make_message(sender="news@acme.example"), datetime.now(UTC))
    deliver(store, acme, make_message(sender="offers@dealblaster.example"), datetime.now(UTC))

    listed = {a["company"]: a for a in canary.json("aliases")["aliases"]}
    assert set(listed) == {"Acme", "Beta Books"}
    assert listed["Acme"]["address"] == acme
    assert listed["Acme"]["domains"] == ["acme.example"]
    assert listed["Acme"]["note"] == "loyalty card"
    assert listed["Acme"]["messages"] == 2
    assert listed["Beta Books"]["address"] == beta
    assert listed["Beta Books"]["domains"] == []
    assert listed["Beta Books"]["messages"] == 0
    today = f"{datetime.now(UTC):%Y-%m-%d}"
    assert all(a["issued_at"].startswith(today) for a in listed.values())

    table = canary("aliases")
    assert table.exit_code == 0
    acme_row = next(line for line in table.stdout.splitlines() if acme in line)
    assert "Acme" in acme_row and "acme.example" in acme_row and today in acme_row
    assert re.search(r"\b2\b", acme_row)
    assert any(beta in line and "Beta Books" in line for line in table.stdout.splitlines())


def shown_whole(output: str, address: str) -> bool:
    """Whether a table shows `address` complete, on one line or folded within its column."""
    lines = output.splitlines()
    start = address.partition("@")[0] + "@"
    for number, line in enumerate(lines):
        column = line.find(start)
        if column < 0:
            continue
        text = ""
        for following in lines[number:]:
            piece = re.match(r"[^\s│┃|]*", following[column:])
            if piece is None or not piece.group():
                break
            text += piece.group()
            if len(text) >= len(address):
                break
        if text == address:
            return True
    return False


@pytest.mark.parametrize("command", ["aliases", "report"])
def test_long_alias_addresses_are_shown_whole_when_piped(fresh: Canary, command: str) -> None:
    # A user copies the address from the table to give it to the company; output to a
    # pipe or a log is 120 columns wide, and a subdomain of a personal domain is long.
    assert fresh("init", "--domain", "mail-aliases.a-rather-long-personal-domain.example.org"
                 ).exit_code == 0
    addresses = [issue(fresh, "Acme"), issue(fresh, "Fretwork Guitars Ltd")]
    result = fresh(command)
    assert result.exit_code == 0, result.output
    for address in addresses:
        assert shown_whole(result.stdout, address), f"{address} not shown:\n{result.stdout}"


# --- report -------------------------------------------------------------------------------------


def test_report_on_an_empty_home(canary: Canary) -> None:
    result = canary("report")
    assert result.exit_code == 0
    assert "canary issue" in result.stdout
    document = canary.json("report")
    assert document["companies"] == []
    assert document["probes"] == 0
    assert_valid_report(document)


def test_report_json_validates_and_carries_the_evidence(canary: Canary, store: Store) -> None:
    acme = issue(canary, "Acme", "--domain", "acme.example")
    issue(canary, "Quiet Co")
    now = datetime.now(UTC)
    deliver(store, acme, make_message(sender="news@acme.example", subject="one"), now)
    deliver(store, acme, make_message(sender="x@dealblaster.example", subject="two"), now)
    deliver(store, acme, make_message(sender="y@deals.dealblaster.example", subject="three"), now)

    document = canary.json("report")
    assert [c["name"] for c in document["companies"]] == ["Acme", "Quiet Co"]
    company = document["companies"][0]
    assert company["verdict"] == "leaked"
    assert company["counts"]["total"] == 3
    assert company["counts"]["first_party"] == 1
    assert company["counts"]["unverified"] == 2
    assert company["counts"]["pending"] == 0, "report analyses what is stored first"
    assert [(s["organisation"], s["count"]) for s in company["unexpected_senders"]] == [
        ("dealblaster.example", 2)]
    assert company["days_to_first_unexpected"] == 0
    assert document["companies"][1]["verdict"] == "quiet"
    assert_valid_report(document)


def test_a_company_with_an_idn_domain_mailing_in_utf8_is_its_own_sender(
    canary: Canary, store: Store,
) -> None:
    # SMTPUTF8 mail (RFC 6532) writes the From domain in UTF-8, not in A-labels.
    issued = canary.json("issue", "Bücher GmbH", "--domain", "bücher.example")
    assert issued["domains"] == ["xn--bcher-kva.example"]
    raw = ("From: Bücher GmbH <news@bücher.example>\r\nTo: " + issued["address"] +
           "\r\nSubject: Neuerscheinungen\r\nMessage-ID: <1@bücher.example>\r\n\r\n"
           "Hallo.\r\n").encode()
    deliver(store, issued["address"], raw, datetime.now(UTC))
    (company,) = canary.json("report")["companies"]
    assert company["unexpected_senders"] == []
    assert company["verdict"] == "clean"


def test_report_company_filters_to_one_company(canary: Canary, store: Store) -> None:
    acme = issue(canary, "Acme", "--domain", "acme.example")
    issue(canary, "Beta Books")
    deliver(store, acme, make_message(sender="x@dealblaster.example"), datetime.now(UTC))

    document = canary.json("report", "--company", "beta books")
    assert [c["name"] for c in document["companies"]] == ["Beta Books"]
    assert document["companies"][0]["verdict"] == "quiet"

    table = canary("report", "--company", "Acme")
    assert table.exit_code == 0
    assert "Acme" in table.stdout and "leaked" in table.stdout
    assert "dealblaster.example" in table.stdout
    assert "Beta Books" not in table.stdout


def test_report_on_an_unknown_company_is_refused(canary: Canary) -> None:
    issue(canary, "Acme")
    assert_one_sentence(canary("report", "--company", "Nobody"), "Nobody")


# --- show ---------------------------------------------------------------------------------------


def test_show_an_unknown_company_is_refused(canary: Canary) -> None:
    issue(canary, "Acme")
    assert_one_sentence(canary("show", "Megacorp"), "Megacorp", "canary aliases")


def test_show_gives_the_verdict_senders_and_timeline(canary: Canary, store: Store) -> None:
    acme = issue(canary, "Acme", "--domain", "acme.example", "--note", "loyalty card")
    deliver(store, acme, make_message(sender="news@acme.example", subject="Weekly deals"),
            datetime.now(UTC) - timedelta(days=2))
    deliver(store, acme, make_message(sender="offers@dealblaster.example",
                                      subject="Exclusive offer"), datetime.now(UTC))

    result = canary("show", "acme")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Acme" in out and "leaked" in out
    assert "loyalty card" in out
    assert acme in out
    assert "dealblaster.example" in out and "unverified" in out
    assert "acme.example" in out and "first_party" in out
    assert "Weekly deals" in out and "Exclusive offer" in out
    # The timeline is oldest first.
    assert out.index("Weekly deals") < out.index("Exclusive offer")


# --- trust, with mail delivered over real SMTP ---------------------------------------------------


def test_trust_reclassifies_past_mail(listener: RunningListener) -> None:
    canary = Canary(listener.home.path)
    acme = issue(canary, "Acme", "--domain", "acme.example")
    with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
        for sender in ("news@acme.example", "deals@news.acme-mail.example",
                       "more@acme-mail.example"):
            refused = client.sendmail(sender, [acme], make_message(sender=sender, to=acme))
            assert refused == {}

    listener.settle()
    before = canary.json("report")
    (company,) = before["companies"]
    assert company["verdict"] == "leaked"
    assert company["counts"]["total"] == 3
    # acme-mail.example dresses up Acme's name: until the person trusts it, it counts as
    # an impersonator, never as a business Acme shared the address with.
    assert [(s["organisation"], s["relation"], s["count"])
            for s in company["unexpected_senders"]] == [("acme-mail.example", "impersonation", 2)]

    result = canary("trust", "Acme", "news.acme-mail.example")
    assert result.exit_code == 0, result.output
    assert "acme-mail.example" in result.stdout
    assert re.search(r"\b2 stored messages reclassified", result.stdout), result.stdout

    after = canary.json("report")
    (company,) = after["companies"]
    assert company["verdict"] == "clean"
    assert company["unexpected_senders"] == []
    assert company["counts"]["first_party"] == 3
    assert company["days_to_first_unexpected"] is None
    assert company["domains"] == ["acme-mail.example", "acme.example"]
    # New mail from the trusted organisation is the company's own too.
    with smtplib.SMTP(listener.host, listener.port, timeout=10) as client:
        sender = "later@acme-mail.example"
        client.sendmail(sender, [acme], make_message(sender=sender, to=acme, subject="later"))
    listener.settle()
    assert canary.json("report")["companies"][0]["verdict"] == "clean"
    # Both documents keep the contract scripts rely on.
    assert_valid_report(before)
    assert_valid_report(after)


def test_trust_of_an_unknown_company_or_a_public_suffix_is_refused(canary: Canary) -> None:
    issue(canary, "Acme")
    assert_one_sentence(canary("trust", "Nobody", "acme.example"), "Nobody")
    assert_one_sentence(canary("trust", "Acme", "co.uk"), "co.uk")
    assert canary.json("aliases")["aliases"][0]["domains"] == []


def test_flag_marks_a_sender_as_not_the_companys_and_trust_overrides_it(
    canary: Canary, store: Store,
) -> None:
    acme = issue(canary, "Acme", "--domain", "acme.example")
    deliver(store, acme, make_message(sender="offers@dealblaster.example"), datetime.now(UTC))

    result = canary("flag", "Acme", "mail.dealblaster.example")
    assert result.exit_code == 0, result.output
    assert "dealblaster.example" in result.stdout
    (company,) = canary.json("report")["companies"]
    # Flagging confirms the leak; it does not hide it.
    assert company["verdict"] == "leaked"
    (sender,) = company["unexpected_senders"]
    assert (sender["organisation"], sender["flagged"]) == ("dealblaster.example", True)

    # The user changes their mind: trusting wins and the mail is the company's own.
    assert canary("trust", "Acme", "dealblaster.example").exit_code == 0
    (company,) = canary.json("report")["companies"]
    assert company["verdict"] == "clean"
    # And a trusted organisation cannot be flagged at the same time.
    assert_one_sentence(canary("flag", "Acme", "dealblaster.example"), "dealblaster.example")


# --- where the home comes from ------------------------------------------------------------------


def test_home_option_works_before_and_after_the_command(canary: Canary) -> None:
    acme = issue(canary, "Acme")  # `canary --home H issue …`
    after = canary("aliases", "--json", "--home", str(canary.home), home_option=False)
    assert after.exit_code == 0, after.output
    assert [a["address"] for a in json.loads(after.stdout)["aliases"]] == [acme]


def test_canary_home_environment_variable(fresh: Canary) -> None:
    env = {"CANARY_HOME": str(fresh.home)}
    assert fresh("init", "--domain", CANARY_DOMAIN, env=env, home_option=False).exit_code == 0
    assert (fresh.home / "secret").exists()
    issued = fresh("issue", "Acme", env=env, home_option=False)
    assert issued.exit_code == 0, issued.output
    listed = fresh("aliases", "--json", env=env, home_option=False)
    assert [a["address"] for a in json.loads(listed.stdout)["aliases"]] == [issued.stdout.strip()]


def test_an_explicit_home_option_beats_canary_home(tmp_path: Path) -> None:
    chosen, ambient = Canary(tmp_path / "chosen"), Canary(tmp_path / "ambient")
    assert chosen("init", "--domain", CANARY_DOMAIN).exit_code == 0
    assert ambient("init", "--domain", CANARY_DOMAIN).exit_code == 0
    acme = issue(chosen, "Acme")
    env = {"CANARY_HOME": str(ambient.home)}
    # The option given on the command line wins, wherever it is placed.
    for argv in (["--home", str(chosen.home), "aliases", "--json"],
                 ["aliases", "--json", "--home", str(chosen.home)]):
        result = chosen(*argv, env=env, home_option=False)
        assert result.exit_code == 0, result.output
        assert [a["address"] for a in json.loads(result.stdout)["aliases"]] == [acme], argv


def test_without_any_home_the_platform_data_dir_is_used(tmp_path: Path) -> None:
    # XDG_DATA_HOME points into tmp_path (see the autouse fixture); elsewhere than on
    # Linux the platform dir ignores it, and this test must not touch a real home.
    if not default_home().is_relative_to(tmp_path):
        pytest.skip("the platform's user data dir does not follow XDG_DATA_HOME here")
    default = Canary(default_home())
    assert default("init", "--domain", CANARY_DOMAIN, home_option=False).exit_code == 0
    assert (default.home / "secret").exists()
    assert issue(default, "Acme").endswith("@" + CANARY_DOMAIN)


def test_trust_records_an_esp_customer_as_the_companys_own(canary: Canary) -> None:
    issue(canary, "Acme", "--domain", "acme.example")
    trusted = canary.json("trust", "Acme", "--esp-customer", "sendgrid:4221337")
    assert trusted["esp_customer"] == {"esp": "Twilio SendGrid", "customer_id": "4221337"}
    assert trusted["organisation"] is None
    both = canary("trust", "Acme", "acme-mail.example", "--esp-customer", "Mailchimp:u1")
    assert both.exit_code == 0
    assert "acme-mail.example and Mailchimp customer u1 are now Acme's own" in both.stdout
    assert_usage_error(canary("trust", "Acme", "--esp-customer", "NoSuchEsp:1"),
                       "--esp-customer")
    assert_usage_error(canary("trust", "Acme"), "DOMAIN")


@pytest.mark.parametrize("argv", [["release", "2147483648"], ["drop", "99999999999"],
                                  ["release", "0"],
                                  ["show", "Acme", "--limit", "9223372036854775808"]])
def test_an_id_or_limit_beyond_any_row_is_a_usage_error(canary: Canary, argv: list[str]) -> None:
    """Not a database error: PostgreSQL's INTEGER ids end at 2**31 - 1."""
    issue(canary, "Acme")
    assert_usage_error(canary(*argv), "is not in the range")


def test_a_database_server_that_refuses_is_one_sentence(canary: Canary) -> None:
    """libpq explains a refused connection over several lines, with a question: the command
    still says it in one sentence, with what to check."""
    refused = canary("--db", "postgresql+psycopg://canary@127.0.0.1:1/canary", "aliases")
    assert_one_sentence(refused, "cannot be used", "Connection refused", "server is running")


def test_a_company_name_with_a_control_character_is_one_sentence_and_issues_nothing(
    canary: Canary, tmp_path: Path,
) -> None:
    assert_one_sentence(canary("issue", "Acme\nLtd"), "control character")
    batch = tmp_path / "companies.csv"
    batch.write_text("name,domains\nBeta,beta.example\n\"Acme\x00Evil\",acme.example\n",
                     encoding="utf-8")
    assert_one_sentence(canary("issue", "--from", str(batch)), "control character")
    assert canary.json("aliases")["aliases"] == []  # all of the file, or none of it
