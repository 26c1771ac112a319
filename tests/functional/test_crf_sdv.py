"""Source data verification through the pages: a monitor marks items and whole forms
verified, marks stop being current when the data change, each site's SDV worklist
follows the study's sample, and the data manager sets that sample."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bhp_ctms.crf.models import (
    FormStatus,
    SamplingMethod,
    SourceVerification,
    SourceVerificationPlan,
)
from bhp_ctms.crf.verification import set_plan, verify_form
from bhp_ctms.permissions import Role
from tests.factories import ParticipantFactory
from tests.functional.helpers import csrf_token, form_posting_to, login
from tests.functional.test_participant_registration import (
    STUDY,
    actor,
    demo_trial,
    error_next_to,
    error_summary,
    flash,
    shown,
    staff,
)
from tests.unit.crf.test_signatures import change_value, form_entry

SITE_SDV = f"{STUDY}/sites/NTH/sdv"
PLAN = f"{STUDY}/sdv-plan"
FORM_PAGE = f"{STUDY}/participants/DEMO-NTH-0001/events/baseline/1/forms/vitals"


def sdv_path(entry) -> str:
    return f"{STUDY}/entries/{entry.id}/sdv"


def verify_button(page, item: str = ""):
    """The form on the SDV page that marks ``item`` (the whole form for "")."""
    for form in page.forms.values():
        if form.action != page.request.path or "csrf_token" not in form.fields:
            continue
        if ("item" in form.fields and form["item"].value == item) or (
            not item and "item" not in form.fields
        ):
            return form
    raise AssertionError(f"no button verifying {item or 'the whole form'}")


def _set_up(db_session, status=FormStatus.COMPLETE):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    monitor = staff("mo", Role.MONITOR, study=trial.study)
    monitor.full_name = "Mo Khan"
    entry = form_entry(db_session, ParticipantFactory(site=trial.site), by=cora, status=status)
    return trial, cora, monitor, entry


def _marks(db_session) -> list[SourceVerification]:
    return list(db_session.scalars(select(SourceVerification).order_by(SourceVerification.id)))


def test_a_monitor_verifies_items_and_the_whole_form(app, db_session):
    _, cora, _, entry = _set_up(db_session)
    login(app, "mo")
    page = app.get(sdv_path(entry))
    assert "This form is complete" in shown(page, "entry-status")
    assert "72.5 kg" in shown(page, "sdv-item-weight")
    assert shown(page, "sdv-state-weight").startswith("Not verified.")

    page = verify_button(page, "weight").submit().follow()
    assert page.request.path == sdv_path(entry)
    assert "Weight has been verified against source." in flash(page)
    assert shown(page, "sdv-state-weight").startswith("SDV'd Verified by Mo Khan on ")
    assert shown(page, "sdv-state-height").startswith("Not verified.")

    page = verify_button(page).submit().follow()
    assert "Vital signs at Baseline (randomisation) has been verified against source." in flash(
        page
    )
    assert shown(page, "sdv-whole-form").startswith("SDV'd Verified by Mo Khan")
    db_session.expire_all()
    assert entry.status == FormStatus.VERIFIED
    assert [(mark.item_path, mark.verified_by_name) for mark in _marks(db_session)] == [
        ("weight", "Mo Khan"),
        ("", "Mo Khan"),
    ]

    change_value(db_session, entry, "weight", "74.0", by=cora)
    page = app.get(sdv_path(entry))
    assert shown(page, "sdv-state-weight").startswith("Changed since SDV Verified by Mo Khan")
    assert shown(page, "sdv-whole-form").startswith("Not verified as a whole")
    db_session.expire_all()
    assert entry.status == FormStatus.COMPLETE
    assert all(mark.superseded_at is not None for mark in _marks(db_session))


def test_a_mark_made_from_the_form_page_goes_back_to_it(app, db_session):
    _, _, _, entry = _set_up(db_session)
    login(app, "mo")
    response = app.post(sdv_path(entry), {"csrf_token": csrf_token(app), "item": "height"})
    assert response.status_int == 303
    assert response.location.endswith(FORM_PAGE)
    # An address elsewhere is never followed.
    response = app.post(
        sdv_path(entry),
        {"csrf_token": csrf_token(app), "item": "smoker", "next": "//evil.example/"},
    )
    assert response.location.endswith(FORM_PAGE)
    assert [mark.item_path for mark in _marks(db_session)] == ["height", "smoker"]


def test_a_form_in_progress_cannot_be_verified(app, db_session):
    _, _, _, entry = _set_up(db_session, status=FormStatus.IN_PROGRESS)
    login(app, "mo")
    page = app.get(sdv_path(entry))
    assert "This form is still in progress" in shown(page, "sdv-problem")
    refused = app.post(sdv_path(entry), {"csrf_token": csrf_token(app)}, expect_errors=True)
    assert refused.status_int == 400
    assert (
        "This form is still in progress: it can be verified against source once it is complete"
        in error_summary(refused)
    )
    db_session.expire_all()
    assert _marks(db_session) == []
    assert entry.status == FormStatus.IN_PROGRESS


def test_verifying_twice_is_refused_clearly(app, db_session):
    _, _, monitor, entry = _set_up(db_session)
    verify_form(db_session, actor(monitor), monitor, entry)
    login(app, "mo")
    refused = app.post(sdv_path(entry), {"csrf_token": csrf_token(app)}, expect_errors=True)
    assert refused.status_int == 400
    assert "This form was already verified by Mo Khan on" in error_summary(refused)
    assert len(_marks(db_session)) == 1


def test_the_site_worklist_follows_the_sample(app, db_session):
    trial, cora, monitor, first_entry = _set_up(db_session)
    dm = staff("dana", Role.DATA_MANAGER, study=trial.study)
    second, third = ParticipantFactory(site=trial.site), ParticipantFactory(site=trial.site)
    second_entry = form_entry(db_session, second, by=cora)
    form_entry(db_session, second, by=cora, event="week_2", status=FormStatus.IN_PROGRESS)
    form_entry(db_session, third, by=cora)
    verified = form_entry(db_session, first_entry.participant, by=cora, event="week_2")
    verify_form(db_session, actor(monitor), monitor, verified)
    set_plan(db_session, actor(dm), trial.study, SamplingMethod.FIRST, count=2)

    login(app, "mo")
    page = app.get(SITE_SDV)
    assert "first 2 participants registered at each site" in shown(page, "sdv-plan")
    counts = {
        key: shown(page, f"count-{key}")
        for key in ("registered", "sampled", "awaiting", "verified", "in-progress")
    }
    assert counts == {
        "registered": "3",
        "sampled": "2",
        "awaiting": "2",
        "verified": "1",
        "in-progress": "1",
    }
    rows = page.html.find_all(attrs={"data-testid": "sdv-row"})
    assert [row.find("a").get_text() for row in rows] == ["DEMO-NTH-0001", "DEMO-NTH-0002"]
    links = [row.find_all("a")[1]["href"] for row in rows]
    assert links == [sdv_path(first_entry), sdv_path(second_entry)]
    assert "Change the SDV plan" not in page.text  # a monitor does not set it

    # Every participant once the plan says so.
    set_plan(db_session, actor(dm), trial.study, SamplingMethod.ALL)
    page = app.get(SITE_SDV)
    assert shown(page, "count-awaiting") == "3"


def test_the_data_manager_sets_the_plan_and_sees_what_it_selects(app, db_session):
    trial = demo_trial()
    staff("dana", Role.DATA_MANAGER, study=trial.study)
    for _ in range(7):
        ParticipantFactory(site=trial.site)
    for _ in range(3):
        ParticipantFactory(site=trial.other_site)
    login(app, "dana")
    page = app.get(PLAN)
    assert shown(page, "current-plan") == "Every participant's forms are verified against source."
    assert shown(page, "selected-NTH") == "7" and shown(page, "selected-CHH") == "3"

    form = form_posting_to(page, PLAN)
    form["method"] = "first"
    form["count"] = "0"
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "The number of participants must be a whole number, 1 or more" in error_next_to(
        refused, "count"
    )
    form = form_posting_to(refused, PLAN)
    assert (form["method"].value, form["count"].value) == ("first", "0")

    form["method"] = "percentage"
    form["percentage"] = "101"
    refused = form.submit(expect_errors=True)
    assert "The percentage must be a whole number from 1 to 100" in error_next_to(
        refused, "percentage"
    )
    form = form_posting_to(refused, PLAN)
    assert form["percentage"].value == "101"
    form["percentage"] = ""
    refused = form.submit(expect_errors=True)
    assert "Enter the percentage of participants to verify" in error_next_to(refused, "percentage")
    assert db_session.scalars(select(SourceVerificationPlan)).all() == []

    form = form_posting_to(refused, PLAN)
    form["percentage"] = "30"
    page = form.submit().follow()
    assert "The SDV plan has been saved." in flash(page)
    assert "30% of each site's participants" in shown(page, "current-plan")
    # floor(7 * 30 / 100) = 2 at NTH, floor(3 * 30 / 100) = 0 at CHH.
    assert (shown(page, "selected-NTH"), shown(page, "selected-CHH")) == ("2", "0")
    plan = db_session.scalars(select(SourceVerificationPlan)).one()
    assert (plan.method, plan.count, plan.percentage) == (SamplingMethod.PERCENTAGE, None, 30)

    form = form_posting_to(page, PLAN)
    assert (form["method"].value, form["percentage"].value) == ("percentage", "30")
    form["method"] = "first"
    form["count"] = "5"
    page = form.submit().follow()
    assert (shown(page, "selected-NTH"), shown(page, "selected-CHH")) == ("5", "3")


@pytest.mark.parametrize("role", [Role.SITE_COORDINATOR, Role.SITE_PI, Role.DATA_MANAGER])
def test_only_monitors_verify(app, db_session, role):
    trial, _, _, entry = _set_up(db_session)
    if role == Role.DATA_MANAGER:
        staff("someone", role, study=trial.study)
    else:
        staff("someone", role, trial.site)
    login(app, "someone")
    assert app.get(sdv_path(entry), expect_errors=True).status_int == 403
    posted = app.post(sdv_path(entry), {"csrf_token": csrf_token(app)}, expect_errors=True)
    assert posted.status_int == 403
    assert app.get(SITE_SDV, expect_errors=True).status_int == 403
    assert _marks(db_session) == []


@pytest.mark.parametrize("role", [Role.MONITOR, Role.SITE_COORDINATOR])
def test_only_the_data_manager_sets_the_plan(app, db_session, role):
    trial = demo_trial()
    if role == Role.MONITOR:
        staff("someone", role, study=trial.study)
    else:
        staff("someone", role, trial.site)
    login(app, "someone")
    assert app.get(PLAN, expect_errors=True).status_int == 403
    posted = app.post(PLAN, {"csrf_token": csrf_token(app), "method": "all"}, expect_errors=True)
    assert posted.status_int == 403


def test_a_monitor_of_another_site_does_not_find_this_sites_forms(app, db_session):
    trial, _, _, entry = _set_up(db_session)
    staff("sam", Role.MONITOR, trial.other_site)
    login(app, "sam")
    assert app.get(sdv_path(entry), expect_errors=True).status_int == 404
    posted = app.post(sdv_path(entry), {"csrf_token": csrf_token(app)}, expect_errors=True)
    assert posted.status_int == 404
    assert app.get(SITE_SDV, expect_errors=True).status_int == 404
    assert app.get(f"{STUDY}/sites/CHH/sdv").status_int == 200
    assert _marks(db_session) == []
