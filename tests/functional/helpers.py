"""Driving the application as a person would: through its pages."""

from __future__ import annotations

from typing import Any

from webtest import TestApp

from bhp_ctms.sessions import COOKIE_NAME
from tests.factories import PASSWORD


def submit_login(app: TestApp, username: str, password: str = PASSWORD) -> Any:
    page = app.get("/login")
    form = form_posting_to(page, "/login")
    form["username"] = username
    form["password"] = password
    return form.submit(expect_errors=True)


def login(app: TestApp, username: str, password: str = PASSWORD) -> Any:
    """Log in and return the dashboard."""
    response = submit_login(app, username, password)
    assert response.status_int == 303, response.text
    return response.follow()


def session_cookie(app: TestApp) -> str | None:
    return app.cookies.get(COOKIE_NAME)


def csrf_token(app: TestApp, path: str = "/account") -> str:
    page = app.get(path)
    return page.html.find("input", {"name": "csrf_token"})["value"]


def form_posting_to(page: Any, action: str) -> Any:
    """The form on a page that posts to ``action`` (pages also carry the log-out form)."""
    for form in page.forms.values():
        if form.action == action:
            return form
    raise AssertionError(f"no form posting to {action} on {page.request.path}")
