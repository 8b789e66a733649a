"""An index of the mail not analysed yet, for the report.

The report counts each alias's mail still waiting for analysis (waiting,
waiting on DNS, set aside). Through the relation index that meant reading
every such message row; this partial index holds only those messages and the
columns the count needs, so the count reads the index alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_message_pending", "message", ["alias_id", "set_aside_at", "temperror"],
                    sqlite_where=sa.text("relation IS NULL"),
                    postgresql_where=sa.text("relation IS NULL"))


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
