"""Server-side sessions: cookie attributes, time-outs and revocation."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from bhp_ctms.accounts.services import AccountService
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.sessions import UserSession, hash_token
from tests.factories import UserFactory
from tests.functional.helpers import login, session_cookie


def _age_session(db_session, token, *, idle=timedelta(0), age=timedelta(0)):
    record = db_session.get(UserSession, hash_token(token))
    db_session.execute(
        update(UserSession)
        .where(UserSession.token_hash == record.token_hash)
        .values(last_seen_at=record.last_seen_at - idle, created_at=record.created_at - age)
    )
    db_session.flush()


def test_session_cookie_is_http_only_and_same_site_lax(app, db_session):
    response = app.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_session_cookie_is_secure_when_configured(make_app, db_session):
    response = make_app(cookie_secure=True).get("/login")
    assert "; secure" in response.headers["Set-Cookie"].lower()


def test_idle_session_expires_after_thirty_minutes(app, db_session):
    UserFactory(username="cora")
    login(app, "cora")
    token = session_cookie(app)
    _age_session(db_session, token, idle=timedelta(minutes=29))
    assert app.get("/account").status_int == 200
    _age_session(db_session, token, idle=timedelta(minutes=31))
    response = app.get("/account")
    assert response.status_int == 302
    page = response.follow()
    assert "Your session ended because it was idle or open too long" in page.text
    app.set_cookie("bhp_ctms_session", token)
    assert app.get("/account").status_int == 302


def test_session_expires_after_twelve_hours_even_when_active(app, db_session):
    UserFactory(username="cora")
    login(app, "cora")
    token = session_cookie(app)
    _age_session(db_session, token, age=timedelta(hours=12, minutes=1))
    assert app.get("/account").status_int == 302


def test_disabling_a_user_ends_their_sessions(app, make_app, db_session):
    user = UserFactory(username="cora")
    login(app, "cora")
    second = make_app()
    login(second, "cora")
    ended = AccountService(db_session, app.app.registry.settings["bhp_ctms"]).set_active(
        AuditActor(user_id=None, name="CTU admin"), user, False, reason="left the unit"
    )
    db_session.flush()
    assert ended == 2
    assert app.get("/account").status_int == 302
    assert second.get("/account").status_int == 302


def test_forged_session_cookie_is_ignored(app, db_session):
    app.set_cookie("bhp_ctms_session", "made-up-token")
    response = app.get("/account")
    assert response.status_int == 302
