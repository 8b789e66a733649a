"""Alembic migrations of Canary's database, for SQLite and PostgreSQL.

Run by `canary upgrade` through `data.schema.upgrade`; there is no
alembic.ini. A new revision: `python -m data.schema revision "what changes"`
from the repository root writes the file, then edit it by hand, keep
`data.schema.REVISIONS` in step, and test it on both engines.
"""
