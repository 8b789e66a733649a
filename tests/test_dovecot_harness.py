"""The Dovecot test harness against a real Dovecot: LMTP, IMAP, IMAPS, Maildir, stop/restart."""

from __future__ import annotations

import imaplib
import os
import smtplib
import ssl
import subprocess
from pathlib import Path

import pytest
from servers.dovecot import (
    Dovecot,
    dovecot_binary,
    dovecot_version,
    running_dovecot,
    strip_lmtp_trace,
)

SENDER = "sender@shop.example"
# CRLF line ends throughout, 8-bit UTF-8, a line that starts with a dot (SMTP dot-stuffing),
# a long line and a trailing blank line: what Canary hands on must arrive unchanged.
MESSAGE = (
    b"From: Shop <sender@shop.example>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <harness-1@shop.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln.\r\n"
    b".a line that starts with a dot\r\n"
    b"..and one with two\r\n"
    + b"x" * 900 + b"\r\n"
    b"\r\n"
)


def _lmtp_send(server: Dovecot, recipient: str, *, unix: bool = False,
               message: bytes = MESSAGE) -> None:
    if unix:
        client = smtplib.LMTP(str(server.lmtp_socket), local_hostname="canary.test")
    else:
        client = smtplib.LMTP(server.host, server.lmtp_port, local_hostname="canary.test")
    with client:
        refused = client.sendmail(SENDER, [recipient], message)
    assert refused == {}


def _stored_files(folder_dir: Path) -> list[Path]:
    return sorted([*(folder_dir / "new").iterdir(), *(folder_dir / "cur").iterdir()])


def test_installed_version_is_2_3_or_newer() -> None:
    if dovecot_binary() is None:
        pytest.skip("Dovecot is not installed")
    version = dovecot_version()
    assert version is not None
    major, minor = (int(part) for part in version.split(".")[:2])
    assert (major, minor) >= (2, 3)


