"""Locking through the pages: the data manager sees what is outstanding at each site,
locks the study, a participant or a form with a reason and their password (a wrong
password or no reason is refused, what they typed kept), and unlocks; locked pages show
who locked them, when and why, with no edit button; a post sent anyway is refused with
a clear message (409) and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from bhp_ctms.accounts.models import LoginAttempt, LoginOutcome
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.crf.models import FormStatus, ItemValue
from bhp_ctms.locks.events import StudyLocked
from bhp_ctms.locks.models import Lock, LockScope
from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import Role
from bhp_ctms.studies.models import StudyStatus
from tests.factories import PASSWORD, ParticipantFactory
from tests.functional.helpers import csrf_token, form_posting_to, login
from tests.functional.test_participant_registration import (
    STUDY,
    demo_trial,
    error_next_to,
    error_summary,
    flash,
    shown,
    staff,
)
from tests.unit.crf.test_signatures import form_entry

LOCKS = f"{STUDY}/locks"
LOCK_NEW = f"{STUDY}/locks/new"


@pytest.fixture
def people(db_session):
    trial = demo_trial()
    dana = staff("dana", Role.DATA_MANAGER, study=trial.study)
    dana.full_name = "Dana Data"
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = ParticipantFactory(site=trial.site)
    entry = form_entry(db_session, participant, by=cora, status=FormStatus.IN_PROGRESS)
    return trial, dana, cora, participant, entry


def login_as(app, username: str) -> None:
    app.reset()
    login(app, username)


def participant_path(participant) -> str:
    return f"{STUDY}/participants/{participant.code}/"


def form_path(participant) -> str:
    return f"{STUDY}/participants/{participant.code}/events/baseline/1/forms/vitals"


def lock_form(app, path: str) -> object:
    return form_posting_to(app.get(path), LOCK_NEW)


@pytest.fixture
def notified(app):
    """The locks of the StudyLocked events the application notifies, as (id, scope)."""
    seen: list[tuple[int, LockScope]] = []
    registry = app.app.registry

    def remember(event: StudyLocked) -> None:
        seen.append((event.lock.id, event.lock.scope))

    registry.registerHandler(remember, (StudyLocked,))
    yield seen
    registry.unregisterHandler(remember, (StudyLocked,))


def test_the_data_manager_locks_and_unlocks_the_study(app, db_session, people, notified):
    trial, dana, _, participant, _ = people
    login_as(app, "dana")
    overview = app.get(f"{STUDY}/")
    assert overview.html.find(attrs={"data-testid": "locks-link"}).a["href"] == LOCKS

    page = app.get(LOCKS)
    assert shown(page, "study-lock-state") == "The study is not locked."
    north = page.html.find(attrs={"data-testid": "readiness-NTH"})
    assert north.find(attrs={"data-testid": "in-progress"}).get_text(strip=True).endswith("1")
    assert shown(page, "no-active-locks") == "No data are locked."

    page = app.get(page.html.find(attrs={"data-testid": "lock-study-link"})["href"])
    assert shown(page, "lock-title") == "Lock study DEMO"
    assert "outstanding" in page.text
    assert "Dana Data" in shown(page, "signature-meaning")

    # No reason: refused, nothing locked.
    form = form_posting_to(page, LOCK_NEW)
    form["password"] = PASSWORD
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert error_next_to(refused, "reason") == "Error: Enter why these data are locked"
    # A wrong password: refused, recorded, the reason typed kept and the password not.
    form = form_posting_to(refused, LOCK_NEW)
    form["reason"] = "Database lock for the final analysis"
    form["password"] = "not my password"
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "Your password is not right: nothing was locked" in error_summary(refused)
    form = form_posting_to(refused, LOCK_NEW)
    assert form["reason"].value == "Database lock for the final analysis"
    assert form["password"].value == ""
    assert db_session.scalar(select(func.count(Lock.id))) == 0
    attempts = db_session.scalars(
        select(LoginAttempt.outcome).where(LoginAttempt.user_id == dana.id)
    ).all()
    assert LoginOutcome.BAD_PASSWORD in attempts
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "lock.refused")).one()

    form["password"] = PASSWORD
    page = form.submit().follow()
    assert "Study DEMO is locked" in flash(page)
    state = shown(page, "study-lock-state")
    assert state.startswith("The study is locked: study lock by Dana Data,")
    assert "Database lock for the final analysis" in state
    db_session.expire_all()
    assert trial.study.status == StudyStatus.LOCKED
    made = db_session.scalars(select(Lock)).one()
    assert notified == [(made.id, LockScope.STUDY)]

    # Everyone sees the participant's data as locked, with no edit link.
    login_as(app, "cora")
    page = app.get(participant_path(participant))
    banner = shown(page, "locked-banner")
    assert "Study DEMO is locked by Dana Data" in banner
    assert "Database lock for the final analysis" in banner
    assert "Record consent" not in page.text
    assert 'data-testid="change-status"' not in page.text
    page = app.get(form_path(participant))
    assert shown(page, "entry-status").startswith("Locked")
    assert 'data-testid="save-progress"' not in page.text

    # Unlocked: the study's status is back, the data can change again.
    login_as(app, "dana")
    page = app.get(LOCKS)
    page = app.get(page.html.find(attrs={"data-testid": "unlock-study-link"})["href"])
    form = form_posting_to(page, f"{STUDY}/locks/unlock")
    form["password"] = PASSWORD
    refused = form.submit(expect_errors=True)
    assert error_next_to(refused, "reason") == "Error: Enter why these data must be unlocked"
    form = form_posting_to(refused, f"{STUDY}/locks/unlock")
    form["reason"] = "A site found a transcription error"
    form["password"] = PASSWORD
    page = form.submit().follow()
    assert "Study DEMO is unlocked" in flash(page)
    assert shown(page, "study-lock-state") == "The study is not locked."
    assert "A site found a transcription error" in shown(page, "past-locks")
    db_session.expire_all()
    assert trial.study.status == StudyStatus.RECRUITING
    unlocked = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "lock.updated")
    ).all()
    assert {event.reason for event in unlocked} == {"A site found a transcription error"}


def test_a_participant_is_locked_from_their_page(app, db_session, people):
    _, _, _, participant, _ = people
    login_as(app, "dana")
    page = app.get(participant_path(participant))
    assert shown(page, "participant-lock-state") == "Not locked."
    page = app.get(page.html.find(attrs={"data-testid": "lock-participant-link"})["href"])
    assert shown(page, "lock-title") == f"Lock participant {participant.code}"
    form = form_posting_to(page, LOCK_NEW)
    form["reason"] = "Casebook signed off"
    form["password"] = PASSWORD
    page = form.submit().follow()
    assert page.request.path == participant_path(participant)
    assert f"Participant {participant.code} is locked" in flash(page)
    assert shown(page, "participant-lock-state").startswith("Locked: participant lock by")
    assert "Casebook signed off" in shown(page, "locked-banner")

    # A coordinator who posts anyway is refused, and nothing changes.
    login_as(app, "cora")
    consent = f"{STUDY}/participants/{participant.code}/consent"
    page = app.get(consent)
    assert "locked-banner" in page.text
    assert not [form for form in page.forms.values() if form.action == consent]
    refused = app.post(consent, {"csrf_token": csrf_token(app)}, status=409)
    assert shown(refused, "locked-message").startswith(
        f"Participant {participant.code} is locked (participant lock by Dana Data,"
    )
    assert shown(refused, "locked-message").endswith("nothing was saved.")
    assert "Casebook signed off" in refused.text

    login_as(app, "dana")
    page = app.get(participant_path(participant))
    page = app.get(page.html.find(attrs={"data-testid": "unlock-participant-link"})["href"])
    form = form_posting_to(page, f"{STUDY}/locks/unlock")
    form["reason"] = "Late adverse event to record"
    form["password"] = PASSWORD
    page = form.submit().follow()
    assert shown(page, "participant-lock-state") == "Not locked."


def test_a_form_is_locked_from_its_page_and_a_save_is_refused(app, db_session, people):
    _, _, _, participant, entry = people
    login_as(app, "dana")
    page = app.get(form_path(participant))
    page = app.get(page.html.find(attrs={"data-testid": "lock-entry-link"})["href"])
    assert (
        shown(page, "lock-title") == f"Lock form baseline/vitals of participant {participant.code}"
    )
    form = form_posting_to(page, LOCK_NEW)
    form["reason"] = "Verified and final"
    form["password"] = PASSWORD
    page = form.submit().follow()
    assert page.request.path == form_path(participant)
    assert shown(page, "entry-status").startswith("Locked")
    assert 'data-testid="lock-entry-link"' not in page.text

    login_as(app, "cora")
    page = app.get(form_path(participant))
    assert "Verified and final" in shown(page, "locked-banner")
    assert 'data-testid="save-progress"' not in page.text
    values = db_session.scalars(select(ItemValue.value).order_by(ItemValue.id)).all()
    refused = app.post(
        form_path(participant),
        {"csrf_token": csrf_token(app), "version": str(entry.version), "weight": "99"},
        status=409,
    )
    message = shown(refused, "locked-message")
    assert message.startswith(
        f"Form baseline/vitals of participant {participant.code} is locked (form lock by "
        "Dana Data, "
    )
    assert message.endswith("): nothing was saved.")
    db_session.expire_all()
    assert db_session.scalars(select(ItemValue.value).order_by(ItemValue.id)).all() == values
    made = db_session.scalars(select(Lock)).one()
    assert (made.scope, made.form_entry_id, made.form_key) == (
        LockScope.FORM_ENTRY,
        entry.id,
        "baseline/vitals",
    )


def test_only_data_managers_reach_the_lock_pages(app, db_session, people):
    _, _, _, participant, _ = people
    login_as(app, "cora")
    app.get(LOCKS, status=403)
    app.get(f"{LOCK_NEW}?scope=participant&participant={participant.code}", status=403)
    page = app.get(participant_path(participant))
    assert "lock-participant-link" not in page.text
    login_as(app, "dana")
    app.get(f"{LOCK_NEW}?scope=participant&participant=NOBODY", status=404)
    app.get(f"{LOCK_NEW}?scope=nonsense", status=404)
    app.get(f"{STUDY}/locks/unlock?lock=999", status=404)


def test_a_site_is_locked_from_the_locks_page_and_registering_there_refused(
    app, db_session, people
):
    login_as(app, "dana")
    page = app.get(LOCKS)
    page = app.get(page.html.find(attrs={"data-testid": "lock-site-NTH"})["href"])
    assert shown(page, "lock-title") == "Lock site NTH"
    assert page.html.find(attrs={"data-testid": "readiness-NTH"}) is not None
    assert page.html.find(attrs={"data-testid": "readiness-CHH"}) is None
    form = form_posting_to(page, LOCK_NEW)
    form["reason"] = "Site closed: all data entered"
    form["password"] = PASSWORD
    page = form.submit().follow()
    assert "Site NTH is locked" in flash(page)
    assert page.html.find(attrs={"data-testid": "unlock-site-NTH"}) is not None
    assert page.html.find(attrs={"data-testid": "lock-site-CHH"}) is not None

    login_as(app, "cora")
    register = f"{STUDY}/sites/NTH/register"
    page = app.get(register)
    assert "Site closed: all data entered" in shown(page, "locked-banner")
    assert not [form for form in page.forms.values() if form.action == register]
    refused = app.post(register, {"csrf_token": csrf_token(app)}, status=409)
    assert shown(refused, "locked-message").startswith(
        "Site NTH is locked (site lock by Dana Data, "
    )
    assert db_session.scalar(select(func.count(Participant.id))) == 1
