"""The TOTP second factor: enrolment, log-in, replay refusal, required roles."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import time_machine
from sqlalchemy import select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.db import utcnow
from bhp_ctms.permissions import Role
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.functional.helpers import csrf_token, form_posting_to, login, submit_login


def _key(page):
    return page.html.find(attrs={"data-testid": "totp-key"}).text.replace(" ", "")


def _enrol(app, now):
    page = app.get("/account/security-code/set-up")
    secret = _key(page)
    form = form_posting_to(page, "/account/security-code/set-up")
    form["code"] = pyotp.TOTP(secret).at(now)
    response = form.submit()
    assert response.status_int == 303, response.text
    return secret


def _log_out(app):
    app.post("/logout", {"csrf_token": csrf_token(app)})


def _enrolled_and_logged_out(app, start):
    """Cora set up her authenticator app at ``start`` and logged out; her TOTP secret."""
    UserFactory(username="cora")
    with time_machine.travel(start, tick=False):
        login(app, "cora")
        secret = _enrol(app, start)
        _log_out(app)
    return secret


def _enter_code(app, code):
    page = app.get("/login/security-code")
    form = form_posting_to(page, "/login/security-code")
    form["code"] = code
    return form.submit(expect_errors=True)


def test_enrolled_user_logs_in_with_a_code(app, db_session):
    UserFactory(username="cora")
    start = utcnow()
    with time_machine.travel(start, tick=False):
        login(app, "cora")
        secret = _enrol(app, start)
        assert "On (authenticator app)" in app.get("/account").text
        _log_out(app)
    later = start + timedelta(minutes=2)
    with time_machine.travel(later, tick=False):
        response = submit_login(app, "cora")
        assert response.location.endswith("/login/security-code")
        # Not logged in until the code is given.
        assert app.get("/account").status_int == 302
        response = _enter_code(app, pyotp.TOTP(secret).at(later))
        assert response.status_int == 303
        assert app.get("/account").status_int == 200
    enrolled = db_session.scalars(
        select(AuditEvent).where(
            AuditEvent.action == "user.updated", AuditEvent.field == "totp_secret_encrypted"
        )
    ).one()
    # The secret itself never reaches the trail: the change is recorded as a digest.
    assert enrolled.old_value == "null" and enrolled.new.startswith("sha256:")
    assert enrolled.actor_id == enrolled.subject_user_id


def test_a_code_cannot_be_replayed(app, db_session):
    start = utcnow()
    secret = _enrolled_and_logged_out(app, start)
    later = start + timedelta(minutes=2)
    code = pyotp.TOTP(secret).at(later)
    with time_machine.travel(later, tick=False):
        submit_login(app, "cora")
        assert _enter_code(app, code).status_int == 303
        _log_out(app)
    with time_machine.travel(later + timedelta(seconds=5), tick=False):
        submit_login(app, "cora")
        replay = _enter_code(app, code)
        assert replay.status_int == 200
        assert "already been used" in replay.text
        assert app.get("/account").status_int == 302


def test_the_enrolment_code_itself_cannot_be_replayed_at_log_in(app, db_session):
    start = utcnow()
    secret = _enrolled_and_logged_out(app, start)
    with time_machine.travel(start, tick=False):
        submit_login(app, "cora")
        assert _enter_code(app, pyotp.TOTP(secret).at(start)).status_int == 200


def test_wrong_codes_count_towards_the_lock_out(app, db_session):
    start = utcnow()
    _enrolled_and_logged_out(app, start)
    with time_machine.travel(start, tick=False):
        for _ in range(10):
            submit_login(app, "cora")
            _enter_code(app, "000000")
        assert "This account is locked" in submit_login(app, "cora").text


def test_role_that_requires_a_second_factor_must_enrol_at_log_in(app, change_settings, db_session):
    user = UserFactory(username="dara")
    MembershipFactory(user=user, role=Role.DATA_MANAGER)
    change_settings(mfa_required_roles=frozenset({Role.DATA_MANAGER}))
    start = utcnow()
    with time_machine.travel(start, tick=False):
        response = submit_login(app, "dara", PASSWORD)
        assert response.location.endswith("/login/set-up-security-code")
        assert app.get("/studies/").status_int == 302
        page = app.get("/login/set-up-security-code")
        assert "Your role needs a second factor" in page.text
        form = form_posting_to(page, "/login/set-up-security-code")
        form["code"] = "123"
        refused = form.submit()
        assert "Enter the 6 digits" in refused.text
        form = form_posting_to(refused, "/login/set-up-security-code")
        form["code"] = pyotp.TOTP(_key(refused)).at(start)
        response = form.submit()
        assert response.status_int == 303
        account = app.get("/account")
        assert "Your role requires it." in account.text
        assert "Turn off" not in account.text


def test_turning_off_needs_password_and_code(app, db_session):
    UserFactory(username="cora")
    start = utcnow()
    with time_machine.travel(start, tick=False):
        login(app, "cora")
        secret = _enrol(app, start)
    later = start + timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        page = app.get("/account/security-code/turn-off")
        form = form_posting_to(page, "/account/security-code/turn-off")
        form["password"] = "wrong password!!"
        form["code"] = pyotp.TOTP(secret).at(later)
        refused = form.submit()
        assert "Your password is not right" in refused.text
        form = form_posting_to(refused, "/account/security-code/turn-off")
        form["password"] = PASSWORD
        form["code"] = pyotp.TOTP(secret).at(later)
        assert form.submit().status_int == 303
        assert "Off" in app.get("/account").text
