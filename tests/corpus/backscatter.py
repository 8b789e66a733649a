"""Corpus scenarios: backscatter (being written)."""

from __future__ import annotations

from corpus import Scenario

SCENARIOS: list[Scenario] = []
