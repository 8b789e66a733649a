"""How commands print: a rich console sized for pipes and logs as well as terminals."""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPE_WIDTH = 120
"""Width when stdout is not a terminal: wide enough for the report's tables."""


def console() -> Console:
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=PIPE_WIDTH)
