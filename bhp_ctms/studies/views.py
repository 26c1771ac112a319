"""The dashboard of a user's studies, and a study's overview."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPFound
from pyramid.view import view_config

from bhp_ctms.permissions import Permissions
from bhp_ctms.studies.services import study_access


@view_config(
    route_name="dashboard", renderer="studies/dashboard.html", permission=Permissions.STUDIES_LIST
)
def dashboard(request: Any) -> dict[str, Any]:
    return {
        "studies": request.my_studies,
        "can_view_portfolio": request.has_permission(Permissions.PORTFOLIO_VIEW),
    }


@view_config(route_name="study_switch", permission=Permissions.STUDIES_LIST)
def switch_study(request: Any) -> HTTPFound:
    """The header's study switcher: go to the chosen study, if it is one of the user's."""
    code = request.params.get("study", "")
    if any(access.study.code == code for access in request.my_studies):
        return HTTPFound(request.route_path("study", code=code))
    return HTTPFound(request.route_path("dashboard"))


@view_config(route_name="study", renderer="studies/study.html", permission=Permissions.STUDIES_VIEW)
def study_overview(request: Any) -> dict[str, Any]:
    study = request.context.study
    access = study_access(request, study.id)
    return {"study": study, "access": access}
