"""crf form entries queries sdv signatures

Revision ID: be3435366a6d
Revises: 4c72750b7ac2
Create Date: 2026-11-23 15:22:54.052368+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import bhp_ctms.db

revision = "be3435366a6d"
down_revision = "4c72750b7ac2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "form_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("form_code", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_form_versions_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_versions")),
        sa.UniqueConstraint(
            "study_id",
            "form_code",
            "number",
            name=op.f("uq_form_versions_study_id_form_code_number"),
        ),
        sa.UniqueConstraint(
            "study_id",
            "form_code",
            "sha256",
            name=op.f("uq_form_versions_study_id_form_code_sha256"),
        ),
    )
    with op.batch_alter_table("form_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_form_versions_study_id"), ["study_id"], unique=False)

    op.create_table(
        "source_verification_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column(
            "method",
            sa.Enum(
                "all",
                "first",
                "percentage",
                name="samplingmethod",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("percentage", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["study_id"], ["studies.id"], name=op.f("fk_source_verification_plans_study_id_studies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_verification_plans")),
        sa.UniqueConstraint("study_id", name=op.f("uq_source_verification_plans_study_id")),
    )
    op.create_table(
        "form_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("event_code", sa.String(length=32), nullable=False),
        sa.Column("event_instance", sa.Integer(), nullable=False),
        sa.Column("form_code", sa.String(length=32), nullable=False),
        sa.Column("form_version_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "in_progress",
                "complete",
                "verified",
                "signed",
                "locked",
                name="formstatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["form_version_id"],
            ["form_versions.id"],
            name=op.f("fk_form_entries_form_version_id_form_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_form_entries_participant_id_participants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_entries")),
        sa.UniqueConstraint(
            "participant_id",
            "event_code",
            "event_instance",
            "form_code",
            name=op.f("uq_form_entries_participant_id_event_code_event_instance_form_code"),
        ),
    )
    with op.batch_alter_table("form_entries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_form_entries_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "item_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("form_entry_id", sa.Integer(), nullable=False),
        sa.Column("item_path", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("missing_code", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["form_entry_id"],
            ["form_entries.id"],
            name=op.f("fk_item_values_form_entry_id_form_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_values")),
        sa.UniqueConstraint(
            "form_entry_id", "item_path", name=op.f("uq_item_values_form_entry_id_item_path")
        ),
    )
    with op.batch_alter_table("item_values", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_item_values_form_entry_id"), ["form_entry_id"], unique=False
        )

    op.create_table(
        "queries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("form_entry_id", sa.Integer(), nullable=False),
        sa.Column("item_path", sa.String(length=100), nullable=False),
        sa.Column(
            "origin",
            sa.Enum(
                "system",
                "manual",
                name="queryorigin",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("check", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "answered",
                "closed",
                name="querystatus",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("value_when_raised", sa.Text(), nullable=False),
        sa.Column("raised_by_id", sa.Integer(), nullable=True),
        sa.Column("raised_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["form_entry_id"],
            ["form_entries.id"],
            name=op.f("fk_queries_form_entry_id_form_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["raised_by_id"], ["users.id"], name=op.f("fk_queries_raised_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queries")),
    )
    with op.batch_alter_table("queries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_queries_form_entry_id"), ["form_entry_id"], unique=False
        )

    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.Column("form_entry_id", sa.Integer(), nullable=True),
        sa.Column("signer_id", sa.Integer(), nullable=False),
        sa.Column("signer_name", sa.String(length=200), nullable=False),
        sa.Column("signer_role", sa.String(length=64), nullable=False),
        sa.Column(
            "meaning",
            sa.Enum(
                "reviewed",
                "approved",
                "responsible",
                name="signaturemeaning",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("signed_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("invalidated_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("invalidated_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["form_entry_id"],
            ["form_entries.id"],
            name=op.f("fk_signatures_form_entry_id_form_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_signatures_participant_id_participants"),
        ),
        sa.ForeignKeyConstraint(
            ["signer_id"], ["users.id"], name=op.f("fk_signatures_signer_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signatures")),
    )
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_signatures_form_entry_id"), ["form_entry_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_signatures_participant_id"), ["participant_id"], unique=False
        )

    op.create_table(
        "source_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("form_entry_id", sa.Integer(), nullable=False),
        sa.Column("item_path", sa.String(length=100), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("verified_by_id", sa.Integer(), nullable=False),
        sa.Column("verified_by_name", sa.String(length=200), nullable=False),
        sa.Column("verified_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["form_entry_id"],
            ["form_entries.id"],
            name=op.f("fk_source_verifications_form_entry_id_form_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["verified_by_id"],
            ["users.id"],
            name=op.f("fk_source_verifications_verified_by_id_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_verifications")),
    )
    with op.batch_alter_table("source_verifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_verifications_form_entry_id"), ["form_entry_id"], unique=False
        )

    op.create_table(
        "query_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "raised",
                "answered",
                "closed",
                "reopened",
                "commented",
                name="queryaction",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("written_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_query_messages_author_id_users")
        ),
        sa.ForeignKeyConstraint(
            ["query_id"], ["queries.id"], name=op.f("fk_query_messages_query_id_queries")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_query_messages")),
    )
    with op.batch_alter_table("query_messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_query_messages_query_id"), ["query_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("query_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_query_messages_query_id"))

    op.drop_table("query_messages")
    with op.batch_alter_table("source_verifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_verifications_form_entry_id"))

    op.drop_table("source_verifications")
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signatures_participant_id"))
        batch_op.drop_index(batch_op.f("ix_signatures_form_entry_id"))

    op.drop_table("signatures")
    with op.batch_alter_table("queries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queries_form_entry_id"))

    op.drop_table("queries")
    with op.batch_alter_table("item_values", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_values_form_entry_id"))

    op.drop_table("item_values")
    with op.batch_alter_table("form_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_form_entries_participant_id"))

    op.drop_table("form_entries")
    op.drop_table("source_verification_plans")
    with op.batch_alter_table("form_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_form_versions_study_id"))

    op.drop_table("form_versions")
