"""The Canary home: config, secret and database in one directory.

`init_home` creates it; `open_home` finds it or says in one sentence that
`canary init` comes first. `--force` rewrites the config but never replaces
the secret (every issued alias depends on it) nor the database. The secret
and the database are mode 0600; the secret is never printed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import platformdirs

from canary.addresses import AddressPatterns, parse_sub_address, patterns_toml, read_patterns
from canary.alerts import AlertsConfig, AlertsConfigError, alerts_toml, read_alerts
from canary.aliases import SECRET_BYTES
from canary.delivery import (
    DeliveryConfig,
    DeliveryPolicy,
    DestinationError,
    delivery_toml,
    parse_destination,
    read_delivery,
)
from canary.domains import normalise_domain
from canary.errors import (
    AlreadyInitialised,
    ConfigInvalid,
    DatabaseTaken,
    InvalidDestination,
    InvalidValue,
    JoinNeedsSharedDatabase,
    NoCanaryDomain,
    NothingToJoin,
    NotInitialised,
    SchemaOutdated,
    SecretDamaged,
)
from canary.wording import toml_number, toml_string

if TYPE_CHECKING:  # the database loads when a command opens it: `canary aliases` reads
    from sqlmodel import Session  # a default home with sqlite3 alone (`data.directory`)

    from data.database import Store

CONFIG_NAME = "canary.toml"
DEFAULT_XFORWARD_PEERS = ("127.0.0.1", "::1")
SECRET_NAME = "secret"
DATABASE_NAME = "canary.db"


def default_home() -> Path:
    """The platform's user data directory, e.g. ~/.local/share/canary."""
    return platformdirs.user_data_path("canary", appauthor=False)


@dataclass(frozen=True, slots=True)
class Config:
    domains: tuple[str, ...]
    """The canary domains, first one the default for new aliases."""
    database: str | None = None
    """Database URL given at init; None means SQLite in the home."""
    dns: str | None = None
    """`HOST[:PORT]` of the DNS server for authentication; None means the system's."""
    trusted_authserv_ids: tuple[str, ...] = ()
    """Upstream MTAs whose Authentication-Results headers are believed."""
    trusted_arc_sealers: tuple[str, ...] = ()
    dns_retry_days: float = 3.0
    """How long a message whose DNS keeps failing is tried again before it is settled."""
    """ARC sealers (forwarders, list servers) whose record of a message's authentication
    is believed, besides each company's own domains."""
    xforward_peers: tuple[str, ...] = DEFAULT_XFORWARD_PEERS
    """Relays whose XFORWARD (original client address and HELO) is believed."""
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    addresses: AddressPatterns = field(default_factory=AddressPatterns)
    """Addresses the person gave out before Canary: catch-all domains, sub-address bases."""
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    """Where and when Canary sends alerts (`[alerts]`)."""


