"""The flush guard: whatever code writes participant data through the ORM, a lock over
them refuses the write with a clear message, and nothing is saved; data no lock covers,
and what is not participant data, are written as before."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import event, func, select

from bhp_ctms.audit.capture import acting_as, change_reason
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.crf.models import ItemValue, Query, QueryOrigin
from bhp_ctms.crf.queries import raise_query
from bhp_ctms.locks.services import LockTarget
from bhp_ctms.locks.state import DataLocked
from bhp_ctms.participants.models import Participant, Visit, VisitStatus
from bhp_ctms.permissions import Role
from bhp_ctms.randomisation.models import Allocation, Unblinding
from bhp_ctms.studies.models import StudyStatus
from bhp_ctms.templating import ukdate
from tests.factories import ParticipantFactory, UserFactory
from tests.factories.crf import form_entry, store_form_version
from tests.functional.test_participant_registration import actor, demo_trial, register, staff
from tests.unit.locks.locking import lock, unlock


@pytest.fixture
def trial(db_session):
    return demo_trial()


@pytest.fixture
def dana(trial):
    user = staff("dana", Role.DATA_MANAGER, study=trial.study)
    user.full_name = "Dana Data"
    return user


@pytest.fixture
def vitals(trial):
    return store_form_version(trial.study.id)


def audit_events(db_session) -> int:
    return db_session.scalar(select(func.count(AuditEvent.id))) or 0


def refused_flush(db_session, change) -> DataLocked:
    """Make ``change`` and flush it in a savepoint: the guard must refuse it, and the
    savepoint (all the change wrote) is rolled back."""
    with pytest.raises(DataLocked) as refused, db_session.begin_nested():
        change()
        db_session.flush()
    return refused.value


def test_writing_an_item_value_under_a_study_lock_is_refused(db_session, trial, dana, vitals):
    participant = ParticipantFactory(site=trial.site)
    entry = form_entry(participant, vitals, {"weight": "70"})
    lock(db_session, LockTarget.of_study(trial.study), dana)
    assert trial.study.status == StudyStatus.LOCKED
    events = audit_events(db_session)

    def change() -> None:
        entry.values[0].value = "71"

    refused = refused_flush(db_session, change)
    assert refused.message == (
        f"Participant {participant.code} is locked (study lock by Dana Data, "
        f"{ukdate(refused.lock.locked_at)}): nothing was saved."
    )
    db_session.expire_all()
    assert db_session.scalars(select(ItemValue.value)).all() == ["70"]
    assert audit_events(db_session) == events
    # A new value, a new query and a deletion are refused the same way.
    refused_flush(db_session, lambda: db_session.add(ItemValue(entry=entry, item_path="sbp")))
    refused_flush(
        db_session,
        lambda: db_session.add(
            Query(entry=entry, item_path="weight", origin=QueryOrigin.MANUAL, text="Sure?")
        ),
    )

    def delete() -> None:
        with change_reason(db_session, "Entered on the wrong form"):
            db_session.delete(entry.values[0])

    refused_flush(db_session, delete)


def test_a_participant_lock_covers_that_participant_only(db_session, trial, dana, vitals):
    locked = ParticipantFactory(site=trial.site)
    other = ParticipantFactory(site=trial.site)
    locked_entry = form_entry(locked, vitals, {"weight": "70"})
    other_entry = form_entry(other, vitals, {"weight": "70"})
    lock(db_session, LockTarget.of_participant(trial.study, trial.site, locked), dana)

    other_entry.values[0].value = "72"
    db_session.flush()

    def visit() -> None:
        db_session.add(
            Visit(
                participant=locked,
                event_code="baseline",
                protocol_version_id=locked.protocol_version_id,
                status=VisitStatus.DONE,
                visit_on=date(2026, 3, 1),
            )
        )

    refused = refused_flush(db_session, visit)
    assert refused.message.startswith(
        f"Participant {locked.code} is locked (participant lock by Dana Data,"
    )

    def change() -> None:
        locked_entry.values[0].value = "71"

    refused_flush(db_session, change)
    other.status_details = "Still fine"
    db_session.flush()


def test_a_form_lock_covers_that_form_and_what_hangs_on_it(db_session, trial, dana, vitals):
    participant = ParticipantFactory(site=trial.site)
    baseline = form_entry(participant, vitals, {"weight": "70"})
    week_6 = form_entry(participant, vitals, {"weight": "70"}, event="week_6")
    lock(
        db_session,
        LockTarget.of_entry(trial.study, trial.site, participant, baseline),
        dana,
    )
    monitor = UserFactory()

    refused = refused_flush(
        db_session, lambda: raise_query(db_session, actor(monitor), baseline, "weight", "Sure?")
    )
    assert refused.message.startswith(
        f"Form baseline/vitals of participant {participant.code} is locked (form lock by Dana"
    )
    # The participant's other forms and own records still change.
    raise_query(db_session, actor(monitor), week_6, "weight", "Sure?")
    week_6.values[0].value = "71"
    participant.status_details = "Doing well"
    db_session.flush()


def test_a_site_lock_refuses_registering_there_only(db_session, trial, dana):
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    lock(db_session, LockTarget.of_site(trial.study, trial.site), dana)

    refused = refused_flush(db_session, lambda: register(db_session, trial, cora))
    assert refused.message.startswith(f"Site {trial.site.code} is locked (site lock by Dana Data,")
    assert refused.message.endswith("nothing was saved.")
    db_session.expire_all()
    assert db_session.scalars(select(Participant)).all() == []

    ParticipantFactory(site=trial.other_site)


def test_emergency_unblinding_and_what_is_not_participant_data_stay_allowed(
    db_session, trial, dana
):
    participant = ParticipantFactory(site=trial.site)
    allocation = Allocation(
        study_id=trial.study.id,
        site_id=trial.site.id,
        participant_id=participant.id,
        method="permuted_blocks",
        stratum="site=NTH",
        sequence=1,
        arm_code="walking",
    )
    db_session.add(allocation)
    db_session.flush()
    made = lock(db_session, LockTarget.of_study(trial.study), dana)

    priya = staff("priya", Role.SITE_PI, trial.site)
    with acting_as(db_session, actor(priya)):
        db_session.add(
            Unblinding(
                allocation=allocation,
                user_id=priya.id,
                user_name=priya.full_name,
                user_role="Site PI",
                reason="Serious adverse event",
            )
        )
    # Users, sites and the locks themselves are not participant data.
    UserFactory()
    trial.other_site.name = "Renamed"
    db_session.flush()

    def invalidate() -> None:
        with change_reason(db_session, "Randomised in error"):
            allocation.invalid_reason = "Randomised in error"

    refused_flush(db_session, invalidate)
    unlock(db_session, made, dana)
    assert trial.study.status == StudyStatus.RECRUITING
    invalidate()


def test_without_a_lock_the_guard_reads_the_locks_once_a_transaction(db_session, trial, vitals):
    participant = ParticipantFactory(site=trial.site)
    entry = form_entry(participant, vitals, {"weight": "70"})
    # A transaction's end (here a savepoint's) forgets the locks it read.
    with db_session.begin_nested():
        pass
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    engine = db_session.get_bind().engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        for weight in ("71", "72", "73"):
            entry.values[0].value = weight
            db_session.flush()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    reads = [statement for statement in statements if "FROM locks" in statement]
    assert len(reads) == 1
