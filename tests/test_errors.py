"""Common mistakes get one sentence on stderr and exit 1, never a traceback."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

runner = CliRunner()


def one_sentence(args: list[str], *mentions: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert message.startswith("Error: ") and "\n" not in message, message
    assert "Traceback" not in result.output
    for mention in mentions:
        assert mention in message, message
    return message


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    assert runner.invoke(app, ["init", "--domain", "canary.example.org", "--home", str(path)]
                         ).exit_code == 0
    return path


def test_an_unknown_database_url(home: Path) -> None:
    one_sentence(["--home", str(home), "--db", "bogus://x", "report"], "bogus://x")


@pytest.mark.parametrize("server", ["host:abc", "host:0", "[::1]:99999", ":53"])
def test_a_malformed_dns_server(home: Path, server: str) -> None:
    one_sentence(["--home", str(home), "--dns", server, "analyse"], server, "HOST:PORT")


def test_a_home_that_is_a_file(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("x")
    one_sentence(["--home", str(not_a_directory), "init", "--domain", "canary.example.org"],
                 str(not_a_directory))


def test_a_config_that_is_not_utf8(home: Path) -> None:
    (home / "canary.toml").write_bytes(b'domains = ["\xff"]\n')
    one_sentence(["--home", str(home), "aliases"], "canary.toml", "canary init --force")


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize("files", [
    {"MANIFEST.sha256": b"", "report.json": b'{"companies": [1]}'},
    {"MANIFEST.sha256": b"", "report.json": b"[" * 100_000},
], ids=["wrong-shape", "deeply-nested"])
def test_verify_reports_a_hostile_bundle_as_a_problem(tmp_path: Path,
                                                      files: dict[str, bytes]) -> None:
    bundle = tmp_path / "hostile.zip"
    bundle.write_bytes(zip_of(files))
    result = runner.invoke(app, ["verify", str(bundle)])
    assert result.exit_code == 1, result.output
    assert "MISMATCH" in result.stdout and "Traceback" not in result.output


def test_verify_refuses_a_zip_bomb_unread(tmp_path: Path) -> None:
    bundle = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("MANIFEST.sha256", f"{'0' * 64}  messages/big.eml\n")
        with archive.open("messages/big.eml", "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(1100):  # 1.1 GiB inflated, a few MB on disk
                member.write(chunk)
    result = runner.invoke(app, ["verify", str(bundle)])
    assert result.exit_code == 1, result.output
    assert "larger than any evidence Canary writes" in result.stdout
