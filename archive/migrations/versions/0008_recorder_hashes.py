"""recorder_hashes: the recorder's own integrity values (issue 19, part 2)

Additive: ``ingest_jobs.recorder_hashes`` (the values read from sidecars at
claim, and how they compared at hash time) and ``evidence.recorder_hash``
("match" or "mismatch", from the signed manifest, so a rebuild restores it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import archive.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ingest_jobs") as batch_op:
        batch_op.add_column(sa.Column("recorder_hashes", archive.db.JSONColumn, nullable=True))
    with op.batch_alter_table("evidence") as batch_op:
        batch_op.add_column(sa.Column("recorder_hash", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch_op:
        batch_op.drop_column("recorder_hash")
    with op.batch_alter_table("ingest_jobs") as batch_op:
        batch_op.drop_column("recorder_hashes")
