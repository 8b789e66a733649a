"""Kept consent findings list their first few messages; the rest are kept apart.

`consentreview.findings` held every message each finding cites, so a report
decoded all of them (37 MB at a million messages) to list the first ten.
Now each finding keeps its message count and its first ten messages (what a
report lists), and the new `messages` column the rest, per finding, read
only by exports and alerts that list them all. Kept reviews are split here,
so an upgraded home reports at once.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LISTED = 10
"""The messages a report lists per finding (`canary.report.EVIDENCE_SHOWN` at this revision)."""


def upgrade() -> None:
    op.add_column("consentreview", sa.Column("messages", sa.String(), nullable=True))
    bind = op.get_bind()
    review = sa.table("consentreview", sa.column("company_id", sa.Integer()),
                      sa.column("findings", sa.String()), sa.column("messages", sa.String()))
    for company_id, text in bind.execute(sa.select(review.c.company_id, review.c.findings)).all():
        findings = json.loads(text)
        rest = [f["messages"][LISTED:] for f in findings]
        for f in findings:
            f["count"], f["messages"] = len(f["messages"]), f["messages"][:LISTED]
        bind.execute(review.update().where(review.c.company_id == company_id).values(
            findings=json.dumps(findings), messages=json.dumps(rest)))
    with op.batch_alter_table("consentreview") as batch:
        batch.alter_column("messages", existing_type=sa.String(), nullable=False)


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
