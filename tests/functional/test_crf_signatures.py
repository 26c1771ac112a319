"""Signing CRFs through the pages: the site PI sees what they sign, their printed name
and role, chooses a meaning and re-enters their password (and security code); a
signature is shown valid until the signed data change, then invalid with the reason;
only the site's own PI signs."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
import time_machine
from sqlalchemy import func, select

from bhp_ctms.accounts.models import LoginAttempt, LoginOutcome
from bhp_ctms.accounts.services import AccountService
from bhp_ctms.crf.models import FormStatus, Signature, SignatureMeaning
from bhp_ctms.db import utcnow
from bhp_ctms.permissions import Role
from tests.conftest import make_settings
from tests.factories import PASSWORD, ParticipantFactory
from tests.functional.helpers import csrf_token, form_posting_to, login, submit_login
from tests.functional.test_participant_registration import (
    STUDY,
    demo_trial,
    error_next_to,
    error_summary,
    flash,
    shown,
    staff,
)
from tests.unit.crf.test_signatures import change_value, form_entry

PARTICIPANT_CODE = "DEMO-NTH-0001"
CASEBOOK_SIGN = f"{STUDY}/participants/{PARTICIPANT_CODE}/sign"
FORM_PAGE = f"{STUDY}/participants/{PARTICIPANT_CODE}/events/baseline/1/forms/vitals"


def sign_path(entry) -> str:
    return f"{STUDY}/entries/{entry.id}/sign"


def _signing_set_up(db_session, *, pi_site="own"):
    trial = demo_trial()
    cora = staff("cora", Role.SITE_COORDINATOR, trial.site)
    priya = staff("priya", Role.SITE_PI, trial.site if pi_site == "own" else trial.other_site)
    priya.full_name = "Dr Priya Shah"
    participant = ParticipantFactory(site=trial.site)
    entry = form_entry(db_session, participant, by=cora)
    return trial, cora, priya, participant, entry


def _signatures(db_session) -> int:
    return db_session.scalar(select(func.count(Signature.id))) or 0


def _states(page) -> list[str]:
    return [
        state.get_text(strip=True)
        for state in page.html.find_all(attrs={"data-testid": "signature-state"})
    ]


def test_signing_without_the_right_password_is_refused_then_the_pi_signs(app, db_session):
    _, _, priya, _, entry = _signing_set_up(db_session)
    login(app, "priya")
    page = app.get(sign_path(entry))
    assert shown(page, "signed-title") == "Vital signs at Baseline (randomisation)"
    assert shown(page, "signed-value-weight") == "Weight 72.5 kg"
    assert shown(page, "signed-value-readings[1].sbp") == (
        "Systolic (row 1 of Blood pressure readings) 120 mmHg"
    )
    assert shown(page, "signer-name") == "Dr Priya Shah"
    assert shown(page, "signer-role") == "Site PI"
    assert shown(page, "no-signatures") == "Not signed."
    assert "code" not in form_posting_to(page, sign_path(entry)).fields

    # No password at all, then a wrong one: refused, the chosen meaning kept.
    form = form_posting_to(page, sign_path(entry))
    form["meaning"] = "approved"
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "Enter your password to sign" in error_next_to(refused, "password")
    form = form_posting_to(refused, sign_path(entry))
    assert form["meaning"].value == "approved"
    form["password"] = "not my password"
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "Your password is not right: nothing was signed" in error_next_to(refused, "password")
    assert "Your password is not right" in error_summary(refused)
    form = form_posting_to(refused, sign_path(entry))
    assert form["meaning"].value == "approved"
    assert form["password"].value == ""
    db_session.expire_all()
    assert _signatures(db_session) == 0
    assert entry.status == FormStatus.COMPLETE
    # The failed attempt counts towards the lock-out, as a failed log-in does.
    outcomes = db_session.scalars(
        select(LoginAttempt.outcome).where(LoginAttempt.user_id == priya.id)
    ).all()
    assert LoginOutcome.BAD_PASSWORD in outcomes

    form["password"] = PASSWORD
    response = form.submit()
    assert response.status_int == 303
    assert response.location.endswith(FORM_PAGE)
    db_session.expire_all()
    signature = db_session.scalars(select(Signature)).one()
    assert (signature.signer_name, signature.signer_role, signature.meaning) == (
        "Dr Priya Shah",
        "Site PI",
        SignatureMeaning.APPROVED,
    )
    assert entry.status == FormStatus.SIGNED

    page = app.get(sign_path(entry))
    assert "You have signed Vital signs at Baseline (randomisation)" in flash(page)
    assert _states(page) == ["VALID"]
    assert shown(page, "signer") == "Dr Priya Shah, Site PI"
    assert shown(page, "meaning") == SignatureMeaning.APPROVED.label
    assert shown(page, "signed-at").endswith("UTC")


def test_a_signed_form_changed_afterwards_shows_its_signature_invalid(app, db_session):
    _, cora, _, _, entry = _signing_set_up(db_session)
    cora.full_name = "Cora Jones"
    db_session.flush()
    login(app, "priya")
    form = form_posting_to(app.get(sign_path(entry)), sign_path(entry))
    form["meaning"] = "reviewed"
    form["password"] = PASSWORD
    assert form.submit().status_int == 303

    db_session.expire_all()
    change_value(db_session, entry, "weight", "74.0", by=cora)

    for path in (sign_path(entry), FORM_PAGE):
        page = app.get(path)
        assert _states(page) == ["INVALID"], path
        problem = shown(page, "signature-problem")
        assert problem.startswith("Invalidated on ")
        assert "because Weight changed on " in problem
        assert problem.endswith("by Cora Jones.")
    db_session.expire_all()
    assert entry.status == FormStatus.COMPLETE
    # It can be signed again, over the new content.
    form = form_posting_to(app.get(sign_path(entry)), sign_path(entry))
    form["meaning"] = "reviewed"
    form["password"] = PASSWORD
    assert form.submit().status_int == 303
    assert _states(app.get(sign_path(entry))) == ["VALID", "INVALID"]


def test_a_form_changed_while_the_pi_reads_it_is_not_signed(app, db_session):
    _, cora, _, _, entry = _signing_set_up(db_session)
    login(app, "priya")
    page = app.get(sign_path(entry))
    change_value(db_session, entry, "height", "181", by=cora)
    form = form_posting_to(page, sign_path(entry))
    form["meaning"] = "reviewed"
    form["password"] = PASSWORD
    refused = form.submit(expect_errors=True)
    assert refused.status_int == 400
    assert "The form changed while you were reading it" in error_summary(refused)
    assert shown(refused, "signed-value-height") == "Height 181 cm"
    assert _signatures(db_session) == 0

    form = form_posting_to(refused, sign_path(entry))
    assert form["meaning"].value == "reviewed"
    form["password"] = PASSWORD
    assert form.submit().status_int == 303


def test_a_pi_with_a_second_factor_signs_with_a_fresh_code(app, db_session):
    _, _, priya, _, entry = _signing_set_up(db_session)
    secret = pyotp.random_base32()
    settings = make_settings("sqlite://")
    priya.totp_secret_encrypted = AccountService(db_session, settings).encrypt_totp_secret(secret)
    db_session.flush()
    totp = pyotp.TOTP(secret)
    now = utcnow()
    with time_machine.travel(now, tick=False):
        submit_login(app, "priya")
        page = app.get("/login/security-code")
        code_form = form_posting_to(page, "/login/security-code")
        code_form["code"] = totp.at(now - timedelta(seconds=30))
        assert code_form.submit().status_int == 303

        page = app.get(sign_path(entry))
        form = form_posting_to(page, sign_path(entry))
        form["meaning"] = "responsible"
        form["password"] = PASSWORD
        refused = form.submit(expect_errors=True)
        assert "Enter the security code from your authenticator app" in error_next_to(
            refused, "code"
        )
        form = form_posting_to(refused, sign_path(entry))
        form["password"] = PASSWORD
        form["code"] = totp.at(now - timedelta(seconds=30))  # used at log-in
        refused = form.submit(expect_errors=True)
        assert refused.status_int == 400
        assert "already been used: nothing was signed" in error_next_to(refused, "code")
        form = form_posting_to(refused, sign_path(entry))
        assert (form["code"].value, form["password"].value) == ("", "")
        assert _signatures(db_session) == 0

        form["password"] = PASSWORD
        form["code"] = totp.at(now)
        assert form.submit().status_int == 303
    db_session.expire_all()
    assert db_session.scalars(select(Signature)).one().meaning == SignatureMeaning.RESPONSIBLE


def test_the_pi_signs_a_casebook_once_every_form_is_complete(app, db_session):
    _, cora, _, participant, baseline = _signing_set_up(db_session)
    week_2 = form_entry(db_session, participant, by=cora, event="week_2")
    week_6 = form_entry(
        db_session, participant, by=cora, event="week_6", status=FormStatus.IN_PROGRESS
    )
    login(app, "priya")
    page = app.get(CASEBOOK_SIGN)
    problem = shown(page, "signing-problem")
    assert "cannot be signed while forms are in progress" in problem
    assert "Vital signs at Week 6 visit" in problem
    assert len(page.html.find_all(attrs={"data-testid": "signed-form"})) == 3
    assert not [form for form in page.forms.values() if form.action == CASEBOOK_SIGN]
    refused = app.post(
        CASEBOOK_SIGN,
        {"csrf_token": csrf_token(app, CASEBOOK_SIGN), "meaning": "reviewed", "password": PASSWORD},
        expect_errors=True,
    )
    assert refused.status_int == 400
    assert "Vital signs at Week 6 visit" in error_summary(refused)
    assert _signatures(db_session) == 0

    week_6.status = FormStatus.COMPLETE
    db_session.flush()
    form = form_posting_to(app.get(CASEBOOK_SIGN), CASEBOOK_SIGN)
    form["meaning"] = "responsible"
    form["password"] = PASSWORD
    response = form.submit()
    assert response.location.endswith(f"{STUDY}/participants/{PARTICIPANT_CODE}/")
    page = app.get(CASEBOOK_SIGN)
    assert "You have signed the casebook of participant DEMO-NTH-0001." in flash(page)
    assert _states(page) == ["VALID"]
    db_session.expire_all()
    assert {entry.status for entry in (baseline, week_2, week_6)} == {FormStatus.SIGNED}
    # The casebook signature shows on each of its forms' pages.
    assert _states(app.get(FORM_PAGE)) == ["VALID"]

    change_value(db_session, week_2, "smoker", "1", by=cora)
    page = app.get(CASEBOOK_SIGN)
    assert _states(page) == ["INVALID"]
    assert "Current smoker on Vital signs at Week 2 visit changed on" in shown(
        page, "signature-problem"
    )
    db_session.expire_all()
    assert (baseline.status, week_2.status) == (FormStatus.COMPLETE, FormStatus.COMPLETE)


@pytest.mark.parametrize("role", [Role.MONITOR, Role.SITE_COORDINATOR, Role.DATA_MANAGER])
def test_only_the_pi_may_sign(app, db_session, role):
    trial, _, _, _, entry = _signing_set_up(db_session)
    if role == Role.SITE_COORDINATOR:
        staff("someone", role, trial.site)
    else:
        staff("someone", role, study=trial.study)
    login(app, "someone")
    for path in (sign_path(entry), CASEBOOK_SIGN):
        assert app.get(path, expect_errors=True).status_int == 403
        posted = {"csrf_token": csrf_token(app), "meaning": "reviewed", "password": PASSWORD}
        assert app.post(path, posted, expect_errors=True).status_int == 403
    assert _signatures(db_session) == 0


def test_the_pi_of_another_site_does_not_find_this_sites_forms(app, db_session):
    _, _, _, _, entry = _signing_set_up(db_session, pi_site="other")
    login(app, "priya")
    for path in (sign_path(entry), CASEBOOK_SIGN):
        assert app.get(path, expect_errors=True).status_int == 404
        posted = {"csrf_token": csrf_token(app), "meaning": "reviewed", "password": PASSWORD}
        assert app.post(path, posted, expect_errors=True).status_int == 404
    assert _signatures(db_session) == 0
