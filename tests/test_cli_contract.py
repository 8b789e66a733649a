"""The CLI contract, for every command at once: what a script and a daily user rely on.

- `--json` wherever a command prints something a script may want, each
  document valid against its schema in `canary/schemas/`, with
  `schema_version`;
- the company is a positional argument everywhere;
- every usage error (an unknown option, a choice not offered, a date that is
  no date, a missing argument) exits 2; Canary's own errors exit 1 with one
  sentence;
- results on stdout, messages on stderr;
- help that says what every option does, and flags that do not look as if
  they took a value.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer.main
from commands import (
    SCHEMAS,
    Canary,
    assert_one_sentence,
    assert_usage_error,
    assert_valid,
    issue,
    runner,
)
from conftest import CANARY_DOMAIN
from factories import make_message
from mailflow import analyse, store_mail
from typer.core import TyperArgument, TyperGroup, TyperOption

from cli.main import app
from data.database import Store
from data.home import Home

GROUP = typer.main.get_command(app)
assert isinstance(GROUP, TyperGroup)


def _leaves(group: TyperGroup, prefix: str = "") -> dict[str, Any]:
    """Every command by its full name, a group's (`canary alerts add`) opened up."""
    found: dict[str, Any] = {}
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            found.update(_leaves(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


COMMANDS = _leaves(GROUP)

JSON_COMMANDS = {"issue", "aliases", "report", "show", "consent", "optout", "retire", "rotate",
                 "trust", "flag", "verify", "analyse", "upgrade", "held", "deliveries", "deliver",
                 "discover", "import", "alerts list"}
"""Every command whose result a script may want."""
SCHEMA_OF = {"optout": "consent", "alerts list": "alerts"}
"""Commands that share another's document, or whose name has a space; the rest have a
schema of their own name."""
SENT_SCHEMAS = {"alert"}
"""Documents Canary sends rather than prints: an alert's payload to a JSON webhook."""
COMPANY_COMMANDS = {"issue", "show", "consent", "optout", "retire", "rotate", "trust", "flag",
                    "letter", "report", "export"}


def test_exactly_the_commands_a_script_reads_have_json() -> None:
    with_json = {name for name, command in COMMANDS.items()
                 if any("--json" in p.opts for p in command.params)}
    assert with_json == JSON_COMMANDS


def test_every_json_command_has_a_schema_and_every_schema_a_command() -> None:
    expected = {SCHEMA_OF.get(name, name) for name in JSON_COMMANDS} | SENT_SCHEMAS
    shipped = {path.name.removesuffix(".schema.json") for path in SCHEMAS.glob("*.schema.json")}
    assert shipped == expected


@pytest.mark.parametrize("name", sorted(COMPANY_COMMANDS))
def test_the_company_is_a_positional_argument(name: str) -> None:
    arguments = [p for p in COMMANDS[name].params if isinstance(p, TyperArgument)]
    assert arguments, f"{name} takes no positional argument"
    assert arguments[0].name in ("name", "names"), arguments[0].name
    visible = [p for p in COMMANDS[name].params if isinstance(p, TyperOption) and not p.hidden]
    assert not any("--company" in p.opts for p in visible), "one way to name a company"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_says_what_it_does_and_flags_take_no_value(name: str) -> None:
    command = COMMANDS[name]
    for param in command.params:
        if isinstance(param, TyperOption) and not param.hidden:
            assert param.help and len(param.help) > 10, f"{name} {param.opts}: no help"
    result = runner.invoke(app, [*name.split(), "--help"], terminal_width=100)
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout
    for flag in ("--json", "--force", "--new"):
        for line in result.stdout.splitlines():
            if line.strip().startswith(flag + " "):
                assert line.strip().split()[1][0].isupper(), f"{flag} looks like it takes a value"


# --- one home in which every command has something to say -----------------------------------


@pytest.fixture
def acme(home: Home, store: Store, empty_dns: str) -> tuple[Canary, str]:
    """A home with Acme's alias and one analysed message to it."""
    canary = Canary(home.path)
    address = issue(canary, "Acme", "--domain", "acme.example", "--marketing", "yes")
    store_mail(store, address, make_message(sender="news@acme.example", to=address),
               datetime.now(UTC) - timedelta(hours=1))
    analyse(store, empty_dns)
    return canary, address


def _runs(canary: Canary, tmp_path: Path) -> dict[str, list[str]]:
    bundle = tmp_path / "evidence.zip"
    assert canary("export", "--bundle", str(bundle)).exit_code == 0
    mbox = tmp_path / "old.mbox"
    old_mail = mailbox.mbox(mbox)
    old_mail.add(make_message(sender="news@acme.example", to="acme@me.example"))
    old_mail.close()
    return {
        "issue": ["issue", "Beta", "--domain", "beta.example"],
        "aliases": ["aliases"],
        "report": ["report"],
        "show": ["show", "Acme"],
        "consent": ["consent", "Acme", "--frequency", "weekly"],
        "optout": ["optout", "Acme", "--at", f"{datetime.now(UTC):%Y-%m-%d}"],
        "trust": ["trust", "Acme", "acme-mail.example"],
        "flag": ["flag", "Acme", "dealblaster.example"],
        "analyse": ["analyse"],
        "upgrade": ["upgrade"],
        "verify": ["verify", str(bundle)],
        "held": ["held"],
        "deliveries": ["deliveries"],
        "deliver": ["deliver"],
        "discover": ["discover", str(mbox)],
        "import": ["import", str(mbox), "--no-analyse"],
        "retire": ["retire", "Acme"],
        "rotate": ["rotate", "Acme"],
        "alerts list": ["alerts", "list"],
    }


def test_every_json_document_validates_against_its_schema(
    acme: tuple[Canary, str], tmp_path: Path,
) -> None:
    canary, _ = acme
    configured = canary("init", "--force", "--domain", CANARY_DOMAIN,
                        "--deliver", f"maildir:{tmp_path / 'Maildir'}")
    assert configured.exit_code == 0, configured.output
    runs = _runs(canary, tmp_path)
    assert set(runs) == JSON_COMMANDS
    documents: dict[str, Any] = {}
    for name, argv in runs.items():  # in order: retire before rotate
        documents[name] = canary.json(*argv, schema=SCHEMA_OF.get(name, name))
        assert isinstance(documents[name]["schema_version"], int)
    assert documents["show"]["company"]["name"] == "Acme"
    assert documents["show"]["timeline_total"] == 1
    assert documents["verify"]["ok"] is True and documents["verify"]["problems"] == []
    assert documents["rotate"]["retired"] == [], "retire had retired the alias already"
    assert documents["optout"]["opted_out"] is True


def test_a_broken_document_fails_its_schema(acme: tuple[Canary, str]) -> None:
    canary, _ = acme
    document = canary.json("aliases")
    del document["aliases"][0]["address"]
    with pytest.raises(Exception, match="address"):
        assert_valid(document, "aliases")


def test_results_go_to_stdout_and_messages_to_stderr(acme: tuple[Canary, str],
                                                     tmp_path: Path) -> None:
    canary, address = acme
    written = canary("export", "--format", "csv", "--out", str(tmp_path / "r.csv"))
    assert written.exit_code == 0
    assert written.stdout == "" and "r.csv" in written.stderr
    rotated = canary("rotate", "Acme")
    assert rotated.exit_code == 0
    assert rotated.stdout.count("@") == 1, "the new address alone"
    assert address in rotated.stderr and address not in rotated.stdout


def test_issuing_a_company_whose_alias_is_retired_suggests_rotate(
    acme: tuple[Canary, str],
) -> None:
    canary, address = acme
    assert canary("retire", "Acme").exit_code == 0
    assert_one_sentence(canary("issue", "Acme"), address, "retired", "canary rotate")
    # --new still works for someone who means it.
    assert canary("issue", "Acme", "--new").exit_code == 0


USAGE_ERRORS = {
    "unknown-option": ["report", "--no-such-option"],
    "missing-argument": ["show"],
    "bad-choice": ["retire", "Acme", "--reply", "maybe"],
    "bad-frequency": ["consent", "Acme", "--frequency", "hourly"],
    "bad-date": ["optout", "Acme", "--at", "2026-02-30"],
    "not-a-date": ["optout", "Acme", "--at", "last week"],
    "bad-kind": ["letter", "Acme", "--kind", "complaint"],
    "bad-number": ["show", "Acme", "--limit", "0"],
    "export-without-target": ["export"],
    "bad-port": ["serve", "--port", "70000"],
    "release-nothing-named": ["release"],
    "release-not-a-number": ["release", "first"],
    "drop-ids-and-company": ["drop", "3", "--company", "Acme"],
}


@pytest.mark.parametrize("argv", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_every_usage_error_exits_2(acme: tuple[Canary, str], argv: list[str]) -> None:
    canary, _ = acme
    assert_usage_error(canary(*argv))


def test_canarys_own_errors_exit_1_in_one_sentence(acme: tuple[Canary, str]) -> None:
    canary, _ = acme
    assert_one_sentence(canary("show", "Nobody"), "Nobody")
    assert_one_sentence(canary("optout", "Acme", "--at", "2001-01-01"), "2001-01-01")
    assert_one_sentence(canary("release", "999"), "999", "canary held")
    assert_one_sentence(canary("deliver"), "--deliver")
    assert_one_sentence(canary("init", "--force", "--domain", CANARY_DOMAIN, "--deliver",
                               "ftp://files.example/mail"), "maildir:")
