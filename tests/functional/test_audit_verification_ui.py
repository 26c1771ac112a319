"""Verifying the audit trail from its page: "Verify now" queues a run that a worker
(eager in tests) carries out, and the page shows its result; and the hourly task that
signs checkpoints of the chains that have moved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from bhp_ctms.audit.chain import chain_of, count_events
from bhp_ctms.audit.models import (
    AuditCheckpoint,
    AuditEvent,
    AuditVerification,
    CheckpointTrigger,
    VerificationStatus,
)
from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.audit.tasks import verify_audit_trail_task, write_audit_checkpoints
from bhp_ctms.permissions import Role
from bhp_ctms.tasks import CELERY_APP_KEY, find_task
from tests.factories import MembershipFactory, SiteFactory, StudyFactory, UserFactory
from tests.functional.helpers import form_posting_to, login


@pytest.fixture
def study(db_session: Any) -> Any:
    study = StudyFactory(code="VER")
    SiteFactory(study=study, code="ALP", name="Alpha Hospital")
    monitor = UserFactory(username="monica")
    MembershipFactory(user=monitor, role=Role.MONITOR, study_id=study.id)
    return study


def _verify_now(app: Any, study: Any) -> Any:
    page = app.get(f"/studies/{study.code}/audit/verification/")
    response = form_posting_to(page, page.request.path).submit()
    assert response.status_int == 303
    return response.follow()


def _newest_run(page: Any) -> Any:
    return page.html.find("table", {"data-testid": "verifications"}).find("tbody").find("tr")


def test_verify_now_runs_the_verification_and_shows_that_it_passed(app, db_session, study):
    login(app, "monica")

    page = _verify_now(app, study)

    run = db_session.scalars(select(AuditVerification)).one()
    monitor = db_session.scalars(select(UserFactory._meta.model).filter_by(username="monica")).one()
    assert run.status is VerificationStatus.PASSED
    assert (run.requested_by_id, run.requested_by_name) == (monitor.id, monitor.full_name)
    assert run.started_at is not None and run.finished_at is not None
    checked = count_events(db_session, chain_of(study.id))
    assert run.events_checked == checked > 0
    row = _newest_run(page)
    assert row.find(attrs={"data-testid": "status"}).get_text(strip=True) == "Passed"
    assert str(checked) in row.get_text(" ", strip=True)
    assert monitor.full_name in row.get_text(" ", strip=True)
    assert page.html.find(attrs={"data-testid": "problems"}) is None
    # Finished: the page no longer reloads itself.
    assert "Refresh" not in page.headers
    requested = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit.verification_requested")
    ).one()
    assert (requested.study_id, requested.entity_id) == (study.id, str(run.id))


def test_a_site_changed_outside_the_application_fails_the_next_run(app, db_session, study):
    site = study.sites[0]
    login(app, "monica")
    _verify_now(app, study)

    db_session.execute(text("UPDATE sites SET name = 'X' WHERE id = :id"), {"id": site.id})
    page = _verify_now(app, study)

    rows = page.html.find("table", {"data-testid": "verifications"}).find("tbody").find_all("tr")
    statuses = [row.find(attrs={"data-testid": "status"}).get_text(strip=True) for row in rows]
    assert statuses == ["Failed", "Passed"]
    problems = [li.get_text(" ", strip=True) for li in rows[0].find_all("li")]
    assert any(line.startswith(f"DIFFERS site {site.id} name") for line in problems), problems
    assert any("changed outside the application" in line for line in problems)


def test_a_queued_run_makes_the_page_reload_itself_and_a_finished_run_is_left_alone(
    app, db_session, study
):
    login(app, "monica")
    queued = AuditVerification(study_id=study.id, requested_by_name="Someone")
    db_session.add(queued)
    db_session.flush()

    page = app.get(f"/studies/{study.code}/audit/verification/")

    assert page.headers["Refresh"] == "3"
    assert page.html.find(attrs={"data-testid": "pending"}) is not None
    assert _newest_run(page).find(attrs={"data-testid": "status"}).get_text(strip=True) == "Queued"

    task = find_task(app.app.registry, verify_audit_trail_task)
    assert task.apply(args=(queued.id,)).get() == "passed"
    db_session.refresh(queued)
    finished_at = queued.finished_at
    # A redelivered message for a finished run changes nothing.
    assert task.apply(args=(queued.id,)).get() == "passed"
    db_session.refresh(queued)
    assert queued.finished_at == finished_at
    assert "Refresh" not in app.get(f"/studies/{study.code}/audit/verification/").headers


def _site_status_the_application_cannot_read(db_session: Any, site_id: int) -> Any:
    """Put a value the site's status enum does not know into the database, around its
    CHECK constraint; returns how to put the site right again."""
    update = text("UPDATE sites SET status = :status WHERE id = :id")
    if db_session.get_bind().dialect.name == "postgresql":
        # Transactional in PostgreSQL: rolled back with the test.
        db_session.execute(text("ALTER TABLE sites DROP CONSTRAINT ck_sites_sitestatus"))
        db_session.execute(update, {"status": "bogus", "id": site_id})
        return lambda: db_session.execute(update, {"status": "open", "id": site_id})

    def restore() -> None:
        db_session.execute(update, {"status": "open", "id": site_id})
        db_session.execute(text("PRAGMA ignore_check_constraints = OFF"))

    # SQLite's setting belongs to the connection, which outlives the test.
    db_session.execute(text("PRAGMA ignore_check_constraints = ON"))
    db_session.execute(update, {"status": "bogus", "id": site_id})
    return restore


def test_a_run_that_cannot_finish_is_stored_as_an_error_with_its_message(app, db_session, study):
    login(app, "monica")
    run = AuditVerification(study_id=study.id, requested_by_name="Someone")
    db_session.add(run)
    db_session.flush()
    task = find_task(app.app.registry, verify_audit_trail_task)
    restore = _site_status_the_application_cannot_read(db_session, study.sites[0].id)
    try:
        assert task.apply(args=(run.id,)).get() == "error"
    finally:
        restore()

    db_session.refresh(run)
    assert run.status is VerificationStatus.ERROR
    assert run.started_at is not None and run.finished_at is not None
    assert run.problems.startswith("The verification could not finish: LookupError")
    page = app.get(f"/studies/{study.code}/audit/verification/")
    row = _newest_run(page)
    assert row.find(attrs={"data-testid": "status"}).get_text(strip=True) == "Error"
    assert "The verification could not finish" in row.get_text(" ", strip=True)
    assert "Refresh" not in page.headers


def _checkpoints(db_session: Any) -> list[AuditCheckpoint]:
    return list(db_session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)))


def test_the_hourly_task_signs_the_chains_whose_head_moved_and_only_those(app, db_session, study):
    registry = app.app.registry
    schedule = registry[CELERY_APP_KEY].conf.beat_schedule["write-audit-checkpoints"]
    assert schedule["schedule"] == timedelta(hours=1)
    task = find_task(registry, write_audit_checkpoints)
    assert schedule["task"] == task.name

    first = task.apply().get()
    signed = _checkpoints(db_session)
    assert first == len(signed) > 0
    assert {checkpoint.chain for checkpoint in signed} >= {chain_of(study.id)}
    assert {checkpoint.trigger for checkpoint in signed} == {CheckpointTrigger.PERIODIC}

    assert task.apply().get() == 0
    assert len(_checkpoints(db_session)) == len(signed)

    record_event(db_session, AuditActor.system("test"), "test.moved", study_id=study.id)
    db_session.flush()

    assert task.apply().get() == 1
    newest = _checkpoints(db_session)[-1]
    head = db_session.scalar(
        select(func.max(AuditEvent.sequence)).where(AuditEvent.chain == chain_of(study.id))
    )
    assert (newest.chain, newest.sequence) == (chain_of(study.id), head)
