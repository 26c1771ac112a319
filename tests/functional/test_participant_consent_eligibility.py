"""Consent (adults, children with parental consent and assent, re-consent on new
documents and at 16), eligibility (assessed from the criteria, confirmed by the PI
with their password), and what randomisation will require of both."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from bhp_ctms.participants.identifiers import Identifiers
from bhp_ctms.participants.models import (
    ConsentGivenBy,
    ConsentKind,
    EligibilityOutcome,
    Participant,
    ParticipantStatus,
)
from bhp_ctms.participants.services import ParticipantError
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import SiteStatus
from tests.factories import PASSWORD, ProtocolVersionFactory, demo_definition
from tests.functional.helpers import form_posting_to, login
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

PARTICIPANT = f"{STUDY}/participants/DEMO-NTH-0001/"
CONSENT = PARTICIPANT + "consent"
ELIGIBILITY = PARTICIPANT + "eligibility"
CRITERIA = {
    "age_18_or_over": "inclusion",
    "primary_hip_replacement": "inclusion",
    "walks_10_metres": "inclusion",
    "revision_or_fracture": "exclusion",
    "unsafe_to_walk": "exclusion",
    "other_trial": "exclusion",
}
ELIGIBLE_ANSWERS = {code: "yes" if kind == "inclusion" else "no" for code, kind in CRITERIA.items()}
CHILD_BORN = date(2011, 4, 3)  # 16 on 3 Apr 2027


def _consent(db_session, participant, user, on=date(2026, 2, 3), today=None, **values):
    values.setdefault("kind", ConsentKind.CONSENT)
    values.setdefault("given_by", ConsentGivenBy.PARTICIPANT)
    values.setdefault("information_sheet_version", "2.1")
    values.setdefault("form_version", "2.0")
    values.setdefault("taken_by", "Nurse Nia Jones")
    return service(db_session, today).record_consent(
        actor(user), participant, consented_on=on, **values
    )


def _consented(db_session, trial, user):
    participant = register(db_session, trial, user)
    _consent(db_session, participant, user)
    return participant


def _assessed(db_session, participant, user, answers=ELIGIBLE_ANSWERS):
    return service(db_session).assess_eligibility(
        actor(user), participant, answers, date(2026, 2, 10), user.id
    )


def _eligible(db_session, trial, user, pi):
    participant = _consented(db_session, trial, user)
    assessment = _assessed(db_session, participant, user)
    service(db_session).confirm_eligibility(actor(pi), participant, assessment, pi, PASSWORD)
    return participant


# -- consent -------------------------------------------------------------------------------------


def test_an_adults_consent_is_recorded_on_the_current_documents(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    login(app, "cora")
    page = app.get(PARTICIPANT)
    assert "No consent has been recorded yet" in shown(page, "no-consent")
    form = form_posting_to(page.click("Record consent", index=0), CONSENT)
    assert "kind" not in form.fields and "given_by" not in form.fields
    assert (form["information_sheet_version"].value, form["form_version"].value) == ("2.1", "2.0")
    assert form["taken_by"].value == "Cora"
    fill_date(form, "consented_on", date(2026, 2, 3))
    page = form.submit().follow()

    assert "Consent has been recorded for participant DEMO-NTH-0001." in flash(page)
    assert "Consented since 3 Feb 2026" in shown(page, "participant-status")
    history = shown(page, "consents")
    for text in ("3 Feb 2026", "Consent", "The participant", "Version 2.1", "Version 2.0", "Cora"):
        assert text in history
    assert shown(page, "consent-status") == "Consent is current."
    db_session.expire_all()
    assert participant.status == ParticipantStatus.CONSENTED
    record = participant.consents[0]
    events = audit_events(db_session, "consent", record.id)
    assert {e.action for e in events} == {"consent.created"}
    assert {e.field for e in events} >= {"information_sheet_version", "form_version", "taken_by"}
    assert {e.actor_name for e in events} == {"Cora"}
    status_events = [
        e for e in audit_events(db_session, "participant", participant.id) if e.field == "status"
    ]
    assert [(e.action, e.old_value, e.new_value) for e in status_events][-1] == (
        "participant.updated",
        '"screened"',
        '"consented"',
    )


def test_consent_dates_are_checked_and_what_was_typed_is_kept(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    register(db_session, trial, cora)
    login(app, "cora")
    form = form_posting_to(app.get(CONSENT), CONSENT)
    form["information_sheet_version"] = "2.1b"
    fill_date(form, "consented_on", date(2026, 2, 1))
    page = form.submit(expect_errors=True)
    assert page.status_int == 400
    assert (
        "The date of consent cannot be before the participant was registered, on 2 Feb 2026"
        in error_next_to(page, "consented_on")
    )
    form = form_posting_to(page, CONSENT)
    assert form["information_sheet_version"].value == "2.1b"
    assert form["consented_on-day"].value == "1"

    fill_date(form, "consented_on", date(2099, 1, 1))
    form["taken_by"] = ""
    page = form.submit(expect_errors=True)
    assert "Enter the name of the person who took consent" in error_next_to(page, "taken_by")
    form = form_posting_to(page, CONSENT)
    form["taken_by"] = "Cora"
    page = form.submit(expect_errors=True)
    assert "The date of consent cannot be in the future" in error_summary(page)


def test_an_adult_gives_their_own_consent_and_no_assent(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    with pytest.raises(ParticipantError, match="An adult participant gives their own consent"):
        _consent(db_session, participant, cora, given_by=ConsentGivenBy.PARENT)
    with pytest.raises(ParticipantError, match="Assent is given only by a child") as refused:
        _consent(db_session, participant, cora, kind=ConsentKind.ASSENT)
    assert refused.value.field == "kind"
    assert participant.consents == []


def test_a_child_is_consented_by_a_parent_and_assents(app, db_session):
    trial = demo_trial(children=True)
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    register(
        db_session, trial, cora, is_child=True, identifiers=Identifiers(date_of_birth=CHILD_BORN)
    )
    login(app, "cora")
    form = form_posting_to(app.get(CONSENT), CONSENT)
    form["kind"] = "consent"
    form["given_by"] = "participant"
    fill_date(form, "consented_on", date(2026, 2, 3))
    refused = form.submit(expect_errors=True)
    assert "A child under 16 does not give their own consent" in error_next_to(refused, "given_by")

    form = form_posting_to(refused, CONSENT)
    form["given_by"] = "parent"
    page = form.submit().follow()
    assert "Consented" in shown(page, "participant-status")

    assent = form_posting_to(page.click("Record the child's assent"), CONSENT)
    assert (assent["kind"].value, assent["given_by"].value) == ("assent", "participant")
    assert (assent["information_sheet_version"].value, assent["form_version"].value) == (
        "1.2",
        "1.1",
    )
    fill_date(assent, "consented_on", date(2026, 2, 3))
    page = assent.submit().follow()
    assert "Assent has been recorded for participant DEMO-NTH-0001." in flash(page)
    history = shown(page, "consents")
    assert "A person with parental responsibility" in history and "Assent" in history

    participant = db_session.scalars(select(Participant)).one()
    assert [(c.kind, c.given_by) for c in participant.consents] == [
        (ConsentKind.CONSENT, ConsentGivenBy.PARENT),
        (ConsentKind.ASSENT, ConsentGivenBy.PARTICIPANT),
    ]
    with pytest.raises(ParticipantError, match="Assent is given by the child themself"):
        _consent(
            db_session, participant, cora, kind=ConsentKind.ASSENT, given_by=ConsentGivenBy.PARENT
        )


def test_reaching_16_needs_the_participants_own_consent(db_session):
    trial = demo_trial(children=True)
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(
        db_session, trial, cora, is_child=True, identifiers=Identifiers(date_of_birth=CHILD_BORN)
    )
    _consent(db_session, participant, cora, given_by=ConsentGivenBy.PARENT)
    _consent(
        db_session,
        participant,
        cora,
        kind=ConsentKind.ASSENT,
        information_sheet_version="1.2",
        form_version="1.1",
    )
    before = service(db_session).consent_status(participant, date(2027, 4, 2))
    assert (before.current, before.needs_reconsent, before.reasons) == (True, False, [])

    at_16 = service(db_session).consent_status(participant, date(2027, 4, 3))
    assert (at_16.current, at_16.needs_reconsent) == (False, True)
    assert at_16.reasons == ["Reached 16 on 3 Apr 2027: their own consent is needed"]
    hidden = service(db_session).consent_status(participant, date(2027, 4, 3), with_birthday=False)
    assert hidden.reasons == ["Reached 16: their own consent is needed"]

    later = date(2027, 4, 10)
    with pytest.raises(ParticipantError, match="they give their own consent, not assent"):
        _consent(db_session, participant, cora, on=later, today=later, kind=ConsentKind.ASSENT)
    with pytest.raises(ParticipantError, match="16 or over on 10 Apr 2027: they give their own"):
        _consent(
            db_session, participant, cora, on=later, today=later, given_by=ConsentGivenBy.PARENT
        )
    _consent(db_session, participant, cora, on=later, today=later)
    assert service(db_session).consent_status(participant, later).current


def test_a_new_information_sheet_flags_re_consent(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _consented(db_session, trial, cora)
    amended = demo_definition()
    amended["protocol_version"] = "2.0"
    amended["consent"] = {**amended["consent"], "information_sheet": "3.0", "consent_form": "2.1"}
    ProtocolVersionFactory(
        study=trial.study, number=2, label="2.0", effective_on=date(2026, 6, 1), definition=amended
    )
    assert service(db_session).consent_status(participant, date(2026, 5, 31)).current
    status = service(db_session).consent_status(participant, date(2026, 6, 1))
    assert status.needs_reconsent and not status.current
    assert status.reasons == [
        "Information sheet version 3.0 has been issued: consent was given on version 2.1",
        "Consent form version 2.1 has been issued: consent was given on version 2.0",
    ]

    login(app, "cora")
    page = app.get(PARTICIPANT)
    warning = shown(page, "reconsent")
    assert "Re-consent needed" in warning and "Information sheet version 3.0" in warning
    form = form_posting_to(page.click("Record their new consent"), CONSENT)
    assert (form["information_sheet_version"].value, form["form_version"].value) == ("3.0", "2.1")
    fill_date(form, "consented_on", date(2026, 6, 2))
    page = form.submit().follow()
    assert shown(page, "reconsent") == ""
    assert shown(page, "consent-status") == "Consent is current."
    db_session.expire_all()
    assert participant.consents[-1].protocol_version_id != participant.protocol_version_id


# -- eligibility -----------------------------------------------------------------------------------


def test_eligibility_is_answered_criterion_by_criterion(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _consented(db_session, trial, cora)
    login(app, "cora")
    page = app.get(PARTICIPANT).click("Assess eligibility")
    inclusion = page.html.find(attrs={"data-testid": "inclusion-criteria"})
    exclusion = page.html.find(attrs={"data-testid": "exclusion-criteria"})
    assert "Aged 18 years or over." in inclusion.get_text()
    assert "Taking part in another interventional trial." in exclusion.get_text()
    assert len(inclusion.find_all("input", type="radio")) == 6
    assert len(exclusion.find_all("input", type="radio")) == 6

    form = form_posting_to(page, ELIGIBILITY)
    for code, answer in ELIGIBLE_ANSWERS.items():
        if code != "walks_10_metres":
            form[f"criterion_{code}"] = answer
    fill_date(form, "assessed_on", date(2026, 2, 10))
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert (
        "Answer yes or no for the inclusion criterion: Able to walk 10 metres, with or without "
        "a walking aid." in error_next_to(refused, "criterion_walks_10_metres")
    )
    form = form_posting_to(refused, ELIGIBILITY)
    assert form["criterion_age_18_or_over"].value == "yes"
    form["criterion_walks_10_metres"] = "yes"
    page = form.submit().follow()
    assert "has been assessed: eligible. The PI (or a delegate) now confirms it." in flash(page)
    assert shown(page, "eligibility-outcome") == "Eligible"
    assert "Awaiting confirmation" in shown(page, "eligibility-confirmation")
    answers = shown(page, "eligibility-answers")
    assert "Aged 18 years or over. Kind Inclusion Answer Yes" in answers
    db_session.expire_all()
    assert participant.status == ParticipantStatus.CONSENTED

    assessment = participant.eligibility_assessments[0]
    assert assessment.answers == ELIGIBLE_ANSWERS
    assert assessment.assessed_by_id == cora.id
    events = audit_events(db_session, "eligibility", assessment.id)
    assert {e.field for e in events} >= {"answers", "outcome", "assessed_on", "assessed_by_id"}


@pytest.mark.parametrize(
    ("code", "answer"),
    [("age_18_or_over", "no"), ("primary_hip_replacement", "no"), ("other_trial", "yes")],
)
def test_one_failed_criterion_makes_a_participant_ineligible(db_session, code, answer):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _consented(db_session, trial, cora)
    assessment = _assessed(db_session, participant, cora, {**ELIGIBLE_ANSWERS, code: answer})
    assert assessment.outcome == EligibilityOutcome.INELIGIBLE


def test_eligibility_is_assessed_only_after_consent(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = register(db_session, trial, cora)
    with pytest.raises(ParticipantError, match="this participant is screened"):
        _assessed(db_session, participant, cora)
    login(app, "cora")
    assert "this participant is screened" in shown(app.get(ELIGIBILITY), "eligibility-problem")
    _consent(db_session, participant, cora, on=date(2026, 2, 12))
    with pytest.raises(ParticipantError, match="cannot be before consent, given on 12 Feb 2026"):
        _assessed(db_session, participant, cora)


def test_the_pi_confirms_eligibility_with_their_password(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    priya = staff("priya", Role.SITE_PI, trial.site)
    participant = _consented(db_session, trial, cora)
    assessment = _assessed(db_session, participant, cora)
    confirm = f"{PARTICIPANT}eligibility/{assessment.id}/confirm"

    login(app, "priya")
    page = app.get(PARTICIPANT).click("Confirm")
    assert shown(page, "outcome") == "Eligible"
    form = form_posting_to(page, confirm)
    form["password"] = "not my password"
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "Your password is not right" in error_next_to(refused, "password")
    assert form_posting_to(refused, confirm)["password"].value == ""
    assert participant.status == ParticipantStatus.CONSENTED
    assert assessment.confirmed_at is None

    form = form_posting_to(refused, confirm)
    form["password"] = PASSWORD
    page = form.submit().follow()
    assert "Eligibility of participant DEMO-NTH-0001 has been confirmed: eligible." in flash(page)
    assert "Confirmed by Priya on" in shown(page, "eligibility-confirmation")
    db_session.expire_all()
    assert participant.status == ParticipantStatus.ELIGIBLE
    assert assessment.confirmed_by_id == priya.id
    events = audit_events(db_session, "eligibility", assessment.id)
    confirmed = [e for e in events if e.action == "eligibility.updated"]
    assert {e.field for e in confirmed} == {"confirmed_by_id", "confirmed_at"}
    assert {e.actor_name for e in confirmed} == {"Priya"}

    done = app.get(confirm)
    assert "Confirmed by Priya" in shown(done, "confirmed")
    assert not [f for f in done.forms.values() if f.action == confirm]


def test_only_the_pi_or_a_delegate_confirms(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    participant = _consented(db_session, trial, cora)
    assessment = _assessed(db_session, participant, cora)
    login(app, "cora")
    page = app.get(PARTICIPANT)
    assert "Awaiting confirmation" in shown(page, "eligibility-confirmation")
    assert "/confirm" not in page.text
    confirm = f"{PARTICIPANT}eligibility/{assessment.id}/confirm"
    assert app.get(confirm, expect_errors=True).status_int == 403


def test_only_the_latest_assessment_is_confirmed(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    priya = staff("priya", Role.SITE_PI, trial.site)
    participant = _consented(db_session, trial, cora)
    first = _assessed(db_session, participant, cora)
    _assessed(db_session, participant, cora, {**ELIGIBLE_ANSWERS, "other_trial": "yes"})
    with pytest.raises(ParticipantError, match="A later assessment has been recorded"):
        service(db_session).confirm_eligibility(actor(priya), participant, first, priya, PASSWORD)
    login(app, "priya")
    page = app.get(f"{PARTICIPANT}eligibility/{first.id}/confirm")
    assert "A later assessment has been recorded" in shown(page, "superseded")
    assert app.get(f"{PARTICIPANT}eligibility/x/confirm", expect_errors=True).status_int == 404


# -- what randomisation requires -------------------------------------------------------------------


def test_an_ineligible_participant_cannot_be_randomised(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    priya = staff("priya", Role.SITE_PI, trial.site)
    participant = _consented(db_session, trial, cora)
    assessment = _assessed(
        db_session, participant, cora, {**ELIGIBLE_ANSWERS, "other_trial": "yes"}
    )
    service(db_session).confirm_eligibility(actor(priya), participant, assessment, priya, PASSWORD)
    assert participant.status == ParticipantStatus.INELIGIBLE

    refusals = service(db_session).randomisation_refusals(participant)
    assert refusals == [
        "The participant is ineligible: only an eligible participant can be randomised",
        "The PI confirmed the participant is not eligible",
    ]
    with pytest.raises(ParticipantError) as refused:
        service(db_session).mark_randomised(actor(cora), participant, date(2026, 2, 12))
    assert refused.value.reasons == refusals
    assert str(refused.value).startswith("Participant DEMO-NTH-0001 cannot be randomised: ")
    assert (participant.status, participant.randomised_on) == (ParticipantStatus.INELIGIBLE, None)


def test_randomisation_needs_confirmed_eligibility_current_consent_and_an_open_site(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    priya = staff("priya", Role.SITE_PI, trial.site)
    screened = register(db_session, trial, cora)
    assert service(db_session).randomisation_refusals(screened) == [
        "The participant is screened: only an eligible participant can be randomised",
        "Eligibility has not been assessed",
        "Consent is not current: No consent has been recorded",
    ]
    unconfirmed = _consented(db_session, trial, cora)
    _assessed(db_session, unconfirmed, cora)
    assert "Eligibility has not been confirmed by the PI" in (
        service(db_session).randomisation_refusals(unconfirmed)
    )

    participant = _eligible(db_session, trial, cora, priya)
    assert service(db_session).randomisation_refusals(participant) == []
    trial.site.status = SiteStatus.SUSPENDED
    assert service(db_session).randomisation_refusals(participant) == [
        "Site NTH is suspended: only open sites can randomise"
    ]
    trial.site.status = SiteStatus.OPEN

    service(db_session).mark_randomised(actor(cora), participant, date(2026, 2, 12))
    assert (participant.status, participant.randomised_on) == (
        ParticipantStatus.RANDOMISED,
        date(2026, 2, 12),
    )
    randomised = [
        e
        for e in audit_events(db_session, "participant", participant.id)
        if e.field == "randomised_on"
    ]
    assert [e.new_value for e in randomised] == ['"2026-02-12"']
