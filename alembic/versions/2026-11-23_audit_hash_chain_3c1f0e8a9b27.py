"""audit events form hash chains and are append-only

Revision ID: 3c1f0e8a9b27
Revises: 765a0627831e
Create Date: 2026-11-23 10:30:00+00:00
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = "3c1f0e8a9b27"
down_revision = "765a0627831e"
branch_labels = None
depends_on = None

GENESIS_HASH = "0" * 64
# The encoding of bhp_ctms.audit.chain as of this revision, frozen here so that
# later changes to the application cannot change what this migration wrote.
HASHED_FIELDS = (
    "chain", "sequence", "occurred_at", "action", "actor_id", "actor_name", "actor_role",
    "client_addr", "request_id", "entity_type", "entity_id", "study_id", "site_id",
    "subject_user_id", "reason", "details", "previous_hash",
)

POSTGRESQL_REFUSE = """
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
"""

SQLITE_REFUSE = [
    """CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
       BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END""",
]


def _normalise_time(value):
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _seal_existing_events(connection) -> None:
    events = connection.execute(sa.text("SELECT * FROM audit_events ORDER BY id")).mappings().all()
    heads: dict[str, tuple[int, str]] = {}
    for row in events:
        values = dict(row)
        chain = "system" if values["study_id"] is None else f"study:{values['study_id']}"
        sequence, previous = heads.get(chain, (0, GENESIS_HASH))
        details = values["details"]
        values.update(
            chain=chain,
            sequence=sequence + 1,
            previous_hash=previous,
            occurred_at=_normalise_time(values["occurred_at"]),
            details=json.loads(details) if isinstance(details, str) else details,
        )
        encoded = json.dumps(
            {name: values[name] for name in HASHED_FIELDS},
            sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
        ).encode("utf-8")
        digest = hashlib.sha256(encoded).hexdigest()
        connection.execute(
            sa.text(
                "UPDATE audit_events SET chain = :chain, sequence = :sequence, "
                "previous_hash = :previous_hash, event_hash = :event_hash WHERE id = :id"
            ),
            {"chain": chain, "sequence": sequence + 1, "previous_hash": previous,
             "event_hash": digest, "id": values["id"]},
        )
        heads[chain] = (sequence + 1, digest)


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("previous_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("event_hash", sa.String(length=64), nullable=True))
    _seal_existing_events(op.get_bind())
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.alter_column("chain", existing_type=sa.String(length=32), nullable=False)
        batch_op.alter_column("sequence", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("previous_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("event_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_audit_events_chain_sequence"), ["chain", "sequence"]
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_REFUSE)
    else:
        for statement in SQLITE_REFUSE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_no_update_or_delete ON audit_events")
        op.execute("DROP FUNCTION audit_events_refuse_change()")
    else:
        op.execute("DROP TRIGGER audit_events_no_delete")
        op.execute("DROP TRIGGER audit_events_no_update")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_audit_events_chain_sequence"), type_="unique")
        batch_op.drop_column("event_hash")
        batch_op.drop_column("previous_hash")
        batch_op.drop_column("sequence")
        batch_op.drop_column("chain")
