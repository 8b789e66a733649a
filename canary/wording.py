"""How Canary words times and counts, in every output it writes.

One place for the ISO 8601 form of a moment (UTC, with `Z`), the calendar
day, and "1 message" / "3 messages", so the terminal, the JSON, the HTML
and the letters say the same thing the same way. Pure: no I/O.
"""

from __future__ import annotations

import json
from datetime import datetime


def iso_time(moment: datetime) -> str:
    """`2026-03-01T09:30:00Z`: the form every JSON document and bundle uses."""
    return moment.isoformat().replace("+00:00", "Z")


def day(moment: datetime) -> str:
    """`2026-03-01`."""
    return f"{moment:%Y-%m-%d}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 message`, `3 messages`; `many` for words whose plural is not word + s."""
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def toml_string(text: str) -> str:
    """`text` as a TOML basic string, for the config Canary writes: every character kept
    (emoji too), control characters escaped as TOML requires."""
    quoted = json.dumps(text, ensure_ascii=False)
    return quoted.replace("\x7f", "\\u007F")


def toml_number(value: float) -> str:
    """A number as TOML, exactly: `5`, `0.5`, `1234567`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))