def test_config_is_standalone_on_private_ports(dovecot: Dovecot) -> None:
    text = dovecot.config_path.read_text()
    assert "/etc/" not in text and "!include" not in text
    ports = {dovecot.imap_port, dovecot.imaps_port, dovecot.lmtp_port}
    assert len(ports) == 3 and not ports & {24, 143, 993}
    assert dovecot.lmtp_socket.is_relative_to(dovecot.root)
    checked = subprocess.run(["doveconf", "-c", str(dovecot.config_path), "-n"],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    assert f"port = {dovecot.lmtp_port}" in checked.stdout


def test_lmtp_over_tcp_prepends_exactly_three_trace_fields(clean_dovecot: Dovecot) -> None:
    _lmtp_send(clean_dovecot, "alice@example.org")

    [stored] = clean_dovecot.fetch_all()
    assert strip_lmtp_trace(stored) == MESSAGE
    trace = stored[: len(stored) - len(MESSAGE)]
    assert trace.startswith(
        b"Return-Path: <sender@shop.example>\r\n"
        b"Delivered-To: alice@example.org\r\n"
        b"Received: from canary.test ([127.0.0.1])\r\n"
        b"\tby dovecot.test with LMTP\r\n"
        b"\tid ")
    assert trace.endswith(b"\r\n")
    assert b"\r\n\t(envelope-from <sender@shop.example>)\r\n\tfor <alice@example.org>; " in trace
    assert trace.count(b"\r\n") == 7  # three fields, Received folded over five lines

    # On disk Dovecot keeps LF line ends; the bytes are otherwise the same.
    [path] = _stored_files(clean_dovecot.maildir)
    assert path.read_bytes() == stored.replace(b"\r\n", b"\n")


def test_lmtp_over_unix_socket(clean_dovecot: Dovecot) -> None:
    _lmtp_send(clean_dovecot, "alice", unix=True)

    [stored] = clean_dovecot.fetch_all()
    assert strip_lmtp_trace(stored) == MESSAGE
    assert stored.startswith(b"Return-Path: <sender@shop.example>\r\nDelivered-To: alice\r\n"
                             b"Received: from canary.test\r\n\tby dovecot.test with LMTP\r\n")


def test_lmtp_refuses_unknown_user(clean_dovecot: Dovecot) -> None:
    with smtplib.LMTP(clean_dovecot.host, clean_dovecot.lmtp_port) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(SENDER, ["bob@example.org"], MESSAGE)
    code, _ = refused.value.recipients["bob@example.org"]
    assert code == 550
    assert clean_dovecot.fetch_all() == []


def test_strip_lmtp_trace_insists_on_the_trace() -> None:
    with pytest.raises(ValueError, match="return-path"):
        strip_lmtp_trace(MESSAGE)


def test_append_over_plain_imap_is_stored_unchanged(clean_dovecot: Dovecot) -> None:
    with clean_dovecot.imap() as client:
        status, data = client.append("INBOX", None, None, MESSAGE)
    assert status == "OK", data
    assert b"[APPENDUID " in data[0]

    assert clean_dovecot.fetch_all() == [MESSAGE]
    [path] = _stored_files(clean_dovecot.maildir)
    assert path.read_bytes() == MESSAGE.replace(b"\r\n", b"\n")


def test_append_over_imaps_verifies_the_harness_certificate(clean_dovecot: Dovecot) -> None:
    strict = clean_dovecot.ssl_context()
    strict.verify_flags |= ssl.VERIFY_X509_STRICT  # Python 3.13's default; the cert passes it
    with imaplib.IMAP4_SSL(clean_dovecot.host, clean_dovecot.imaps_port, ssl_context=strict,
                           timeout=10) as client:
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[attr-defined]
        client.login(clean_dovecot.user, clean_dovecot.password)
        status, data = client.append("INBOX", None, None, MESSAGE)
        assert status == "OK", data
    assert clean_dovecot.fetch_all() == [MESSAGE]

    # The certificate is not trusted by the system's CAs: verification really happens.
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(clean_dovecot.host, clean_dovecot.imaps_port,
                          ssl_context=ssl.create_default_context(), timeout=10)


def test_wrong_password_is_refused(clean_dovecot: Dovecot) -> None:
    with imaplib.IMAP4(clean_dovecot.host, clean_dovecot.imap_port, timeout=10) as client:
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(clean_dovecot.user, clean_dovecot.password + "x")


def test_append_to_unknown_folder_says_trycreate(clean_dovecot: Dovecot) -> None:
    with clean_dovecot.imap() as client:
        status, data = client.append('"Shops.Acme"', None, None, MESSAGE)
    assert status == "NO"
    assert data[0].startswith(b"[TRYCREATE]")

    clean_dovecot.create_folder("Shops.Acme")
    clean_dovecot.create_folder("Grüße & Co")
    # "Shops" is only the \Noselect parent of "Shops.Acme" in LIST: not a folder.
    assert set(clean_dovecot.folders()) == {"INBOX", "Shops.Acme", "Grüße & Co"}
    with clean_dovecot.imap() as client:
        status, data = client.append('"Shops.Acme"', None, None, MESSAGE)
    assert status == "OK", data
    assert clean_dovecot.fetch_all("Shops.Acme") == [MESSAGE]
    assert clean_dovecot.fetch_all() == []
    assert (clean_dovecot.folder_dir("Grüße & Co") / "cur").is_dir()


def test_messages_put_into_maildir_new_are_served(clean_dovecot: Dovecot) -> None:
    first = clean_dovecot.deliver_to_maildir(MESSAGE)
    assert first.parent == clean_dovecot.maildir / "new"
    # A file written by hand, with LF line ends, comes back with CRLF.
    by_hand = clean_dovecot.maildir / "new" / "1700000000.M1P1.canary-test"
    by_hand.write_bytes(b"Subject: by hand\n\nwritten directly\n")
    by_hand.chmod(0o644)

    fetched = clean_dovecot.fetch_all()
    assert sorted(fetched) == sorted([MESSAGE, b"Subject: by hand\r\n\r\nwritten directly\r\n"])

    clean_dovecot.create_folder("Archive")
    clean_dovecot.deliver_to_maildir(b"Subject: archived\r\n\r\nx\r\n", "Archive")
    assert clean_dovecot.fetch_all("Archive") == [b"Subject: archived\r\n\r\nx\r\n"]


def test_fetch_all_keeps_uid_order(clean_dovecot: Dovecot) -> None:
    bodies = [MESSAGE.replace(b"harness-1", f"harness-{n}".encode()) for n in range(5)]
    for body in bodies:
        _lmtp_send(clean_dovecot, "alice", message=body)
    assert [strip_lmtp_trace(message) for message in clean_dovecot.fetch_all()] == bodies


def test_stop_refuses_connections_and_restart_serves_the_same_mail(
        clean_dovecot: Dovecot) -> None:
    _lmtp_send(clean_dovecot, "alice")
    with clean_dovecot.imap() as client:
        client.append("INBOX", None, None, MESSAGE)
    before = clean_dovecot.fetch_all()
    ports = (clean_dovecot.imap_port, clean_dovecot.imaps_port, clean_dovecot.lmtp_port)

    clean_dovecot.stop()
    try:
        assert not clean_dovecot.running
        with pytest.raises(ConnectionRefusedError):
            imaplib.IMAP4(clean_dovecot.host, clean_dovecot.imap_port, timeout=5)
        with pytest.raises(ConnectionRefusedError):
            imaplib.IMAP4_SSL(clean_dovecot.host, clean_dovecot.imaps_port,
                              ssl_context=clean_dovecot.ssl_context(), timeout=5)
        with pytest.raises(ConnectionRefusedError):
            smtplib.LMTP(clean_dovecot.host, clean_dovecot.lmtp_port, timeout=5)
        with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
            smtplib.LMTP(str(clean_dovecot.lmtp_socket), timeout=5)
    finally:
        clean_dovecot.restart()

    assert (clean_dovecot.imap_port, clean_dovecot.imaps_port, clean_dovecot.lmtp_port) == ports
    assert clean_dovecot.fetch_all() == before
    _lmtp_send(clean_dovecot, "alice", unix=True)
    assert len(clean_dovecot.fetch_all()) == 3


def test_reset_leaves_an_empty_inbox(clean_dovecot: Dovecot) -> None:
    _lmtp_send(clean_dovecot, "alice")
    clean_dovecot.create_folder("Shops")
    clean_dovecot.create_folder("Shops.Acme")
    clean_dovecot.deliver_to_maildir(MESSAGE, "Shops.Acme")

    clean_dovecot.reset()

    assert clean_dovecot.folders() == ["INBOX"]
    assert clean_dovecot.fetch_all() == []
    assert _stored_files(clean_dovecot.maildir) == []


def test_running_dovecot_in_a_directory(tmp_path: Path) -> None:
    if dovecot_binary() is None:
        pytest.skip("Dovecot is not installed")
    if os.geteuid() == 0:
        # Dovecot then runs as `nobody`, which cannot traverse pytest's 0700 tmp_path.
        with pytest.raises(RuntimeError, match="cannot reach"):
            with running_dovecot(tmp_path):
                pass
        assert not (tmp_path / "dovecot").exists()
        return
    with running_dovecot(tmp_path) as second:
        assert second.root == tmp_path / "dovecot"
        _lmtp_send(second, "alice")
        assert len(second.fetch_all()) == 1
    assert not (tmp_path / "dovecot").exists()
