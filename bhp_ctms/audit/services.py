"""Recording audit events.

Every security-relevant event and every change to audited data is written through
:func:`record_event`, inside the same transaction as the change it describes, so the
two commit or vanish together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bhp_ctms.audit.chain import seal
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.db import utcnow


@dataclass(frozen=True)
class AuditActor:
    """Who is acting, as the server knows it (never as the client claims)."""

    user_id: int | None
    name: str
    role: str = ""
    client_addr: str = ""
    request_id: str = ""

    @classmethod
    def system(cls, name: str = "system", request_id: str = "") -> AuditActor:
        return cls(user_id=None, name=name, request_id=request_id)


def record_event(
    db: Session,
    actor: AuditActor,
    action: str,
    *,
    entity_type: str = "",
    entity_id: object = "",
    study_id: int | None = None,
    site_id: int | None = None,
    subject_user_id: int | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event to the current transaction, sealed into its hash chain."""
    event = AuditEvent(
        occurred_at=utcnow(),
        action=action,
        actor_id=actor.user_id,
        actor_name=actor.name,
        actor_role=actor.role,
        client_addr=actor.client_addr,
        request_id=actor.request_id,
        entity_type=entity_type,
        entity_id="" if entity_id is None else str(entity_id),
        study_id=study_id,
        site_id=site_id,
        subject_user_id=subject_user_id,
        reason=reason,
        details=details or {},
    )
    seal(db, event)
    db.add(event)
    db.flush()
    return event
