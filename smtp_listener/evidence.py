"""Evidence bundles: a zip someone else can check without Canary's home.

This is library code: `canary export --bundle` writes bundles and `canary
verify` (which needs no home) checks them; a script can do either.

`write_bundle` puts the report (JSON, HTML, Markdown), the raw `.eml` of
every message the report cites, the DNS answers used to authenticate each
one at receipt time, and `MANIFEST.sha256` (the format `sha256sum -c`
reads) into one zip. `verify_bundle` checks every hash, that the messages
are exactly the ones the report cites, and re-verifies every DKIM signature
offline against the recorded keys: it needs no home and no network.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canary.authentication import AuthMethod, DnsAnswer, Result
from canary.errors import NotABundle
from canary.wording import iso_time
from data.analyses import StoredEvidence
from smtp_listener.authenticate import check_dkim
from smtp_listener.resolver import RecordedAnswers, Recorder

MANIFEST = "MANIFEST.sha256"
MAX_MEMBER_BYTES = (1 << 30) + (1 << 20)
"""The largest file a bundle can hold: a message at the 1 GiB `--max-size`, plus headroom.
Anything larger is refused unread, so a zip bomb cannot exhaust memory."""
MESSAGES = "messages/"
DNS = "dns/"


def cited_sha256s(document: Any) -> set[str]:
    """Every message SHA-256 the report document cites as evidence."""
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "sha256" and isinstance(value, str):
                found.add(value)
            else:
                found |= cited_sha256s(value)
    elif isinstance(document, list):
        for item in document:
            found |= cited_sha256s(item)
    return found


def _dns_record(evidence: StoredEvidence) -> dict[str, Any]:
    return {
        "sha256": evidence.sha256,
        "received_at": iso_time(evidence.received_at),
        "client": {"ip": evidence.peer_ip, "mail_from": evidence.mail_from,
                   "helo": evidence.helo},
        "authentication_at_receipt": evidence.authentication,
        "answers": [answer.to_dict() for answer in evidence.dns_answers],
    }


def write_bundle(
    target: io.BufferedWriter | Any,
    *,
    report_json: dict[str, Any],
    report_html: str,
    report_md: str,
    evidence: Iterable[StoredEvidence],
    progress: Callable[[], None] = lambda: None,
) -> int:
    """Write the zip; return how many messages it holds."""
    files: list[tuple[str, bytes]] = [
        ("report.json", (json.dumps(report_json, indent=2) + "\n").encode()),
        ("report.html", report_html.encode()),
        ("report.md", report_md.encode()),
    ]
    count = 0
    for item in evidence:
        files.append((f"{MESSAGES}{item.sha256}.eml", item.raw))
        files.append((f"{DNS}{item.sha256}.json",
                      (json.dumps(_dns_record(item), indent=2) + "\n").encode()))
        count += 1
        progress()
    manifest = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in files)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
        archive.writestr(MANIFEST, manifest)
    return count


@dataclass
class Verification:
    problems: list[str] = field(default_factory=list)
    files: int = 0
    messages: int = 0
    signatures: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _manifest(text: str, problems: list[str]) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        digest, separator, name = line.partition("  ")
        if not separator or len(digest) != 64 or not name:
            problems.append(f"{MANIFEST} line {number} is malformed")
            continue
        yield name, digest.lower()


def _recorded_answers(record: dict[str, Any]) -> RecordedAnswers:
    return RecordedAnswers(DnsAnswer.from_dict(answer) for answer in record.get("answers", []))


def _claimed_dkim(document: Any) -> dict[str, set[str]]:
    """Per cited message, the DKIM domains the report says authenticated it.

    Only senders that authenticated one way are counted: for them, every example
    message must carry a signature of that domain that verifies.
    """
    claimed: dict[str, set[str]] = {}
    companies = document.get("companies", []) if isinstance(document, dict) else []
    for company in companies if isinstance(companies, list) else []:
        senders = [*company.get("unexpected_senders", []), *company.get("expected_senders", [])]
        for sender in senders:
            ways = sender.get("authenticated_by", [])
            if len(ways) != 1 or ways[0].get("method") != AuthMethod.DKIM.value:
                continue
            domain = str(ways[0].get("domain", "")).lower()
            for example in sender.get("examples", []):
                claimed.setdefault(str(example.get("sha256")), set()).add(domain)
    return claimed


def _check_signatures(name: str, raw: bytes, record: dict[str, Any], result: Verification,
                      claimed: frozenset[str] = frozenset()) -> None:
    receipt = record.get("authentication_at_receipt") or {}
    if receipt.get("upstream"):
        claimed = frozenset()  # vouched for by the user's own MTA: not re-verifiable offline
    at_receipt = receipt.get("dkim", [])
    passed_then = {(d.get("domain"), d.get("selector")) for d in at_receipt
                   if d.get("result") == Result.PASS.value}
    now = check_dkim(_recorded_answers(record), Recorder(), raw)
    checked: set[str] = set()
    for signature in now:
        key = (signature.domain, signature.selector)
        if key not in passed_then and signature.domain.lower() not in claimed:
            continue  # it did not verify at receipt either, and the report does not rely on it
        result.signatures += 1
        checked.add(signature.domain.lower())
        if signature.result is not Result.PASS:
            result.problems.append(
                f"{name}: the DKIM signature of {signature.domain} (selector "
                f"{signature.selector}) no longer verifies against the recorded key: "
                f"{signature.reason or signature.result.value}"
            )
    for domain in sorted(claimed - checked):
        result.problems.append(
            f"{name}: the report says {domain} authenticated it with DKIM, but it carries no "
            "signature of that domain"
        )


def verify_bundle(path: Path, data: bytes) -> Verification:
    """Check every hash and re-verify every DKIM signature offline.

    Raises `NotABundle` for a file that is no zip or has no manifest: that is a
    wrong file, not a bundle with a mismatch.
    """
    result = Verification()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise NotABundle(path, "not a zip file") from error
    with archive:
        names = set(archive.namelist())
        if MANIFEST not in names:
            raise NotABundle(path, f"it has no {MANIFEST}")
        listed = dict(_manifest(archive.read(MANIFEST).decode("utf-8", "replace"),
                                result.problems))
        for name in sorted(names - listed.keys() - {MANIFEST}):
            result.problems.append(f"{name} is not listed in {MANIFEST}")
        contents: dict[str, bytes] = {}
        sizes = {info.filename: info.file_size for info in archive.infolist()}
        for name, digest in sorted(listed.items()):
            if name not in names:
                result.problems.append(f"{name} is listed in {MANIFEST} but missing")
                continue
            if sizes[name] > MAX_MEMBER_BYTES:
                result.problems.append(f"{name} is larger than any evidence Canary writes")
                continue
            try:
                contents[name] = _read_bounded(archive, name)
            except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError,
                    ValueError) as error:
                result.problems.append(f"{name} cannot be read: {error}")
                continue
            result.files += 1
            if hashlib.sha256(contents[name]).hexdigest() != digest:
                result.problems.append(f"{name} does not match its SHA-256 in {MANIFEST}")

    report = contents.get("report.json")
    cited: set[str] = set()
    claimed: dict[str, set[str]] = {}
    if report is None:
        result.problems.append("report.json is missing")
    else:
        try:
            document = json.loads(report)
            cited = cited_sha256s(document)
            claimed = _claimed_dkim(document)
        except (ValueError, TypeError, AttributeError, RecursionError):
            result.problems.append("report.json is not a Canary report")
    held = {n[len(MESSAGES):-len(".eml")] for n in contents if n.startswith(MESSAGES)}
    for digest in sorted(cited - held):
        result.problems.append(f"the report cites message {digest} but the bundle lacks it")
    for digest in sorted(held - cited):
        result.problems.append(f"message {digest} is in the bundle but the report does not cite it")

    for digest in sorted(held):
        name = f"{MESSAGES}{digest}.eml"
        raw = contents[name]
        result.messages += 1
        if hashlib.sha256(raw).hexdigest() != digest:
            result.problems.append(f"{name} does not match the SHA-256 in its name")
        dns_name = f"{DNS}{digest}.json"
        if dns_name not in contents:
            result.problems.append(f"{dns_name}, the DNS record of {name}, is missing")
            continue
        try:
            record = json.loads(contents[dns_name])
            if not isinstance(record, dict) or record.get("sha256") != digest:
                result.problems.append(f"{dns_name} does not belong to {name}")
                continue
            _check_signatures(name, raw, record, result, frozenset(claimed.get(digest, ())))
        except (ValueError, TypeError, AttributeError, RecursionError):
            result.problems.append(f"{dns_name} is not a DNS record Canary wrote")
    return result


def _read_bounded(archive: zipfile.ZipFile, name: str) -> bytes:
    """A member's bytes, refusing one that inflates past what its header declared."""
    with archive.open(name) as member:
        data = member.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise ValueError("it inflates beyond the size limit")
    return data
