"""Canary's domain: aliases, sender identity, classification and verdicts.

This package is pure. It never touches the database, the network or the
environment; the outer parts (`data`, `smtp_listener`, `cli`) hand it plain
values and get plain values back.
"""

__version__ = "0.1.0"
