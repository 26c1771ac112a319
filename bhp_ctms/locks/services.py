"""Locking and unlocking: each with a reason and an e-signature, audited as changes to
the lock's row with that reason.

A study lock also sets the study's status to locked (unlocking puts back the status it
had), signs an audit checkpoint of the study's chain, and tells the other domains
(:class:`~bhp_ctms.locks.events.StudyLocked`) so that the lock's dataset snapshot is
taken once the lock has committed.

Making or lifting a lock first takes what the guard reads under
(:func:`~bhp_ctms.locks.guard.held_locks`): a save of the study's data that is under
way finishes first, and every later one sees the lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import User
from bhp_ctms.accounts.services import (
    AccountService,
    LoginStatus,
    Reauthentication,
    ReauthenticationRefused,
)
from bhp_ctms.audit.capture import AuditContext, acting_as, change_reason
from bhp_ctms.audit.checkpoints import write_study_checkpoint
from bhp_ctms.audit.models import CheckpointTrigger
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.crf.models import FormEntry
from bhp_ctms.db import utcnow
from bhp_ctms.locks.events import StudyLocked
from bhp_ctms.locks.guard import held_locks
from bhp_ctms.locks.models import LOCK_MEANING, UNLOCK_MEANING, Lock, LockScope, what_is_locked
from bhp_ctms.participants.models import Participant
from bhp_ctms.settings import Settings
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import Study, StudyStatus
from bhp_ctms.templating import ukdate

# The status a study unlocked goes back to when its lock does not say (a lock made
# before statuses were kept on it).
STATUS_AFTER_UNLOCK = StudyStatus.FOLLOW_UP


class LockRefused(Exception):
    """Nothing was locked or unlocked; ``field`` names the form field at fault, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class LockTarget:
    """What a data manager locks: the study, one of its sites, a participant or one
    form entry of a participant."""

    scope: LockScope
    study: Study
    site: Site | None = None
    participant: Participant | None = None
    entry: FormEntry | None = None

    @classmethod
    def of_study(cls, study: Study) -> LockTarget:
        return cls(LockScope.STUDY, study)

    @classmethod
    def of_site(cls, study: Study, site: Site) -> LockTarget:
        return cls(LockScope.SITE, study, site)

    @classmethod
    def of_participant(cls, study: Study, site: Site, participant: Participant) -> LockTarget:
        return cls(LockScope.PARTICIPANT, study, site, participant)

    @classmethod
    def of_entry(
        cls, study: Study, site: Site, participant: Participant, entry: FormEntry
    ) -> LockTarget:
        return cls(LockScope.FORM_ENTRY, study, site, participant, entry)

    @property
    def form_key(self) -> str:
        return self.entry.form_key if self.entry is not None else ""

    @property
    def what(self) -> str:
        return what_is_locked(
            self.scope,
            self.study.code,
            self.site.code if self.site is not None else "",
            self.participant.code if self.participant is not None else "",
            self.form_key,
        )

    @property
    def context(self) -> AuditContext:
        return AuditContext(
            study_id=self.study.id,
            site_id=self.site.id if self.site is not None else None,
            participant_id=self.participant.id if self.participant is not None else None,
            form=self.form_key,
        )


def study_locks(db: Session, study_id: int) -> list[Lock]:
    """Every lock of a study, active or lifted, the latest first."""
    return list(db.scalars(select(Lock).where(Lock.study_id == study_id).order_by(Lock.id.desc())))


def find_lock(db: Session, study_id: int, lock_id: int) -> Lock | None:
    return db.scalars(select(Lock).where(Lock.id == lock_id, Lock.study_id == study_id)).first()


