"""Sender tallies and kept consent findings for the report, and the wide evidence JSON
out of the message rows.

`sendertally` sums the analysed mail up per alias, sender and relation
(`data.tallies`); it is filled here from the stored messages, so an upgraded
home reports at once. The consent findings (`consentreview`) are worked out
by `canary upgrade` once every migration has run (their columns changed in
0009).
`messageevidence` takes each message's recorded
authentication and DNS answers, which only evidence and re-deciding read,
so that the message rows every report and analysis scans stay narrow.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from data.tallies import recount

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messageevidence",
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("message.id"), primary_key=True),
        sa.Column("authentication", sa.String(), nullable=False),
        sa.Column("dns_answers", sa.String(), nullable=False),
    )
    op.execute(
        "INSERT INTO messageevidence (message_id, authentication, dns_answers) "
        "SELECT id, authentication, COALESCE(dns_answers, '[]') FROM message "
        "WHERE authentication IS NOT NULL")
    with op.batch_alter_table("message") as batch:
        batch.drop_column("authentication")
        batch.drop_column("dns_answers")
    op.create_table(
        "sendertally",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("alias_id", sa.Integer(), sa.ForeignKey("alias.id"), nullable=False),
        sa.Column("relation", sa.String(), nullable=False),
        sa.Column("organisation", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("marketing", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("examples", sa.String(), nullable=False),
        sa.Column("authentications", sa.String(), nullable=False),
        sa.UniqueConstraint("alias_id", "relation", "organisation", "kind"),
    )
    op.create_table(
        "consentreview",
        sa.Column("company_id", sa.Integer(), sa.ForeignKey("company.id"), primary_key=True),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("findings", sa.String(), nullable=False),
    )
    recount(op.get_bind())


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
