"""What is locked now: a study's active locks, which of them covers a participant or a
form entry, and the refusal a write to locked data gets.

Pages use this to show a "Locked" banner and hide their edit buttons, and to refuse a
post early with the same message the guard gives (:mod:`bhp_ctms.locks.guard`, which
alone decides, at every flush, whatever the code path).

It reads the locks with plain queries and knows of the CRFs only a form entry's key
(``event/form``), so that the participants' pages can ask it as the CRF pages do.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, false, not_, or_, select, true
from sqlalchemy.orm import Session, aliased

from bhp_ctms.locks.models import Lock, LockScope, what_is_locked
from bhp_ctms.participants.models import Participant
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import Study
from bhp_ctms.templating import ukdate


@dataclass(frozen=True, slots=True)
class ActiveLock:
    """An active lock as the guard and the pages use it: plain values, read in one
    query with the codes that name what it covers."""

    id: int
    scope: LockScope
    study_id: int
    site_id: int | None
    participant_id: int | None
    form_key: str
    form_entry_id: int | None
    reason: str
    locked_by_name: str
    locked_by_role: str
    locked_at: datetime
    study_code: str
    site_code: str
    participant_code: str

    def covers(self, site_id: int | None, participant_id: int | None, form_key: str = "") -> bool:
        """Whether this lock covers data of the participant ``participant_id`` (None: a
        participant being registered) at the site ``site_id``, of the lock's study, filed
        under ``form_key`` (a form entry's ``event/form``; "" for the participant's own
        records): the whole study's, the site's, the participant's, or one form's."""
        if self.scope == LockScope.STUDY:
            return True
        if self.scope == LockScope.SITE:
            return site_id == self.site_id
        if participant_id is None or participant_id != self.participant_id:
            return False
        return self.scope == LockScope.PARTICIPANT or form_key == self.form_key

    @property
    def what(self) -> str:
        return what_is_locked(
            self.scope, self.study_code, self.site_code, self.participant_code, self.form_key
        )

    @property
    def by_whom(self) -> str:
        """``study lock by Dana Data, 12 Mar 2026``."""
        return f"{self.scope.label.lower()} lock by {self.locked_by_name}, {ukdate(self.locked_at)}"


class DataLocked(Exception):
    """A write to locked data was refused, and nothing was saved: the request's
    transaction is doomed. ``message`` says what is locked, by whom and since when."""

    def __init__(self, message: str, lock: ActiveLock) -> None:
        super().__init__(message)
        self.message = message
        self.lock = lock


def locked_data(lock: ActiveLock, participant_code: str = "") -> DataLocked:
    """The refusal of a write to data ``lock`` covers: ``Participant DEMO-NTH-0001 is
    locked (study lock by Dana Data, 12 Mar 2026): nothing was saved.`` Without a
    participant (one being registered) it names what the lock covers."""
    if lock.scope == LockScope.FORM_ENTRY or not participant_code:
        subject = lock.what
    else:
        subject = f"participant {participant_code}"
    message = f"{subject[0].upper()}{subject[1:]} is locked ({lock.by_whom}): nothing was saved."
    return DataLocked(message, lock)


@functools.cache
def _active_locks_statement() -> Any:
    """The query of some studies' active locks with the codes that name what they
    cover, built once (the guard reads it at the first write of each transaction)."""
    site = aliased(Site)
    participant = aliased(Participant)
    return (
        select(
            Lock.id,
            Lock.scope,
            Lock.study_id,
            Lock.site_id,
            Lock.participant_id,
            Lock.form_key,
            Lock.form_entry_id,
            Lock.reason,
            Lock.locked_by_name,
            Lock.locked_by_role,
            Lock.locked_at,
            Study.code,
            site.code,
            participant.code,
        )
        .join(Study, Study.id == Lock.study_id)
        .outerjoin(site, site.id == Lock.site_id)
        .outerjoin(participant, participant.id == Lock.participant_id)
        .where(
            Lock.study_id.in_(bindparam("study_ids", expanding=True)),
            Lock.unlocked_at.is_(None),
        )
    )


def read_active_locks(db: Session | Any, study_ids: Iterable[int]) -> list[ActiveLock]:
    """The active locks of some studies, widest first (study, site, participant, form),
    in one query through the index on (study, unlocked). ``db`` is a session or a
    connection."""
    rows = db.execute(_active_locks_statement(), {"study_ids": list(study_ids)}).all()
    found = [
        ActiveLock(
            id=row[0],
            scope=LockScope(row[1]),
            study_id=row[2],
            site_id=row[3],
            participant_id=row[4],
            form_key=row[5],
            form_entry_id=row[6],
            reason=row[7],
            locked_by_name=row[8],
            locked_by_role=row[9],
            locked_at=row[10],
            study_code=row[11],
            site_code=row[12] or "",
            participant_code=row[13] or "",
        )
        for row in rows
    ]
    order = list(LockScope)
    found.sort(key=lambda lock: (order.index(lock.scope), lock.id))
    return found


@dataclass(frozen=True)
class ActiveLocks:
    """A study's active locks, read once, for a page that asks about many participants
    or form entries."""

    locks: Sequence[ActiveLock]

    def __bool__(self) -> bool:
        return bool(self.locks)

    def covering(
        self, site_id: int | None, participant_id: int | None, form_key: str = ""
    ) -> ActiveLock | None:
        """The widest active lock that covers these data, or None."""
        return next(
            (lock for lock in self.locks if lock.covers(site_id, participant_id, form_key)), None
        )

    def of_participant(self, participant: Participant, form_key: str = "") -> ActiveLock | None:
        return self.covering(participant.site_id, participant.id, form_key)

    @property
    def study_lock(self) -> ActiveLock | None:
        return next((lock for lock in self.locks if lock.scope == LockScope.STUDY), None)


def active_locks(db: Session, study_id: int) -> ActiveLocks:
    """The study's active locks."""
    return ActiveLocks(read_active_locks(db, [study_id]))


