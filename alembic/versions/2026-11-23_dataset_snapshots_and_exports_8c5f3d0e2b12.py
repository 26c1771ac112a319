"""dataset snapshots and exports, stored files

Revision ID: 8c5f3d0e2b12
Revises: 7b4e2c9d1a01
Create Date: 2026-11-23 18:00:00.000000+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bhp_ctms.db

revision = "8c5f3d0e2b12"
down_revision = "7b4e2c9d1a01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stored_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stored_files")),
    )
    op.create_table(
        "stored_file_chunks",
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["stored_files.id"],
            name=op.f("fk_stored_file_chunks_file_id_stored_files"),
        ),
        sa.PrimaryKeyConstraint("file_id", "sequence", name=op.f("pk_stored_file_chunks")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # The chunks are compressed already (or are zip files): PostgreSQL's own
        # compression of large values would cost time and save nothing.
        op.execute("ALTER TABLE stored_file_chunks ALTER COLUMN data SET STORAGE EXTERNAL")

    op.create_table(
        "dataset_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "lock",
                "interim",
                name="snapshotkind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("lock_id", sa.Integer(), nullable=True),
        sa.Column("request_token", sa.String(length=64), nullable=True),
        sa.Column("taken_by_id", sa.Integer(), nullable=True),
        sa.Column("taken_by_name", sa.String(length=200), nullable=False),
        sa.Column("taken_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.Integer(), nullable=False),
        sa.Column("participant_count", sa.Integer(), nullable=False),
        sa.Column("entry_count", sa.Integer(), nullable=False),
        sa.Column("value_count", sa.Integer(), nullable=False),
        sa.Column("signature_count", sa.Integer(), nullable=False),
        sa.Column("audit_chain", sa.String(length=32), nullable=False),
        sa.Column("audit_sequence", sa.Integer(), nullable=False),
        sa.Column("audit_head_hash", sa.String(length=64), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "taken",
                "superseded",
                name="snapshotstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["audit_checkpoints.id"],
            name=op.f("fk_dataset_snapshots_checkpoint_id_audit_checkpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["file_id"], ["stored_files.id"], name=op.f("fk_dataset_snapshots_file_id_stored_files")
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_dataset_snapshots_study_id_studies")
        ),
        sa.ForeignKeyConstraint(
            ["taken_by_id"], ["users.id"], name=op.f("fk_dataset_snapshots_taken_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_snapshots")),
        sa.UniqueConstraint("lock_id", name=op.f("uq_dataset_snapshots_lock_id")),
        sa.UniqueConstraint("request_token", name=op.f("uq_dataset_snapshots_request_token")),
    )
    with op.batch_alter_table("dataset_snapshots", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_snapshots_study_id"), ["study_id"], unique=False
        )

    op.create_table(
        "dataset_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("blinded", sa.Boolean(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued",
                "running",
                "done",
                "failed",
                name="exportstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("bundle_file_id", sa.Integer(), nullable=True),
        sa.Column("bundle_sha256", sa.String(length=64), nullable=False),
        sa.Column("bundle_size", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_by_name", sa.String(length=200), nullable=False),
        sa.Column("requested_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["bundle_file_id"],
            ["stored_files.id"],
            name=op.f("fk_dataset_exports_bundle_file_id_stored_files"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by_id"], ["users.id"], name=op.f("fk_dataset_exports_requested_by_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["dataset_snapshots.id"],
            name=op.f("fk_dataset_exports_snapshot_id_dataset_snapshots"),
        ),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_dataset_exports_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_exports")),
    )
    with op.batch_alter_table("dataset_exports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_dataset_exports_snapshot_id"), ["snapshot_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_dataset_exports_study_id"), ["study_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dataset_exports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_exports_study_id"))
        batch_op.drop_index(batch_op.f("ix_dataset_exports_snapshot_id"))
    op.drop_table("dataset_exports")
    with op.batch_alter_table("dataset_snapshots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dataset_snapshots_study_id"))
    op.drop_table("dataset_snapshots")
    op.drop_table("stored_file_chunks")
    op.drop_table("stored_files")
