"""Audit events: an append-only record of who did what, when, to which record."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bhp_ctms.db import ModelBase, utcnow


class AuditEvent(ModelBase):
    """One event. Rows are only ever inserted; nothing updates or deletes them.

    ``actor_name`` is the actor's name at the time, so the record stays legible even
    if the account is renamed later. Study, site and user are plain ids rather than
    foreign keys: the trail must outlive anything it describes.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_study_id_id", "study_id", "id"),
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
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The hash chain (see bhp_ctms.audit.chain): "system" or "study:<id>", the
    # event's place in it, and the hashes that link it to the event before.
    chain: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int]
    previous_hash: Mapped[str] = mapped_column(String(64))
    event_hash: Mapped[str] = mapped_column(String(64))