def lock_covering(db: Session, participant: Participant, form_key: str = "") -> ActiveLock | None:
    """The widest active lock over a participant's data (with ``form_key``, over that
    form entry of theirs), or None when they may change."""
    return active_locks(db, participant.study_id).of_participant(participant, form_key)


def site_lock(db: Session, study_id: int, site_id: int) -> ActiveLock | None:
    """The active study or site lock over a site, or None (a participant may be
    registered there)."""
    return active_locks(db, study_id).covering(site_id, None)


def refuse_if_locked(db: Session, participant: Participant, form_key: str = "") -> None:
    """Refuse, before anything is changed, a write to a participant's data (to one form
    entry of theirs with ``form_key``) that a lock covers: raises :class:`DataLocked`."""
    lock = lock_covering(db, participant, form_key)
    if lock is not None:
        raise locked_data(lock, participant.code)


def refuse_if_site_locked(db: Session, study_id: int, site_id: int) -> None:
    """Refuse registering a participant at a site that a study or site lock covers."""
    lock = site_lock(db, study_id, site_id)
    if lock is not None:
        raise locked_data(lock)


def unlocked_entries(
    locks: ActiveLocks, participant_id: Any, site_id: Any, entry_id: Any
) -> ColumnElement[bool]:
    """A condition on form entries (their ``participant_id``, ``site_id`` and ``id``
    columns) that holds for those no lock covers: what a background run that raises
    system queries may still touch."""
    if not locks:
        return true()
    conditions: list[ColumnElement[bool]] = []
    for lock in locks.locks:
        if lock.scope == LockScope.STUDY:
            return false()
        if lock.scope == LockScope.SITE:
            conditions.append(site_id == lock.site_id)
        elif lock.scope == LockScope.PARTICIPANT:
            conditions.append(participant_id == lock.participant_id)
    entry_ids = [lock.form_entry_id for lock in locks.locks if lock.form_entry_id is not None]
    if entry_ids:
        conditions.append(entry_id.in_(entry_ids))
    return not_(or_(*conditions)) if conditions else true()
