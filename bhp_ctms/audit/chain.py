"""The tamper-evident hash chains of the audit trail.

Events form one SHA-256 chain per study and one for system events. Each event's
hash covers the previous event's hash and a canonical encoding of the event, so
editing, deleting, inserting or reordering any event breaks every hash after it.
Appends to a chain are serialised (an advisory lock on PostgreSQL; SQLite has a
single writer, and a stale read there fails as "database is locked", which is
retried), and ``(chain, sequence)`` is unique as the last line of defence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from bhp_ctms.audit.models import AuditEvent

GENESIS_HASH = "0" * 64
SYSTEM_CHAIN = "system"
# Fields covered by the hash, in a fixed order: everything but the hash itself.
HASHED_FIELDS = (
    "chain",
    "sequence",
    "occurred_at",
    "action",
    "actor_id",
    "actor_name",
    "actor_role",
    "client_addr",
    "request_id",
    "entity_type",
    "entity_id",
    "study_id",
    "site_id",
    "subject_user_id",
    "reason",
    "details",
    "previous_hash",
)


def chain_of(study_id: int | None) -> str:
    return SYSTEM_CHAIN if study_id is None else f"study:{study_id}"


def canonical_encoding(event: AuditEvent) -> bytes:
    """The event's fields as compact JSON with sorted keys: the same bytes on any backend."""
    values: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = getattr(event, name)
        values[name] = value.isoformat() if name == "occurred_at" else value
    return json.dumps(
        values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(canonical_encoding(event)).hexdigest()


def _lock_chain(db: Session, chain: str) -> None:
    if db.get_bind().dialect.name == "postgresql":
        # Held until the transaction ends: concurrent appends to one chain queue here.
        db.execute(text("SELECT pg_advisory_xact_lock(hashtext(:chain))"), {"chain": chain})


def seal(db: Session, event: AuditEvent) -> None:
    """Give a new event its place in its chain: sequence, previous hash and own hash."""
    event.chain = chain_of(event.study_id)
    _lock_chain(db, event.chain)
    last = db.execute(
        select(AuditEvent.sequence, AuditEvent.event_hash)
        .where(AuditEvent.chain == event.chain)
        .order_by(AuditEvent.sequence.desc())
        .limit(1)
    ).first()
    event.sequence = 1 if last is None else last.sequence + 1
    event.previous_hash = GENESIS_HASH if last is None else last.event_hash
    event.event_hash = event_hash(event)


@dataclass(frozen=True)
class ChainProblem:
    """The first thing wrong with one chain."""

    chain: str
    event_id: int | None
    sequence: int
    message: str

    def __str__(self) -> str:
        where = f"event {self.event_id}" if self.event_id is not None else "after the last event"
        return f"chain {self.chain}: {where} (sequence {self.sequence}): {self.message}"


def chains(db: Session, study_id: int | None = None, *, all_chains: bool = True) -> list[str]:
    if not all_chains:
        return [chain_of(study_id)]
    return list(db.scalars(select(AuditEvent.chain).distinct().order_by(AuditEvent.chain)))


def verify_chain(db: Session, chain: str, batch_size: int = 10_000) -> ChainProblem | None:
    """Check one chain from its first event to its last; the first problem, if any."""
    expected_previous = GENESIS_HASH
    expected_sequence = 1
    for event in _events_of(db, chain, batch_size):
        if event.sequence != expected_sequence:
            return ChainProblem(
                chain,
                event.id,
                event.sequence,
                f"expected sequence {expected_sequence}: "
                "an event is missing, repeated or out of order",
            )
        if event.previous_hash != expected_previous:
            return ChainProblem(
                chain,
                event.id,
                event.sequence,
                "its previous hash does not match the event before it",
            )
        if event_hash(event) != event.event_hash:
            return ChainProblem(
                chain, event.id, event.sequence, "its contents do not match its hash (edited)"
            )
        expected_previous = event.event_hash
        expected_sequence += 1
    return None


def _events_of(db: Session, chain: str, batch_size: int) -> Iterator[AuditEvent]:
    statement = (
        select(AuditEvent)
        .where(AuditEvent.chain == chain)
        .order_by(AuditEvent.sequence, AuditEvent.id)
        .execution_options(yield_per=batch_size)
    )
    for event in db.scalars(statement):
        yield event
        db.expunge(event)


def count_events(db: Session, chain: str) -> int:
    return int(db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.chain == chain)) or 0)
