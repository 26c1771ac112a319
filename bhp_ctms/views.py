"""Pages that belong to no domain: home, health check and error pages."""

from __future__ import annotations

import logging
from typing import Any

from kombu import Connection
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPBadRequest, HTTPFound
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.view import (
    exception_view_config,
    forbidden_view_config,
    notfound_view_config,
    view_config,
)
from sqlalchemy import text

from bhp_ctms.permissions import Permissions

log = logging.getLogger(__name__)

BROKER_CHECK_TIMEOUT_SECONDS = 2


@view_config(route_name="home", permission=Permissions.STUDIES_LIST)
def home(request: Any) -> HTTPFound:
    return HTTPFound(request.route_url("dashboard"))


@view_config(route_name="healthz", renderer="json", permission=NO_PERMISSION_REQUIRED)
def healthz(request: Any) -> dict[str, Any]:
    """Database and broker reachability for load balancers and monitoring; no secrets."""
    checks = {"database": _check_database(request), "broker": _check_broker(request)}
    healthy = all(check["ok"] for check in checks.values())
    request.response.status_int = 200 if healthy else 503
    return {"status": "ok" if healthy else "unavailable", **checks}


def _check_database(request: Any) -> dict[str, Any]:
    try:
        with request.registry["sqlalchemy.engine"].connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        log.warning("health check: database unreachable: %s", error)
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True}


def _check_broker(request: Any) -> dict[str, Any]:
    try:
        with Connection(request.registry.settings["bhp_ctms"].broker_url) as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_CHECK_TIMEOUT_SECONDS)
    except Exception as error:
        log.warning("health check: broker unreachable: %s", error)
        return {"ok": False, "error": type(error).__name__}
    return {"ok": True}


@forbidden_view_config(renderer="errors/403.html")
def forbidden(request: Any) -> Any:
    if request.identity is None:
        query = {"next": request.path_qs} if request.method == "GET" else {}
        if request.session.expired:
            query["expired"] = "1"
        return HTTPFound(request.route_url("login", _query=query))
    request.response.status_int = 403
    return {}


@notfound_view_config(renderer="errors/404.html", append_slash=HTTPFound)
def not_found(request: Any) -> dict[str, Any]:
    request.response.status_int = 404
    return {}


@exception_view_config(BadCSRFToken, renderer="errors/csrf.html")
def bad_csrf_token(request: Any) -> dict[str, Any]:
    request.response.status_int = HTTPBadRequest.code
    return {}


# Not for errors pyramid_retry will replay (on the last attempt they are not retryable
# any more, so the page is shown then).
@exception_view_config(Exception, renderer="errors/500.html", retryable_error=False)
def server_error(request: Any) -> dict[str, Any]:
    log.exception("unhandled error on %s", request.path, exc_info=request.exc_info)
    request.response.status_int = 500
    return {"request_id": request.request_id}


def includeme(config: Any) -> None:
    config.add_route("home", "/")
    config.add_route("healthz", "/healthz")
