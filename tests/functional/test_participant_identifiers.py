"""Direct identifiers (name, date of birth, NHS number): encrypted at rest, absent
from the audit trail and the logs, seen only by staff of the participant's own site,
and matched by keyed HMAC to refuse a person registered twice."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from sqlalchemy import select, text

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.participants.identifiers import Identifiers
from bhp_ctms.participants.models import (
    IDENTIFIER_COLUMNS,
    Participant,
    ParticipantIdentifiers,
)
from bhp_ctms.participants.services import ParticipantError
from bhp_ctms.permissions import Role
from tests.factories import ParticipantFactory
from tests.functional.helpers import form_posting_to, login
from tests.functional.test_participant_registration import (
    REGISTER,
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

NAME = "Philippa Quartermaine"
BORN = date(1961, 7, 14)
NHS_NUMBER = "943 476 5919"
NHS_DIGITS = "9434765919"
# Every form in which an identifier could leak.
PLAINTEXTS = (
    NAME,
    NAME.upper(),
    "Quartermaine",
    NHS_NUMBER,
    NHS_DIGITS,
    "1961-07-14",
    "14 Jul 1961",
)
ANOTHER_VALID_NHS_NUMBER = "401 023 2137"


def _register_with_identifiers(app, nhs_number=NHS_NUMBER, name=NAME, born=BORN):
    form = form_posting_to(app.get(REGISTER), REGISTER)
    fill_date(form, "registered_on", date(2026, 2, 2))
    form["full_name"] = name
    fill_date(form, "date_of_birth", born)
    form["nhs_number"] = nhs_number
    return form.submit(expect_errors=True)


def _leaks(text_: str) -> list[str]:
    return [plaintext for plaintext in PLAINTEXTS if plaintext in text_]


def test_identifiers_are_encrypted_at_rest_and_read_back_by_the_own_site(app, db_session):
    trial = demo_trial()
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    login(app, "cora")
    response = _register_with_identifiers(app)
    assert response.status_int == 303
    page = response.follow()
    assert _leaks(flash(page)) == []

    rows = db_session.execute(text("SELECT * FROM participant_identifiers")).all()
    assert len(rows) == 1
    assert _leaks(repr(rows)) == []
    row = db_session.scalars(select(ParticipantIdentifiers)).one()
    assert row.nhs_number_hmac and row.name_dob_hmac
    assert row.full_name_encrypted.startswith("gAAAAA")  # a Fernet token

    identifiers = shown(page, "identifiers")
    assert NAME in identifiers and "14 Jul 1961" in identifiers and NHS_NUMBER in identifiers
    participant = db_session.get(Participant, row.participant_id)
    assert service(db_session).read_identifiers(participant) == Identifiers(NAME, BORN, NHS_DIGITS)


def test_identifiers_are_never_in_the_audit_trail_nor_the_logs(app, db_session, caplog):
    trial = demo_trial()
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    login(app, "cora")
    caplog.set_level(logging.DEBUG)
    assert _register_with_identifiers(app).follow().status_int == 200
    form = form_posting_to(
        app.get(f"{STUDY}/participants/DEMO-NTH-0001/identifiers"),
        f"{STUDY}/participants/DEMO-NTH-0001/identifiers",
    )
    form["full_name"] = "Philippa Quartermaine-Smith"
    assert form.submit().status_int == 303

    assert caplog.records, "the log was captured"
    assert _leaks(caplog.text) == []
    participant = db_session.scalars(select(Participant)).one()
    events = audit_events(db_session, "participant_identifiers", participant.id)
    assert {event.field for event in events} >= {
        "full_name_encrypted",
        "date_of_birth_encrypted",
        "nhs_number_encrypted",
        "nhs_number_hmac",
        "name_dob_hmac",
    }
    assert {event.action for event in events} == {
        "participant_identifiers.created",
        "participant_identifiers.updated",
    }
    assert all(
        event.new_value.startswith('"sha256:')
        for event in events
        if event.field in IDENTIFIER_COLUMNS
    )
    # Only the changed name (and the digest it is part of) was written again.
    assert sorted(e.field for e in events if e.action.endswith("updated")) == [
        "full_name_encrypted",
        "name_dob_hmac",
    ]
    everything = db_session.scalars(select(AuditEvent)).all()
    recorded = " ".join(
        f"{e.old_value} {e.new_value} {e.details_json} {e.reason}" for e in everything
    )
    assert _leaks(recorded) == []


@pytest.mark.parametrize("role", [Role.DATA_MANAGER, Role.MONITOR])
def test_study_wide_roles_see_the_participant_but_not_their_identifiers(app, db_session, role):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    register(db_session, trial, cora, identifiers=Identifiers(NAME, BORN, NHS_NUMBER))
    staff("reader", role, study=trial.study)
    login(app, "reader")
    page = app.get(f"{STUDY}/participants/DEMO-NTH-0001/")
    assert "Participant DEMO-NTH-0001" in page.text
    assert _leaks(page.text) == []
    assert page.html.find(id="identifiers") is None
    assert "/identifiers" not in page.text
    response = app.get(f"{STUDY}/participants/DEMO-NTH-0001/identifiers", expect_errors=True)
    assert response.status_int == 403
    assert _leaks(response.text) == []


def test_a_coordinator_of_another_site_gets_not_found(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    register(db_session, trial, cora, identifiers=Identifiers(NAME, BORN, NHS_NUMBER))
    staff("chidi", Role.SITE_COORDINATOR, trial.other_site)
    login(app, "chidi")
    for path in ("/", "/identifiers"):
        response = app.get(f"{STUDY}/participants/DEMO-NTH-0001{path}", expect_errors=True)
        assert response.status_int == 404
        assert _leaks(response.text) == [] and "DEMO-NTH-0001" not in response.text


def test_the_own_sites_pi_records_and_changes_identifiers(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    register(db_session, trial, cora)
    staff("priya", Role.SITE_PI, trial.site)
    login(app, "priya")
    page = app.get(f"{STUDY}/participants/DEMO-NTH-0001/")
    assert "No identifiers are recorded" in shown(page, "no-identifiers")
    identifiers_page = page.click("Record identifiers")
    form = form_posting_to(identifiers_page, f"{STUDY}/participants/DEMO-NTH-0001/identifiers")
    form["full_name"] = NAME
    form["nhs_number"] = "943 476 5918"
    fill_date(form, "date_of_birth", BORN)
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "NHS number: the check digit does not match" in error_next_to(refused, "nhs_number")
    assert "NHS number: the check digit does not match" in error_summary(refused)
    form = form_posting_to(refused, f"{STUDY}/participants/DEMO-NTH-0001/identifiers")
    assert (form["full_name"].value, form["nhs_number"].value) == (NAME, "943 476 5918")
    assert form["date_of_birth-year"].value == "1961"

    form["nhs_number"] = NHS_NUMBER
    page = form.submit().follow()
    assert "The identifiers of participant DEMO-NTH-0001 have been saved." in flash(page)
    assert NHS_NUMBER in shown(page, "identifiers")

    unchanged = page.click("Change identifiers")
    form = form_posting_to(unchanged, f"{STUDY}/participants/DEMO-NTH-0001/identifiers")
    assert form["nhs_number"].value == NHS_NUMBER
    assert "were not changed" in flash(form.submit().follow())

    form["nhs_number"] = ""
    page = form.submit().follow()
    assert "Not recorded" in shown(page, "identifiers")
    participant = db_session.scalars(select(Participant)).one()
    assert service(db_session).read_identifiers(participant) == Identifiers(NAME, BORN, None)


def test_an_nhs_number_registered_before_is_refused(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    chidi = staff("chidi", Role.SITE_COORDINATOR, trial.other_site)
    register(db_session, trial, cora, identifiers=Identifiers(nhs_number=NHS_NUMBER))
    register(db_session, trial, cora)
    register(db_session, trial, cora, identifiers=Identifiers(nhs_number="9434765870"))
    login(app, "cora")
    page = _register_with_identifiers(app, nhs_number="9434765870", name="Someone Else")
    assert page.status_int == 400
    assert (
        "A participant with this NHS number is already registered in this study: DEMO-NTH-0003"
        in error_next_to(page, "nhs_number")
    )

    # Another site's participant is never named.
    with pytest.raises(ParticipantError) as refused:
        service(db_session).register(
            actor(chidi),
            trial.other_site,
            registered_on=date(2026, 2, 2),
            is_child=False,
            identifiers=Identifiers(nhs_number=NHS_DIGITS),
        )
    assert str(refused.value) == (
        "A participant with this NHS number is already registered in this study at another site"
    )
    assert refused.value.field == "nhs_number"


def test_a_name_and_date_of_birth_seen_before_needs_confirming(app, db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    register(db_session, trial, cora, identifiers=Identifiers(NAME, BORN))
    login(app, "cora")
    page = _register_with_identifiers(
        app, nhs_number="", name="  philippa   QUARTERMAINE ", born=BORN
    )
    assert page.status_int == 400
    message = error_next_to(page, "confirm_not_duplicate")
    assert "A participant with this name and date of birth is already registered" in message
    assert "DEMO-NTH-0001" in message
    form = form_posting_to(page, REGISTER)
    form["confirm_not_duplicate"] = True
    response = form.submit()
    assert response.status_int == 303
    assert response.location.endswith("/participants/DEMO-NTH-0002/")


def test_a_child_is_registered_with_a_date_of_birth(app, db_session):
    trial = demo_trial(children=True)
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    login(app, "cora")
    form = form_posting_to(app.get(REGISTER), REGISTER)
    fill_date(form, "registered_on", date(2026, 2, 2))
    form["is_child"] = "yes"
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "Enter the child's date of birth" in error_next_to(refused, "date_of_birth")

    form = form_posting_to(refused, REGISTER)
    assert form["is_child"].value == "yes"
    fill_date(form, "date_of_birth", date(2011, 4, 3))
    page = form.submit().follow()
    assert shown(page, "participant-is_child") == "Yes"
    assert db_session.scalars(select(Participant)).one().is_child


def test_ages_must_agree_with_child_or_adult(db_session):
    trial = demo_trial(children=True)
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    with pytest.raises(ParticipantError, match="16 or over on 2 Feb 2026: register them as an"):
        register(db_session, trial, cora, is_child=True, identifiers=Identifiers(None, BORN))
    with pytest.raises(ParticipantError, match="under 16 on 2 Feb 2026: register them as a child"):
        register(db_session, trial, cora, identifiers=Identifiers(None, date(2012, 1, 1)))


def test_a_study_of_adults_registers_no_child(db_session):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    with pytest.raises(ParticipantError, match="This study does not recruit children"):
        register(db_session, trial, cora, is_child=True, identifiers=Identifiers(None, BORN))
    with pytest.raises(ParticipantError, match="this study does not recruit children"):
        register(db_session, trial, cora, identifiers=Identifiers(None, date(2012, 1, 1)))


def test_identifiers_of_a_participant_made_elsewhere_are_site_scoped(app, db_session):
    trial = demo_trial()
    participant = ParticipantFactory(site=trial.other_site)
    staff("cora", Role.SITE_COORDINATOR, trial.site)
    login(app, "cora")
    response = app.get(f"{STUDY}/participants/{participant.code}/identifiers", expect_errors=True)
    assert response.status_int == 404
