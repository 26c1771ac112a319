"""audit events carry field-level values; checkpoints, reviews, verifications; app role

Revision ID: 9086c8f6076e
Revises: 3c1f0e8a9b27
Create Date: 2026-11-23 11:10:22.830431+00:00

- ``audit_events`` gains participant, form, field, old and new value; ``details``
  becomes canonical JSON text, and every event is re-sealed with the length-prefixed
  encoding of ``bhp_ctms.audit.chain`` (which PostgreSQL can compute itself). No
  deployment existed before this revision, so no signed checkpoint vouches for the
  old hashes.
- Rows that exist already (users, memberships, studies, sites) get baseline
  ``<entity>.created`` events, so that replaying the trail accounts for them.
- New tables: ``audit_checkpoints`` and ``audit_reviews`` (append-only, like the
  events) and ``audit_verifications``.
- Sites record their principal investigator.
- On PostgreSQL, the role ``bhp_ctms_app`` (the application's, taken with
  ``bhp_ctms.database_role``) may read and write every table but may not UPDATE,
  DELETE or TRUNCATE the audit tables.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

import bhp_ctms.db

revision = "9086c8f6076e"
down_revision = "3c1f0e8a9b27"
branch_labels = None
depends_on = None

APP_ROLE = "bhp_ctms_app"
APPEND_ONLY = ("audit_events", "audit_checkpoints", "audit_reviews")
GENESIS_HASH = "0" * 64
# The encoding of bhp_ctms.audit.chain as of this revision, frozen here.
HASHED_FIELDS = (
    "chain", "sequence", "occurred_at", "action", "actor_id", "actor_name", "actor_role",
    "client_addr", "request_id", "entity_type", "entity_id", "study_id", "site_id",
    "subject_user_id", "participant_id", "form", "field", "old_value", "new_value",
    "reason", "details", "previous_hash",
)
# What the automatic capture of bhp_ctms.audit.capture records, as of this revision.
BASELINE = {
    "studies": ("study", ["code", "title", "status", "blinding", "target_sample_size",
                          "created_at"]),
    "sites": ("site", ["study_id", "code", "name", "principal_investigator", "status",
                       "recruitment_target", "activated_on", "created_at"]),
    "users": ("user", ["username", "full_name", "email", "password_hash", "is_active",
                       "created_at", "password_changed_at", "totp_secret_encrypted"]),
    "memberships": ("membership", ["user_id", "study_id", "site_id", "role", "granted_at",
                                   "granted_by_id"]),
}
SECRETS = {"password_hash", "totp_secret_encrypted"}
TIMESTAMPS = {"created_at", "granted_at", "password_changed_at"}


def _canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _time_text(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def _encode(values):
    parts = []
    for name in HASHED_FIELDS:
        value = values[name]
        if value is None:
            parts.append("~")
            continue
        if name == "occurred_at":
            value = _time_text(value)
        elif not isinstance(value, str):
            value = str(value)
        parts.append(f"{len(value)}:{value}")
    return "".join(parts).encode("utf-8")


def _baseline_value(name, value, dialect):
    if value is None:
        return None
    if name in TIMESTAMPS:
        return _time_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if name == "is_active" and dialect == "sqlite":
        value = bool(value)
    if name in SECRETS:
        return "sha256:" + hashlib.sha256(str(value).encode("utf-8")).hexdigest()
    return value


def _baseline_events(connection):
    """One created event per value of each existing audited row, oldest tables first."""
    dialect = connection.dialect.name
    now = datetime.now(UTC)
    events = []
    for table, (entity, columns) in BASELINE.items():
        rows = connection.execute(
            sa.text(f"SELECT id, {', '.join(columns)} FROM {table} ORDER BY id")  # noqa: S608
        ).mappings()
        for row in rows:
            study_id = {"studies": row["id"]}.get(table, row.get("study_id"))
            site_id = {"sites": row["id"]}.get(table, row.get("site_id"))
            subject = {"users": row["id"], "memberships": row.get("user_id")}.get(table)
            for name in columns:
                value = _baseline_value(name, row[name], dialect)
                if value is None:
                    continue
                events.append({
                    "occurred_at": now, "action": f"{entity}.created", "actor_id": None,
                    "actor_name": "migration 9086c8f6076e (baseline of existing data)",
                    "actor_role": "", "client_addr": "", "request_id": "",
                    "entity_type": entity, "entity_id": str(row["id"]),
                    "study_id": study_id, "site_id": site_id, "subject_user_id": subject,
                    "participant_id": None, "form": "", "field": name, "old_value": None,
                    "new_value": _canonical_json(value), "reason": "", "details": "{}",
                })
    return events


def _reseal(connection):
    events = connection.execute(sa.text("SELECT * FROM audit_events ORDER BY id")).mappings().all()
    heads = {}
    for row in events:
        values = dict(row)
        details = values["details"]
        values["details"] = _canonical_json(json.loads(details) if details else {})
        sequence, previous = heads.get(values["chain"], (0, GENESIS_HASH))
        values.update(sequence=sequence + 1, previous_hash=previous)
        digest = hashlib.sha256(_encode(values)).hexdigest()
        connection.execute(
            sa.text(
                "UPDATE audit_events SET details = :details, sequence = :sequence, "
                "previous_hash = :previous_hash, event_hash = :event_hash WHERE id = :id"
            ),
            {"details": values["details"], "sequence": sequence + 1, "previous_hash": previous,
             "event_hash": digest, "id": values["id"]},
        )
        heads[values["chain"]] = (sequence + 1, digest)
    for values in _baseline_events(connection):
        chain = "system" if values["study_id"] is None else f"study:{values['study_id']}"
        sequence, previous = heads.get(chain, (0, GENESIS_HASH))
        values.update(chain=chain, sequence=sequence + 1, previous_hash=previous)
        values["event_hash"] = hashlib.sha256(_encode(values)).hexdigest()
        columns = ", ".join(values)
        placeholders = ", ".join(f":{name}" for name in values)
        connection.execute(
            sa.text(f"INSERT INTO audit_events ({columns}) VALUES ({placeholders})")  # noqa: S608
            .bindparams(sa.bindparam("occurred_at", type_=bhp_ctms.db.UTCDateTime())),
            values,
        )
        heads[chain] = (sequence + 1, values["event_hash"])


def _postgresql_refuse(table):
    return f"""
