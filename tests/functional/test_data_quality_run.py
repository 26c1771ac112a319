"""The data-quality run: a data manager starts it from its page, a worker (eager in
tests) re-checks every stored form entry with its form version's edit checks, raising
queries for new failures and closing system queries that now pass; it is idempotent,
recorded in the audit trail, and shown on its page. It also runs by itself when a new
protocol version of a study with data is loaded (``ctms study load``), and for a
participant's forms when they are moved to a newer protocol version (from their page
or with ``ctms participant migrate``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.orm import Session
from webtest import TestApp

from bhp_ctms.audit.capture import use_actor
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor, record_event
from bhp_ctms.cli._transaction import cli_actor
from bhp_ctms.config import configure
from bhp_ctms.crf.definition.model import Range
from bhp_ctms.crf.evaluation import CheckFailure
from bhp_ctms.crf.models import (
    FormEntry,
    FormStatus,
    FormVersion,
    ItemValue,
    Query,
    QueryOrigin,
    QueryStatus,
)
from bhp_ctms.crf.queries import SYSTEM_CLOSING_TEXT, raise_query, sync_system_queries
from bhp_ctms.crf.tasks import (
    REQUESTED,
    RUN_ENTITY,
    RunSummary,
    recent_runs,
    run_data_quality,
    run_data_quality_task,
)
from bhp_ctms.db import create_database_engine
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Role
from bhp_ctms.tasks import find_task
from tests.conftest import make_settings
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
from tests.functional.test_protocol_migration import REASON, _demo_with_amendment
from tests.functional.test_study_cli import deployment, register, run
from tests.functional.test_study_loading import amended_folder

# A fixture of test_study_cli (a fresh deployment driven through ``ctms``), used by name.
__all__ = ["deployment"]

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


# -- runs that start by themselves ------------------------------------------------------------


def runs_shown(page) -> list[dict[str, str]]:
    """Each run on the page, newest first: why, by whom, and what it did."""
    rows = page.html.find("table", {"data-testid": "runs"}).find("tbody").find_all("tr")
    found = []
    for row in rows:
        cells = row.find_all("td")
        found.append(
            {
                "why": cells[1].get_text(" ", strip=True).removeprefix("Why "),
                "by": cells[0].find(class_="nhsuk-body-s").get_text(strip=True),
                **{
                    name: element.get_text(strip=True) if element is not None else ""
                    for name in ("status", "entries-checked", "queries-raised", "queries-closed")
                    for element in [row.find(attrs={"data-testid": name})]
                },
            }
        )
    return found


def test_a_participant_moved_to_a_newer_version_has_their_forms_checked_again(
    app, db_session, tmp_path
):
    participant, first, _ = _demo_with_amendment(db_session, tmp_path)
    # Loaded by a session of no request (as a script would): nothing was asked for.
    assert recent_runs(db_session, participant.study_id) == []
    version = store_form_version(participant.study_id)
    form_entry(participant, version, {"weight": "35"}, status=FormStatus.COMPLETE)
    bystander = ParticipantFactory(site=participant.site, protocol_version=first)
    form_entry(bystander, version, {"weight": "30"}, status=FormStatus.COMPLETE)
    login(app, "datamanager")
    path = f"/studies/DEMO/participants/{participant.code}/protocol"
    form = form_posting_to(app.get(path), path)
    form["reason"] = REASON

    form.submit(status=303)

    page = app.get("/studies/DEMO/data-quality")
    assert runs_shown(page) == [
        {
            "why": f"{participant.code} moved to protocol version 2.0 (their forms only)",
            "by": "by Dara Manager",
            "status": "Finished",
            "entries-checked": "1",
            "queries-raised": "1",
            "queries-closed": "0",
        }
    ]
    raised = db_session.scalars(select(Query)).one()
    assert (raised.check, raised.entry.participant_id) == ("soft_range:weight", participant.id)


def test_a_move_refused_or_of_a_participant_with_no_forms_asks_for_no_run(
    app, db_session, tmp_path
):
    participant, _, _ = _demo_with_amendment(db_session, tmp_path)
    login(app, "datamanager")
    path = f"/studies/DEMO/participants/{participant.code}/protocol"

    form_posting_to(app.get(path), path).submit(status=400)
    form = form_posting_to(app.get(path), path)
    form["reason"] = REASON
    form.submit(status=303)

    db_session.refresh(participant)
    assert participant.protocol_version.label == "2.0"
    assert recent_runs(db_session, participant.study_id) == []
    assert "No data-quality run has been made" in app.get("/studies/DEMO/data-quality").text


def enter_vitals(url: str, participant_code: str, weight: str) -> None:
    """A complete vital signs form (the demo's) of a participant, straight into a
    deployment's database, as if entered before its edit checks were what they are."""
    engine = create_database_engine(url)
    try:
        with Session(engine) as db:
            use_actor(db, AuditActor.system("test set-up"))
            participant = db.scalars(
                select(Participant).where(Participant.code == participant_code)
            ).one()
            version = db.scalars(
                select(FormVersion).where(
                    FormVersion.study_id == participant.study_id, FormVersion.form_code == "vitals"
                )
            ).one()
            entry = FormEntry(
                participant=participant,
                event_code="baseline",
                event_instance=1,
                form_code="vitals",
                form_version=version,
                status=FormStatus.IN_PROGRESS,
            )
            for path, value in {"measured": "1", "weight": weight}.items():
                entry.values.append(ItemValue(item_path=path, value=value))
            db.add(entry)
            db.flush()
            entry.status = FormStatus.COMPLETE
            db.commit()
    finally:
        engine.dispose()


def test_ctms_study_load_and_participant_migrate_check_the_stored_data_again(
    deployment, tmp_path, monkeypatch
):
    ini, url = deployment
    # A worker in the same process, as the tests' application has.
    monkeypatch.setenv("BHP_CTMS_TASK_ALWAYS_EAGER", "true")
    assert run(ini, "demo").exit_code == 0
    heavy = register(url, "NTH", ("screening", date(2026, 1, 20)))
    light = register(url, "NTH", ("screening", date(2026, 1, 21)))
    enter_vitals(url, heavy, "170")
    enter_vitals(url, light, "35")

    loaded = run(ini, "study", "load", amended_folder(tmp_path))
    assert loaded.exit_code == 0, loaded.output
    migrate = ("participant", "migrate", "--study", "DEMO", "--to", "2.0", "--participant")
    moved = run(ini, *migrate, light, "--apply", "--reason", REASON)
    assert moved.exit_code == 0, moved.output

    app = TestApp(configure({"bhp_ctms": make_settings(url)}).make_wsgi_app())
    login(app, "datamanager", "lighthouse-cabbage-origami")
    page = app.get("/studies/DEMO/data-quality")
    shown_runs = runs_shown(page)
    # Loading the study the first time (ctms demo) had nothing stored to check.
    assert [run["why"] for run in shown_runs] == [
        f"{light} moved to protocol version 2.0 (their forms only)",
        "Protocol version 2.0 was loaded",
    ]
    assert {run["by"] for run in shown_runs} == {f"by {cli_actor().name}"}
    assert [
        (run["status"], run["entries-checked"], run["queries-raised"]) for run in shown_runs
    ] == [("Finished", "1", "0"), ("Finished", "2", "2")]
