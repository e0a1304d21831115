"""intake: dispatch incidents and their matches, station heartbeats (issue 19)

All additive (new tables only):

- ``incidents``, ``incident_officers``: dispatch incidents (警情/CAD) with their
  window, unit, officers and case (:mod:`archive.incident_models`);
- ``incident_matches``: each item found in an incident's window, linked by
  ``rule:incident-window`` or proposed for a person to confirm;
- ``incident_checks``: items already matched against the incidents known then;
- ``station_heartbeats``: one row per station daemon (:mod:`archive.heartbeat`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import archive.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=True),
        sa.Column("unit", sa.String(length=64), nullable=False),
        sa.Column("start", archive.db.UTCDateTime(), nullable=False),
        sa.Column("end", archive.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", archive.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", archive.db.UTCDateTime(), nullable=False),
        sa.Column("matched_at", archive.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("incident_id"),
    )
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.create_index(batch_op.f("ix_incidents_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_unit"), ["unit"], unique=False)
    op.create_table(
        "incident_officers",
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("officer", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.incident_id"]),
        sa.PrimaryKeyConstraint("incident_id", "officer"),
    )
    with op.batch_alter_table("incident_officers") as batch_op:
        batch_op.create_index("ix_incident_officers_officer", ["officer"], unique=False)
    op.create_table(
        "incident_matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.String(length=128), nullable=False),
        sa.Column("evidence_id", sa.String(length=40), nullable=False),
        sa.Column("case_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("matched_at", archive.db.UTCDateTime(), nullable=False),
        sa.Column("details", archive.db.JSONColumn, nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", archive.db.UTCDateTime(), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence.evidence_id"]),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.incident_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id", "evidence_id", name="uq_incident_matches_pair"),
    )
    with op.batch_alter_table("incident_matches") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_matches_evidence_id"), ["evidence_id"], unique=False
        )
        batch_op.create_index("ix_incident_matches_state", ["state"], unique=False)
    op.create_table(
        "incident_checks",
        sa.Column("evidence_id", sa.String(length=40), nullable=False),
        sa.Column("checked_at", archive.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["evidence_id"], ["evidence.evidence_id"]),
        sa.PrimaryKeyConstraint("evidence_id"),
    )
    op.create_table(
        "station_heartbeats",
        sa.Column("station", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("at", archive.db.UTCDateTime(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.Column("docks", archive.db.JSONColumn, nullable=False),
        sa.Column("spool_bytes", sa.BigInteger(), nullable=False),
        sa.Column("queue_depth", sa.Integer(), nullable=False),
        sa.Column("oldest_unarchived_seconds", sa.Float(), nullable=True),
        sa.Column("store_latency_seconds", sa.Float(), nullable=True),
        sa.Column("clock_offset_seconds", sa.Float(), nullable=True),
        sa.Column("store_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("station"),
    )


def downgrade() -> None:
    op.drop_table("station_heartbeats")
    op.drop_table("incident_checks")
    with op.batch_alter_table("incident_matches") as batch_op:
        batch_op.drop_index("ix_incident_matches_state")
        batch_op.drop_index(batch_op.f("ix_incident_matches_evidence_id"))
    op.drop_table("incident_matches")
    with op.batch_alter_table("incident_officers") as batch_op:
        batch_op.drop_index("ix_incident_officers_officer")
    op.drop_table("incident_officers")
    with op.batch_alter_table("incidents") as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_unit"))
        batch_op.drop_index(batch_op.f("ix_incidents_case_id"))
    op.drop_table("incidents")
