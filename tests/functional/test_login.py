"""Logging in and out, lock-out, and the events they leave in the audit trail."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.db import utcnow
from bhp_ctms.sessions import UserSession, hash_token
from tests.factories import PASSWORD, UserFactory
from tests.functional.helpers import (
    csrf_token,
    form_posting_to,
    login,
    session_cookie,
    submit_login,
)


def _actions(db_session, username=None):
    events = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    return [e.action for e in events]


def test_anonymous_visitor_is_sent_to_log_in_and_back(app, db_session):
    UserFactory(username="cora")
    response = app.get("/account")
    assert response.status_int == 302
    assert "/login?next=%2Faccount" in response.location
    page = response.follow()
    form = page.forms[0]
    form["username"] = "cora"
    form["password"] = PASSWORD
    response = form.submit()
    assert response.location.endswith("/account")


def test_log_in_shows_dashboard_and_records_the_event(app, db_session):
    user = UserFactory(username="cora", full_name="Cora Coordinator")
    dashboard = login(app, "Cora ")  # names are not case- or space-sensitive
    assert "Your studies" in dashboard.text
    assert "Cora Coordinator" in dashboard.text
    event = db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "login.succeeded")
    ).one()
    assert event.actor_id == user.id
    assert event.actor_name == "Cora Coordinator"
    assert event.client_addr == "192.0.2.10"


def test_next_parameter_cannot_redirect_off_site(app, db_session):
    UserFactory(username="cora")
    page = app.get("/login?next=//evil.example/")
    form = page.forms[0]
    form["username"] = "cora"
    form["password"] = PASSWORD
    response = form.submit()
    assert response.location.endswith("/studies/")


def test_session_identifier_is_rotated_at_log_in(app, db_session):
    UserFactory(username="cora")
    app.get("/login")
    before = session_cookie(app)
    assert before is not None
    login(app, "cora")
    after = session_cookie(app)
    assert after is not None and after != before
    # The identifier known before log-in is worth nothing after it.
    assert db_session.get(UserSession, hash_token(before)) is None
    app.set_cookie("bhp_ctms_session", before)
    assert app.get("/account").status_int == 302


def test_wrong_password_keeps_the_user_name_and_explains(app, db_session):
    UserFactory(username="cora")
    response = submit_login(app, "cora", "not the password at all")
    assert response.status_int == 200
    assert "There is a problem" in response.text
    assert "The user name or password is not right" in response.text
    assert response.forms[0]["username"].value == "cora"
    assert response.forms[0]["password"].value == ""
    assert "login.failed" in _actions(db_session)


def test_empty_fields_are_named_in_the_error_summary(app, db_session):
    response = submit_login(app, "", "")
    assert 'href="#username"' in response.text
    assert "Enter your user name" in response.text
    assert 'href="#password"' in response.text


def test_account_locks_at_the_eleventh_attempt(app, db_session):
    UserFactory(username="cora")
    for attempt in range(1, 10):
        response = submit_login(app, "cora", f"wrong guess {attempt}")
        assert "The user name or password is not right" in response.text
    tenth = submit_login(app, "cora", "wrong guess 10")
    assert "This account is locked" in tenth.text
    eleventh = submit_login(app, "cora", PASSWORD)
    assert eleventh.status_int == 200
    assert "This account is locked" in eleventh.text
    assert app.get("/account").status_int == 302
    actions = _actions(db_session)
    assert actions.count("login.failed") == 10
    assert actions.count("account.locked") == 1
    assert "login.succeeded" not in actions


def test_lock_ends_after_its_duration(app, db_session):
    UserFactory(username="cora")
    start = utcnow()
    with time_machine.travel(start, tick=False):
        for attempt in range(10):
            submit_login(app, "cora", f"wrong guess {attempt}")
    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        assert "This account is locked" in submit_login(app, "cora", PASSWORD).text
    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        assert submit_login(app, "cora", PASSWORD).status_int == 303


def test_failures_spread_over_more_than_five_minutes_do_not_lock(app, db_session):
    UserFactory(username="cora")
    start = utcnow()
    for attempt in range(10):
        with time_machine.travel(start + timedelta(seconds=40 * attempt), tick=False):
            submit_login(app, "cora", f"wrong guess {attempt}")
    with time_machine.travel(start + timedelta(seconds=400), tick=False):
        assert submit_login(app, "cora", PASSWORD).status_int == 303


def test_unknown_user_names_lock_exactly_like_real_ones(app, db_session):
    UserFactory(username="cora")
    replies = {}
    for username in ("cora", "nobody"):
        texts = [submit_login(app, username, f"guess {n}").text for n in range(11)]
        replies[username] = ["locked" in text for text in texts]
    # The same replies, so the lock-out does not reveal which accounts exist.
    assert replies["cora"] == replies["nobody"]


def test_disabled_user_cannot_log_in(app, db_session):
    UserFactory(username="cora", is_active=False)
    response = submit_login(app, "cora")
    assert "This account has been disabled" in response.text
    wrong = submit_login(app, "cora", "wrong password here")
    assert "disabled" not in wrong.text


def test_log_out_ends_the_session(app, db_session):
    UserFactory(username="cora")
    login(app, "cora")
    old = session_cookie(app)
    response = app.post("/logout", {"csrf_token": csrf_token(app)})
    assert response.status_int == 303
    page = response.follow()
    assert "You have logged out." in page.text
    assert db_session.get(UserSession, hash_token(old)) is None
    assert "logout" in _actions(db_session)
    assert app.get("/account").status_int == 302


def test_password_change_ends_other_sessions(app, make_app, db_session):
    UserFactory(username="cora", full_name="Cora Coordinator")
    login(app, "cora")
    other_device = make_app()
    login(other_device, "cora")
    page = app.get("/account/password")
    form = form_posting_to(page, "/account/password")
    form["current_password"] = PASSWORD
    form["new_password"] = "tundra-lantern-periwinkle-oboe"
    form["confirm_password"] = "tundra-lantern-periwinkle-oboe"
    response = form.submit()
    assert response.status_int == 303
    assert "Your password has been changed." in response.follow().text
    assert other_device.get("/account").status_int == 302
    assert app.get("/account").status_int == 200
    assert submit_login(make_app(), "cora", "tundra-lantern-periwinkle-oboe").status_int == 303


def test_weak_new_passwords_are_refused_with_reasons(app, db_session):
    UserFactory(username="cora", full_name="Cora Coordinator")
    login(app, "cora")
    for candidate, message in [
        ("short", "at least 12 characters"),
        ("password1234", "most common passwords"),
        ("cora-cora-cora-1", "must not contain your user name"),
        ("aaaaaaaaaaaaaaaa", "easy to guess"),
    ]:
        page = app.get("/account/password")
        form = form_posting_to(page, "/account/password")
        form["current_password"] = PASSWORD
        form["new_password"] = candidate
        form["confirm_password"] = candidate
        response = form.submit()
        assert response.status_int == 200
        assert message in response.text, candidate
