"""Alerts: a queue of events found in analysis results, and each channel's sends.

An upgraded home starts alerting from the upgrade: its marks say that the
senders, findings, brokers and failed deliveries it already had are not news.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alertevent",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("severity", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer()),
        sa.Column("historical", sa.Boolean(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("details", sa.String(), nullable=False),
    )
    op.create_index("ix_alertevent_key", "alertevent", ["key"], unique=True)
    op.create_index("ix_alertevent_kind", "alertevent", ["kind"])
    op.create_index("ix_alertevent_created_at", "alertevent", ["created_at"])
    op.create_table(
        "alertsend",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event_id", sa.Integer(), sa.ForeignKey("alertevent.id"), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime()),
        sa.Column("claimed_until", sa.DateTime()),
        sa.Column("last_error", sa.String()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime()),
        sa.Column("batch_id", sa.Integer()),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("event_id", "channel"),
    )
    op.create_index("ix_alertsend_event_id", "alertsend", ["event_id"])
    op.create_index("ix_alertsend_channel", "alertsend", ["channel"])
    op.create_index("ix_alertsend_state", "alertsend", ["state"])
    op.create_index("ix_alertsend_next_attempt_at", "alertsend", ["next_attempt_at"])
    op.create_index("ix_alertsend_sent_at", "alertsend", ["sent_at"])
    op.create_table(
        "alertchannel",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("first_event_id", sa.Integer(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("last_sent_at", sa.DateTime()),
        sa.Column("failing_since", sa.DateTime()),
        sa.Column("last_error", sa.String()),
    )
    mark = op.create_table(
        "alertmark",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    # What the home knew before the upgrade is not news.
    bind = op.get_bind()
    now = datetime.now(UTC)
    failed = bind.execute(sa.text(
        "SELECT count(*) FROM deliveryjob WHERE state = 'failed'")).scalar() or 0
    set_aside = bind.execute(sa.text(
        "SELECT count(*) FROM message WHERE set_aside_at IS NOT NULL")).scalar() or 0
    stamp = now.isoformat().replace("+00:00", "Z")
    naive = now.replace(tzinfo=None)
    op.bulk_insert(mark, [
        {"name": "since", "value": stamp, "updated_at": naive},
        {"name": "analysed_until", "value": stamp, "updated_at": naive},
        {"name": "deliveries_failed", "value": str(failed), "updated_at": naive},
        {"name": "set_aside", "value": str(set_aside), "updated_at": naive},
    ])


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
