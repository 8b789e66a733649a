"""Years of evidence at once: adopted aliases and imported mail with its source; and the
home's secret and domains kept in a shared database, for a second MX to join."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "importsource",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("trusted_authserv_id", sa.String()),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("read", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.Column("resume", sa.String()),
    )
    op.create_index("ix_importsource_source", "importsource", ["source"])
    with op.batch_alter_table("alias") as batch:
        batch.add_column(sa.Column("adopted", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("import_id", sa.Integer(),
                                   sa.ForeignKey("importsource.id", name="fk_message_import"),
                                   nullable=True))
        batch.add_column(sa.Column("receipt_estimated", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(), nullable=True))
    op.create_index("ix_message_import_id", "message", ["import_id"])
    op.create_table(
        "sharedhome",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("secret", sa.String(), nullable=False),
        sa.Column("domains", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
