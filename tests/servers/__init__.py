"""Real servers the tests start in temporary directories on loopback ports.

Each is a Debian package that `.ci/run` installs (Dovecot, PostgreSQL,
Postfix). Outside CI a test that needs a missing one is skipped with the
package to install; under `CI=true` a missing component fails the run, so a
broken CI image cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest


def require(available: bool, what: str, install: str) -> None:
    """Skip (or, under CI=true, fail) when a real component is missing."""
    if available:
        return
    message = f"{what} is not available here ({install})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must provide it")
    pytest.skip(message)
