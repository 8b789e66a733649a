"""Named errors of Canary's domain.

Each carries one sentence a person can act on. The CLI prints it to stderr
and exits 1; nothing here decides exit codes or formats output.
"""


class CanaryError(Exception):
    """A problem the user can fix; its message says how."""


class NotInitialised(CanaryError):
    """The Canary home does not exist yet."""


class AlreadyInitialised(CanaryError):
    """`init` was asked to create a home that already exists."""


class InvalidDomain(CanaryError):
    """A domain name that cannot be used."""


class InvalidCompanyName(CanaryError):
    """A company name that yields no usable alias slug."""


class CompanyExists(CanaryError):
    """A company that already has an alias was issued again."""


class UnknownCompany(CanaryError):
    """A command named a company that Canary does not know."""
