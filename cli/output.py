"""Where commands print: results to stdout, messages to stderr.

A result is what the command was asked for (an address, a report, a
verification); a message is progress, a hint or a confirmation of a file
written. Scripts read stdout and can ignore stderr. Consoles are sized for
pipes and logs as well as terminals.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

PIPE_WIDTH = 120
"""Width when stdout is not a terminal: wide enough for the report's tables."""


def console() -> Console:
    """For results, on stdout."""
    from rich.console import Console

    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=PIPE_WIDTH)


def messages() -> Console:
    """For progress, hints and confirmations, on stderr."""
    from rich.console import Console

    if sys.stderr.isatty() or "COLUMNS" in os.environ:
        return Console(stderr=True)
    return Console(stderr=True, width=PIPE_WIDTH)


def print_json(document: dict[str, Any]) -> None:
    """A JSON result on stdout: indented for a person at a terminal, compact for a program
    reading a pipe (the same document; a report of a large home is written several times
    faster)."""
    indent = 2 if sys.stdout.isatty() else None
    # Written as is: JSON escapes every control character, so there is no terminal escape
    # for `typer.echo` to strip from a pipe (a pass over 9 MB at a million messages).
    sys.stdout.write(json.dumps(document, indent=indent, ensure_ascii=False) + "\n")
    sys.stdout.flush()
