"""Helpers for tests that drive the `canary` command and check what it prints.

`Canary` runs the command through typer's CliRunner on a real home and checks
that the home's secret appears in no output; the `assert_*` helpers check
errors, JSON documents against the schemas in `canary/schemas`, and files.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import referencing
from rich.console import Console
from typer.testing import CliRunner, Result

from cli.main import app
from smtp_listener.testing.demo import run_tour

SCHEMAS = Path(__file__).parent.parent / "canary" / "schemas"
ALIAS = re.compile(r"^(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)\.(?P<tag>[a-z2-7]{8})@(?P<domain>\S+)$")
SCHEMA_BASE = "https://canary.invalid/schemas/"

runner = CliRunner()


def secret_forms(secret: bytes) -> list[bytes]:
    """The secret as it could leak: raw, hex, base64 and base32."""
    return [
        secret,
        secret.hex().encode(),
        secret.hex().upper().encode(),
        base64.b64encode(secret),
        base64.urlsafe_b64encode(secret),
        base64.b32encode(secret),
        base64.b32encode(secret).lower(),
    ]


def expected_tag(secret: bytes, slug: str) -> str:
    """The tag as the design defines it, computed here without Canary's code."""
    digest = hmac.new(secret, slug.encode("ascii"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:8]


@dataclass
class Canary:
    """Runs `canary --home HOME …` and keeps every result, to check none shows the secret."""

    home: Path
    results: list[Result] = field(default_factory=list)

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 home_option: bool = True, input: str | None = None) -> Result:
        argv = ["--home", str(self.home), *args] if home_option else list(args)
        result = runner.invoke(app, argv, env=env, input=input)
        self.results.append(result)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        self.assert_secret_never_shown()
        return result

    def secret(self) -> bytes:
        return (self.home / "secret").read_bytes()

    def assert_secret_never_shown(self) -> None:
        if not (self.home / "secret").exists():
            return
        for result in self.results:
            for stream in (result.stdout_bytes, result.stderr_bytes or b""):
                for form in secret_forms(self.secret()):
                    assert form not in stream, "the secret appears in a command's output"

    def json(self, *args: str, schema: str | None = None) -> Any:
        """The command's `--json` result, checked against `canary/schemas/<schema>`.

        `schema` defaults to the command's name.
        """
        result = self(*args, "--json")
        assert result.exit_code == 0, result.output
        document = json.loads(result.stdout)
        assert_valid(document, schema or args[0])
        return document


HEAVY_MODULES = ("sqlalchemy", "sqlmodel", "pydantic", "rich", "alembic")


def run_counting_imports(canary: Canary, *args: str) -> tuple[int, list[str], str]:
    """Run `canary --home HOME ARGS` in a fresh interpreter: its exit code, which of
    `HEAVY_MODULES` it imported, and what it printed on stdout."""
    probe = (
        "import sys\n"
        "from cli.main import run\n"
        f"sys.argv = ['canary', '--home', {str(canary.home)!r}, *{list(args)!r}]\n"
        "try:\n"
        "    run()\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY_MODULES)!r})\n"
        "print(code, *heavy, file=sys.stderr)\n"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=False, timeout=60)
    code, *heavy = ran.stderr.split("\n")[-2].split()
    return int(code), heavy, ran.stdout


def issue(canary: Canary, name: str, *options: str) -> str:
    result = canary("issue", name, *options)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def assert_one_sentence(result: Result, *mentions: str, exit_code: int = 1) -> None:
    """Exit 1 (or `exit_code`), nothing on stdout, and one clear sentence on stderr."""
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    text = result.stderr.strip()
    assert text, "the error says nothing"
    assert "\n" not in text and "Traceback" not in text, text
    assert text.endswith("."), text
    endings = re.findall(r"[.!?](?=\s|$)", text.replace("e.g.", "eg").replace("i.e.", "ie"))
    assert len(endings) == 1, f"more than one sentence: {text}"
    for mention in mentions:
        assert mention in text, text


def assert_usage_error(result: Result, *mentions: str) -> None:
    """Exit 2 with click's usage message on stderr, nothing on stdout."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Error:" in result.stderr and "Traceback" not in result.stderr, result.stderr
    for mention in mentions:
        assert mention in result.stderr, result.stderr


def shown(authenticated_by: list[dict[str, Any]]) -> list[str]:
    """How a report document's `authenticated_by` objects read on a page or in CSV."""
    words = {"dkim": "DKIM d={}", "spf": "SPF {}", "none": "none"}
    return [words[a["method"]].format(a["domain"]) for a in authenticated_by]


_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)


def _format_checker() -> jsonschema.FormatChecker:
    """jsonschema's formats, with a strict `date-time` check of our own.

    jsonschema checks `date-time` only when the optional rfc3339-validator is
    installed, and silently accepts anything otherwise.
    """
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not _RFC3339.match(value):
            return False
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    return checker


@functools.cache
def _registry() -> referencing.Registry[Any]:
    """Every schema in the package, so one can refer to another (`show` to `report`)."""
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$id"] == SCHEMA_BASE + path.name, f"{path.name} has a wrong $id"
        resources.append((schema["$id"], referencing.Resource.from_contents(schema)))
    return referencing.Registry().with_resources(resources)


def assert_valid(document: Any, name: str) -> None:
    """Validate a `--json` document against `canary/schemas/<name>.schema.json`."""
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator_class(schema, registry=_registry(),
                    format_checker=_format_checker()).validate(document)


def assert_valid_report(document: Any) -> None:
    """Validate a `canary report --json` document against the schema in the repository."""
    assert_valid(document, "report")


def report_json(canary: Canary, *args: str) -> dict[str, Any]:
    document: dict[str, Any] = canary.json("report", *args)
    return document


REPORT_CITES = 10
"""Messages of a finding `canary report --json` cites; exports and bundles cite them all."""


def as_reported(companies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An export's companies as `canary report --json` shows them, after checking that the
    export cites every message of each finding."""
    for company in companies:
        for finding in company["findings"]:
            assert len(finding["messages"]) == finding["message_count"], company["name"]
    return [{**company, "findings": [{**finding, "messages": finding["messages"][:REPORT_CITES]}
                                     for finding in company["findings"]]}
            for company in companies]


def build_demo_home(directory: Path) -> Path:
    """Run the demo's tour into `directory/home` and return the home; its DNS is gone after."""
    home = directory / "home"
    run_tour(home, Console(file=io.StringIO()).print)
    return home


def assert_secret_absent(secret: bytes, files: dict[str, bytes]) -> None:
    """None of the files holds the home's secret, raw or in any usual encoding."""
    for name, data in files.items():
        for form in secret_forms(secret):
            assert form not in data, f"the secret appears in {name}"


def installed_canary() -> str | None:
    """The `canary` script of this interpreter's installation, else the one on PATH."""
    beside = Path(sys.executable).parent / "canary"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("canary")