@dataclass(frozen=True, slots=True)
class Home:
    path: Path

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def secret_path(self) -> Path:
        return self.path / SECRET_NAME

    @property
    def database_path(self) -> Path:
        return self.path / DATABASE_NAME

    def config(self) -> Config:
        try:
            with self.config_path.open("rb") as handle:
                document = tomllib.load(handle)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise ConfigInvalid(self.config_path, f"not valid TOML ({error})") from error
        domains = document.get("domains")
        if not isinstance(domains, list) or not domains:
            raise ConfigInvalid(self.config_path, "it lists no canary domains")
        database = document.get("database")
        dns = document.get("dns")
        authentication = document.get("authentication", {})
        listener = document.get("listener", {})
        return Config(
            domains=tuple(normalise_domain(str(d)) for d in domains),
            database=str(database) if database else None,
            dns=str(dns) if dns else None,
            trusted_authserv_ids=self._strings(authentication, "trusted_authserv_ids", ()),
            trusted_arc_sealers=self._strings(authentication, "trusted_arc_sealers", ()),
            dns_retry_days=self._days(authentication, "dns_retry_days", 3.0),
            xforward_peers=self._strings(listener, "xforward_peers", DEFAULT_XFORWARD_PEERS),
            delivery=self._delivery(document.get("delivery")),
            addresses=self._addresses(document.get("addresses")),
            alerts=self._alerts(document.get("alerts")),
        )

    def _alerts(self, table: object) -> AlertsConfig:
        try:
            return read_alerts(table)
        except AlertsConfigError as error:
            raise ConfigInvalid(self.config_path, str(error)) from error

    def save_alerts(self, alerts: AlertsConfig) -> Config:
        """Rewrite the config (0600) with these alert settings; the rest stays as it is."""
        config = replace(self.config(), alerts=alerts)
        replace_private(self.config_path, _config_text(config).encode())
        return config

    def _delivery(self, table: object) -> DeliveryConfig:
        try:
            return read_delivery(table)
        except DestinationError as error:
            raise ConfigInvalid(self.config_path, str(error)) from error

    def _addresses(self, table: object) -> AddressPatterns:
        try:
            return read_patterns(table)
        except InvalidValue as error:
            raise ConfigInvalid(self.config_path, str(error).rstrip(".")) from error

    def secret(self) -> bytes:
        value = self.secret_path.read_bytes()
        if len(value) != SECRET_BYTES:
            raise SecretDamaged(self.secret_path)
        return value

    def store(self, database_url: str | None = None) -> Store:
        """The store at `database_url`, else the one named at init, else SQLite in the home."""
        from data.database import Store, sqlite_url

        return Store(self.database_url(database_url) or sqlite_url(self.database_path))

    def database_url(self, database_url: str | None = None) -> str | None:
        """`database_url`, else the one named at init; None for SQLite in the home."""
        if database_url is None and self.config_path.exists():
            database_url = self.config().database
        return database_url

    def _days(self, table: object, key: str, default: float) -> float:
        value = table.get(key, default) if isinstance(table, dict) else default
        if (isinstance(value, bool) or not isinstance(value, int | float)
                or not 0 < value <= 365):
            raise ConfigInvalid(self.config_path, f"{key} must be a number of days from 0 to 365")
        return float(value)

    def _strings(self, table: object, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        if not isinstance(table, dict) or key not in table:
            return default
        values = table[key]
        if not isinstance(values, list):
            raise ConfigInvalid(self.config_path, f"{key} must be a list of strings")
        return tuple(str(v).strip().lower() for v in values)


def write_private(path: Path, content: bytes) -> None:
    """Write a file readable by its owner alone, durably: secrets, config, evidence."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode applies to new files only
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())


def replace_private(path: Path, content: bytes) -> None:
    """Write a home file (the config, the secret) readable by its owner alone, durably and
    all at once: a running listener reading it, or a crash, meets the old content or the
    new, never half of it. Each write makes a new file, renamed over the old one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # the rename itself survives a crash
    finally:
        os.close(directory)


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def _config_text(config: Config) -> str:
    lines = [
        "# Canary configuration.",
        "# domains: the domains whose mail Canary receives; new aliases use the first.",
        f"domains = {_toml_list(config.domains)}",
    ]
    if config.database:
        lines += ["# database: used when no --db / CANARY_DB is given.",
                  f"database = {toml_string(config.database)}"]
    if config.dns:
        lines += ["# dns: HOST[:PORT] of the resolver for SPF/DKIM/DMARC (default: the system's).",
                  f"dns = {toml_string(config.dns)}"]
    lines += [
        "",
        "[authentication]",
        "# authserv-ids of your own MTA whose Authentication-Results headers Canary believes.",
        f"trusted_authserv_ids = {_toml_list(config.trusted_authserv_ids)}",
        "# ARC sealers (forwarders, list servers) whose record of a message's authentication",
        "# Canary believes, besides each company's own domains.",
        f"trusted_arc_sealers = {_toml_list(config.trusted_arc_sealers)}",
        "# Days a message whose DNS keeps failing is tried again before it is settled with",
        "# what is known (the report says so).",
        f"dns_retry_days = {toml_number(config.dns_retry_days)}",
        "",
        "[listener]",
        "# Relays allowed to pass the original client address with XFORWARD (Postfix).",
        f"xforward_peers = {_toml_list(config.xforward_peers)}",
    ]
    if config.delivery.urls or config.delivery != DeliveryConfig():
        lines += delivery_toml(config.delivery)
    if config.addresses != AddressPatterns():
        lines += patterns_toml(config.addresses)
    if config.alerts != AlertsConfig():
        lines += alerts_toml(config.alerts)
    return "\n".join(lines) + "\n"


def _with_patterns(patterns: AddressPatterns, catch_all: Iterable[str],
                   sub_addresses: Iterable[str]) -> AddressPatterns:
    """`init --catch-all` / `--sub-address`: added to the configured ones."""
    domains = tuple(dict.fromkeys((*patterns.catch_all,
                                   *(normalise_domain(d) for d in catch_all))))
    subs = {s.address: s for s in patterns.sub_addresses}
    for text in sub_addresses:
        parsed = parse_sub_address(text)
        subs[parsed.address] = parsed
    return AddressPatterns(domains, tuple(subs.values()))


def _with_destinations(delivery: DeliveryConfig, urls: Iterable[str]) -> DeliveryConfig:
    """`init --deliver URL`: destinations added to (or replacing) the configured ones."""
    added = tuple(urls)
    if not added:
        return delivery
    try:
        for url in added:
            parse_destination(url)
    except DestinationError as error:
        raise InvalidDestination(str(error)) from error
    return replace(delivery, urls=added)


def init_home(
    path: Path,
    domains: list[str],
    *,
    force: bool = False,
    database_url: str | None = None,
    dns: str | None = None,
    trusted_authserv_ids: Iterable[str] = (),
    trusted_arc_sealers: Iterable[str] = (),
    deliver: Iterable[str] = (),
    delivery_policy: DeliveryPolicy | None = None,
    catch_all: Iterable[str] = (),
    sub_addresses: Iterable[str] = (),
) -> Home:
    """Create the home: config, secret (0600) and database (0600)."""
    if not domains:
        raise NoCanaryDomain()
    canary_domains = tuple(dict.fromkeys(normalise_domain(d) for d in domains))
    home = Home(path)
    if home.config_path.exists() and not force:
        raise AlreadyInitialised(path)
    previous = home.config() if home.config_path.exists() else Config(domains=canary_domains)
    config = Config(
        domains=canary_domains,
        database=database_url or previous.database,
        dns=dns or previous.dns,
        trusted_authserv_ids=tuple(trusted_authserv_ids) or previous.trusted_authserv_ids,
        trusted_arc_sealers=(tuple(normalise_domain(d) for d in trusted_arc_sealers)
                             or previous.trusted_arc_sealers),
        xforward_peers=previous.xforward_peers,
        dns_retry_days=previous.dns_retry_days,
        addresses=_with_patterns(previous.addresses, catch_all, sub_addresses),
        delivery=_with_destinations(previous.delivery, deliver),
        alerts=previous.alerts,
    )
    if delivery_policy is not None:
        config = replace(config, delivery=replace(config.delivery, policy=delivery_policy))
    database_url = config.database
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = home.store(database_url)
    secret = home.secret_path.read_bytes() if home.secret_path.exists() else (
        secrets.token_bytes(SECRET_BYTES))
    try:
        store.create_schema()
        if not store.is_sqlite:
            with store.writing() as session:
                share_home(session, secret, canary_domains, datetime.now(UTC))
        if config.delivery.urls:
            from data.deliveries import register_destinations

            # A destination gets the mail received from now on, not the history.
            with store.writing() as session:
                register_destinations(session, [d.key for d in config.delivery.destinations],
                                      datetime.now(UTC))
    finally:
        store.dispose()
    if not home.secret_path.exists():
        replace_private(home.secret_path, secret)
    # The config is written last: its presence is what marks the home as ready.
    replace_private(home.config_path, _config_text(config).encode())
    return home


def share_home(session: Session, secret: bytes, domains: Iterable[str], now: datetime) -> None:
    """Record the home's secret and domains in a shared database, or check they match what
    is there; raise `DatabaseTaken` if another home's secret is."""
    from data.models import SharedHome

    check_share(session, secret)
    shared = session.get(SharedHome, 1)
    if shared is None:
        session.add(SharedHome(id=1, secret=secret.hex(), domains=" ".join(domains),
                               created_at=now))
    else:
        shared.domains = " ".join(dict.fromkeys((*shared.domains.split(), *domains)))
        session.add(shared)


def check_share(session: Session, secret: bytes) -> None:
    """Raise `DatabaseTaken` if the shared database belongs to a home with another secret:
    a command given another home's `--db` must not write aliases no MX will accept."""
    from data.models import SharedHome

    shared = session.get(SharedHome, 1)
    if shared is not None and not secrets.compare_digest(shared.secret, secret.hex()):
        raise DatabaseTaken()


def join_home(path: Path, database_url: str, *, force: bool = False) -> Home:
    """Make this machine another MX of the home whose shared database is `database_url`:
    the secret and domains come from the database, never from a guess."""
    from data.database import Store
    from data.models import SharedHome

    home = Home(path)
    if home.config_path.exists() and not force:
        raise AlreadyInitialised(path)
    store = Store(database_url)
    if store.is_sqlite:
        store.dispose()
        raise JoinNeedsSharedDatabase()
    try:
        try:
            store.check_schema()
        except SchemaOutdated as error:
            if error.found is None:  # an empty database: nobody to join
                raise NothingToJoin() from error
            raise
        with store.reading() as session:
            shared = session.get(SharedHome, 1)
            if shared is None:
                raise NothingToJoin()
            secret, domains = bytes.fromhex(shared.secret), tuple(shared.domains.split())
    finally:
        store.dispose()
    if home.secret_path.exists() and home.secret_path.read_bytes() != secret and not force:
        raise DatabaseTaken()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    replace_private(home.secret_path, secret)
    previous = home.config() if home.config_path.exists() else Config(domains=domains)
    replace_private(home.config_path, _config_text(
        replace(previous, domains=domains, database=database_url)).encode())
    return home


def open_home(path: Path) -> Home:
    home = Home(path)
    if not home.config_path.exists() or not home.secret_path.exists():
        raise NotInitialised(path)
    return home
