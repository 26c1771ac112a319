"""The data-quality run: a data manager starts it from its page, a worker (eager in
tests) re-checks every stored form entry with its form version's edit checks, raising
queries for new failures and closing system queries that now pass; it is idempotent,
recorded in the audit trail, and shown on its page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import time_machine
from sqlalchemy import select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.crf.definition.model import Range
from bhp_ctms.crf.evaluation import CheckFailure
from bhp_ctms.crf.models import FormEntry, FormStatus, Query, QueryOrigin, QueryStatus
from bhp_ctms.crf.queries import SYSTEM_CLOSING_TEXT, raise_query, sync_system_queries
from bhp_ctms.crf.tasks import (
    REQUESTED,
    RUN_ENTITY,
    RunSummary,
    run_data_quality,
    run_data_quality_task,
)
from bhp_ctms.permissions import Role
from bhp_ctms.tasks import find_task
from tests.factories import ParticipantFactory
from tests.factories.crf import (
    DBP_BELOW_SBP,
    SOFT_WEIGHT,
    form_entry,
    store_form_version,
    vitals_definition,
)
from tests.functional.helpers import csrf_token, form_posting_to, login
from tests.functional.test_participant_registration import (
    STUDY,
    Trial,
    demo_trial,
    flash,
    shown,
    staff,
)

PAGE = f"{STUDY}/data-quality"


@dataclass(frozen=True)
class Seeded:
    trial: Trial
    too_light: FormEntry
    pressure_wrong: FormEntry
    fine: FormEntry
    locked: FormEntry
    corrected: FormEntry
    manual: Query
    stale: Query


@pytest.fixture
def seeded(db_session) -> Seeded:
    """Entries whose data fail soft checks without queries yet (as after a change of
    checks), a locked one, and one whose system query no longer applies."""
    trial = demo_trial()
    staff("dara_manager", Role.DATA_MANAGER, study=trial.study)
    staff("mo_monitor", Role.MONITOR, study=trial.study)
    staff("cora_north", Role.SITE_COORDINATOR, trial.site)
    version = store_form_version(trial.study.id)

    def entry(values: dict[str, str], status: FormStatus = FormStatus.COMPLETE) -> FormEntry:
        return form_entry(ParticipantFactory(site=trial.site), version, values, status=status)

    too_light = entry({"weight": "35", "sbp": "120", "dbp": "80"})
    pressure_wrong = entry({"weight": "70", "sbp": "80", "dbp": "90"})
    fine = entry({"weight": "70", "sbp": "120", "dbp": "80"})
    locked = entry({"weight": "30"}, FormStatus.LOCKED)
    corrected = entry({"weight": "72"}, FormStatus.IN_PROGRESS)
    sync_system_queries(
        db_session,
        corrected,
        [CheckFailure("weight", "soft_range:weight", SOFT_WEIGHT, "27")],
    )
    stale = db_session.scalars(select(Query).where(Query.form_entry_id == corrected.id)).one()
    manual = raise_query(
        db_session, AuditActor(user_id=None, name="Mo Monitor"), fine, "weight", "Scales?"
    )
    return Seeded(trial, too_light, pressure_wrong, fine, locked, corrected, manual, stale)


def queries_of(db_session, entry: FormEntry) -> list[tuple[str, str, QueryStatus]]:
    return [
        (query.item_path, query.check, query.status)
        for query in db_session.scalars(
            select(Query).where(Query.form_entry_id == entry.id).order_by(Query.id)
        )
    ]


def run_now(app):
    page = app.get(PAGE)
    return form_posting_to(page, PAGE).submit(status=303).follow()


def newest_run(page) -> dict[str, str]:
    row = page.html.find("table", {"data-testid": "runs"}).find("tbody").find("tr")
    return {
        name: (element.get_text(" ", strip=True) if element is not None else "")
        for name in ("status", "entries-checked", "queries-raised", "queries-closed", "problem")
        for element in [row.find(attrs={"data-testid": name})]
    }


def test_the_run_raises_queries_for_new_failures_and_closes_those_that_now_pass(
    app, db_session, seeded
):
    login(app, "dara_manager")
    assert shown(app.get(PAGE), "no-runs") == "No data-quality run has been made in this study yet."

    page = run_now(app)

    assert "The data-quality run has started." in flash(page)
    assert newest_run(page) == {
        "status": "Finished",
        "entries-checked": "4",
        "queries-raised": "2",
        "queries-closed": "1",
        "problem": "",
    }
    assert "Refresh" not in page.headers
    assert queries_of(db_session, seeded.too_light) == [
        ("weight", "soft_range:weight", QueryStatus.OPEN)
    ]
    assert queries_of(db_session, seeded.pressure_wrong) == [
        ("dbp", "dbp_below_sbp", QueryStatus.OPEN)
    ]
    raised = db_session.scalars(
        select(Query).where(Query.form_entry_id == seeded.pressure_wrong.id)
    ).one()
    assert (raised.text, raised.value_when_raised, raised.origin) == (
        DBP_BELOW_SBP,
        "90",
        QueryOrigin.SYSTEM,
    )
    # The locked form is left as it is; the manual query is never touched.
    assert queries_of(db_session, seeded.locked) == []
    assert queries_of(db_session, seeded.fine) == [("weight", "", QueryStatus.OPEN)]
    db_session.refresh(seeded.stale)
    assert seeded.stale.status == QueryStatus.CLOSED
    assert seeded.stale.messages[-1].text == SYSTEM_CLOSING_TEXT

    counts = page.html.find(attrs={"data-testid": "counts-system"})
    assert counts.find(attrs={"data-testid": "open"}).get_text(strip=True) == "2"
    assert counts.find(attrs={"data-testid": "closed"}).get_text(strip=True) == "1"


def test_running_twice_raises_nothing_new(app, db_session, seeded):
    login(app, "dara_manager")
    run_now(app)
    before = db_session.scalars(select(Query.id)).all()

    page = run_now(app)

    assert newest_run(page) == {
        "status": "Finished",
        "entries-checked": "4",
        "queries-raised": "0",
        "queries-closed": "0",
        "problem": "",
    }
    assert db_session.scalars(select(Query.id)).all() == before
    rows = page.html.find("table", {"data-testid": "runs"}).find("tbody").find_all("tr")
    assert len(rows) == 2


def test_the_run_is_recorded_in_the_audit_trail_and_attributed(app, db_session, seeded):
    manager = login(app, "dara_manager")
    assert manager.status_int == 200
    run_now(app)

    events = db_session.scalars(
        select(AuditEvent).where(AuditEvent.entity_type == RUN_ENTITY).order_by(AuditEvent.id)
    ).all()
    assert [event.action for event in events] == [
        "data_quality_run.requested",
        "data_quality_run.started",
        "data_quality_run.finished",
    ]
    assert {event.actor_name for event in events} == {"Dara Manager"}
    assert {event.study_id for event in events} == {seeded.trial.study.id}
    assert len({event.entity_id for event in events}) == 1
    assert events[0].details == {"trigger": "requested"}
    assert events[-1].details == {"entries_checked": 4, "queries_raised": 2, "queries_closed": 1}
    raised = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.entity_type == "query",
            AuditEvent.action == "query.created",
            AuditEvent.field == "check",
            AuditEvent.request_id == events[0].request_id,
        )
    ).all()
    assert sorted(event.new for event in raised) == ["dbp_below_sbp", "soft_range:weight"]


def test_entries_moved_to_a_version_with_other_checks_are_checked_against_them(
    app, db_session, seeded
):
    login(app, "dara_manager")
    run_now(app)
    # A new version of the form: weights from 30 kg are usual now, from 71 kg not.
    newer = store_form_version(
        seeded.trial.study.id, vitals_definition(weight_limits=Range("30", "71", SOFT_WEIGHT))
    )
    for entry in (seeded.too_light, seeded.corrected):
        entry.form_version = newer
    db_session.flush()

    page = run_now(app)

    assert newest_run(page)["queries-raised"] == "1"
    assert newest_run(page)["queries-closed"] == "1"
    assert queries_of(db_session, seeded.too_light) == [
        ("weight", "soft_range:weight", QueryStatus.CLOSED)
    ]
    assert queries_of(db_session, seeded.corrected)[-1] == (
        "weight",
        "soft_range:weight",
        QueryStatus.OPEN,
    )


def test_a_run_that_fails_says_why(app, db_session, seeded):
    broken = store_form_version(seeded.trial.study.id, vitals_definition(checks=False))
    broken.definition = {"code": "vitals"}
    seeded.fine.form_version = broken
    db_session.flush()
    login(app, "dara_manager")

    page = run_now(app)

    run = newest_run(page)
    assert run["status"] == "Failed"
    assert "KeyError" in run["problem"]
    assert "Refresh" not in page.headers


def test_a_run_in_progress_makes_the_page_reload_and_is_not_started_twice(app, db_session, seeded):
    record_event(
        db_session,
        AuditActor(user_id=None, name="Dara Manager"),
        REQUESTED,
        entity_type=RUN_ENTITY,
        entity_id="queued-run",
        study_id=seeded.trial.study.id,
        details={"trigger": "forms_loaded"},
    )
    login(app, "dara_manager")

    page = app.get(PAGE)

    assert page.headers["Refresh"] == "5"
    assert "A run is in progress." in shown(page, "pending")
    assert newest_run(page)["status"] == "Queued"
    assert "The study's forms were loaded" in page.html.find("table", {"data-testid": "runs"}).text
    page = form_posting_to(page, PAGE).submit(status=303).follow()
    assert "already in progress" in flash(page)
    assert len(page.html.find("table", {"data-testid": "runs"}).find("tbody").find_all("tr")) == 1

    # The worker takes the queued run; a redelivered message changes nothing more.
    task = find_task(app.app.registry, run_data_quality_task)
    summary = {"entries_checked": 4, "queries_raised": 2, "queries_closed": 1}
    assert task.apply(args=(seeded.trial.study.id, "queued-run")).get() == summary
    assert task.apply(args=(seeded.trial.study.id, "queued-run")).get() == summary
    events = db_session.scalars(
        select(AuditEvent.action).where(
            AuditEvent.entity_type == RUN_ENTITY, AuditEvent.entity_id == "queued-run"
        )
    ).all()
    assert events == [REQUESTED, "data_quality_run.started", "data_quality_run.finished"]
    assert "Refresh" not in app.get(PAGE).headers


@pytest.mark.parametrize("username", ["mo_monitor", "cora_north"])
def test_only_data_managers_run_the_checks(app, db_session, seeded, username):
    login(app, username)
    app.get(PAGE, status=403)
    app.post(PAGE, {"csrf_token": csrf_token(app)}, status=403)
    assert (
        db_session.scalars(select(AuditEvent).where(AuditEvent.entity_type == RUN_ENTITY)).all()
        == []
    )


def test_the_run_service_works_in_batches_and_reports_its_counts(db_session, seeded, monkeypatch):
    monkeypatch.setattr("bhp_ctms.crf.tasks.DATA_QUALITY_BATCH", 2)
    batches: list[int] = []

    summary = run_data_quality(
        db_session, seeded.trial.study.id, after_batch=lambda: batches.append(1)
    )

    assert summary == RunSummary(entries_checked=4, queries_raised=2, queries_closed=1)
    assert len(batches) == 2
    assert run_data_quality(db_session, seeded.trial.study.id) == RunSummary(4, 0, 0)


def test_a_run_lost_for_over_an_hour_no_longer_blocks_a_new_one(app, db_session, seeded):
    with time_machine.travel(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), tick=False):
        record_event(
            db_session,
            AuditActor(user_id=None, name="Dara Manager"),
            REQUESTED,
            entity_type=RUN_ENTITY,
            entity_id="lost-run",
            study_id=seeded.trial.study.id,
        )
    login(app, "dara_manager")

    page = run_now(app)

    assert "Refresh" not in page.headers
    assert newest_run(page)["status"] == "Finished"
