"""Named errors, raised by every layer and turned into one sentence by the CLI.

Each error carries the values a person needs (the company, the address,
the path) and a default sentence that names no command-line flag: the
layers below the CLI do not know how they were called. `cli.main` words
the sentence for the command line where a flag is the remedy. Nothing here
decides exit codes or formats output.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path


class CanaryError(Exception):
    """A problem the person can fix; `str()` is one sentence saying how."""


# --- the home, its config and its database ----------------------------------


class HomeError(CanaryError):
    """The Canary home cannot be used as it is."""


class NotInitialised(HomeError):
    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"No Canary home at {path}; run `canary init --domain YOUR.DOMAIN` first.")


class AlreadyInitialised(HomeError):
    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"A Canary home already exists at {path}; initialise it again only "
                         "to rewrite its config (the secret and database are kept).")


class ConfigInvalid(HomeError):
    """The config file cannot be read, or a setting in it is wrong."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}; fix the file or initialise the home again.")


class SecretDamaged(HomeError):
    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path} is damaged; restore it from a backup.")


class NoCanaryDomain(HomeError):
    def __init__(self) -> None:
        super().__init__("A Canary home needs at least one canary domain.")


class DatabaseError(CanaryError):
    """The database cannot be reached or used."""


class DatabaseUrlInvalid(DatabaseError):
    def __init__(self, url: str, hint: str) -> None:
        self.url = url
        super().__init__(f"{url!r} is not a database Canary can use; {hint}.")


class DatabaseUnavailable(DatabaseError):
    def __init__(self, reason: str) -> None:
        self.reason = " ".join(reason.split())  # libpq's hints come on lines of their own
        super().__init__(f"The database cannot be used ({self.reason.rstrip('.?')}); check the "
                         "database URL, that its server is running, and the home's permissions.")


class SchemaOutdated(DatabaseError):
    def __init__(self, found: str | None, wanted: str) -> None:
        self.found, self.wanted = found, wanted
        made = f"schema {found}" if found else "before migrations"
        super().__init__(f"The database was made by an older Canary ({made}, this one needs "
                         f"schema {wanted}); run `canary upgrade` first.")


class SchemaTooNew(DatabaseError):
    def __init__(self, found: str, wanted: str) -> None:
        self.found, self.wanted = found, wanted
        super().__init__(f"The database was made by a newer Canary (schema {found}, this one "
                         f"knows up to {wanted}); upgrade Canary before using this home.")


# --- values a person typed ---------------------------------------------------


class InvalidValue(CanaryError):
    """A name, domain, date or server address that cannot be used."""


class InvalidDomain(InvalidValue):
    """A domain name that cannot be used."""


class InvalidCompanyName(InvalidValue):
    """A company name that yields no usable alias slug."""


class InvalidDnsServer(InvalidValue):
    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f"{text!r} is not a DNS server; give HOST or HOST:PORT.")


class InvalidDestination(InvalidValue):
    """A delivery destination that cannot be used; the message says how to write it."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem if problem.endswith(".") else problem + ".")


class NoDestination(CanaryError):
    def __init__(self) -> None:
        super().__init__("No delivery destination is configured; add one with "
                         "`canary init --force --domain … --deliver URL` or in canary.toml.")


class NothingHeld(CanaryError):
    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"Nothing held matches {what}; see `canary held`.")


class NotACanaryDomain(InvalidValue):
    def __init__(self, domain: str, configured: tuple[str, ...]) -> None:
        self.domain, self.configured = domain, configured
        super().__init__(f"{domain} is not a canary domain; choose one of "
                         f"{', '.join(configured)}.")


# --- companies and their aliases ---------------------------------------------


class UnknownCompany(CanaryError):
    """A command named a company that Canary does not know."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"No company called {name!r}; `canary aliases` lists them.")


class CompanyExists(CanaryError):
    """A company that already has an active alias was issued again."""

    def __init__(self, company: str, address: str) -> None:
        self.company, self.address = company, address
        super().__init__(f"{company} already has an alias ({address}); issue a fresh one only "
                         "if you mean to keep both.")


class AddressTaken(CanaryError):
    """An address adopted for one company is already another company's alias."""

    def __init__(self, address: str, company: str) -> None:
        self.address, self.company = address, company
        super().__init__(f"{address} is already {company}'s alias; retire it there first, or "
                         "check the address.")


class AliasRetired(CanaryError):
    """A company whose every alias is retired was issued again."""

    def __init__(self, company: str, address: str, retired_at: datetime) -> None:
        self.company, self.address, self.retired_at = company, address, retired_at
        super().__init__(f"{company}'s alias {address} was retired on {retired_at:%Y-%m-%d}; "
                         f"rotate it with `canary rotate {company!r}` for a fresh one.")


class NoActiveAlias(CanaryError):
    def __init__(self, company: str) -> None:
        self.company = company
        super().__init__(f"{company} has no active alias to retire.")


class NothingToRecord(CanaryError):
    """A consent change that changes nothing."""

    def __init__(self) -> None:
        super().__init__("Say what changed: marketing yes or no, or the agreed frequency.")


class SenderTrusted(CanaryError):
    """A sender the person trusted as the company's own was flagged."""

    def __init__(self, company: str, organisation: str) -> None:
        self.company, self.organisation = company, organisation
        super().__init__(f"{organisation} is trusted as {company}'s own; it cannot also be "
                         "flagged.")


class BeforeAliasIssued(CanaryError):
    """A consent record or opt-out dated before the company was given the address."""

    def __init__(self, company: str, when: datetime, issued_at: datetime) -> None:
        self.company, self.when, self.issued_at = company, when, issued_at
        super().__init__(f"{when:%Y-%m-%d} is before {company} was given its alias "
                         f"({issued_at:%Y-%m-%d}); give a later date.")


# --- evidence bundles ----------------------------------------------------------


class NotABundle(CanaryError):
    """A file given as an evidence bundle is not one."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"{path} is not a Canary evidence bundle ({reason}).")


class DatabaseTaken(CanaryError):
    def __init__(self) -> None:
        super().__init__("That database already serves another Canary home (another secret); "
                         "to add this machine as another MX, run canary init --join URL.")


class NothingToJoin(CanaryError):
    def __init__(self) -> None:
        super().__init__("That database holds no Canary home to join; create one first with "
                         "canary init --domain D --db URL on the first MX.")


class JoinNeedsSharedDatabase(CanaryError):
    def __init__(self) -> None:
        super().__init__("Several MXes share one PostgreSQL database; give --join a "
                         "postgresql+psycopg:// URL.")
