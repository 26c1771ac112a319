"""Entering a CRF: the demo study's vital signs form, through its page.

Hard errors keep every typed value; soft ones save and raise exactly one query;
"complete" needs every required item; a complete form changes only with a reason
per changed item; two people saving the same version give one save and one conflict
page with both versions; calculated and hidden items follow the values.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.crf.loading import store_form_versions
from bhp_ctms.crf.models import FormEntry, FormStatus, ItemValue, Query, QueryStatus
from bhp_ctms.participants.models import ParticipantStatus
from bhp_ctms.permissions import Role
from bhp_ctms.studies.definition import read_study
from tests.factories import ParticipantFactory
from tests.functional.helpers import form_posting_to, login
from tests.functional.test_participant_registration import (
    STUDY,
    demo_trial,
    error_next_to,
    error_summary,
    fill_date,
    flash,
    shown,
    staff,
)
from tests.functional.test_study_loading import DEMO_FOLDER

VITALS = f"{STUDY}/participants/DEMO-NTH-0001/events/baseline/1/forms/vitals"


def crf_trial(db_session: Session):
    """The demo study with its form versions, a randomised participant at NTH, and a
    coordinator there."""
    trial = demo_trial()
    store_form_versions(db_session, trial.study.id, DEMO_FOLDER, read_study(DEMO_FOLDER).forms)
    ParticipantFactory(
        site=trial.site, status=ParticipantStatus.RANDOMISED, registered_on=date(2026, 2, 2)
    )
    staff("coordinator", Role.SITE_COORDINATOR, trial.site)
    return trial


def vitals_form(page):
    return form_posting_to(page, VITALS)


def fill_vitals(form, **values: str) -> None:
    fill_date(form, "assessed_on", date(2026, 3, 2))
    defaults = {"measured": "1", "height": "175", "weight": "70", "sbp": "120", "dbp": "80"}
    for name, value in {**defaults, **values}.items():
        form[name] = value


def entry_values(db_session: Session) -> dict[str, str | None]:
    rows = db_session.scalars(select(ItemValue).order_by(ItemValue.item_path))
    return {row.item_path: row.value for row in rows}


def test_a_hard_error_keeps_every_typed_value(app, db_session):
    crf_trial(db_session)
    login(app, "coordinator")
    form = vitals_form(app.get(VITALS))
    fill_vitals(form, weight="500", height="1.75m", pulse="72")
    page = form.submit("action", value="complete", expect_errors=True)
    assert page.status_int == 400
    assert "Weight must be between 20 and 300 kg." in error_summary(page)
    assert "Height must be a number" in error_next_to(page, "height")
    again = vitals_form(page)
    assert again["weight"].value == "500"
    assert again["height"].value == "1.75m"
    assert again["pulse"].value == "72"
    assert again["assessed_on-day"].value == "2"
    assert db_session.scalars(select(FormEntry)).first() is None


def test_a_soft_error_saves_and_raises_exactly_one_query(app, db_session):
    crf_trial(db_session)
    login(app, "coordinator")
    form = vitals_form(app.get(VITALS))
    fill_vitals(form, weight="165", height="190")
    page = form.submit("action", value="save").follow()
    assert "1 query is open" in flash(page)
    assert entry_values(db_session)["weight"] == "165"
    form = vitals_form(page)
    form["pulse"] = "70"
    form.submit("action", value="save").follow()
    queries = list(db_session.scalars(select(Query)))
    assert [(q.item_path, q.status, q.text) for q in queries] == [
        ("weight", QueryStatus.OPEN, "Unusual weight: please check.")
    ]
    page = app.get(VITALS)
    assert "Unusual weight: please check." in shown(page, "query-weight")


def test_the_calculated_bmi_and_the_show_if_logic_are_worked_out_on_save(app, db_session):
    crf_trial(db_session)
    login(app, "coordinator")
    form = vitals_form(app.get(VITALS))
    fill_vitals(form)
    page = form.submit("action", value="complete").follow()
    assert entry_values(db_session)["bmi"] == "22.9"
    assert "Complete" in shown(page, "entry-status")
    assert page.html.find(attrs={"data-testid": "item-not_measured_reason"}).has_attr("hidden")


def test_complete_needs_every_required_item_or_a_missing_reason(app, db_session):
    crf_trial(db_session)
    login(app, "coordinator")
    form = vitals_form(app.get(VITALS))
    fill_vitals(form, sbp="")
    page = form.submit("action", value="complete", expect_errors=True)
    assert "Answer Systolic blood pressure or say why it is missing" in error_summary(page)
    form = vitals_form(page)
    form["sbp__missing"] = "ND"
    form.submit("action", value="complete").follow()
    entry = db_session.scalars(select(FormEntry)).one()
    assert entry.status == FormStatus.COMPLETE
    missing = db_session.scalars(select(ItemValue).where(ItemValue.item_path == "sbp")).one()
    assert (missing.value, missing.missing_code) == (None, "ND")


def test_changing_a_complete_form_asks_a_reason_for_each_changed_item(app, db_session):
    crf_trial(db_session)
    login(app, "coordinator")
    form = vitals_form(app.get(VITALS))
    fill_vitals(form)
    page = form.submit("action", value="complete").follow()
    form = vitals_form(page)
    form["weight"] = "72"
    form["pulse"] = "64"
    page = form.submit("action", value="save", expect_errors=True)
    assert page.status_int == 400
    assert "Give a reason for changing Weight" in error_summary(page)
    assert "Give a reason for changing Pulse rate" in error_summary(page)
    form = vitals_form(page)
    assert form["weight"].value == "72"
    form["weight__reason"] = "Transcription error: scale showed 72.0"
    form["pulse__reason"] = "Pulse was measured but not written down"
    form.submit("action", value="save").follow()
    values = entry_values(db_session)
    assert (values["weight"], values["pulse"], values["bmi"]) == ("72", "64", "23.5")
    reasons = {
        event.details.get("item"): event.reason
        for event in db_session.scalars(
            select(AuditEvent).where(AuditEvent.entity_type == "item_value")
        )
        if event.reason
    }
    assert reasons["weight"] == "Transcription error: scale showed 72.0"
    assert reasons["pulse"] == "Pulse was measured but not written down"
    assert reasons["bmi"] == "Recalculated after a change to Pulse rate, Weight"


def test_two_people_saving_the_same_version_give_one_save_and_one_conflict(
    app, make_app, db_session
):
    trial = crf_trial(db_session)
    staff("nurse", Role.SITE_COORDINATOR, trial.site)
    login(app, "coordinator")
    form = vitals_form(app.get(VITALS))
    fill_vitals(form)
    form.submit("action", value="save").follow()
    other = make_app()
    login(other, "nurse")
    mine = vitals_form(app.get(VITALS))
    theirs = vitals_form(other.get(VITALS))
    mine["weight"] = "71"
    mine.submit("action", value="save").follow()
    theirs["weight"] = "69.5"
    theirs["pulse"] = "88"
    page = theirs.submit("action", value="save", expect_errors=True)
    assert page.status_int == 409
    assert "Your changes have not been saved" in shown(page, "conflict-heading")
    row = shown(page, "conflict-weight")
    assert "69.5 kg" in row and "71 kg" in row
    assert "88" in shown(page, "conflict-pulse")
    assert entry_values(db_session)["weight"] == "71"
    kept = form_posting_to(page, VITALS)
    kept.submit("action", value="save").follow()
    values = entry_values(db_session)
    assert (values["weight"], values["pulse"]) == ("69.5", "88")
