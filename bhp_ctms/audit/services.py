"""Recording audit events.

Changes to audited data are captured automatically (:mod:`bhp_ctms.audit.capture`);
events that are not changes to a row (a log-in, a failed log-in, a lock-out, a
verification run) are written through :func:`record_event`. Either way the event
is written inside the same transaction as what it describes, so the two commit or
vanish together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bhp_ctms.audit.chain import seal
from bhp_ctms.audit.models import AuditEvent, canonical_json
from bhp_ctms.db import utcnow


@dataclass(frozen=True)
class AuditActor:
    """Who is acting, as the server knows it (never as the client claims).

    ``roles`` pairs each study id (None: every study) with a role the actor holds
    there, so each event records the actor's role in that event's study.
    """

    user_id: int | None
    name: str
    role: str = ""
    client_addr: str = ""
    request_id: str = ""
    roles: tuple[tuple[int | None, str], ...] = ()

    @classmethod
    def system(cls, name: str = "system", request_id: str = "") -> AuditActor:
        return cls(user_id=None, name=name, request_id=request_id)

    def role_in(self, study_id: int | None) -> str:
        held = sorted({role for scope, role in self.roles if scope is None or scope == study_id})
        return ", ".join(held)[:64] if held else self.role


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
    participant_id: int | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event to the current transaction, sealed into its hash chain."""
    event = AuditEvent(
        occurred_at=utcnow(),
        action=action,
        actor_id=actor.user_id,
        actor_name=actor.name,
        actor_role=actor.role_in(study_id),
        client_addr=actor.client_addr,
        request_id=actor.request_id,
        entity_type=entity_type,
        entity_id="" if entity_id is None else str(entity_id),
        study_id=study_id,
        site_id=site_id,
        subject_user_id=subject_user_id,
        participant_id=participant_id,
        form="",
        field="",
        old_value=None,
        new_value=None,
        reason=reason,
        details_json=canonical_json(details or {}),
    )
    seal(db, event)
    db.add(event)
    db.flush()
    return event
