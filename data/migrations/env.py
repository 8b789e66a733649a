"""Alembic's environment: migrate the connection `data.schema` hands over."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from data import models  # noqa: F401  (registers the tables)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    # SQLite alters a table by copying it; batch mode does that for every engine alike.
    render_as_batch=True,
    transaction_per_migration=True,
)
context.run_migrations()
