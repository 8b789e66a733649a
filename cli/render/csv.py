"""The report as CSV: one row per company and unexpected sender, for spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from canary.report import CompanyReport, worst_first
from canary.wording import day

CSV_COLUMNS = ("company", "alias", "issued_at", "verdict", "confidence", "organisation",
               "relation", "authenticated_by", "first_seen", "last_seen", "count")


def render_csv(reports: Sequence[CompanyReport]) -> str:
    """One row per company and unexpected sender; a company with none gets one row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in worst_first(reports):
        company = [r.name, r.aliases[-1].address, day(r.issued_at), r.verdict.value,
                   r.confidence.value]
        if not r.unexpected:
            writer.writerow([*company, "", "", "", "", "", 0])
        for s in r.unexpected:
            writer.writerow([*company, s.organisation, s.relation.value,
                             "; ".join(map(str, s.authenticated_by)), day(s.first_seen),
                             day(s.last_seen), s.count])
    return out.getvalue()
