"""The audit trail: used by every domain, depends on none."""

from __future__ import annotations

import uuid
from typing import Any

from bhp_ctms.audit.services import AuditActor


def _request_id(request: Any) -> str:
    return uuid.uuid4().hex


def _audit_actor(request: Any) -> AuditActor:
    user = request.identity
    if user is None:
        return AuditActor(
            user_id=None,
            name="",
            client_addr=request.client_addr or "",
            request_id=request.request_id,
        )
    return AuditActor(
        user_id=user.id,
        name=user.full_name,
        client_addr=request.client_addr or "",
        request_id=request.request_id,
        roles=tuple((m.study_id, str(m.role)) for m in request.memberships),
    )


def includeme(config: Any) -> None:
    config.add_request_method(_request_id, name="request_id", reify=True)
    config.add_request_method(_audit_actor, name="audit_actor", property=True)
    config.include("bhp_ctms.audit.routes")
