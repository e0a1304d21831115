"""baseline: the catalog schema before Alembic

The schema of the catalogs made by Strongroom before it had migrations
(``Base.metadata.create_all``). Later revisions change it step by step.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-29 16:12:06.145260
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import archive.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the tables of today's schema that are missing, with their indexes.

    On an empty database that is all of them; on a catalog made before
    Alembic (by ``create_all``, table by table as features arrived) it is only
    what that catalog lacked, and its rows are not touched.
    """
    if not _exists("custody_events"):
        op.create_table(
            "custody_events",
            sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("kind", sa.String(length=40), nullable=False),
            sa.Column("evidence_id", sa.String(length=40), nullable=True),
            sa.Column("actor", sa.String(length=200), nullable=False),
            sa.Column("at", archive.db.UTCDateTime(), nullable=False),
            sa.Column(
                "details",
                sa.JSON(),
                nullable=False,
            ),
            sa.Column("leaf", sa.LargeBinary(), nullable=False),
            sa.Column("ledger_index", sa.BigInteger(), nullable=True),
            sa.PrimaryKeyConstraint("seq"),
            sa.UniqueConstraint("ledger_index"),
        )
        with op.batch_alter_table("custody_events", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_custody_events_at"), ["at"], unique=False)
            batch_op.create_index(
                batch_op.f("ix_custody_events_evidence_id"), ["evidence_id"], unique=False
            )
            batch_op.create_index(batch_op.f("ix_custody_events_kind"), ["kind"], unique=False)

    if not _exists("disposition_plans"):
        op.create_table(
            "disposition_plans",
            sa.Column("plan_id", sa.String(length=64), nullable=False),
            sa.Column("created_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("created_by", sa.String(length=200), nullable=False),
            sa.Column("state", sa.String(length=20), nullable=False),
            sa.Column("content_sha256", sa.String(length=64), nullable=False),
            sa.Column(
                "document",
                sa.JSON(),
                nullable=False,
            ),
            sa.Column("items", sa.Integer(), nullable=False),
            sa.Column("applied_at", archive.db.UTCDateTime(), nullable=True),
            sa.Column("applied_by", sa.String(length=200), nullable=True),
            sa.Column(
                "result",
                sa.JSON(),
                nullable=True,
            ),
            sa.Column("certificate_key", sa.String(length=200), nullable=True),
            sa.Column("certificate_version_id", sa.String(length=200), nullable=True),
            sa.PrimaryKeyConstraint("plan_id"),
        )
        with op.batch_alter_table("disposition_plans", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_disposition_plans_created_at"), ["created_at"], unique=False
            )
            batch_op.create_index(batch_op.f("ix_disposition_plans_state"), ["state"], unique=False)

    if not _exists("dock_problems"):
        op.create_table(
            "dock_problems",
            sa.Column("path", archive.db.FsPath(), nullable=False),
            sa.Column("dock", sa.String(length=200), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("first_seen", archive.db.UTCDateTime(), nullable=False),
            sa.Column("last_seen", archive.db.UTCDateTime(), nullable=False),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("path"),
        )

    if not _exists("evidence"):
        op.create_table(
            "evidence",
            sa.Column("evidence_id", sa.String(length=40), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("media_type", sa.String(length=100), nullable=False),
            sa.Column("file_name", sa.Text(), nullable=False),
            sa.Column("original_key", sa.String(length=200), nullable=False),
            sa.Column("original_version_id", sa.String(length=200), nullable=True),
            sa.Column("original_checksum", sa.String(length=100), nullable=False),
            sa.Column("manifest_key", sa.String(length=200), nullable=False),
            sa.Column("manifest_version_id", sa.String(length=200), nullable=True),
            sa.Column("keyid", sa.String(length=16), nullable=False),
            sa.Column("station", sa.String(length=64), nullable=False),
            sa.Column("dock", sa.String(length=200), nullable=False),
            sa.Column("source_path", sa.Text(), nullable=False),
            sa.Column("device", sa.String(length=64), nullable=True),
            sa.Column("officer", sa.String(length=64), nullable=True),
            sa.Column("unit", sa.String(length=64), nullable=True),
            sa.Column("recorded_start", archive.db.UTCDateTime(), nullable=True),
            sa.Column("recorded_end", archive.db.UTCDateTime(), nullable=True),
            sa.Column("file_mtime", archive.db.UTCDateTime(), nullable=True),
            sa.Column(
                "flags",
                sa.JSON(),
                nullable=False,
            ),
            sa.Column(
                "probe",
                sa.JSON(),
                nullable=True,
            ),
            sa.Column("category", sa.String(length=64), nullable=False),
            sa.Column("lock_mode", sa.String(length=16), nullable=False),
            sa.Column("retain_until", archive.db.UTCDateTime(), nullable=True),
            sa.Column("legal_hold", sa.Boolean(), nullable=False),
            sa.Column("state", sa.String(length=20), nullable=False),
            sa.Column("ingested_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("sealed_at", archive.db.UTCDateTime(), nullable=False),
            sa.PrimaryKeyConstraint("evidence_id"),
            sa.UniqueConstraint("sha256"),
        )
        with op.batch_alter_table("evidence", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_evidence_device"), ["device"], unique=False)
            batch_op.create_index(
                batch_op.f("ix_evidence_ingested_at"), ["ingested_at"], unique=False
            )
            batch_op.create_index(batch_op.f("ix_evidence_officer"), ["officer"], unique=False)
            batch_op.create_index(
                batch_op.f("ix_evidence_recorded_start"), ["recorded_start"], unique=False
            )
            batch_op.create_index(batch_op.f("ix_evidence_sealed_at"), ["sealed_at"], unique=False)
            batch_op.create_index(batch_op.f("ix_evidence_state"), ["state"], unique=False)
            batch_op.create_index(batch_op.f("ix_evidence_station"), ["station"], unique=False)
            batch_op.create_index(batch_op.f("ix_evidence_unit"), ["unit"], unique=False)

    if not _exists("fixity_records"):
        op.create_table(
            "fixity_records",
            sa.Column("evidence_id", sa.String(length=40), nullable=False),
            sa.Column("last_checked_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("last_verified_at", archive.db.UTCDateTime(), nullable=True),
            sa.Column("result", sa.String(length=10), nullable=False),
            sa.Column(
                "problems",
                sa.JSON(),
                nullable=False,
            ),
            sa.Column("failing_since", archive.db.UTCDateTime(), nullable=True),
            sa.Column("bytes_read", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("evidence_id"),
        )
        with op.batch_alter_table("fixity_records", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_fixity_records_last_checked_at"), ["last_checked_at"], unique=False
            )
            batch_op.create_index(batch_op.f("ix_fixity_records_result"), ["result"], unique=False)

    if not _exists("fixity_runs"):
        op.create_table(
            "fixity_runs",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("trigger", sa.String(length=20), nullable=False),
            sa.Column("started_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("finished_at", archive.db.UTCDateTime(), nullable=True),
            sa.Column("items", sa.Integer(), nullable=False),
            sa.Column("failed", sa.Integer(), nullable=False),
            sa.Column("bytes_read", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )

    if not _exists("ledger_checkpoints"):
        op.create_table(
            "ledger_checkpoints",
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("root_hash", sa.String(length=64), nullable=False),
            sa.Column("origin", sa.Text(), nullable=False),
            sa.Column("key_name", sa.String(length=200), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.Column("first_index", sa.BigInteger(), nullable=False),
            sa.Column("segment_key", sa.String(length=200), nullable=False),
            sa.Column("segment_version_id", sa.String(length=200), nullable=True),
            sa.Column("checkpoint_key", sa.String(length=200), nullable=False),
            sa.Column("checkpoint_version_id", sa.String(length=200), nullable=True),
            sa.Column("created_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("stored_at", archive.db.UTCDateTime(), nullable=True),
            sa.PrimaryKeyConstraint("size"),
        )
        with op.batch_alter_table("ledger_checkpoints", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_ledger_checkpoints_stored_at"), ["stored_at"], unique=False
            )

    if not _exists("ledger_state"):
        op.create_table(
            "ledger_state",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column(
                "hashes",
                sa.JSON(),
                nullable=False,
            ),
            sa.Column("updated_at", archive.db.UTCDateTime(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )

    if not _exists("case_links"):
        op.create_table(
            "case_links",
            sa.Column("case_id", sa.String(length=128), nullable=False),
            sa.Column("evidence_id", sa.String(length=40), nullable=False),
            sa.Column("linked_by", sa.String(length=200), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("linked_at", archive.db.UTCDateTime(), nullable=False),
            sa.ForeignKeyConstraint(
                ["evidence_id"],
                ["evidence.evidence_id"],
            ),
            sa.PrimaryKeyConstraint("case_id", "evidence_id"),
        )
        with op.batch_alter_table("case_links", schema=None) as batch_op:
            batch_op.create_index("ix_case_links_evidence", ["evidence_id"], unique=False)

    if not _exists("derivatives"):
        op.create_table(
            "derivatives",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("evidence_id", sa.String(length=40), nullable=False),
            sa.Column("state", sa.String(length=20), nullable=False),
            sa.Column("action", sa.String(length=20), nullable=True),
            sa.Column("reason", sa.Text(), nullable=True),
            sa.Column("sha256", sa.String(length=64), nullable=True),
            sa.Column("size", sa.BigInteger(), nullable=True),
            sa.Column("key", sa.String(length=200), nullable=True),
            sa.Column("version_id", sa.String(length=200), nullable=True),
            sa.Column("checksum", sa.String(length=100), nullable=True),
            sa.Column("manifest_key", sa.String(length=200), nullable=True),
            sa.Column("manifest_version_id", sa.String(length=200), nullable=True),
            sa.Column(
                "probe",
                sa.JSON(),
                nullable=True,
            ),
            sa.Column("ffmpeg_version", sa.Text(), nullable=True),
            sa.Column(
                "ffmpeg_args",
                sa.JSON(),
                nullable=True,
            ),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("progress", sa.Double(), nullable=True),
            sa.Column("speed", sa.Double(), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("next_attempt_at", archive.db.UTCDateTime(), nullable=True),
            sa.Column("created_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("updated_at", archive.db.UTCDateTime(), nullable=False),
            sa.ForeignKeyConstraint(
                ["evidence_id"],
                ["evidence.evidence_id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("derivatives", schema=None) as batch_op:
            batch_op.create_index(
                batch_op.f("ix_derivatives_evidence_id"), ["evidence_id"], unique=False
            )
            batch_op.create_index(batch_op.f("ix_derivatives_key"), ["key"], unique=False)
            batch_op.create_index(batch_op.f("ix_derivatives_state"), ["state"], unique=False)

    if not _exists("disposition_approvals"):
        op.create_table(
            "disposition_approvals",
            sa.Column("plan_id", sa.String(length=64), nullable=False),
            sa.Column("approver", sa.String(length=200), nullable=False),
            sa.Column("actor", sa.String(length=200), nullable=False),
            sa.Column("content_sha256", sa.String(length=64), nullable=False),
            sa.Column("approved_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("note", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(
                ["plan_id"],
                ["disposition_plans.plan_id"],
            ),
            sa.PrimaryKeyConstraint("plan_id", "approver"),
        )

    if not _exists("ingest_jobs"):
        op.create_table(
            "ingest_jobs",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("station", sa.String(length=64), nullable=False),
            sa.Column("dock", sa.String(length=200), nullable=False),
            sa.Column("dock_root", archive.db.FsPath(), nullable=False),
            sa.Column("source_path", archive.db.FsPath(), nullable=False),
            sa.Column("spool_path", archive.db.FsPath(), nullable=False),
            sa.Column("after_archive", sa.String(length=300), nullable=False),
            sa.Column("display_name", sa.Text(), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=True),
            sa.Column("mtime_ns", sa.BigInteger(), nullable=True),
            sa.Column("sha256", sa.String(length=64), nullable=True),
            sa.Column("part_size", sa.BigInteger(), nullable=True),
            sa.Column(
                "part_digests",
                sa.JSON(),
                nullable=True,
            ),
            sa.Column("expected_checksum", sa.String(length=100), nullable=True),
            sa.Column("state", sa.String(length=20), nullable=False),
            sa.Column("evidence_id", sa.String(length=40), nullable=True),
            sa.Column("original_version_id", sa.String(length=200), nullable=True),
            sa.Column("original_checksum", sa.String(length=100), nullable=True),
            sa.Column("original_lock_mode", sa.String(length=16), nullable=True),
            sa.Column("original_retain_until", archive.db.UTCDateTime(), nullable=True),
            sa.Column(
                "flags",
                sa.JSON(),
                nullable=False,
            ),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("next_attempt_at", archive.db.UTCDateTime(), nullable=True),
            sa.Column("first_seen_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("updated_at", archive.db.UTCDateTime(), nullable=False),
            sa.Column("released_at", archive.db.UTCDateTime(), nullable=True),
            sa.ForeignKeyConstraint(
                ["evidence_id"],
                ["evidence.evidence_id"],
            ),
            sa.PrimaryKeyConstraint("id"),
        )
        with op.batch_alter_table("ingest_jobs", schema=None) as batch_op:
            batch_op.create_index(batch_op.f("ix_ingest_jobs_sha256"), ["sha256"], unique=False)
            batch_op.create_index(batch_op.f("ix_ingest_jobs_state"), ["state"], unique=False)
            batch_op.create_index("ix_jobs_state_next", ["state", "next_attempt_at"], unique=False)


def downgrade() -> None:
    raise NotImplementedError("the baseline is never downgraded: that would drop the catalog")


def _exists(table: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(table)
