"""metadata: what each recording says about itself

Additive: ``evidence.media`` (the manifest's ``media`` section: start time,
device, location, GPS tracks – see ``ingest.metadata``) and its searchable
parts as columns: ``recorded_at`` (indexed) and ``latitude``/``longitude``
(one index over both, for ``find --near``). Existing rows keep NULL: items
sealed before had no such section.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import archive.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch_op:
        batch_op.add_column(sa.Column("media", archive.db.JSONColumn, nullable=True))
        batch_op.add_column(sa.Column("recorded_at", archive.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("longitude", sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f("ix_evidence_recorded_at"), ["recorded_at"], unique=False)
        batch_op.create_index("ix_evidence_lat_lon", ["latitude", "longitude"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch_op:
        batch_op.drop_index("ix_evidence_lat_lon")
        batch_op.drop_index(batch_op.f("ix_evidence_recorded_at"))
        batch_op.drop_column("longitude")
        batch_op.drop_column("latitude")
        batch_op.drop_column("recorded_at")
        batch_op.drop_column("media")
