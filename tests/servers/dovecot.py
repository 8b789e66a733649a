"""A private Dovecot for delivery tests: IMAP, IMAPS and LMTP on free loopback ports.

Never the system instance: the harness writes a standalone `dovecot.conf` in a
temporary directory (nothing from /etc/dovecot is read), with its own
`base_dir`, `state_dir`, log file, self-signed certificate, passwd-file (one
user, a random password) and Maildir storage, and listens on 127.0.0.1 ports
it picks (never 143, 993 or 24) plus an LMTP Unix socket. It was written for
Debian 12's Dovecot 2.3.19; CI installs `dovecot-imapd dovecot-lmtpd`
(`dovecot-core` comes with them). A system Dovecot may run at the same time:
the two share no port, socket, pid file or state.

Who runs it. Dovecot refuses mail access as root ("Mail access not allowed for
root"; userdb uid 0 is rejected too), so the whole instance runs as ONE
unprivileged user, the "rootless" layout from Dovecot's HowTo.Rootless: master,
login, auth, LMTP and IMAP processes all run as that user, and it owns every
file under `root`, including the Maildir.
  * As a normal user (a developer) that user is you: no privileges are needed,
    and the test process can read and write the Maildir directly.
  * As root (the tests and CI) it is `nobody` (the harness starts the master
    with that uid; it exists on every Debian system, needs no account of its
    own, and its uid 65534 passes Dovecot's first_valid_uid check). Root can
    still read everything; `deliver_to_maildir()` gives the files it writes to
    `nobody`. `nobody` must reach `root`: every parent directory needs o+x,
    which pytest's `tmp_path` (mode 0700) does not have. `running_dovecot()`
    with no directory, and the fixtures, use a fresh directory under /tmp.

What Dovecot adds to a message (checked by tests/test_dovecot_harness.py):
  * LMTP prepends exactly three header fields, in this order, and changes
    nothing else:
        Return-Path: <MAIL FROM address>
        Delivered-To: <RCPT TO address, as the client sent it, without brackets>
        Received: from ...\\r\\n\\tby dovecot.test with LMTP\\r\\n\\tid ...\\r\\n
        \\t(envelope-from <MAIL FROM>)\\r\\n\\tfor <RCPT TO>; <date>
    The Received field is folded over five lines (each continuation starts
    with a tab). Its `from` clause is the client's LHLO name followed, over
    TCP only, by the client's address: `from canary.test ([127.0.0.1])` over
    TCP, `from canary.test` over the Unix socket (smtplib's default LHLO name
    is the host's FQDN, or `[127.0.0.1]` when that has no dot). The `id` and
    the date differ per delivery. `strip_lmtp_trace()` removes the three
    fields again and checks they were there. The RCPT TO may be `alice` or
    `alice@<any domain>`, in any case (auth_username_format = %Ln); any other
    local part is refused: "550 5.1.1 <bob@...> User doesn't exist: bob@...".
  * IMAP APPEND stores the bytes unchanged (no header is added).
  * A file written into `maildir/new` is served unchanged.
  * Over IMAP every message comes back with CRLF line ends. On disk Dovecot
    stores LF line ends (mail_save_crlf = no): a Maildir file holds the message
    with each CRLF turned into LF. A file with CRLF line ends put into the
    Maildir is served as it is.
So "bytes delivered through LMTP" == strip_lmtp_trace(fetched), and "bytes
APPENDed" == fetched, for messages with CRLF line ends.

Folder names are ASCII or Unicode (sent as IMAP's modified UTF-7) without
"/"; the hierarchy separator is "." (Maildir++: folder "A" is `maildir/.A`,
"A.B" is `maildir/.A.B`, and LIST shows the parent "A" of a lone "A.B" as
\\Noselect, which `folders()` leaves out). APPEND to a missing folder gets
"NO [TRYCREATE]"; LMTP delivers to INBOX only.

A wrong password fails at once (auth_failure_delay = 0, no auth penalty), so
tests of bad credentials stay fast.

The master runs in the foreground (`dovecot -F`) as a child of the test
process; with util-linux's `setpriv` it also gets SIGTERM if the test process
dies, so a killed pytest leaves no Dovecot behind. Start-up takes about 0.1-0.3 s;
stop() about 10 ms.

Register the fixtures with `pytest_plugins = ["servers.dovecot"]`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import grp
import imaplib
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from servers import require

INSTALL = "apt-get install dovecot-imapd dovecot-lmtpd"
ROOT_RUNS_AS = "nobody"  # the unprivileged user the whole instance runs as when tests run as root
HOSTNAME = "dovecot.test"  # Dovecot's `hostname`: shows up in LMTP's Received field
START_TIMEOUT = 20.0  # seconds for Dovecot to answer IMAP after start()
STOP_TIMEOUT = 10.0  # seconds for the master to exit and every port to refuse connections
START_ATTEMPTS = 3  # a free port can be taken between choosing it and Dovecot binding it
IMAP_TIMEOUT = 10.0
MAX_SOCKET_DIR = 80  # base_dir + Dovecot's socket names must stay under sun_path's 108 bytes
LMTP_TRACE_FIELDS = (b"return-path", b"delivered-to", b"received")


def dovecot_binary() -> str | None:
    """The `dovecot` master binary (PATH, else Debian's /usr/sbin/dovecot), or None."""
    found = shutil.which("dovecot")
    if found is not None:
        return found
    debian = Path("/usr/sbin/dovecot")
    return str(debian) if os.access(debian, os.X_OK) else None


def dovecot_version() -> str | None:
    """`dovecot --version`, e.g. "2.3.19.1 (9b53102964)", or None when not installed."""
    binary = dovecot_binary()
    if binary is None:
        return None
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or None


# -- helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """The OS user (and its primary group) that every Dovecot process runs as."""

    name: str
    uid: int
    group: str
    gid: int

    @classmethod
    def for_this_process(cls) -> Account:
        entry = pwd.getpwnam(ROOT_RUNS_AS) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        return cls(entry.pw_name, entry.pw_uid, grp.getgrgid(entry.pw_gid).gr_name, entry.pw_gid)

    @property
    def switches(self) -> bool:
        """True when the harness must change uid to start Dovecot (tests run as root)."""
        return self.uid != os.geteuid()

    def own(self, path: Path) -> None:
        if self.switches:
            os.chown(path, self.uid, self.gid)

    def can_reach(self, directory: Path) -> bool:
        """Whether this user may traverse every directory down to `directory` (mode bits)."""
        for part in [directory, *directory.parents]:
            info = part.stat()
            if info.st_uid == self.uid:
                needed = 0o100
            elif info.st_gid == self.gid:
                needed = 0o010
            else:
                needed = 0o001
            if not info.st_mode & needed:
                return False
        return True


def _free_ports(host: str, count: int) -> list[int]:
    """`count` distinct ports free on `host` right now (all held open while choosing)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            probe = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            probe.bind((host, 0))
            ports.append(probe.getsockname()[1])
        return ports


def _greeting(host: str, port: int, timeout: float = 1.0) -> bytes | None:
    """The first line a TCP server sends, or None when it cannot be had."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            return connection.recv(512)
    except OSError:
        return None


def _refuses(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def _make_certificate(cert_path: Path, key_path: Path, host: str) -> None:
    """A self-signed EC certificate for `host`, 127.0.0.1 and localhost, usable as its own CA.

    It carries the extensions strict verifiers want (Python 3.13's default
    VERIFY_X509_STRICT): critical CA basic constraints, key usage, SKI/AKI, SAN.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Canary test Dovecot")])
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for address in {host, "127.0.0.1"}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def encode_mailbox(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode_mailbox(name: str) -> str:
    """The inverse of encode_mailbox()."""
    def one(match: re.Match[str]) -> str:
        chunk = match.group(1)
        if not chunk:
            return "&"
        padded = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
        return base64.b64decode(padded).decode("utf-16-be")

    return re.sub(r"&([^-]*)-", one, name)


def quote(name: str) -> str:
    """An IMAP quoted string for a folder name (imaplib sends arguments as they are)."""
    encoded = encode_mailbox(name)
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


_LIST_LINE = re.compile(rb'\((?P<flags>[^)]*)\) (?P<delimiter>NIL|"(?:[^"\\]|\\.)*") (?P<name>.*)')


def _list_entry(entry: bytes | tuple[bytes, bytes]) -> tuple[list[str], str]:
    """(flags, folder name) from one of imaplib's LIST response items."""
    if isinstance(entry, tuple):  # the name came as a literal
        head, raw_name = entry
        match = _LIST_LINE.match(head)
    else:
        match = _LIST_LINE.match(entry)
        raw_name = match.group("name") if match else b""
        if raw_name.startswith(b'"'):
            raw_name = re.sub(rb"\\(.)", rb"\1", raw_name[1:-1])
    if match is None:
        raise ValueError(f"cannot parse LIST response {entry!r}")
    flags = match.group("flags").decode().split()
    return flags, decode_mailbox(raw_name.decode())


def strip_lmtp_trace(message: bytes) -> bytes:
    """The message as the LMTP client sent it: without Dovecot's three trace fields.

    Checks that the message starts with Return-Path, Delivered-To and Received
    (each possibly folded), in that order, and returns what follows them.
    """
    rest = message
    for expected in LMTP_TRACE_FIELDS:
        end = rest.index(b"\r\n") + 2
        while rest[end:end + 1] in (b" ", b"\t"):  # a folded continuation line
            end = rest.index(b"\r\n", end) + 2
        name = rest[:end].split(b":", 1)[0].strip().lower()
        if name != expected:
            raise ValueError(f"expected a {expected.decode()} field from Dovecot's LMTP, "
                             f"found {rest[:end]!r}")
        rest = rest[end:]
    return rest


def _must(result: tuple[str, list[Any]], what: str) -> list[Any]:
    status, data = result
    if status != "OK":
        raise imaplib.IMAP4.error(f"{what}: {status} {data!r}")
    return data


# -- the server -------------------------------------------------------------------------


@dataclass
class Dovecot:
    """A private Dovecot: IMAP, IMAPS (self-signed cert made by the harness) and LMTP on free
    loopback ports, one user with a password, Maildir storage in a temp dir."""

    root: Path
    user: str
    password: str
    imap_port: int
    imaps_port: int
    lmtp_port: int
    lmtp_socket: Path
    cert_path: Path
    host: str = "127.0.0.1"
    account: Account = field(default_factory=Account.for_this_process, repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    # -- layout -------------------------------------------------------------------------

    @classmethod
    def prepare(cls, root: Path, user: str = "alice", host: str = "127.0.0.1") -> Dovecot:
        """Lay out a new instance in `root` (which must not exist yet); not started."""
        account = Account.for_this_process()
        if not root.parent.is_dir():
            raise FileNotFoundError(f"{root.parent} does not exist")
        if not account.can_reach(root.parent):
            raise RuntimeError(
                f"Dovecot runs as {account.name!r}, which cannot reach {root.parent}: every "
                "parent directory must be traversable (o+x); pytest's tmp_path is not. Use "
                "running_dovecot() without a directory, or a directory made under /tmp")
        root.mkdir(mode=0o700)
        run_dir = root / "run"
        if len(str(run_dir)) > MAX_SOCKET_DIR:
            raise ValueError(f"{root} is too long a path for Dovecot's Unix sockets")
        imap_port, imaps_port, lmtp_port = _free_ports(host, 3)
        server = cls(root=root, user=user, password=secrets.token_urlsafe(18),
                     imap_port=imap_port, imaps_port=imaps_port, lmtp_port=lmtp_port,
                     lmtp_socket=run_dir / "lmtp", cert_path=root / "ssl" / "cert.pem",
                     host=host, account=account)
        try:
            server._lay_out()
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return server

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def key_path(self) -> Path:
        return self.root / "ssl" / "key.pem"

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def passwd_path(self) -> Path:
        return self.root / "passwd"

    @property
    def home(self) -> Path:
        return self.root / "mail" / self.user

    @property
    def maildir(self) -> Path:
        """The user's Maildir: INBOX is cur/new/tmp here, folder F is `.F` inside it."""
        return self.home / "Maildir"

    def folder_dir(self, folder: str) -> Path:
        """The Maildir++ directory of a folder ("INBOX" is the Maildir itself)."""
        if folder.upper() == "INBOX":
            return self.maildir
        return self.maildir / ("." + encode_mailbox(folder))

    def _lay_out(self) -> None:
        directories = [self.root / "run", self.root / "state", self.root / "ssl",
                       self.root / "mail", self.home, self.maildir,
                       *(self.maildir / sub for sub in ("cur", "new", "tmp"))]
        for directory in directories:
            directory.mkdir(mode=0o700)
        (self.root / "run").chmod(0o755)  # Dovecot wants its base_dir world-readable
        _make_certificate(self.cert_path, self.key_path, self.host)
        self.passwd_path.write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        self.passwd_path.chmod(0o600)
        self.config_path.write_text(self._config())
        for path in [self.root, *directories, self.cert_path, self.key_path, self.passwd_path,
                     self.config_path]:
            self.account.own(path)

    def _config(self) -> str:
        mail = self.root / "mail"
        return f"""\
# A throw-away Dovecot written by tests/servers/dovecot.py; no system config is read.
base_dir = {self.root / "run"}
state_dir = {self.root / "state"}
instance_name = canary-test-dovecot
log_path = {self.log_path}
protocols = imap lmtp
listen = {self.host}
hostname = {HOSTNAME}
postmaster_address = postmaster@{HOSTNAME}

# Rootless: every process runs as the one user that starts the master.
default_internal_user = {self.account.name}
default_internal_group = {self.account.group}
default_login_user = {self.account.name}

ssl = yes
ssl_cert = <{self.cert_path}
ssl_key = <{self.key_path}

auth_mechanisms = plain login
disable_plaintext_auth = no
auth_username_format = %Ln
# A wrong password fails at once, and repeated failures are not slowed down either.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = {self.passwd_path}
}}
userdb {{
  driver = static
  args = home={mail}/%n
}}

mail_location = maildir:{mail}/%n/Maildir
mail_fsync = never

service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {self.host}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {self.host}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {self.host}
    port = {self.lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"""

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.root / "dovecot.stderr", self.log_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace")
                parts.append(f"-- {path.name} --\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n" + "\n".join(parts)

    def start(self) -> None:
        """Start `dovecot -F -c <root>/dovecot.conf`; return once IMAP and LMTP answer."""
        if self.running:
            return
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError(f"Dovecot is not installed ({INSTALL})")
        # A master that was killed leaves its pid file; a reused pid would stop the start.
        with contextlib.suppress(FileNotFoundError):
            (self.root / "run" / "master.pid").unlink()
        argv = [binary, "-F", "-c", str(self.config_path)]
        setpriv = shutil.which("setpriv")
        if setpriv is not None:  # SIGTERM to the master when the test process dies
            argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        switch = self.account.switches  # as root: become the unprivileged account first
        with (self.root / "dovecot.stderr").open("ab") as stderr:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr, cwd=self.root,
                start_new_session=True, user=self.account.uid if switch else None,
                group=self.account.gid if switch else None, extra_groups=[] if switch else None)
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise

    def _wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RuntimeError(f"dovecot exited with status {code}{self._log_tail()}")
            imap = _greeting(self.host, self.imap_port)
            if imap is not None and imap.startswith(b"* OK"):
                lmtp = _greeting(self.host, self.lmtp_port)
                if lmtp is not None and lmtp.startswith(b"220") and self.lmtp_socket.exists():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot did not answer within {START_TIMEOUT} s"
                                   f"{self._log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the master and every process it started: afterwards all ports refuse.

        SIGTERM goes to the whole process group at once (each Dovecot process
        shuts down cleanly on it); signalling only the master makes it wait
        about a second for its services.
        """
        process = self._process
        if process is None:
            return
        self._process = None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # start_new_session: group id == pid
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        ports = (self.imap_port, self.imaps_port, self.lmtp_port)
        while not all(_refuses(self.host, port) for port in ports):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                raise RuntimeError(f"Dovecot's ports still accept after stop(){self._log_tail()}")
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop and start again: the same ports, socket, password and mail."""
        self.stop()
        self.start()

    # -- IMAP ---------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    @contextlib.contextmanager
    def imap(self, tls: bool = False) -> Iterator[imaplib.IMAP4]:
        """A logged-in imaplib client (IMAPS when `tls`, certificate verified); logs out after."""
        client: imaplib.IMAP4
        if tls:
            client = imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=self.ssl_context(),
                                       timeout=IMAP_TIMEOUT)
        else:
            client = imaplib.IMAP4(self.host, self.imap_port, timeout=IMAP_TIMEOUT)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()
            with contextlib.suppress(Exception):
                client.shutdown()

    def _list(self, client: imaplib.IMAP4) -> list[str]:
        """Names of the folders that exist (not the \\Noselect parent "A" of a folder "A.B",
        which Maildir++ has no directory for)."""
        data = _must(client.list(), "LIST")
        entries = [_list_entry(entry) for entry in data if entry is not None]
        return [name for flags, name in entries
                if not {"\\Noselect", "\\NonExistent"} & set(flags)]

    def folders(self) -> list[str]:
        """Every existing folder's name (INBOX included), in LIST's order."""
        with self.imap() as client:
            return self._list(client)

    def create_folder(self, name: str) -> None:
        """CREATE a folder (and subscribe to it); an error if it exists already."""
        with self.imap() as client:
            _must(client.create(quote(name)), f"CREATE {name}")
            _must(client.subscribe(quote(name)), f"SUBSCRIBE {name}")

    def fetch_all(self, folder: str = "INBOX") -> list[bytes]:
        """Every message's full bytes (BODY.PEEK[], flags unchanged), in UID order."""
        with self.imap() as client:
            _must(client.select(quote(folder), readonly=True), f"EXAMINE {folder}")
            found = _must(client.uid("SEARCH", "ALL"), "UID SEARCH")
            uids = (found[0] or b"").split()
            if not uids:
                return []
            data = _must(client.uid("FETCH", b",".join(uids).decode(), "(UID BODY.PEEK[])"),
                         "UID FETCH")
        messages: dict[int, bytes] = {}
        pending: bytes | None = None
        for item in data:
            if isinstance(item, tuple):
                head, body = item
                match = re.search(rb"\bUID (\d+)", head)
                if match:
                    messages[int(match.group(1))] = body
                else:
                    pending = body
            elif isinstance(item, bytes) and pending is not None:
                match = re.search(rb"\bUID (\d+)", item)
                if match:
                    messages[int(match.group(1))] = pending
                    pending = None
        return [messages[uid] for uid in sorted(messages)]

    def reset(self) -> None:
        """Back to an empty INBOX: other folders deleted, INBOX expunged (starts it if stopped)."""
        if not self.running:
            self.start()
        with self.imap() as client:
            others = sorted((name for name in self._list(client) if name.upper() != "INBOX"),
                            key=lambda name: (-name.count("."), name))
            for name in others:  # children before their parents
                client.unsubscribe(quote(name))
                _must(client.delete(quote(name)), f"DELETE {name}")
            status, data = client.select("INBOX")
            _must((status, data), "SELECT INBOX")
            if int(data[0] or b"0"):
                _must(client.store("1:*", "+FLAGS.SILENT", r"(\Deleted)"), "STORE")
                _must(client.expunge(), "EXPUNGE")
            # Subscriptions of folders that are gone already.
            for entry in _must(client.lsub(), "LSUB"):
                if entry is not None:
                    _, name = _list_entry(entry)
                    if name.upper() != "INBOX":
                        client.unsubscribe(quote(name))
        for leftover in (self.maildir / "tmp").iterdir():
            leftover.unlink()

    # -- Maildir ------------------------------------------------------------------------

    def deliver_to_maildir(self, message: bytes, folder: str = "INBOX") -> Path:
        """Put a message into the folder's `new/` the Maildir way (tmp/, then rename).

        The file belongs to the user Dovecot runs as. Returns its path in new/.
        """
        directory = self.folder_dir(folder)
        if not (directory / "new").is_dir():
            raise FileNotFoundError(f"folder {folder!r} has no Maildir at {directory}")
        unique = (f"{time.time_ns() // 1_000_000_000}.P{os.getpid()}"
                  f"Q{secrets.token_hex(8)}.{HOSTNAME}")
        staged = directory / "tmp" / unique
        staged.write_bytes(message)
        staged.chmod(0o600)
        self.account.own(staged)
        delivered = directory / "new" / unique
        staged.rename(delivered)
        return delivered


# -- set-up -----------------------------------------------------------------------------


def _start_on_free_ports(server: Dovecot) -> None:
    """Start a new instance, choosing other ports if one was taken meanwhile."""
    for attempt in range(START_ATTEMPTS):
        try:
            server.start()
            return
        except RuntimeError as error:
            if "Address already in use" not in str(error) or attempt == START_ATTEMPTS - 1:
                raise
            server.imap_port, server.imaps_port, server.lmtp_port = _free_ports(server.host, 3)
            server.config_path.write_text(server._config())


@contextlib.contextmanager
def running_dovecot(tmp: Path | None = None, user: str = "alice") -> Iterator[Dovecot]:
    """A started Dovecot in `tmp/dovecot`; stopped and removed on exit, also after an error.

    Without `tmp` it lives in a fresh directory under the system temp dir. As
    root, `nobody` must be able to traverse every parent of `tmp` (pytest's
    tmp_path is not traversable: call this without a directory there).
    """
    made = None
    if tmp is None:
        made = Path(tempfile.mkdtemp(prefix="canary-dovecot-"))
        made.chmod(0o755)
        tmp = made
    try:
        server = Dovecot.prepare(tmp / "dovecot", user=user)  # refuses an existing directory
        try:
            _start_on_free_ports(server)
            yield server
        finally:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
    finally:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One private Dovecot per test session; tests that stop it must not rely on it after."""
    require(dovecot_binary() is not None, "Dovecot", INSTALL)
    with running_dovecot() as server:
        yield server


@pytest.fixture
def clean_dovecot(dovecot: Dovecot) -> Dovecot:
    """The session's Dovecot, running, with nothing but an empty INBOX."""
    dovecot.reset()
    return dovecot
