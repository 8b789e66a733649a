"""The installed `canary` script, run as a user runs it: in its own process."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def installed_canary() -> str | None:
    """The `canary` script of this interpreter's installation, else the one on PATH."""
    beside = Path(sys.executable).parent / "canary"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("canary")


def test_installed_script_help_and_demo(tmp_path: Path) -> None:
    script = installed_canary()
    if script is None:
        pytest.skip("no installed `canary` script (pip install -e . puts one next to python)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANARY_")}
    env.update(XDG_DATA_HOME=str(tmp_path / "xdg-data"), NO_COLOR="1")

    help_run = subprocess.run([script, "--help"], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=15, check=False)
    assert help_run.returncode == 0, help_run.stderr
    assert "Usage:" in help_run.stdout
    for command in ("init", "issue", "report", "demo"):
        assert re.search(rf"\b{command}\b", help_run.stdout), command

    demo = subprocess.run([script, "demo"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=15, check=False)
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    lines = demo.stdout.splitlines()
    # The retailer whose list went to a marketer is reported, naming the marketer. The
    # demo's marketer signs its mail with DKIM (on the demo's own loopback DNS), so the
    # evidence proves the address was shared, not merely leaked.
    assert any("MegaMart" in line and re.search(r"\bshared\b", line) for line in lines), (
        demo.stdout)
    assert "dealblaster.example" in demo.stdout
    # ...and the shop and the library, which only ever sent their own mail, are clean.
    for company in ("Fretwork Guitars", "Northwind Library"):
        assert any(company in line and re.search(r"\bclean\b", line) for line in lines), company
        assert not any(company in line and re.search(r"\b(shared|leaked)\b", line)
                       for line in lines), company
    # The demo cleans up after itself: nothing written to the default home.
    assert not (tmp_path / "xdg-data" / "canary").exists()
