"""Locking and unlocking through the service: each scope with a reason and the data
manager's password, audited with its reason; a wrong password or no reason refused and
nothing locked; a study lock sets the study's status and signs a checkpoint; what is
outstanding before a lock, per site; and the data-quality run leaves locked entries
alone."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from bhp_ctms.accounts.models import LoginAttempt, LoginOutcome
from bhp_ctms.accounts.services import Reauthentication
from bhp_ctms.audit.models import AuditCheckpoint, AuditEvent, CheckpointTrigger
from bhp_ctms.crf.models import FormStatus, Query, QueryStatus, SamplingMethod
from bhp_ctms.crf.queries import close_query, raise_query
from bhp_ctms.crf.tasks import run_data_quality
from bhp_ctms.crf.verification import set_plan
from bhp_ctms.locks.models import Lock, LockScope
from bhp_ctms.locks.readiness import study_readiness
from bhp_ctms.locks.services import LockRefused, LockService, LockTarget
from bhp_ctms.locks.state import DataLocked, active_locks, lock_covering, refuse_if_locked
from bhp_ctms.participants.models import ParticipantStatus, Visit, VisitStatus
from bhp_ctms.permissions import Role
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.models import StudyStatus
from tests.factories import ParticipantFactory
from tests.factories.crf import form_entry, store_form_version
from tests.functional.test_participant_registration import actor, demo_trial, staff
from tests.unit.locks.locking import ROLE, SETTINGS, actor_of, lock, unlock


@pytest.fixture
def trial(db_session):
    return demo_trial()


@pytest.fixture
def dana(trial):
    user = staff("dana", Role.DATA_MANAGER, study=trial.study)
    user.full_name = "Dana Data"
    return user


def lock_events(db_session, made: Lock) -> list[AuditEvent]:
    return list(
        db_session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "lock", AuditEvent.entity_id == str(made.id))
            .order_by(AuditEvent.id)
        )
    )


def status_changes(db_session) -> list[AuditEvent]:
    return list(
        db_session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "study.updated", AuditEvent.field == "status")
            .order_by(AuditEvent.id)
        )
    )


def targets(trial):
    participant = ParticipantFactory(site=trial.site)
    entry = form_entry(participant, store_form_version(trial.study.id), {"weight": "70"})
    return {
        LockScope.STUDY: LockTarget.of_study(trial.study),
        LockScope.SITE: LockTarget.of_site(trial.study, trial.site),
        LockScope.PARTICIPANT: LockTarget.of_participant(trial.study, trial.site, participant),
        LockScope.FORM_ENTRY: LockTarget.of_entry(trial.study, trial.site, participant, entry),
    }


@pytest.mark.parametrize("scope", list(LockScope))
def test_each_scope_is_locked_and_unlocked_with_a_reason_and_audited(
    db_session, trial, dana, scope
):
    target = targets(trial)[scope]
    made = lock(db_session, target, dana, reason="All queries resolved")
    assert (made.scope, made.active, made.locked_by_name, made.locked_by_role) == (
        scope,
        True,
        "Dana Data",
        ROLE,
    )
    assert made.what == target.what
    created = lock_events(db_session, made)
    assert {event.action for event in created} == {"lock.created"}
    assert {event.reason for event in created} == {"All queries resolved"}
    assert {event.actor_name for event in created} == {"Dana Data"}
    assert active_locks(db_session, trial.study.id).locks[0].id == made.id

    unlock(db_session, made, dana, reason="Query raised after the lock")
    assert not made.active
    assert (made.unlocked_by_name, made.unlock_reason) == (
        "Dana Data",
        "Query raised after the lock",
    )
    updated = [e for e in lock_events(db_session, made) if e.action == "lock.updated"]
    assert {event.field for event in updated} >= {"unlocked_at", "unlock_reason"}
    assert {event.reason for event in updated} == {"Query raised after the lock"}
    assert not active_locks(db_session, trial.study.id)


def test_a_study_lock_locks_the_study_status_and_signs_a_checkpoint(db_session, trial, dana):
    trial.study.status = StudyStatus.FOLLOW_UP
    db_session.flush()
    made = lock(db_session, LockTarget.of_study(trial.study), dana)
    assert trial.study.status == StudyStatus.LOCKED
    assert made.previous_study_status == StudyStatus.FOLLOW_UP
    checkpoint = db_session.scalars(
        select(AuditCheckpoint).where(AuditCheckpoint.trigger == CheckpointTrigger.LOCK)
    ).one()
    assert checkpoint.chain == f"study:{trial.study.id}"
    status_change = status_changes(db_session)[-1]
    assert status_change.reason == "Database lock"

    unlock(db_session, made, dana, reason="Reopened for a late query")
    assert trial.study.status == StudyStatus.FOLLOW_UP
    reopened = status_changes(db_session)[-1]
    assert reopened.reason == "Reopened for a late query"


def test_a_wrong_password_is_refused_and_recorded(db_session, trial, dana):
    service = LockService(db_session, SETTINGS)
    with pytest.raises(LockRefused) as refused:
        service.lock(
            actor_of(dana),
            dana,
            LockTarget.of_study(trial.study),
            role_label=ROLE,
            reason="Database lock",
            proof=Reauthentication(password="not my password"),
        )
    assert refused.value.field == "password"
    assert refused.value.message == "Your password is not right: nothing was locked"
    assert db_session.scalars(select(Lock)).all() == []
    assert trial.study.status == StudyStatus.RECRUITING
    recorded = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "lock.refused")
    ).one()
    assert recorded.study_id == trial.study.id
    assert recorded.details["what"] == "study DEMO"
    outcomes = db_session.scalars(
        select(LoginAttempt.outcome).where(LoginAttempt.user_id == dana.id)
    ).all()
    assert LoginOutcome.BAD_PASSWORD in outcomes


def test_no_reason_and_data_already_locked_are_refused(db_session, trial, dana):
    service = LockService(db_session, SETTINGS)
    with pytest.raises(LockRefused) as refused:
        service.lock(
            actor_of(dana),
            dana,
            LockTarget.of_study(trial.study),
            role_label=ROLE,
            reason="   ",
            proof=Reauthentication(password="anything"),
        )
    assert (refused.value.field, refused.value.message) == (
        "reason",
        "Enter why these data are locked",
    )
    participant = ParticipantFactory(site=trial.site)
    lock(db_session, LockTarget.of_site(trial.study, trial.site), dana)
    with pytest.raises(LockRefused, match=r"^Participant DEMO-NTH-\d+ is already locked \(site"):
        lock(db_session, LockTarget.of_participant(trial.study, trial.site, participant), dana)
    # A wider lock over a narrower one is made: each is lifted on its own.
    lock(db_session, LockTarget.of_study(trial.study), dana)
    assert lock_covering(db_session, participant).scope == LockScope.STUDY


def test_readiness_counts_what_is_outstanding_at_each_site(db_session, trial, dana):
    monitor = staff("mo", Role.MONITOR, study=trial.study)
    version = store_form_version(trial.study.id)
    # North: two participants; an open and an answered query (2), a closed one (0); one
    # form in progress, one complete (unsigned, awaiting SDV), one signed (awaiting SDV).
    north_1 = ParticipantFactory(site=trial.site)
    north_2 = ParticipantFactory(site=trial.site)
    form_entry(north_1, version, {"weight": "70"}, status=FormStatus.IN_PROGRESS)
    complete = form_entry(
        north_1, version, {"weight": "70"}, event="week_6", status=FormStatus.COMPLETE
    )
    form_entry(north_2, version, {"weight": "70"}, status=FormStatus.SIGNED)
    raise_query(db_session, actor(monitor), complete, "weight", "Sure?")
    answered = raise_query(db_session, actor(monitor), complete, "weight", "Really?")
    answered.status = QueryStatus.ANSWERED
    closed = raise_query(db_session, actor(monitor), complete, "weight", "Scales?")
    close_query(db_session, actor(monitor), closed)
    # Children's: one participant randomised on 2 Feb 2026, with one complete form
    # (unsigned, awaiting SDV) and no visit recorded: all six visits up to week 26 (2
    # Aug) are overdue by 23 Nov 2026.
    chh = ParticipantFactory(
        site=trial.other_site,
        status=ParticipantStatus.RANDOMISED,
        randomised_on=date(2026, 2, 2),
    )
    form_entry(chh, version, {"weight": "70"}, status=FormStatus.COMPLETE)
    db_session.flush()
    # Only the first participant at each site is in the SDV sample.
    set_plan(db_session, actor(dana), trial.study, SamplingMethod.FIRST, count=1)

    scope = SiteScope(trial.study.id, True, frozenset())
    readiness = study_readiness(db_session, scope, trial.study, date(2026, 11, 23))
    rows = {row.site.code: row for row in readiness.sites}
    north, children = rows["NTH"], rows["CHH"]
    assert (north.open_queries, north.in_progress, north.unsigned) == (2, 1, 1)
    # North's first participant's complete form awaits SDV; the second is not sampled.
    assert north.awaiting_sdv == 1
    assert (children.open_queries, children.in_progress, children.unsigned) == (0, 0, 1)
    assert children.awaiting_sdv == 1
    assert children.overdue_visits == 6
    assert north.overdue_visits == 0
    assert not readiness.ready
    assert readiness.total("open_queries") == 2


def test_the_data_quality_run_leaves_locked_entries_alone(db_session, trial, dana):
    version = store_form_version(trial.study.id)
    locked = ParticipantFactory(site=trial.site)
    free = ParticipantFactory(site=trial.other_site)
    form_entry(locked, version, {"weight": "30"}, status=FormStatus.COMPLETE)
    form_entry(free, version, {"weight": "30"}, status=FormStatus.COMPLETE)
    lock(db_session, LockTarget.of_site(trial.study, trial.site), dana)

    summary = run_data_quality(db_session, trial.study.id)
    assert (summary.entries_checked, summary.queries_raised) == (1, 1)
    raised = db_session.scalars(select(Query)).one()
    assert raised.entry.participant_id == free.id

    # A study lock: nothing at all is checked, and nothing fails.
    lock(db_session, LockTarget.of_study(trial.study), dana)
    assert run_data_quality(db_session, trial.study.id).entries_checked == 0


def test_a_visit_is_refused_early_with_the_same_message_as_the_guard(db_session, trial, dana):
    participant = ParticipantFactory(site=trial.site)
    lock(db_session, LockTarget.of_participant(trial.study, trial.site, participant), dana)
    with pytest.raises(DataLocked) as early:
        refuse_if_locked(db_session, participant)
    with pytest.raises(DataLocked) as late, db_session.begin_nested():
        db_session.add(
            Visit(
                participant=participant,
                event_code="baseline",
                protocol_version_id=participant.protocol_version_id,
                status=VisitStatus.NOT_DONE,
            )
        )
        db_session.flush()
    assert early.value.message == late.value.message
