"""Locks made and lifted through the service, as a data manager would, for tests."""

from __future__ import annotations

from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import User
from bhp_ctms.accounts.services import Reauthentication
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.locks.models import Lock
from bhp_ctms.locks.services import LockService, LockTarget
from tests.conftest import make_settings
from tests.factories import PASSWORD

SETTINGS = make_settings("sqlite://")
ROLE = "Data manager"


def actor_of(user: User) -> AuditActor:
    return AuditActor(user_id=user.id, name=user.full_name, role=ROLE)


def lock(db: Session, target: LockTarget, by: User, reason: str = "Database lock") -> Lock:
    return LockService(db, SETTINGS).lock(
        actor_of(by),
        by,
        target,
        role_label=ROLE,
        reason=reason,
        proof=Reauthentication(password=PASSWORD),
    )


def unlock(db: Session, made: Lock, by: User, reason: str = "Query after lock") -> Lock:
    return LockService(db, SETTINGS).unlock(
        actor_of(by),
        by,
        made,
        role_label=ROLE,
        reason=reason,
        proof=Reauthentication(password=PASSWORD),
    )
