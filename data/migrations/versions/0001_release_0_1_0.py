"""The schema of release 0.1.0, the last made without migrations.

A home made by that release has these tables and no `alembic_version`;
`data.schema.upgrade` stamps it with this revision and goes on from here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "company",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("slug", sa.String(), nullable=False),
        sa.Column("note", sa.String()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_company_slug", "company", ["slug"], unique=True)
    op.create_table(
        "rawmessage",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "probe",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("peer_ip", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("mail_from", sa.String()),
    )
    op.create_index("ix_probe_received_at", "probe", ["received_at"])
    op.create_table(
        "companydomain",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("company_id", sa.Integer(), sa.ForeignKey("company.id"), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("company_id", "domain"),
    )
    op.create_index("ix_companydomain_company_id", "companydomain", ["company_id"])
    op.create_table(
        "alias",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("company_id", sa.Integer(), sa.ForeignKey("company.id"), nullable=False),
        sa.Column("slug", sa.String(), nullable=False, unique=True),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.Column("retired_at", sa.DateTime()),
        sa.Column("retire_reply", sa.String()),
    )
    op.create_index("ix_alias_address", "alias", ["address"], unique=True)
    op.create_index("ix_alias_company_id", "alias", ["company_id"])
    op.create_table(
        "consentrecord",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("company_id", sa.Integer(), sa.ForeignKey("company.id"), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("marketing", sa.Boolean()),
        sa.Column("frequency", sa.String()),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_consentrecord_company_id", "consentrecord", ["company_id"])
    op.create_table(
        "flaggedsender",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("company_id", sa.Integer(), sa.ForeignKey("company.id"), nullable=False),
        sa.Column("organisation", sa.String(), nullable=False),
        sa.Column("flagged_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("company_id", "organisation"),
    )
    op.create_index("ix_flaggedsender_company_id", "flaggedsender", ["company_id"])
    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sha256", sa.String(64), sa.ForeignKey("rawmessage.sha256"), nullable=False),
        sa.Column("alias_id", sa.Integer(), sa.ForeignKey("alias.id"), nullable=False),
        sa.Column("rcpt_to", sa.String(), nullable=False),
        sa.Column("mail_from", sa.String(), nullable=False),
        sa.Column("peer_ip", sa.String(), nullable=False),
        sa.Column("helo", sa.String()),
        sa.Column("forwarded_by", sa.String()),
        sa.Column("tls", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("analysed_at", sa.DateTime()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("retry_at", sa.DateTime()),
        sa.Column("temperror", sa.String()),
        sa.Column("problem", sa.String()),
        sa.Column("from_address", sa.String()),
        sa.Column("from_orgs", sa.String()),
        sa.Column("return_path", sa.String()),
        sa.Column("dkim_domains", sa.String()),
        sa.Column("list_unsubscribe", sa.String()),
        sa.Column("message_id", sa.String()),
        sa.Column("sent_at", sa.DateTime()),
        sa.Column("subject", sa.String()),
        sa.Column("precedence", sa.String()),
        sa.Column("marketing", sa.Boolean()),
        sa.Column("marketing_reason", sa.String()),
        sa.Column("authentication", sa.String()),
        sa.Column("dns_answers", sa.String()),
        sa.Column("esp", sa.String()),
        sa.Column("esp_customer", sa.String()),
        sa.Column("esp_authenticated_by", sa.String()),
        sa.Column("relation", sa.String()),
        sa.Column("sender_org", sa.String()),
        sa.Column("reason", sa.String()),
        sa.Column("authenticated_by", sa.String()),
        sa.UniqueConstraint("sha256", "alias_id"),
    )
    for column in ("sha256", "relation", "analysed_at", "alias_id", "received_at"):
        op.create_index(f"ix_message_{column}", "message", [column])


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