CREATE TRIGGER {table}_no_update_or_delete BEFORE UPDATE OR DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
"""


def _sqlite_refuse(table):
    return [
        f"""CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only: UPDATE refused'); END""",
        f"""CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table}
            BEGIN SELECT RAISE(ABORT, '{table} is append-only: DELETE refused'); END""",
    ]


def _drop_refusals(table, dialect):
    if dialect == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update_or_delete ON {table}")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")


def _install_refusals(table, dialect):
    if dialect == "postgresql":
        op.execute(_postgresql_refuse(table))
    else:
        for statement in _sqlite_refuse(table):
            op.execute(statement)


GRANT_APP_ROLE = f"""
DO $$
BEGIN
    CREATE ROLE {APP_ROLE} NOLOGIN;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- one role for the cluster; another database (or a concurrent run) made it
END
$$;
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE};
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {APP_ROLE};
REVOKE UPDATE, DELETE, TRUNCATE ON {", ".join(APPEND_ONLY)} FROM {APP_ROLE};
REVOKE UPDATE, DELETE, TRUNCATE ON alembic_version FROM {APP_ROLE};
"""

REVOKE_APP_ROLE = f"""
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE};
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    REVOKE USAGE, SELECT, UPDATE ON SEQUENCES FROM {APP_ROLE};
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE};
REVOKE USAGE ON SCHEMA public FROM {APP_ROLE};
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_refusals("audit_events", dialect)
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("created_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "trigger",
            sa.Enum("periodic", "lock", "export", "manual", name="checkpointtrigger",
                    native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("mac", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    op.create_index(
        "ix_audit_checkpoints_chain_sequence", "audit_checkpoints", ["chain", "sequence"]
    )
    op.create_table(
        "audit_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("participant_id", sa.Integer(), nullable=True),
        sa.Column("form", sa.String(length=64), nullable=False),
        sa.Column("period_start", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_end", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("events_reviewed", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=True),
        sa.Column("findings", sa.Text(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_name", sa.String(length=200), nullable=False),
        sa.Column("signed_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_reviews")),
    )
    op.create_index("ix_audit_reviews_study_id_id", "audit_reviews", ["study_id", "id"])
    op.create_table(
        "audit_verifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("requested_by_id", sa.Integer(), nullable=True),
        sa.Column("requested_by_name", sa.String(length=200), nullable=False),
        sa.Column("requested_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", bhp_ctms.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "status",
            sa.Enum("queued", "running", "passed", "failed", "error", name="verificationstatus",
                    native_enum=False, create_constraint=True, length=32),
            nullable=False,
        ),
        sa.Column("events_checked", sa.Integer(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_verifications")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("participant_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("form", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("field", sa.String(length=128), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("old_value", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("new_value", sa.Text(), nullable=True))
        batch_op.alter_column(
            "details",
            existing_type=sa.JSON(),
            type_=sa.Text(),
            existing_nullable=False,
            postgresql_using="details::text",
        )
        batch_op.create_index("ix_audit_events_entity", ["entity_type", "entity_id", "id"])
        batch_op.create_index("ix_audit_events_participant_id_id", ["participant_id", "id"])
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("form", server_default=None, existing_type=sa.String(64))
        batch_op.alter_column("field", server_default=None, existing_type=sa.String(128))
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "principal_investigator", sa.String(length=200), nullable=False, server_default=""
            )
        )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.alter_column(
            "principal_investigator", server_default=None, existing_type=sa.String(200)
        )
    _reseal(op.get_bind())
    for table in APPEND_ONLY:
        _install_refusals(table, dialect)
    if dialect == "postgresql":
        op.execute(GRANT_APP_ROLE)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(REVOKE_APP_ROLE)
    for table in APPEND_ONLY:
        _drop_refusals(table, dialect)
    # The events keep the new encoding's hashes; the previous revision's verifier
    # would report them. A downgrade is for development databases only.
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("principal_investigator")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_participant_id_id")
        batch_op.drop_index("ix_audit_events_entity")
        batch_op.alter_column(
            "details",
            existing_type=sa.Text(),
            type_=sa.JSON(),
            existing_nullable=False,
            postgresql_using="details::json",
        )
        batch_op.drop_column("new_value")
        batch_op.drop_column("old_value")
        batch_op.drop_column("field")
        batch_op.drop_column("form")
        batch_op.drop_column("participant_id")
    op.drop_table("audit_verifications")
    op.drop_index("ix_audit_reviews_study_id_id", table_name="audit_reviews")
    op.drop_table("audit_reviews")
    op.drop_index("ix_audit_checkpoints_chain_sequence", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
    _install_refusals("audit_events", dialect)
