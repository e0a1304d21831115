"""shares, link scopes, lease owners, recorded-time witnesses, claim identities

Columns and a table that arrived together (all additive; existing rows keep
NULL, which every reader treats as "not recorded"):

- ``shares``: disclosure shares (:mod:`archive.share_models`);
- ``case_links.linked_scope``: the scope of the token that made a link;
- ``derivatives.lease_owner``: host:pid:start of a playback worker, so a dead
  holder on this host is taken over at once;
- ``evidence.media_created`` / ``evidence.time_problem``: the media's own
  creation time, and why a file-name time was refused (``bad_timestamp``);
- ``ingest_jobs.source_identity``: ``device:inode`` of the dock file the
  claim must move, checked just before the rename.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import archive.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("share_id", sa.String(length=40), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("allow", sa.String(length=10), nullable=False),
        sa.Column("evidence_ids", archive.db.JSONColumn, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", archive.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", archive.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", archive.db.UTCDateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=200), nullable=True),
        sa.Column("receipt_sha256", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("share_id"),
        sa.UniqueConstraint("secret_sha256"),
    )
    with op.batch_alter_table("shares") as batch_op:
        batch_op.create_index(batch_op.f("ix_shares_case_id"), ["case_id"], unique=False)
    with op.batch_alter_table("case_links") as batch_op:
        batch_op.add_column(sa.Column("linked_scope", archive.db.JSONColumn, nullable=True))
    with op.batch_alter_table("derivatives") as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=200), nullable=True))
    with op.batch_alter_table("evidence") as batch_op:
        batch_op.add_column(sa.Column("media_created", archive.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("time_problem", sa.Text(), nullable=True))
    with op.batch_alter_table("ingest_jobs") as batch_op:
        batch_op.add_column(sa.Column("source_identity", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingest_jobs") as batch_op:
        batch_op.drop_column("source_identity")
    with op.batch_alter_table("evidence") as batch_op:
        batch_op.drop_column("time_problem")
        batch_op.drop_column("media_created")
    with op.batch_alter_table("derivatives") as batch_op:
        batch_op.drop_column("lease_owner")
    with op.batch_alter_table("case_links") as batch_op:
        batch_op.drop_column("linked_scope")
    with op.batch_alter_table("shares") as batch_op:
        batch_op.drop_index(batch_op.f("ix_shares_case_id"))
    op.drop_table("shares")
