"""`canary triage`: new senders are shown with their evidence and decided by the user."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from commands import build_demo_home
from typer.testing import CliRunner

from cli.main import app


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fully analysed demo home: MegaMart's alias has three unexpected senders."""
    return build_demo_home(tmp_path_factory.mktemp("triage"))


def report(home: Path) -> dict[str, dict[str, object]]:
    result = CliRunner().invoke(app, ["report", "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    return {c["name"]: c for c in json.loads(result.stdout)["companies"]}


def test_triage_asks_about_each_new_sender_and_records_the_answers(
    demo_home: Path, tmp_path: Path
) -> None:
    home = tmp_path / "copy"
    shutil.copytree(demo_home, home)  # each test decides on its own copy
    before = report(home)["MegaMart"]
    unexpected = [s["organisation"] for s in before["unexpected_senders"]]  # type: ignore[union-attr]
    assert unexpected == ["dealblaster.example", "prize-centre.example", "megamart.example"]

    # flag the marketer, skip the spammer, quit before the forged "MegaMart Security".
    result = CliRunner().invoke(app, ["triage", "--home", str(home)], input="f\ns\nq\n")

    assert result.exit_code == 0, result.output
    assert "dealblaster.example" in result.output and "prize-centre.example" in result.output
    assert "DKIM d=dealblaster.example" in result.output  # the evidence is shown
    assert "dealblaster.example is flagged as not MegaMart's own." in result.output
    after = report(home)["MegaMart"]
    flags = {s["organisation"]: s["flagged"] for s in after["unexpected_senders"]}  # type: ignore[union-attr]
    assert flags == {"dealblaster.example": True, "prize-centre.example": False,
                     "megamart.example": False}
    assert after["verdict"] == "shared"  # flagging confirms; it changes no verdict

    # the flagged sender is not asked about again; trusting the spammer reclassifies it.
    again = CliRunner().invoke(app, ["triage", "--home", str(home)], input="t\nq\n")
    assert again.exit_code == 0, again.output
    assert "Is dealblaster.example" not in again.output
    trusted = "prize-centre.example is now MegaMart's own; 1 stored message reclassified."
    assert trusted in again.output
    final = report(home)["MegaMart"]
    assert [s["organisation"] for s in final["unexpected_senders"]] == [  # type: ignore[union-attr]
        "dealblaster.example", "megamart.example"]


def test_triage_with_nothing_new_says_so(tmp_path: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--domain", "canary.example.org", "--home", str(home)]
                         ).exit_code == 0
    result = runner.invoke(app, ["triage", "--home", str(home)], env={"CANARY_DNS": "127.0.0.1:9"})
    assert result.exit_code == 0, result.output
    assert "Nothing to triage" in result.output
