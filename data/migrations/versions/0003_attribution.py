"""The attribution model: sender kinds, analysis failures, confirmed ESP customers.

Stored mail is re-decided under the new model by `canary upgrade` after this
migration (from the raw messages and the recorded authentication, with no
network), so the new columns start empty here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("failures", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("set_aside_at", sa.DateTime()))
        batch.add_column(sa.Column("sender_kind", sa.String()))
        batch.add_column(sa.Column("sender_via", sa.String()))
    with op.batch_alter_table("message") as batch:
        batch.alter_column("failures", server_default=None)
    op.create_table(
        "espcustomer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("company_id", sa.Integer(), sa.ForeignKey("company.id"), nullable=False),
        sa.Column("esp", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("company_id", "esp", "customer_id"),
    )
    op.create_index("ix_espcustomer_company_id", "espcustomer", ["company_id"])


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
