"""Walks every registered route: permissions, CSRF and security headers.

These tests read the routes from the running application, so a route added later
is checked without anyone remembering to list it here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from bhp_ctms.crf.models import Query, QueryOrigin
from bhp_ctms.headers import CONTENT_SECURITY_POLICY
from bhp_ctms.permissions import AUTHENTICATED_PERMISSIONS, Permissions, Role
from tests.factories import (
    MembershipFactory,
    ParticipantFactory,
    SiteFactory,
    StudyFactory,
    UserFactory,
)
from tests.factories.crf import form_entry, store_form_version
from tests.functional.helpers import csrf_token, login

# Routes anyone may reach without logging in: the log-in steps, health, static files.
PUBLIC_ROUTES = {"login", "login_second_factor", "login_enrol", "healthz", "__static/"}
NO_PERMISSION = "__no_permission_required__"


@dataclass(frozen=True)
class RouteView:
    route_name: str
    pattern: str
    methods: tuple[str, ...]
    permission: str | None


def _methods(request_methods) -> tuple[str, ...]:
    """A view's methods: ``request_method`` may be one name, several, or none (any)."""
    if not request_methods:
        return ("GET", "POST")
    if isinstance(request_methods, str):
        return (request_methods,)
    return tuple(request_methods)


def route_views(registry) -> list[RouteView]:
    introspector = registry.introspector
    patterns = {
        r["introspectable"]["name"]: r["introspectable"]["pattern"]
        for r in introspector.get_category("routes")
    }
    found = []
    for entry in introspector.get_category("views"):
        view = entry["introspectable"]
        if view["route_name"] is None:
            continue  # exception, forbidden and not-found views belong to no route
        permissions = [
            r.discriminator for r in entry["related"] if r.category_name == "permissions"
        ]
        found.append(
            RouteView(
                route_name=view["route_name"],
                pattern=patterns[view["route_name"]],
                methods=_methods(view["request_methods"]),
                permission=permissions[0] if permissions else None,
            )
        )
    return found


def url_for(
    pattern: str,
    study_code: str,
    site_code: str = "NOSITE",
    participant: str = "NOPART",
    entry: int = 1,
    query: int = 1,
) -> str:
    path = (
        pattern.replace("{code}", study_code)
        .replace("{site}", site_code)
        .replace("{membership}", "1")
        .replace("{participant}", participant)
        .replace("{assessment}", "1")
        .replace("{event}", "baseline")
        .replace("{instance}", "1")
        .replace("{version}", "1")
        .replace("{form}", "vitals")
        .replace("{entry}", str(entry))
        .replace("{query}", str(query))
        .replace("*subpath", "css/app.css")
    )
    assert "{" not in path, f"add a value for the placeholders of {pattern}"
    return path if path.startswith("/") else "/" + path


def test_every_route_view_names_a_permission(app):
    views = route_views(app.app.registry)
    assert views, "no routes were found"
    known = {p.value for p in Permissions}
    for view in views:
        assert view.permission is not None, f"{view.route_name} has no permission"
        if view.route_name in PUBLIC_ROUTES:
            assert view.permission == NO_PERMISSION, view
        else:
            assert view.permission in known, f"{view.route_name}: {view.permission}"


def test_every_route_is_reached_by_the_walk(app):
    names = {view.route_name for view in route_views(app.app.registry)}
    registered = {
        r["introspectable"]["name"] for r in app.app.registry.introspector.get_category("routes")
    }
    assert names == registered, f"routes without any view: {registered - names}"


def test_user_without_membership_gets_403_or_404_beyond_their_own_pages(app, db_session):
    study = StudyFactory(code="OTHER")
    site = SiteFactory(study=study)
    UserFactory(username="nobody")
    login(app, "nobody")
    own_pages = {p.value for p in AUTHENTICATED_PERMISSIONS}
    checked = 0
    for view in route_views(app.app.registry):
        if view.route_name in PUBLIC_ROUTES or view.permission in own_pages:
            continue
        for method in view.methods:
            path = url_for(view.pattern, study.code, site.code)
            if method == "GET":
                response = app.get(path, expect_errors=True)
            else:
                response = app.post(path, {"csrf_token": csrf_token(app)}, expect_errors=True)
            assert response.status_int in (403, 404), (view, method, response.status)
            checked += 1
    assert checked > 0


