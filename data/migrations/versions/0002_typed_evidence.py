"""How a sender authenticated becomes typed columns; the duplicate sha256 index goes.

Release 0.1.0 stored "DKIM d=x.example", "SPF x.example" or "none" as text,
and the trusted upstream as `source: "upstream:<id>"` in the authentication
JSON. They become a method and a domain (`canary.authentication.AuthMethod`)
and `upstream: <id>`. This is the one place that reads the old text.
`ix_message_sha256` duplicated the unique (sha256, alias_id) index.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _typed(text: str | None) -> tuple[str | None, str | None]:
    if text is None:
        return None, None
    if text.startswith("DKIM d="):
        return "dkim", text.removeprefix("DKIM d=")
    if text.startswith("SPF "):
        return "spf", text.removeprefix("SPF ")
    return "none", None


def _upstream(document: str | None) -> str | None:
    if document is None:
        return None
    data = json.loads(document)
    source = str(data.pop("source", "canary"))
    data["upstream"] = source.removeprefix("upstream:") if source.startswith("upstream:") else None
    return json.dumps(data)


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.add_column(sa.Column("esp_auth_method", sa.String()))
        batch.add_column(sa.Column("esp_auth_domain", sa.String()))
        batch.add_column(sa.Column("auth_method", sa.String()))
        batch.add_column(sa.Column("auth_domain", sa.String()))
    connection = op.get_bind()
    message = sa.table(
        "message", sa.column("id", sa.Integer()), sa.column("authenticated_by", sa.String()),
        sa.column("esp_authenticated_by", sa.String()), sa.column("authentication", sa.String()),
        sa.column("auth_method", sa.String()), sa.column("auth_domain", sa.String()),
        sa.column("esp_auth_method", sa.String()), sa.column("esp_auth_domain", sa.String()),
    )
    rows = connection.execute(sa.select(
        message.c.id, message.c.authenticated_by, message.c.esp_authenticated_by,
        message.c.authentication,
    )).all()
    updates = []
    for row in rows:
        method, domain = _typed(row.authenticated_by)
        esp_method, esp_domain = _typed(row.esp_authenticated_by)
        updates.append({"key": row.id, "auth_method": method, "auth_domain": domain,
                        "esp_auth_method": esp_method, "esp_auth_domain": esp_domain,
                        "authentication": _upstream(row.authentication)})
    if updates:
        connection.execute(
            message.update().where(message.c.id == sa.bindparam("key")).values(
                auth_method=sa.bindparam("auth_method"), auth_domain=sa.bindparam("auth_domain"),
                esp_auth_method=sa.bindparam("esp_auth_method"),
                esp_auth_domain=sa.bindparam("esp_auth_domain"),
                authentication=sa.bindparam("authentication"),
            ),
            updates,
        )
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_sha256")
        batch.drop_column("authenticated_by")
        batch.drop_column("esp_authenticated_by")


def downgrade() -> None:
    raise NotImplementedError("Canary migrates forward only; restore a backup to go back.")
