"""Signed checkpoints of the audit trail's chains.

A hash chain shows that events were not changed one at a time, but someone with
write access to the database could recompute a whole chain after changing it. A
checkpoint is an HMAC, with a key derived from the deployment's secret key (which
is not in the database), of a chain's head: its sequence, its hash, the number of
events and the time. A recomputed chain no longer matches the heads its
checkpoints vouch for, and a checkpoint cannot be forged without the key.

Checkpoints are written periodically (a Celery beat task) and at every lock and
export (those call :func:`write_checkpoint` with their trigger).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bhp_ctms.audit.chain import chain_head, chain_of, chains, time_text
from bhp_ctms.audit.models import AuditCheckpoint, AuditEvent, CheckpointTrigger
from bhp_ctms.db import utcnow
from bhp_ctms.encryption import derive_key

CHECKPOINT_PURPOSE = "audit-checkpoint"


def _mac(secret_key: str, checkpoint: AuditCheckpoint) -> str:
    message = "|".join(
        [
            checkpoint.chain,
            str(checkpoint.sequence),
            checkpoint.head_hash,
            str(checkpoint.event_count),
            time_text(checkpoint.created_at),
            str(checkpoint.trigger),
        ]
    ).encode("utf-8")
    key = derive_key(secret_key, CHECKPOINT_PURPOSE)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def write_checkpoint(
    db: Session, secret_key: str, chain: str, trigger: CheckpointTrigger
) -> AuditCheckpoint:
    """Sign the chain's current head."""
    sequence, head_hash = chain_head(db, chain)
    checkpoint = AuditCheckpoint(
        chain=chain,
        sequence=sequence,
        head_hash=head_hash,
        event_count=_count_up_to(db, chain, sequence),
        created_at=utcnow(),
        trigger=trigger,
    )
    checkpoint.mac = _mac(secret_key, checkpoint)
    db.add(checkpoint)
    db.flush()
    return checkpoint


def write_study_checkpoint(
    db: Session, secret_key: str, study_id: int | None, trigger: CheckpointTrigger
) -> AuditCheckpoint:
    """Sign a study's chain (at a lock or an export of that study)."""
    return write_checkpoint(db, secret_key, chain_of(study_id), trigger)


def write_periodic_checkpoints(db: Session, secret_key: str) -> list[AuditCheckpoint]:
    """Sign every chain whose head has moved since its last checkpoint."""
    written = []
    for chain in chains(db):
        latest = _latest(db, chain)
        sequence, _ = chain_head(db, chain)
        if latest is None or latest.sequence != sequence:
            written.append(write_checkpoint(db, secret_key, chain, CheckpointTrigger.PERIODIC))
    return written


def _latest(db: Session, chain: str) -> AuditCheckpoint | None:
    return db.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.chain == chain)
        .order_by(AuditCheckpoint.sequence.desc(), AuditCheckpoint.id.desc())
        .limit(1)
    ).first()


def _count_up_to(db: Session, chain: str, sequence: int) -> int:
    return int(
        db.scalar(
            select(func.count(AuditEvent.id)).where(
                AuditEvent.chain == chain, AuditEvent.sequence <= sequence
            )
        )
        or 0
    )


@dataclass(frozen=True)
class CheckpointProblem:
    chain: str
    checkpoint_id: int
    event_id: int | None
    message: str

    def __str__(self) -> str:
        where = f", event {self.event_id}" if self.event_id is not None else ""
        return f"chain {self.chain}: checkpoint {self.checkpoint_id}{where}: {self.message}"


def _checkpoints(db: Session, chain: str) -> Iterator[AuditCheckpoint]:
    yield from db.scalars(
        select(AuditCheckpoint)
        .where(AuditCheckpoint.chain == chain)
        .order_by(AuditCheckpoint.sequence, AuditCheckpoint.id)
    )


def verify_checkpoints(db: Session, secret_key: str, chain: str) -> CheckpointProblem | None:
    """Check each checkpoint's signature and that the chain still has the head it signed."""
    for checkpoint in _checkpoints(db, chain):
        if not hmac.compare_digest(_mac(secret_key, checkpoint), checkpoint.mac):
            return CheckpointProblem(
                chain,
                checkpoint.id,
                None,
                "its signature is not valid (the checkpoint was altered or forged)",
            )
        if checkpoint.sequence == 0:
            continue
        event = db.execute(
            select(AuditEvent.id, AuditEvent.event_hash).where(
                AuditEvent.chain == chain, AuditEvent.sequence == checkpoint.sequence
            )
        ).first()
        if event is None:
            return CheckpointProblem(
                chain,
                checkpoint.id,
                None,
                f"the signed head, sequence {checkpoint.sequence}, is missing "
                "(events were deleted)",
            )
        if event.event_hash != checkpoint.head_hash:
            return CheckpointProblem(
                chain,
                checkpoint.id,
                event.id,
                f"the event at sequence {checkpoint.sequence} is not the one signed "
                "(the chain was rewritten)",
            )
        count = _count_up_to(db, chain, checkpoint.sequence)
        if count != checkpoint.event_count:
            return CheckpointProblem(
                chain,
                checkpoint.id,
                event.id,
                f"{count} events up to the signed head, but {checkpoint.event_count} were signed",
            )
    return None