def test_signed_in_users_own_pages_show_no_study_they_are_not_in(app, db_session):
    StudyFactory(code="SECRET", title="A study nobody here is in")
    UserFactory(username="nobody")
    dashboard = login(app, "nobody")
    assert "You have no role in any study yet" in dashboard.text
    assert "SECRET" not in dashboard.text
    assert "SECRET" not in app.get("/account").text
    assert app.get("/studies/switch?study=SECRET").location.endswith("/studies/")


def test_site_staff_see_only_their_own_sites(app, db_session):
    study = StudyFactory(code="TWO")
    site_a = SiteFactory(study=study, code="AAA", name="Site Alpha")
    SiteFactory(study=study, code="BBB", name="Site Beta")
    coordinator = UserFactory(username="cora")
    MembershipFactory(
        user=coordinator, role=Role.SITE_COORDINATOR, study_id=study.id, site_id=site_a.id
    )
    dashboard = login(app, "cora")
    assert "Site Alpha" in dashboard.text and "Site Beta" not in dashboard.text
    page = app.get("/studies/TWO/")
    assert "Site Alpha" in page.text and "Site Beta" not in page.text


def test_anonymous_requests_are_sent_to_log_in(app, db_session):
    study = StudyFactory(code="ANON")
    participant = ParticipantFactory(site=SiteFactory(study=study))
    for view in route_views(app.app.registry):
        if view.route_name in PUBLIC_ROUTES or "GET" not in view.methods:
            continue
        path = url_for(view.pattern, study.code, participant.site.code, participant.code)
        response = app.get(path, expect_errors=True)
        assert response.status_int == 302 and "/login" in response.location, view


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_no_route_accepts_a_post_without_the_csrf_token(app, db_session, token):
    study = StudyFactory(code="CSRF")
    participant = ParticipantFactory(site=SiteFactory(study=study))
    # Every role, so that no permission check answers before the CSRF check does.
    admin = UserFactory(username="admin")
    for role in Role:
        MembershipFactory(user=admin, role=role)
        MembershipFactory(user=admin, role=role, study_id=study.id, site_id=participant.site.id)
    entry = form_entry(participant, store_form_version(study.id), {"weight": "70"})
    query = Query(entry=entry, item_path="weight", origin=QueryOrigin.MANUAL, text="Check.")
    db_session.add(query)
    db_session.flush()
    login(app, "admin")
    posted = 0
    for view in route_views(app.app.registry):
        if "POST" not in view.methods or view.route_name == "__static/":
            continue
        params = {} if token is None else {"csrf_token": token}
        path = url_for(
            view.pattern, study.code, participant.site.code, participant.code, entry.id, query.id
        )
        response = app.post(path, params, expect_errors=True)
        assert response.status_int == 400, (view, response.status)
        assert "This form has expired" in response.text
        posted += 1
    assert posted > 0
    # Still logged in: the log-out form without its token did nothing.
    assert app.get("/account").status_int == 200


def test_log_in_form_also_needs_its_csrf_token(app, db_session):
    UserFactory(username="cora")
    response = app.post("/login", {"username": "cora", "password": "x"}, expect_errors=True)
    assert response.status_int == 400


EXPECTED_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _assert_security_headers(response, hsts=False):
    for name, value in EXPECTED_HEADERS.items():
        assert response.headers.get(name) == value, (response.request.path, name)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert not re.search(r"script-src[^;]*'unsafe-inline'", CONTENT_SECURITY_POLICY)
    assert ("Strict-Transport-Security" in response.headers) is hsts


def test_every_response_carries_the_security_headers(app, db_session):
    UserFactory(username="cora")
    responses = [
        app.get("/login"),
        app.get("/healthz", expect_errors=True),
        app.get("/static/css/app.css", expect_errors=True),
        app.get("/no/such/page", expect_errors=True),
        app.get("/account"),  # redirect to log-in
        app.post("/logout", expect_errors=True),  # CSRF failure
    ]
    responses.append(login(app, "cora"))
    responses.append(app.get("/studies/NOPE/", expect_errors=True))
    for response in responses:
        _assert_security_headers(response)
    assert app.get("/studies/").headers["Cache-Control"] == "no-store"


def test_hsts_is_sent_when_configured(make_app, db_session):
    _assert_security_headers(make_app(hsts=True).get("/login"), hsts=True)
