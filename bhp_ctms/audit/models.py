"""The audit trail's tables: events, signed checkpoints, reviews and verification runs."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bhp_ctms.audit.spec import AuditContext, Audited
from bhp_ctms.db import ModelBase, enum_by_value, utcnow


def canonical_json(value: Any) -> str:
    """One text for one value: sorted keys, no spaces, unescaped Unicode."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class AuditEvent(ModelBase):
    """One event. Rows are only ever inserted; nothing updates or deletes them.

    A change to audited data gives one event per changed value: ``field`` names the
    value, ``old_value`` and ``new_value`` hold it as canonical JSON text (NULL when
    there was none: no old value on creation, no new value on deletion).

    ``actor_name`` is the actor's name at the time, so the record stays legible even
    if the account is renamed later. Study, site, participant and user are plain ids
    rather than foreign keys: the trail must outlive anything it describes.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_study_id_id", "study_id", "id"),
        Index("ix_audit_events_participant_id_id", "participant_id", "id"),
        Index("ix_audit_events_entity", "entity_type", "entity_id", "id"),
        UniqueConstraint("chain", "sequence"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[int | None]
    actor_name: Mapped[str] = mapped_column(String(200), default="")
    actor_role: Mapped[str] = mapped_column(String(64), default="")
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    request_id: Mapped[str] = mapped_column(String(64), default="")
    entity_type: Mapped[str] = mapped_column(String(64), default="")
    entity_id: Mapped[str] = mapped_column(String(64), default="")
    study_id: Mapped[int | None]
    site_id: Mapped[int | None]
    subject_user_id: Mapped[int | None] = mapped_column(index=True)
    participant_id: Mapped[int | None]
    # The CRF (form key) and the item (field) the value belongs to, where it has one.
    form: Mapped[str] = mapped_column(String(64), default="")
    field: Mapped[str] = mapped_column(String(128), default="")
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    # Canonical JSON text (see canonical_json), so that what is hashed is what is stored.
    details_json: Mapped[str] = mapped_column("details", Text, default="{}")
    # The hash chain (see bhp_ctms.audit.chain): "system" or "study:<id>", the
    # event's place in it, and the hashes that link it to the event before.
    chain: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int]
    previous_hash: Mapped[str] = mapped_column(String(64))
    event_hash: Mapped[str] = mapped_column(String(64))

    @property
    def details(self) -> dict[str, Any]:
        loaded = json.loads(self.details_json or "{}")
        return loaded if isinstance(loaded, dict) else {}

    @property
    def old(self) -> Any:
        return None if self.old_value is None else json.loads(self.old_value)

    @property
    def new(self) -> Any:
        return None if self.new_value is None else json.loads(self.new_value)


class CheckpointTrigger(StrEnum):
    PERIODIC = "periodic"
    LOCK = "lock"
    EXPORT = "export"
    MANUAL = "manual"


class AuditCheckpoint(ModelBase):
    """A signed statement of a chain's head: recomputing the chain cannot forge it.

    ``mac`` is an HMAC-SHA256, with a key derived from the deployment's secret key, of
    the chain, the head's sequence and hash, the event count and the time.
    """

    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_chain_sequence", "chain", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chain: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int]
    head_hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    trigger: Mapped[CheckpointTrigger] = mapped_column(enum_by_value(CheckpointTrigger))
    mac: Mapped[str] = mapped_column(String(64))


class AuditReview(ModelBase):
    """A monitor's signed-off review of part of a study's audit trail (ICH E6(R3) 4.2.3).

    The scope is the study, optionally narrowed to a site, a participant and a form,
    over a period; ``last_event_id`` is the newest event the review covered, so
    anything later in the same scope is "not reviewed since its last change".
    """

    __tablename__ = "audit_reviews"
    __table_args__ = (Index("ix_audit_reviews_study_id_id", "study_id", "id"),)
    __audit__ = Audited(
        "audit_review",
        context=lambda review: AuditContext(
            study_id=review.study_id, site_id=review.site_id, participant_id=review.participant_id
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int]
    site_id: Mapped[int | None]
    participant_id: Mapped[int | None]
    form: Mapped[str] = mapped_column(String(64), default="")
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    events_reviewed: Mapped[int] = mapped_column(default=0)
    last_event_id: Mapped[int | None]
    findings: Mapped[str] = mapped_column(Text, default="")
    reviewer_id: Mapped[int]
    reviewer_name: Mapped[str] = mapped_column(String(200))
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)


class VerificationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"

    @property
    def label(self) -> str:
        return self.value.capitalize()


class AuditVerification(ModelBase):
    """One run of the audit trail's verification, requested in the web UI and run by a worker."""

    __tablename__ = "audit_verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int | None]
    requested_by_id: Mapped[int | None]
    requested_by_name: Mapped[str] = mapped_column(String(200), default="")
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    status: Mapped[VerificationStatus] = mapped_column(
        enum_by_value(VerificationStatus), default=VerificationStatus.QUEUED
    )
    events_checked: Mapped[int] = mapped_column(default=0)
    # One line per problem found, as `ctms audit verify` prints them.
    problems: Mapped[str] = mapped_column(Text, default="")
