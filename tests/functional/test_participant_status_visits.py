"""A participant's status (every move checked, forbidden ones refused with a clear
message, each change audited) and their visits (recorded on their protocol version,
changed only with a reason), on the participant's page and through the service."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from bhp_ctms.participants.models import (
    ExclusionReason,
    ParticipantStatus,
    Visit,
    VisitStatus,
    WithdrawalType,
)
from bhp_ctms.participants.services import ParticipantError
from bhp_ctms.participants.status import STEP_TRANSITIONS, TRANSITIONS, status_change_problem
from bhp_ctms.permissions import Role
from tests.factories import ParticipantFactory, ProtocolVersionFactory, demo_definition
from tests.functional.helpers import csrf_token, form_posting_to, login
from tests.functional.test_participant_registration import (
    STUDY,
    actor,
    audit_events,
    demo_trial,
    error_next_to,
    error_summary,
    fill_date,
    flash,
    register,
    service,
    shown,
    staff,
)

S = ParticipantStatus
PARTICIPANT = f"{STUDY}/participants/DEMO-NTH-0001/"
STATUS = PARTICIPANT + "status"

# The moves the issue allows, written out by hand: a user changes the status to
# these; consent, eligibility confirmation and randomisation make the others.
CHANGED_BY_HAND = {
    (S.SCREENED, S.NOT_ENROLLED),
    (S.CONSENTED, S.NOT_ENROLLED),
    (S.CONSENTED, S.WITHDRAWN),
    (S.ELIGIBLE, S.NOT_ENROLLED),
    (S.ELIGIBLE, S.WITHDRAWN),
    (S.INELIGIBLE, S.NOT_ENROLLED),
    (S.RANDOMISED, S.COMPLETED),
    (S.RANDOMISED, S.WITHDRAWN),
    (S.RANDOMISED, S.LOST_TO_FOLLOW_UP),
    (S.RANDOMISED, S.DIED),
    # After withdrawal from treatment only.
    (S.WITHDRAWN, S.WITHDRAWN),
    (S.WITHDRAWN, S.COMPLETED),
    (S.WITHDRAWN, S.LOST_TO_FOLLOW_UP),
    (S.WITHDRAWN, S.DIED),
    # Found again only to learn they died; needs a reason for change.
    (S.LOST_TO_FOLLOW_UP, S.DIED),
}
MADE_BY_THEIR_STEP = {
    (S.SCREENED, S.CONSENTED): "only when their consent is recorded",
    (S.CONSENTED, S.ELIGIBLE): "only when the PI confirms their eligibility assessment",
    (S.CONSENTED, S.INELIGIBLE): "only when the PI confirms their eligibility assessment",
    (S.ELIGIBLE, S.RANDOMISED): "only when they are randomised",
}
ENDED = {S.NOT_ENROLLED, S.COMPLETED, S.LOST_TO_FOLLOW_UP, S.DIED}


def _participant_at(trial, status: ParticipantStatus, **values):
    if status == S.WITHDRAWN:
        values.setdefault("withdrawal_type", WithdrawalType.TREATMENT)
    return ParticipantFactory(
        site=trial.site, status=status, registered_on=date(2026, 2, 2), **values
    )


def _change(db_session, user, participant, new, **values):
    values.setdefault("on", date(2026, 3, 1))
    values.setdefault("details", "Moved out of the area")
    values.setdefault("withdrawal_type", WithdrawalType.FOLLOW_UP if new == S.WITHDRAWN else None)
    values.setdefault(
        "exclusion_reason", ExclusionReason.DECLINED if new == S.NOT_ENROLLED else None
    )
    service(db_session).change_status(actor(user), participant, new, **values)


# -- every move, through the service ------------------------------------------------------


def test_the_transitions_table_holds_exactly_the_issues_moves():
    table = {(old, new) for old, targets in TRANSITIONS.items() for new in targets}
    assert table == CHANGED_BY_HAND | set(MADE_BY_THEIR_STEP)
    assert set(STEP_TRANSITIONS) == set(MADE_BY_THEIR_STEP)
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize("new", list(S), ids=str)
@pytest.mark.parametrize("old", list(S), ids=str)
def test_every_status_change_is_checked(db_session, old, new):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _participant_at(trial, old)
    reason = "Death certificate received" if old in ENDED else ""
    if (old, new) in CHANGED_BY_HAND:
        _change(db_session, cora, participant, new, reason_for_change=reason)
        assert participant.status == new
        events = audit_events(db_session, "participant", participant.id)
        changed = [e for e in events if e.action == "participant.updated" and e.field == "status"]
        if old != new:
            assert [(e.old_value, e.new_value) for e in changed] == [(f'"{old}"', f'"{new}"')]
        assert {e.reason for e in events if e.action == "participant.updated"} == {reason}
        return
    with pytest.raises(ParticipantError) as refused:
        _change(db_session, cora, participant, new, reason_for_change=reason)
    assert refused.value.field == "status"
    message = str(refused.value)
    if (old, new) in MADE_BY_THEIR_STEP:
        assert (
            message == f"A participant becomes {new.label.lower()} {MADE_BY_THEIR_STEP[old, new]}"
        )
    elif old == new:
        assert message == f"The participant is already {old.label.lower()}"
    else:
        assert message.startswith(
            f"A participant whose status is {old.label.lower()} cannot be marked "
            f"{new.label.lower()}"
        )
    assert participant.status == old
    assert [
        e for e in audit_events(db_session, "participant", participant.id) if "updated" in e.action
    ] == []


def test_the_refusal_says_what_is_possible(db_session):
    trial = demo_trial()
    screened = _participant_at(trial, S.SCREENED)
    assert status_change_problem(screened, S.COMPLETED) == (
        "A participant whose status is screened cannot be marked completed: they can only be "
        "marked "
        "not enrolled"
    )
    died = _participant_at(trial, S.DIED)
    assert status_change_problem(died, S.RANDOMISED) == (
        "A participant whose status is died cannot be marked randomised: their participation "
        "has ended"
    )
    lost = _participant_at(trial, S.LOST_TO_FOLLOW_UP)
    assert status_change_problem(lost, S.RANDOMISED).startswith(
        "A participant whose status is lost to follow up cannot be marked randomised"
    )


@pytest.mark.parametrize("new", [S.COMPLETED, S.LOST_TO_FOLLOW_UP, S.DIED, S.WITHDRAWN])
def test_after_withdrawal_from_data_use_nothing_follows(db_session, new):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _participant_at(trial, S.WITHDRAWN, withdrawal_type=WithdrawalType.DATA_USE)
    with pytest.raises(ParticipantError, match="their participation has ended"):
        _change(db_session, cora, participant, new, withdrawal_type=WithdrawalType.DATA_USE)


@pytest.mark.parametrize("new", [S.COMPLETED, S.LOST_TO_FOLLOW_UP, S.DIED])
def test_after_withdrawal_from_follow_up_only_a_further_withdrawal_follows(db_session, new):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _participant_at(trial, S.WITHDRAWN, withdrawal_type=WithdrawalType.FOLLOW_UP)
    with pytest.raises(ParticipantError, match="they can only be marked withdrawn"):
        _change(db_session, cora, participant, new)


def test_after_withdrawal_from_follow_up_their_data_can_still_be_withdrawn(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _participant_at(trial, S.WITHDRAWN, withdrawal_type=WithdrawalType.FOLLOW_UP)
    _change(db_session, cora, participant, S.WITHDRAWN, withdrawal_type=WithdrawalType.DATA_USE)
    assert participant.withdrawal_type == WithdrawalType.DATA_USE


def test_a_further_withdrawal_must_go_further(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _participant_at(trial, S.WITHDRAWN)
    with pytest.raises(ParticipantError, match="already withdrawn from treatment") as refused:
        _change(
            db_session, cora, participant, S.WITHDRAWN, withdrawal_type=WithdrawalType.TREATMENT
        )
    assert refused.value.field == "withdrawal_type"
    _change(db_session, cora, participant, S.WITHDRAWN, withdrawal_type=WithdrawalType.DATA_USE)
    assert participant.withdrawal_type == WithdrawalType.DATA_USE


@pytest.mark.parametrize(
    ("new", "values", "field", "message"),
    [
        (S.WITHDRAWN, {"withdrawal_type": None}, "withdrawal_type", "Choose what the participant"),
        (S.WITHDRAWN, {"details": "  "}, "details", "Enter the reason for the withdrawal"),
        (S.NOT_ENROLLED, {"exclusion_reason": None}, "exclusion_reason", "Choose why"),
        (
            S.NOT_ENROLLED,
            {"exclusion_reason": ExclusionReason.OTHER, "details": ""},
            "details",
            "Enter the reason the participant was not enrolled",
        ),
        (S.DIED, {"on": date(2099, 1, 1)}, "status_on", "The date cannot be in the future"),
        (S.LOST_TO_FOLLOW_UP, {"on": date(2099, 1, 1)}, "status_on", "cannot be in the future"),
        (S.WITHDRAWN, {"on": date(2099, 1, 1)}, "status_on", "cannot be in the future"),
        (S.DIED, {"on": date(2026, 1, 1)}, "status_on", "before the participant was registered"),
        (S.DIED, {"on": None}, "status_on", "Enter the date the status took effect"),
    ],
)
def test_each_status_needs_its_details(db_session, new, values, field, message):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    old = S.CONSENTED if new in {S.WITHDRAWN, S.NOT_ENROLLED} else S.RANDOMISED
    participant = _participant_at(trial, old)
    with pytest.raises(ParticipantError, match=message) as refused:
        _change(db_session, cora, participant, new, **values)
    assert refused.value.field == field
    assert participant.status == old


# -- status on the page ----------------------------------------------------------------------


def test_a_coordinator_withdraws_a_participant_on_the_page(app, db_session):
    trial = demo_trial()
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _participant_at(trial, S.RANDOMISED, randomised_on=date(2026, 2, 12))
    login(app, "cora")
    page = app.get(PARTICIPANT).click("Change status")
    offered = [radio["value"] for radio in page.html.find_all("input", attrs={"name": "status"})]
    assert offered == ["completed", "withdrawn", "lost_to_follow_up", "died"]

    form = form_posting_to(page, STATUS)
    form["status"] = "withdrawn"
    fill_date(form, "status_on", date(2026, 3, 1))
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "Choose what the participant has withdrawn from" in error_next_to(
        refused, "withdrawal_type"
    )

    form = form_posting_to(refused, STATUS)
    assert form["status"].value == "withdrawn"
    form["withdrawal_type"] = "treatment"
    refused = form.submit(expect_errors=True)
    assert "Enter the reason for the withdrawal" in error_next_to(refused, "details")

    form = form_posting_to(refused, STATUS)
    form["details"] = "Side effects of the walking programme"
    page = form.submit().follow()
    assert "Participant DEMO-NTH-0001 is now withdrawn." in flash(page)
    status = shown(page, "participant-status")
    assert "Withdrawn since 1 Mar 2026" in status
    assert "From treatment (follow-up continues)" in status
    assert "Side effects of the walking programme" in status

    events = audit_events(db_session, "participant", participant.id)
    changed = {e.field: e for e in events if e.action == "participant.updated"}
    assert set(changed) == {"status", "status_on", "withdrawal_type", "status_details"}
    assert changed["withdrawal_type"].new_value == '"treatment"'
    assert changed["status"].actor_name == "Cora"


def test_a_forbidden_change_posted_anyway_is_refused_with_its_reason(app, db_session):
    trial = demo_trial()
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    _participant_at(trial, S.SCREENED)
    login(app, "cora")
    for status, message in [
        ("completed", "A participant whose status is screened cannot be marked completed"),
        ("consented", "A participant becomes consented only when their consent is recorded"),
        ("married", "Choose the participant's new status"),
    ]:
        page = app.post(
            STATUS,
            {
                "csrf_token": csrf_token(app, STATUS),
                "status": status,
                "status_on": "2026-03-01",
                "details": "Finished",
            },
            expect_errors=True,
        )
        assert page.status_int == 400
        assert message in error_next_to(page, "status")
        assert message in error_summary(page)
    page = app.get(PARTICIPANT)
    assert "Screened" in shown(page, "participant-status")


def test_not_enrolling_a_screened_person_needs_the_reason(app, db_session):
    trial = demo_trial()
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    _participant_at(trial, S.SCREENED)
    login(app, "cora")
    form = form_posting_to(app.get(STATUS), STATUS)
    form["status"] = "not_enrolled"
    fill_date(form, "status_on", date(2026, 2, 20))
    refused = form.submit(expect_errors=True)
    assert "Choose why the participant was not enrolled" in error_next_to(
        refused, "exclusion_reason"
    )
    form = form_posting_to(refused, STATUS)
    form["exclusion_reason"] = "declined"
    page = form.submit().follow()
    assert "Declined to take part" in shown(page, "participant-status")
    assert shown(page, "change-status") == ""


def test_a_lost_participant_found_to_have_died_needs_a_reason(app, db_session):
    trial = demo_trial()
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _participant_at(trial, S.LOST_TO_FOLLOW_UP)
    login(app, "cora")
    form = form_posting_to(app.get(STATUS), STATUS)
    form["status"] = "died"
    fill_date(form, "status_on", date(2026, 4, 1))
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "A reason for change is required" in error_next_to(refused, "reason_for_change")
    db_session.expire_all()
    assert participant.status == S.LOST_TO_FOLLOW_UP

    form = form_posting_to(refused, STATUS)
    form["reason_for_change"] = "GP letter reports the death"
    page = form.submit().follow()
    assert "Died since 1 Apr 2026" in shown(page, "participant-status")
    events = audit_events(db_session, "participant", participant.id)
    assert {e.reason for e in events if e.action == "participant.updated"} == {
        "GP letter reports the death"
    }


def test_a_participant_whose_participation_ended_keeps_their_status(app, db_session):
    trial = demo_trial()
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    _participant_at(trial, S.COMPLETED)
    login(app, "cora")
    assert shown(app.get(PARTICIPANT), "change-status") == ""
    assert "can no longer change" in shown(app.get(STATUS), "no-change")


@pytest.mark.parametrize("role", [Role.DATA_MANAGER, Role.MONITOR])
def test_study_wide_readers_change_nothing(app, db_session, role):
    trial = demo_trial()
    _participant_at(trial, S.RANDOMISED, randomised_on=date(2026, 2, 12))
    staff("reader", role, study=trial.study)
    login(app, "reader")
    page = app.get(PARTICIPANT)
    assert "Record" not in shown(page, "schedule")
    assert shown(page, "change-status") == ""
    token = csrf_token(app)
    for path in ("status", "consent", "eligibility", "visits/baseline/1"):
        assert app.get(PARTICIPANT + path, expect_errors=True).status_int == 403
        response = app.post(PARTICIPANT + path, {"csrf_token": token}, expect_errors=True)
        assert response.status_int == 403


# -- visits ----------------------------------------------------------------------------------------


def test_a_visit_is_recorded_and_shown_on_the_schedule(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    login(app, "cora")
    page = app.get(PARTICIPANT)
    row = shown(page, "schedule-screening")
    assert "Screening" in row and "Due" in row
    assert "Awaiting baseline" in shown(page, "schedule-week_2")

    visit_page = page.click(href="visits/screening/1")
    form = form_posting_to(visit_page, PARTICIPANT + "visits/screening/1")
    form["status"] = "done"
    fill_date(form, "visit_on", date(2099, 2, 3))
    refused = form.submit(expect_errors=True)
    assert "The date of the visit cannot be in the future" in error_next_to(refused, "visit_on")
    form = form_posting_to(refused, PARTICIPANT + "visits/screening/1")
    fill_date(form, "visit_on", date(2026, 1, 30))
    refused = form.submit(expect_errors=True)
    assert "cannot be before the participant was registered, on 2 Feb 2026" in error_next_to(
        refused, "visit_on"
    )
    form = form_posting_to(refused, PARTICIPANT + "visits/screening/1")
    fill_date(form, "visit_on", date(2026, 2, 3))
    page = form.submit().follow()
    assert "Screening has been recorded for participant DEMO-NTH-0001." in flash(page)
    row = shown(page, "schedule-screening")
    assert "Done" in row and "3 Feb 2026" in row and "Change" in row

    visit = db_session.scalars(select(Visit)).one()
    assert (visit.event_code, visit.instance, visit.status, visit.visit_on) == (
        "screening",
        1,
        VisitStatus.DONE,
        date(2026, 2, 3),
    )
    assert visit.protocol_version_id == participant.protocol_version_id
    events = audit_events(db_session, "visit", visit.id)
    assert {e.action for e in events} == {"visit.created"}
    assert {e.form for e in events} == {"screening"}
    assert {e.participant_id for e in events} == {participant.id}


def test_changing_a_recorded_visit_needs_a_reason(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    visit = service(db_session).record_visit(
        actor(cora),
        participant,
        "screening",
        1,
        status=VisitStatus.DONE,
        visit_on=date(2026, 2, 3),
        not_done_reason="",
    )
    path = PARTICIPANT + "visits/screening/1"
    login(app, "cora")
    page = app.get(path)
    assert "Recorded as done on 3 Feb 2026" in shown(page, "recorded")
    form = form_posting_to(page, path)
    assert form["visit_on-day"].value == "3"
    fill_date(form, "visit_on", date(2026, 2, 4))
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "A reason for change is required: visit screening has already been recorded" in (
        error_next_to(refused, "reason_for_change")
    )
    db_session.expire_all()
    assert visit.visit_on == date(2026, 2, 3)

    form = form_posting_to(refused, path)
    assert form["visit_on-day"].value == "4"
    form["reason_for_change"] = "Transcription error: the clinic letter says the 4th"
    page = form.submit().follow()
    assert "Screening has been changed for participant DEMO-NTH-0001." in flash(page)
    changed = [
        e for e in audit_events(db_session, "visit", visit.id) if e.action == "visit.updated"
    ]
    assert [(e.field, e.old_value, e.new_value, e.reason) for e in changed] == [
        (
            "visit_on",
            '"2026-02-03"',
            '"2026-02-04"',
            "Transcription error: the clinic letter says the 4th",
        )
    ]


def test_a_visit_not_done_says_why(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    record = service(db_session).record_visit
    with pytest.raises(ParticipantError, match="Enter why the visit was not done"):
        record(
            actor(cora),
            participant,
            "screening",
            1,
            status=VisitStatus.NOT_DONE,
            visit_on=None,
            not_done_reason=" ",
        )
    with pytest.raises(ParticipantError, match="Enter the date of the visit"):
        record(
            actor(cora),
            participant,
            "screening",
            1,
            status=VisitStatus.DONE,
            visit_on=None,
            not_done_reason="",
        )
    visit = record(
        actor(cora),
        participant,
        "screening",
        1,
        status=VisitStatus.NOT_DONE,
        visit_on=date(2026, 2, 3),
        not_done_reason="Participant unwell",
    )
    assert (visit.visit_on, visit.not_done_reason) == (None, "Participant unwell")


def test_repeating_events_are_added_in_order_up_to_their_limit(app, db_session):
    trial = demo_trial()
    definition = demo_definition()
    for event in definition["events"]:
        if event["code"] == "unscheduled":
            event["max_repeats"] = 2
    trial.version.definition = definition
    trial.version.definition_sha256 = "max-repeats-2"
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    record = service(db_session).record_visit
    with pytest.raises(
        ParticipantError, match="Record Unscheduled visit 1 before Unscheduled visit 2"
    ):
        record(
            actor(cora),
            participant,
            "unscheduled",
            2,
            status=VisitStatus.DONE,
            visit_on=date(2026, 2, 5),
            not_done_reason="",
        )

    login(app, "cora")
    page = app.get(PARTICIPANT)
    assert (
        "None recorded"
        in page.html.find(attrs={"data-testid": "repeating-unscheduled"}).find_next("p").text
    )
    for instance, day in ((1, 5), (2, 9)):
        form = form_posting_to(
            page.click(description="Add", href="visits/unscheduled/"),
            PARTICIPANT + f"visits/unscheduled/{instance}",
        )
        form["status"] = "done"
        fill_date(form, "visit_on", date(2026, 2, day))
        page = form.submit().follow()
        assert f"Unscheduled visit {instance} has been recorded" in flash(page)
    assert "Unscheduled visit 2: 9 Feb 2026" in page.text
    assert "The most the protocol allows (2) are recorded." in page.text
    with pytest.raises(ParticipantError, match="can be recorded at most 2 times"):
        record(
            actor(cora),
            participant,
            "unscheduled",
            3,
            status=VisitStatus.DONE,
            visit_on=date(2026, 2, 9),
            not_done_reason="",
        )

    adverse = app.get(PARTICIPANT + "visits/adverse_event/1")
    assert "Record Adverse event 1" in adverse.text


@pytest.mark.parametrize(
    "path",
    [
        "visits/nonsense/1",
        "visits/baseline/2",
        "visits/baseline/0",
        "visits/baseline/x",
        "visits/unscheduled/99999",
    ],
)
def test_a_visit_that_cannot_exist_is_not_found(app, db_session, path):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    register(db_session, trial, cora)
    login(app, "cora")
    assert app.get(PARTICIPANT + path, expect_errors=True).status_int == 404


def test_visits_are_recorded_on_the_participants_own_protocol_version(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    amended = demo_definition()
    amended["protocol_version"] = "2.0"
    newer = ProtocolVersionFactory(
        study=trial.study, number=2, label="2.0", effective_on=date(2026, 2, 4), definition=amended
    )
    visit = service(db_session).record_visit(
        actor(cora),
        participant,
        "screening",
        1,
        status=VisitStatus.DONE,
        visit_on=date(2026, 2, 5),
        not_done_reason="",
    )
    assert visit.protocol_version_id == trial.version.id != newer.id


def test_history_links_lead_to_each_values_audit_trail(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    login(app, "cora")
    page = app.get(PARTICIPANT)
    history = page.click(description="History", href="field=status")
    assert history.status_int == 200
    assert "screened" in history.text.lower()
    assert f"entity_id={participant.id}" in history.request.url