class LockService:
    def __init__(self, db: Session, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def lock(
        self,
        actor: AuditActor,
        user: User,
        target: LockTarget,
        *,
        role_label: str,
        reason: str,
        proof: Reauthentication,
    ) -> Lock:
        """Lock ``target`` after checking the data manager's password (and code).
        Raises :class:`LockRefused` with nothing locked (a wrong password is recorded,
        and counts towards the account's lock-out)."""
        reason = reason.strip()
        if not reason:
            raise LockRefused("Enter why these data are locked", "reason")
        study = target.study
        existing = held_locks(self.db, study.id).covering(
            target.site.id if target.site is not None else None,
            target.participant.id if target.participant is not None else None,
            target.form_key,
        )
        # A narrower lock may sit inside a wider one being made (a participant's, in a
        # site being locked), each lifted on its own; data already locked, no.
        if existing is not None:
            raise LockRefused(
                f"{_capitalised(target.what)} is already locked ({existing.by_whom}): nothing "
                "was done"
            )
        self._reauthenticate(actor, user, proof, target, "lock.refused", "locked")
        with acting_as(self.db, actor), change_reason(self.db, reason):
            lock = Lock(
                scope=target.scope,
                study_id=study.id,
                site_id=target.site.id if target.site is not None else None,
                participant_id=target.participant.id if target.participant is not None else None,
                form_entry_id=target.entry.id if target.entry is not None else None,
                form_key=target.form_key,
                reason=reason,
                locked_by_id=user.id,
                locked_by_name=user.full_name,
                locked_by_role=role_label[:64],
                locked_at=utcnow(),
                meaning=LOCK_MEANING,
            )
            if target.scope == LockScope.STUDY:
                lock.previous_study_status = study.status
                study.status = StudyStatus.LOCKED
            self.db.add(lock)
        if target.scope == LockScope.STUDY:
            # The trail as it stands at the lock, signed: it cannot be rewritten unseen.
            write_study_checkpoint(
                self.db, self.settings.secret_key, study.id, CheckpointTrigger.LOCK
            )
            request = self.db.info.get("request")
            if request is not None:
                with acting_as(self.db, actor):
                    request.registry.notify(StudyLocked(request, lock))
        return lock

    def unlock(
        self,
        actor: AuditActor,
        user: User,
        lock: Lock,
        *,
        role_label: str,
        reason: str,
        proof: Reauthentication,
    ) -> Lock:
        """Lift an active lock after checking the data manager's password (and code); a
        study lock puts back the study's earlier status. Raises :class:`LockRefused`
        with nothing unlocked."""
        if not lock.active:
            lifted = ukdate(lock.unlocked_at) if lock.unlocked_at else ""
            raise LockRefused(
                f"This lock was already lifted on {lifted} by {lock.unlocked_by_name}: "
                "nothing was done"
            )
        reason = reason.strip()
        if not reason:
            raise LockRefused("Enter why these data must be unlocked", "reason")
        held_locks(self.db, lock.study_id)
        target = LockTarget(
            lock.scope, lock.study, lock.site, lock.participant, _entry_of(self.db, lock)
        )
        self._reauthenticate(actor, user, proof, target, "lock.unlock_refused", "unlocked")
        with acting_as(self.db, actor), change_reason(self.db, reason):
            lock.unlocked_at = utcnow()
            lock.unlocked_by_id = user.id
            lock.unlocked_by_name = user.full_name
            lock.unlocked_by_role = role_label[:64]
            lock.unlock_reason = reason
            lock.unlock_meaning = UNLOCK_MEANING
            if lock.scope == LockScope.STUDY:
                lock.study.status = lock.previous_study_status or STATUS_AFTER_UNLOCK
        return lock

    def _reauthenticate(
        self,
        actor: AuditActor,
        user: User,
        proof: Reauthentication,
        target: LockTarget,
        refused_action: str,
        done: str,
    ) -> None:
        try:
            AccountService(self.db, self.settings).reauthenticate(
                actor,
                user,
                proof,
                refused_action=refused_action,
                context=target.context,
                details={"scope": target.scope.value, "what": target.what},
            )
        except ReauthenticationRefused as refused:
            raise LockRefused(_refusal_message(refused, done), refused.field) from None


def _entry_of(db: Session, lock: Lock) -> FormEntry | None:
    return db.get(FormEntry, lock.form_entry_id) if lock.form_entry_id is not None else None


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _refusal_message(refusal: ReauthenticationRefused, done: str) -> str:
    if refusal.status == LoginStatus.LOCKED:
        until = ukdate(refusal.locked_until, with_time=True) if refusal.locked_until else ""
        return (
            f"Your account is locked after too many failed attempts, until {until}: nothing "
            f"was {done}. Ask the trials unit if you need it unlocked sooner"
        )
    if refusal.field == "password":
        return f"Your password is not right: nothing was {done}"
    return f"The security code is not right, or it has already been used: nothing was {done}"
