"""Celery tasks of the audit trail: verification runs requested in the web UI, and the
hourly signed checkpoints of every chain whose head has moved."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from bhp_ctms.audit.checkpoints import write_periodic_checkpoints
from bhp_ctms.audit.models import AuditVerification, VerificationStatus
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.db import utcnow
from bhp_ctms.settings import Settings

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL = timedelta(hours=1)

FINISHED = frozenset(
    {VerificationStatus.PASSED, VerificationStatus.FAILED, VerificationStatus.ERROR}
)


def _settings(request: Any) -> Settings:
    return request.registry.settings["bhp_ctms"]  # type: ignore[no-any-return]


def _finish(
    db: Session,
    verification_id: int,
    status: VerificationStatus,
    *,
    events_checked: int = 0,
    problems: str = "",
) -> None:
    verification = db.get(AuditVerification, verification_id)
    if verification is None:
        return
    verification.status = status
    verification.events_checked = events_checked
    verification.problems = problems
    verification.finished_at = utcnow()


def verify_audit_trail_task(request: Any, verification_id: int) -> str | None:
    """Run a requested verification of a study's audit trail (or of every chain, when
    the request names no study) and store its result; returns the status.

    Idempotent under redelivery: a run already finished is left alone, and one left
    running by a worker that died is run again. An unexpected error is stored on the
    run as its result, so the page reports it instead of waiting for ever.
    """
    verification = request.db.get(AuditVerification, verification_id)
    if verification is None:
        log.warning("audit verification %s does not exist", verification_id)
        return None
    if verification.status in FINISHED:
        return str(verification.status)
    study_id = verification.study_id
    verification.status = VerificationStatus.RUNNING
    verification.started_at = utcnow()
    # Committed at once, so the verification page shows the run as running while it works.
    request.tm.commit()
    request.tm.begin()
    try:
        report = verify_audit_trail(
            request.db, _settings(request).secret_key, study_id, all_chains=study_id is None
        )
    except Exception as error:
        log.exception("audit verification %s could not finish", verification_id)
        # The failed work's transaction may be unusable (PostgreSQL aborts it on an error).
        request.tm.abort()
        request.tm.begin()
        _finish(
            request.db,
            verification_id,
            VerificationStatus.ERROR,
            problems=f"The verification could not finish: {type(error).__name__}: {error}",
        )
        return str(VerificationStatus.ERROR)
    status = VerificationStatus.PASSED if report.ok else VerificationStatus.FAILED
    _finish(
        request.db,
        verification_id,
        status,
        events_checked=report.events_checked,
        problems="\n".join(report.problems),
    )
    return str(status)


def write_audit_checkpoints(request: Any) -> int:
    """Sign the head of every chain that has moved since its last checkpoint; returns
    how many were signed. Idempotent: a second run finds no head moved."""
    return len(write_periodic_checkpoints(request.db, _settings(request).secret_key))


def includeme(config: Any) -> None:
    config.add_task(verify_audit_trail_task)
    config.add_task(write_audit_checkpoints)
    config.add_periodic_task(
        CHECKPOINT_INTERVAL, write_audit_checkpoints, name="write-audit-checkpoints"
    )
