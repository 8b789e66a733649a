"""Corpus scenarios: tenants (being written)."""

from __future__ import annotations

from corpus import Scenario

SCENARIOS: list[Scenario] = []
