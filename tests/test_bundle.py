"""Evidence bundles: `canary export --bundle` writes them, `canary verify` checks them anywhere.

A bundle is checked the way its recipient would: the zip is opened with
`zipfile`, its manifest is run through the real `sha256sum -c`, and `canary
verify` runs with no Canary home, no network and, once, as the installed
script in a clean environment. Tampering is done the way a forger would:
change a byte, recompute the manifest, rename the message to its new hash
and rewrite every reference, or swap the recorded DKIM key for another valid
one. Each must be caught and named.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from commands import (
    Canary,
    as_reported,
    assert_one_sentence,
    assert_secret_absent,
    assert_valid_report,
    build_demo_home,
    installed_canary,
    report_json,
    runner,
)
from conftest import CANARY_DOMAIN
from factories import make_message
from signing import DkimKey, ed25519_key

from canary.consent import Frequency
from cli.export import PROGRESS_FROM
from cli.main import app
from data.database import Store
from data.home import Home
from data.mailstore import Delivery, issued_alias, store_deliveries
from data.registry import issue_alias, opt_out
from smtp_listener.analysis import AnalysisSettings, analyse_all
from smtp_listener.resolver import Resolver
from smtp_listener.testing.zone_server import Zones, ZoneServer

MANIFEST = "MANIFEST.sha256"
REPORTS = {"report.json", "report.html", "report.md"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DKIM_TAGS = re.compile(rb"^DKIM-Signature:(.*?)\r?\n(?=\S)", re.DOTALL | re.MULTILINE)




@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's analysed home. Its DNS server is gone: every key it used has "rotated"."""
    return build_demo_home(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def bundle(demo_home: Path, tmp_path_factory: pytest.TempPathFactory, empty_dns: str) -> Path:
    """A fresh evidence bundle of the whole demo home, written once."""
    path = tmp_path_factory.mktemp("bundle") / "evidence.zip"
    result = Canary(demo_home)("export", "--bundle", str(path), env={"CANARY_DNS": empty_dns})
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "canary verify" in result.stderr
    return path


@pytest.fixture
def members(bundle: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(bundle) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def cited(document: Any) -> set[str]:
    """Every message SHA-256 a report document cites, wherever it cites it."""
    if isinstance(document, dict):
        return set().union(*(
            {value} if key == "sha256" and isinstance(value, str) else cited(value)
            for key, value in document.items()))
    if isinstance(document, list):
        return set().union(*(cited(item) for item in document))
    return set()


def dkim_tags(raw: bytes) -> list[dict[str, str]]:
    """The tags of each DKIM-Signature header of a raw message."""
    headers = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    signatures = []
    for match in DKIM_TAGS.finditer(headers):
        text = re.sub(r"\s+", "", match.group(1).decode())
        signatures.append(dict(tag.split("=", 1) for tag in text.split(";") if "=" in tag))
    return signatures


def manifest_for(files: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n"
                   for name, data in sorted(files.items()) if name != MANIFEST).encode()


def rezip(files: dict[str, bytes], path: Path, *, recompute_manifest: bool) -> Path:
    if recompute_manifest:
        files = {**files, MANIFEST: manifest_for(files)}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def verify(path: Path, tmp_path: Path) -> tuple[int, str, list[str]]:
    """`canary verify PATH` with no Canary home: exit code, stdout, its MISMATCH lines."""
    result = runner.invoke(app, ["verify", str(path)],
                           env={"CANARY_HOME": str(tmp_path / "no-such-home")})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    mismatches = [line for line in result.stdout.splitlines() if line.startswith("MISMATCH")]
    assert not (tmp_path / "no-such-home").exists(), "verify must not create a home"
    return result.exit_code, result.stdout, mismatches


def assert_caught(path: Path, tmp_path: Path, *patterns: str) -> list[str]:
    """verify fails, and each pattern matches one of its MISMATCH lines."""
    code, stdout, mismatches = verify(path, tmp_path)
    assert code != 0
    assert "all evidence verified" not in stdout.lower()
    assert mismatches, "no MISMATCH line names the problem"
    for pattern in patterns:
        assert any(re.search(pattern, line) for line in mismatches), (pattern, mismatches)
    return mismatches


def third_party_message(members: dict[str, bytes]) -> str:
    """The SHA-256 of the first message from the demo's marketer (DKIM-signed, third party)."""
    report = json.loads(members["report.json"])
    megamart = next(c for c in report["companies"] if c["name"] == "MegaMart")
    sender = next(s for s in megamart["unexpected_senders"]
                  if s["organisation"] == "dealblaster.example")
    digest: str = sender["examples"][0]["sha256"]
    return digest


def one_byte_changed(raw: bytes) -> bytes:
    head, separator, body = raw.partition(b"\r\n\r\n")
    assert b"Act now." in body
    return head + separator + body.replace(b"Act now.", b"Act now!", 1)


# --- what a fresh bundle holds --------------------------------------------------------------------


def test_bundle_holds_the_reports_and_exactly_the_cited_messages(
    members: dict[str, bytes], demo_home: Path, empty_dns: str,
) -> None:
    document = json.loads(members["report.json"])
    assert_valid_report(document)
    assert as_reported(document["companies"]) == report_json(Canary(demo_home))["companies"]
    digests = cited(document)
    assert len(digests) > 30, "the demo report cites its evidence"
    assert set(members) == REPORTS | {MANIFEST} | {f"messages/{d}.eml" for d in digests} \
        | {f"dns/{d}.json" for d in digests}
    for digest in digests:
        assert hashlib.sha256(members[f"messages/{digest}.eml"]).hexdigest() == digest
    assert members["report.html"].lstrip().lower().startswith(b"<!doctype html>")
    for company in document["companies"]:
        assert f"## {company['name']} — {company['verdict']}".encode() in members["report.md"]


def test_dns_records_are_the_answers_recorded_at_receipt_with_each_dkim_key(
    members: dict[str, bytes],
) -> None:
    signed = 0
    for name, raw in members.items():
        if not name.startswith("messages/"):
            continue
        digest = name.removeprefix("messages/").removesuffix(".eml")
        record = json.loads(members[f"dns/{digest}.json"])
        assert record["sha256"] == digest
        assert record["received_at"].endswith("Z")
        assert record["client"]["ip"], "the peer (XFORWARDed client) is recorded"
        answers = {(a["name"].rstrip(".").lower(), a["type"]): a["records"]
                   for a in record["answers"]}
        for signature in dkim_tags(raw):
            signed += 1
            key_name = f"{signature['s']}._domainkey.{signature['d']}".lower()
            keys = answers.get((key_name, "TXT"))
            assert keys, f"{name}: no key recorded for {key_name}"
            assert any(k.replace(" ", "").startswith("v=DKIM1;") and "p=" in k for k in keys)
            passed = [d for d in record["authentication_at_receipt"]["dkim"]
                      if d["domain"] == signature["d"]]
            assert [d["result"] for d in passed] == ["pass"]
    assert signed >= 30


def test_the_manifest_is_accepted_by_sha256sum(members: dict[str, bytes],
                                               tmp_path: Path) -> None:
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (GNU coreutils) is not installed")
    extracted = tmp_path / "extracted"
    for name, data in members.items():
        target = extracted / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    check = subprocess.run(["sha256sum", "-c", MANIFEST], cwd=extracted, capture_output=True,
                           text=True, timeout=30, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    assert len(lines) == len(members) - 1, "every file but the manifest is listed"
    assert all(line.endswith(": OK") for line in lines)

    # And sha256sum notices a changed file too: the manifest is not decoration.
    (extracted / "report.md").write_bytes(members["report.md"] + b"\n")
    again = subprocess.run(["sha256sum", "-c", MANIFEST], cwd=extracted, capture_output=True,
                           text=True, timeout=30, check=False)
    assert again.returncode != 0
    assert "report.md: FAILED" in again.stdout


def test_bundle_members_never_hold_the_secret(members: dict[str, bytes],
                                              demo_home: Path) -> None:
    assert_secret_absent((demo_home / "secret").read_bytes(), members)


# --- verify: a fresh bundle ---------------------------------------------------------------------


def test_verify_a_fresh_bundle_without_home_or_network(
    bundle: Path, members: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The demo's DNS server, which served every key, is long gone. Any attempt to reach
    # the network now fails loudly, so passing proves the recorded keys were used.
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("verify tried to use the network")

    monkeypatch.setattr(socket, "socket", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    elsewhere = tmp_path / "recipient"
    elsewhere.mkdir()
    copy = elsewhere / "evidence.zip"
    copy.write_bytes(bundle.read_bytes())
    monkeypatch.chdir(elsewhere)

    code, stdout, mismatches = verify(Path("evidence.zip"), tmp_path)

    assert (code, mismatches) == (0, [])
    assert "all evidence verified" in stdout.lower()
    emls = [n for n in members if n.startswith("messages/")]
    signatures = sum(len(dkim_tags(members[n])) for n in emls)
    assert f"{len(emls)} messages" in stdout
    assert f"{signatures} DKIM signatures" in stdout


def test_the_installed_script_verifies_in_a_clean_environment(bundle: Path,
                                                              tmp_path: Path) -> None:
    script = installed_canary()
    if script is None:
        pytest.skip("no installed `canary` script (pip install -e . puts one next to python)")
    elsewhere = tmp_path / "recipient"
    elsewhere.mkdir()
    shutil.copy(bundle, elsewhere / "evidence.zip")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(elsewhere),
           "XDG_DATA_HOME": str(elsewhere / "xdg-data"), "NO_COLOR": "1", "LC_ALL": "C.UTF-8"}

    run = subprocess.run([script, "verify", "evidence.zip"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=30, check=False)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "all evidence verified" in run.stdout.lower()
    assert "MISMATCH" not in run.stdout
    assert sorted(p.name for p in elsewhere.iterdir()) == ["evidence.zip"], \
        "verify created files (a home?) where it ran"


# --- verify: tampering ---------------------------------------------------------------------------


@pytest.mark.parametrize("recompute", [False, True], ids=["manifest-left", "manifest-recomputed"])
def test_a_changed_message_byte_is_caught(members: dict[str, bytes], tmp_path: Path,
                                          recompute: bool) -> None:
    digest = third_party_message(members)
    name = f"messages/{digest}.eml"
    files = {**members, name: one_byte_changed(members[name])}
    path = rezip(files, tmp_path / "tampered.zip", recompute_manifest=recompute)
    mismatches = assert_caught(
        path, tmp_path,
        rf"{name} does not match the SHA-256 in its name",
        rf"{name}: the DKIM signature of dealblaster\.example .* no longer verifies",
    )
    if not recompute:
        assert any(re.search(rf"{name} does not match its SHA-256 in {MANIFEST}", line)
                   for line in mismatches)


def test_a_consistent_forgery_of_a_message_is_caught_by_its_dkim_signature(
    members: dict[str, bytes], tmp_path: Path,
) -> None:
    # The forger changes the body, renames the file to its new hash, rewrites every
    # reference to the old hash and recomputes the manifest: every hash agrees.
    old = third_party_message(members)
    forged = one_byte_changed(members[f"messages/{old}.eml"])
    new = hashlib.sha256(forged).hexdigest()
    files = {}
    for name, data in members.items():
        files[name.replace(old, new)] = data.replace(old.encode(), new.encode())
    files[f"messages/{new}.eml"] = forged
    path = rezip(files, tmp_path / "forged.zip", recompute_manifest=True)

    mismatches = assert_caught(
        path, tmp_path,
        rf"messages/{new}\.eml: the DKIM signature of dealblaster\.example \(selector demo\) "
        r"no longer verifies against the recorded key",
    )
    assert len(mismatches) == 1, mismatches


def without_dkim_signature(raw: bytes) -> bytes:
    head, separator, body = raw.partition(b"\r\n\r\n")
    stripped = re.sub(rb"^DKIM-Signature:.*?\r\n(?=\S)", b"", head + b"\r\n",
                      flags=re.DOTALL | re.MULTILINE)
    assert b"DKIM-Signature" not in stripped
    return stripped[:-2] + separator + body


@pytest.mark.parametrize("how", ["receipt-record-says-fail", "signature-removed"])
def test_a_forgery_that_dodges_the_dkim_check_is_caught(members: dict[str, bytes],
                                                        tmp_path: Path, how: str) -> None:
    # As above, and the forger also hides the signature from the re-verification: by
    # editing the receipt record to say it failed then, or by dropping the signature.
    # The report still says the marketer's mail was DKIM-authenticated, so a bundle
    # that can no longer show that must not pass.
    old = third_party_message(members)
    forged = one_byte_changed(members[f"messages/{old}.eml"])
    record = json.loads(members[f"dns/{old}.json"])
    if how == "signature-removed":
        forged = without_dkim_signature(forged)
    else:
        for result in record["authentication_at_receipt"]["dkim"]:
            result["result"] = "fail"
    new = hashlib.sha256(forged).hexdigest()
    record["sha256"] = new
    files = {name.replace(old, new): data.replace(old.encode(), new.encode())
             for name, data in members.items()}
    files[f"messages/{new}.eml"] = forged
    files[f"dns/{new}.json"] = (json.dumps(record, indent=2) + "\n").encode()
    report = json.loads(files["report.json"])
    claims = [s["authenticated_by"] for c in report["companies"]
              for s in c["unexpected_senders"] if new in cited(s)]
    assert claims == [[{"method": "dkim", "domain": "dealblaster.example"}]], (
        "the report relies on the signature")
    path = rezip(files, tmp_path / "forged.zip", recompute_manifest=True)

    assert_caught(path, tmp_path, rf"messages/{new}\.eml.*dealblaster\.example")


def test_a_changed_hash_in_the_manifest_is_caught(members: dict[str, bytes],
                                                  tmp_path: Path) -> None:
    lines = members[MANIFEST].decode().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.endswith("  report.json\n"))
    digest = lines[index][:64]
    lines[index] = ("0" if digest[0] != "0" else "1") + lines[index][1:]
    files = {**members, MANIFEST: "".join(lines).encode()}
    path = rezip(files, tmp_path / "tampered.zip", recompute_manifest=False)
    assert_caught(path, tmp_path, rf"report\.json does not match its SHA-256 in {MANIFEST}")


def test_a_line_removed_from_the_manifest_is_caught(members: dict[str, bytes],
                                                    tmp_path: Path) -> None:
    digest = third_party_message(members)
    name = f"messages/{digest}.eml"
    lines = members[MANIFEST].decode().splitlines(keepends=True)
    kept = [line for line in lines if not line.endswith(f"  {name}\n")]
    assert len(kept) == len(lines) - 1
    files = {**members, MANIFEST: "".join(kept).encode()}
    path = rezip(files, tmp_path / "tampered.zip", recompute_manifest=False)
    assert_caught(path, tmp_path, rf"{name} is not listed in {MANIFEST}")


def test_an_extra_unlisted_file_is_caught(members: dict[str, bytes], tmp_path: Path) -> None:
    files = {**members, "messages/notes.txt": b"added later\n"}
    path = rezip(files, tmp_path / "tampered.zip", recompute_manifest=False)
    assert_caught(path, tmp_path, rf"messages/notes\.txt is not listed in {MANIFEST}")


def test_a_swapped_dkim_key_in_the_dns_record_is_caught(members: dict[str, bytes],
                                                        tmp_path: Path) -> None:
    # Another valid Ed25519 key where the marketer's was recorded, manifest recomputed.
    digest = third_party_message(members)
    name = f"dns/{digest}.json"
    record = json.loads(members[name])
    other = base64.b64encode(bytes(nacl.signing.SigningKey.generate().verify_key)).decode()
    swapped = 0
    for answer in record["answers"]:
        if answer["name"].rstrip(".").lower() == "demo._domainkey.dealblaster.example":
            answer["records"] = [re.sub(r"p=[A-Za-z0-9+/=]+", f"p={other}", r)
                                 for r in answer["records"]]
            swapped += 1
    assert swapped == 1
    files = {**members, name: (json.dumps(record, indent=2) + "\n").encode()}
    path = rezip(files, tmp_path / "tampered.zip", recompute_manifest=True)
    mismatches = assert_caught(
        path, tmp_path,
        rf"messages/{digest}\.eml: the DKIM signature of dealblaster\.example \(selector demo\) "
        r"no longer verifies against the recorded key",
    )
    assert len(mismatches) == 1, mismatches


@pytest.mark.parametrize("recompute", [False, True], ids=["manifest-left", "manifest-recomputed"])
def test_a_missing_dns_record_is_caught(members: dict[str, bytes], tmp_path: Path,
                                        recompute: bool) -> None:
    digest = third_party_message(members)
    files = {n: d for n, d in members.items() if n != f"dns/{digest}.json"}
    if not recompute:
        files[MANIFEST] = members[MANIFEST]
    path = rezip(files, tmp_path / "tampered.zip", recompute_manifest=recompute)
    assert_caught(path, tmp_path,
                  rf"dns/{digest}\.json, the DNS record of messages/{digest}\.eml, is missing")


def test_a_missing_message_is_caught(members: dict[str, bytes], tmp_path: Path) -> None:
    digest = third_party_message(members)
    files = {n: d for n, d in members.items() if n != f"messages/{digest}.eml"}
    path = rezip(files, tmp_path / "tampered.zip", recompute_manifest=False)
    assert_caught(path, tmp_path,
                  rf"messages/{digest}\.eml is listed in {MANIFEST} but missing",
                  rf"the report cites message {digest} but the bundle lacks it")


def test_a_bundle_without_its_manifest_is_caught(members: dict[str, bytes],
                                                 tmp_path: Path) -> None:
    files = {n: d for n, d in members.items() if n != MANIFEST}
    path = rezip(files, tmp_path / "tampered.zip", recompute_manifest=False)
    result = runner.invoke(app, ["verify", str(path)])
    assert_one_sentence(result, "tampered.zip", "is not a Canary evidence bundle", MANIFEST)


@pytest.mark.parametrize("content", [b"", b"not a zip at all\n", b"PK\x03\x04truncated"],
                         ids=["empty", "text", "truncated-zip"])
def test_a_file_that_is_not_a_zip_is_an_error_not_a_mismatch(tmp_path: Path,
                                                             content: bytes) -> None:
    path = tmp_path / "evidence.zip"
    path.write_bytes(content)
    result = runner.invoke(app, ["verify", str(path)])
    assert_one_sentence(result, "evidence.zip", "is not a Canary evidence bundle (not a zip file)")
    assert "MISMATCH" not in result.output


def test_verify_of_a_missing_file_says_so_in_one_sentence(tmp_path: Path) -> None:
    result = runner.invoke(app, ["verify", str(tmp_path / "nowhere.zip")],
                           env={"CANARY_HOME": str(tmp_path / "no-such-home")})
    assert result.exit_code == 1
    text = result.stderr.strip()
    assert "nowhere.zip" in text and "\n" not in text and "Traceback" not in text
    assert "all evidence verified" not in result.stdout.lower()


# --- many messages, and a key rotated in DNS ------------------------------------------------------


def store_signed(store: Store, address: str, key: DkimKey, count: int,
                 start: datetime) -> None:
    """`count` DKIM-signed newsletters from acme.example, one an hour from `start`."""
    with store.writing() as session:
        issued = issued_alias(session, address)
        assert issued is not None
        deliveries = []
        for number in range(count):
            raw = key.sign(make_message(
                sender='"Acme" <news@acme.example>', to=address, subject=f"Deals no. {number}",
                headers={"List-Unsubscribe": "<mailto:u@acme.example>"}))
            deliveries.append(Delivery(
                raw=raw, recipients=((issued.alias_id, address),),
                mail_from="bounce@acme.example", peer_ip="198.51.100.7", helo="mx.acme.example",
                tls=True, received_at=start + timedelta(hours=number)))
        store_deliveries(session, deliveries)


def test_a_large_bundle_shows_progress_and_verifies_after_the_key_rotated(
    home: Home, store: Store, tmp_path: Path,
) -> None:
    count = PROGRESS_FROM + 5
    key = ed25519_key("acme.example", selector="s2026")
    zones = Zones()
    key.publish(zones)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    with store.writing() as session:
        address = issue_alias(session, secret=home.secret(), name="Acme",
                              alias_domain=CANARY_DOMAIN, domains=["acme.example"], note=None,
                              new=False, now=start, marketing=True,
                              frequency=Frequency.WEEKLY).address
        opt_out(session, "Acme", start + timedelta(hours=1))
    # Every newsletter came more than ten days after the opt-out: all are cited.
    store_signed(store, address, key, count, start + timedelta(days=11))
    with ZoneServer(zones) as (host, port):
        resolver = Resolver.from_setting(f"{host}:{port}", timeout=0.5, lifetime=1.0)
        assert analyse_all(store, AnalysisSettings(resolver),
                           lambda: datetime.now(UTC)) == count

    # The sender has since rotated its key: DNS now serves a different one.
    rotated = Zones()
    ed25519_key("acme.example", selector="s2026").publish(rotated)
    canary = Canary(home.path)
    bundle = tmp_path / "evidence.zip"
    with ZoneServer(rotated) as (host, port):
        env = {"CANARY_DNS": f"{host}:{port}", "TTY_COMPATIBLE": "1"}
        result = canary("export", "--bundle", str(bundle), env=env)
        assert result.exit_code == 0, result.output
        shown = " ".join(ANSI.sub("", result.stderr).split())
        assert f"{count} messages" in shown
        # Shown as a live bar on a terminal (forced here), not printed into a pipe.
        assert "Bundling evidence" in shown

        code, stdout, mismatches = verify(bundle, tmp_path)
    assert (code, mismatches) == (0, [])
    assert f"{count} messages, {count} DKIM signatures" in stdout
    assert "all evidence verified" in stdout.lower()

    with zipfile.ZipFile(bundle) as archive:
        document = json.loads(archive.read("report.json"))
    (company,) = document["companies"]
    (finding,) = company["findings"]
    assert finding["kind"] == "after_optout"
    assert len(finding["messages"]) == count


def test_a_small_bundle_prints_no_progress_bar(demo_home: Path, tmp_path: Path,
                                               members: dict[str, bytes]) -> None:
    assert len([n for n in members if n.startswith("messages/")]) < PROGRESS_FROM
    result = Canary(demo_home)("export", "--bundle", str(tmp_path / "small.zip"),
                               env={"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.output
    assert "Bundling evidence" not in result.stderr


def test_progress_is_not_printed_into_a_pipe(tmp_path: Path, home: Home, store: Store) -> None:
    # Without a terminal, the bar must not litter a log with frames.
    key = ed25519_key("acme.example", selector="pipe")
    zones = Zones()
    key.publish(zones)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    with store.writing() as session:
        address = issue_alias(session, secret=home.secret(), name="Acme",
                              alias_domain=CANARY_DOMAIN, domains=["acme.example"], note=None,
                              new=False, now=start, marketing=False, frequency=None).address
    store_signed(store, address, key, PROGRESS_FROM + 1, start + timedelta(days=1))
    with ZoneServer(zones) as (host, port):
        resolver = Resolver.from_setting(f"{host}:{port}", timeout=0.5, lifetime=1.0)
        analyse_all(store, AnalysisSettings(resolver), lambda: datetime.now(UTC))
    result = Canary(home.path)("export", "--bundle", str(tmp_path / "b.zip"),
                               env={"TTY_COMPATIBLE": "0"})
    assert result.exit_code == 0, result.output
    assert "Bundling evidence" not in result.stderr
    assert "\x1b[" not in result.stderr
    code, _, mismatches = verify(tmp_path / "b.zip", tmp_path)
    assert (code, mismatches) == (0, [])
