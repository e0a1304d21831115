"""JSON columns become JSONB on PostgreSQL

PostgreSQL's ``json`` has no equality operator, so a ``SELECT DISTINCT`` over
rows that hold one fails (the playback-copy sharing query does that); ``jsonb``
has one. SQLite has a single JSON type: nothing changes there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

#: (table, column) of every JSON column of revision 0001
JSON_COLUMNS = [
    ("custody_events", "details"),
    ("derivatives", "ffmpeg_args"),
    ("derivatives", "probe"),
    ("disposition_plans", "document"),
    ("disposition_plans", "result"),
    ("evidence", "flags"),
    ("evidence", "probe"),
    ("fixity_records", "problems"),
    ("ingest_jobs", "flags"),
    ("ingest_jobs", "part_digests"),
    ("ledger_state", "hashes"),
]


def _alter(to: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    inspector = sa.inspect(bind)
    for table, column in JSON_COLUMNS:
        kinds = {c["name"]: str(c["type"]).lower() for c in inspector.get_columns(table)}
        if kinds.get(column) != to:
            statement = (
                f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {to} USING "{column}"::{to}'
            )
            op.execute(sa.text(statement))  # names from the list above, not from input


def upgrade() -> None:
    _alter("jsonb")


def downgrade() -> None:
    _alter("json")
