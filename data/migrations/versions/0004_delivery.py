"""Delivery to the person's own mailbox: a queue of one job per message and destination."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliverydestination",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("first_message_id", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "deliveryjob",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("message.id"), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("action", sa.String()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime()),
        sa.Column("claimed_until", sa.DateTime()),
        sa.Column("claimed_by", sa.String()),
        sa.Column("last_error", sa.String()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime()),
        sa.UniqueConstraint("message_id", "destination"),
    )
    op.create_index("ix_deliveryjob_message_id", "deliveryjob", ["message_id"])
    op.create_index("ix_deliveryjob_state", "deliveryjob", ["state"])
    op.create_index("ix_deliveryjob_next_attempt_at", "deliveryjob", ["next_attempt_at"])


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
