"""The one guard of locked data: no code path writes around a lock.

Every flush of every session (a page, a command, a worker) is checked here, as the
audit trail captures it (:mod:`bhp_ctms.audit.capture`): each audited row the flush
inserts, changes or deletes is filed under its study, site, participant and form by
its model's audit context, and a row filed under a participant is participant data
(the participant, their consent, eligibility, visits, identifiers, form entries and
values, queries and their messages, SDV marks, signatures, allocation...). When an
active lock covers such a row (:meth:`ActiveLock.covers`), the flush raises
:class:`~bhp_ctms.locks.state.DataLocked`, naming what is locked, by whom and since
when, and dooms the request's transaction: nothing of it is saved.

The check runs after the flush has written its rows, inside the same transaction:
only then does a new row know its participant (a consent's ``participant_id`` is
filled in by the flush), and only then has the audit capture taken the study's
audit-chain lock, which a lock is also made and lifted under. So a lock made by
another transaction is either committed before this check reads the study's locks,
or waits until this transaction has ended; and what the check reads stays true
until it ends, which is why it is read once per study and transaction.

Not guarded: the locks themselves, and what is not participant data (users,
memberships, sites, the study's settings, audit reviews, emails, export jobs and
snapshots), which no participant's context names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.orm import MANYTOONE, Session, SessionTransaction, UOWTransaction

from bhp_ctms.audit.capture import audit_spec
from bhp_ctms.audit.chain import chain_of
from bhp_ctms.audit.spec import AuditContext, Audited
from bhp_ctms.locks.models import Lock
from bhp_ctms.locks.state import ActiveLock, ActiveLocks, locked_data, read_active_locks
from bhp_ctms.participants.models import Participant

HELD_KEY = "bhp_ctms.locks.held"

# Participant data a lock does not freeze, by audit entity type.
UNGUARDED = frozenset(
    {
        # Emergency unblinding is for the participant's safety, now: a clinician
        # treating a serious adverse event must be able to learn the arm whatever
        # the state of the data. It records who learned it and why, and changes
        # none of the locked data (the allocation itself stays as it was).
        "unblinding",
    }
)


def held_locks(session: Session, study_id: int) -> ActiveLocks:
    """The study's active locks, as they stay until this transaction ends.

    On PostgreSQL the study's audit-chain lock is taken first (the capture takes it at
    the first audited write anyway) and held until the transaction ends; on SQLite a
    transaction that writes holds the database's write lock, and one that read before
    another committed a lock cannot write at all (it is retried). Read once per study
    and transaction; a flush that makes or lifts a lock reads again.
    """
    held: dict[int, ActiveLocks] = session.info.setdefault(HELD_KEY, {})
    locks = held.get(study_id)
    if locks is None:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            # The audit chain's own lock (bhp_ctms.audit.chain), re-entrant in a transaction.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:chain))"),
                {"chain": chain_of(study_id)},
            )
        locks = held[study_id] = ActiveLocks(read_active_locks(connection, [study_id]))
    return locks


def _written(session: Session) -> Iterator[tuple[Any, Audited, bool]]:
    """The audited rows this flush inserted, changed (perhaps: the third value) or
    deleted, with their audit specs; the locks themselves and what a lock never freezes
    left out."""
    held: dict[int, ActiveLocks] | None = session.info.get(HELD_KEY)
    if held:
        for obj in (*session.new, *session.dirty, *session.deleted):
            if isinstance(obj, Lock):
                # A lock made or lifted: its study's locks are read again.
                held.pop(obj.study_id, None)
    for objects, dirty in (
        (session.new, False),
        (session.dirty, True),
        (session.deleted, False),
    ):
        for obj in objects:
            spec = audit_spec(type(obj))
            if spec is None or spec.entity_type in UNGUARDED or isinstance(obj, Lock):
                continue
            yield obj, spec, dirty


def _parent_keys(cls: type) -> tuple[str, ...]:
    """The many-to-one relationships of a model to audited models."""
    keys = _PARENT_KEYS.get(cls)
    if keys is None:
        relationships: Any = inspect(cls).relationships
        keys = _PARENT_KEYS[cls] = tuple(
            related.key
            for related in relationships
            if related.direction is MANYTOONE and audit_spec(related.mapper.class_) is not None
        )
    return keys


_PARENT_KEYS: dict[type, tuple[str, ...]] = {}


def _study_of(obj: Any, spec: Audited, parents: dict[int, int | None]) -> int | None:
    """The study a row is filed under. A row belongs to the study of a parent filed
    under one (a value to its form entry's, a consent to its participant's), which is
    worked out once for all its children: a form's hundreds of values cost one look-up
    each when their study has no lock."""
    for key in _parent_keys(type(obj)):
        parent = obj.__dict__.get(key)
        if parent is None:
            continue
        if id(parent) in parents:
            study_id = parents[id(parent)]
        else:
            parent_spec = audit_spec(type(parent))
            assert parent_spec is not None
            study_id = parents[id(parent)] = parent_spec.context(parent).study_id
        if study_id is not None:
            return study_id
    return spec.context(obj).study_id


def _refuse(session: Session, lock: ActiveLock, context: AuditContext, registering: bool) -> None:
    request = session.info.get("request")
    manager = getattr(request, "tm", None) if request is not None else None
    if manager is not None:
        manager.doom()
    code = ""
    if not registering:
        participant = session.get(Participant, context.participant_id)
        code = participant.code if participant is not None else str(context.participant_id)
    raise locked_data(lock, code)


@event.listens_for(Session, "after_flush")
def _refuse_writes_to_locked_data(session: Session, flush_context: UOWTransaction) -> None:
    parents: dict[int, int | None] = {}
    for obj, spec, dirty in _written(session):
        study_id = _study_of(obj, spec, parents)
        if study_id is None:
            continue
        locks = held_locks(session, study_id)
        if not locks:
            continue
        # Data of a study with locks: are they participant data a lock covers? (A row
        # only marked dirty, with no value changed, wrote nothing.)
        if dirty and not session.is_modified(obj, include_collections=False):
            continue
        context = spec.context(obj)
        if context.participant_id is None:
            continue
        lock = locks.covering(context.site_id, context.participant_id, context.form)
        if lock is not None:
            registering = isinstance(obj, Participant) and obj in session.new
            _refuse(session, lock, context, registering)


@event.listens_for(Session, "after_transaction_end")
def _forget_held_locks(session: Session, transaction: SessionTransaction) -> None:
    """What was read under a transaction's locks is forgotten when it ends (a savepoint
    too: a lock made inside it may be gone)."""
    if transaction.parent is None or transaction.nested:
        session.info.pop(HELD_KEY, None)


__all__ = ["HELD_KEY", "UNGUARDED", "held_locks"]
