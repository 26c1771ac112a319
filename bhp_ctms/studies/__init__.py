"""Studies (protocols): the dashboard of a user's studies and each study's overview."""

from __future__ import annotations

from typing import Any


def includeme(config: Any) -> None:
    # Imported here: importing a domain's models must not pull in its views' factories.
    from bhp_ctms.studies.resources import StudyFactory

    config.add_route("dashboard", "/studies/")
    config.add_route("study_switch", "/studies/switch")
    config.add_route("portfolio", "/portfolio")
    config.add_route("study", "/studies/{code}/", factory=StudyFactory)
    config.add_route("protocol_versions", "/studies/{code}/protocol/", factory=StudyFactory)
    config.add_route("protocol_diff", "/studies/{code}/protocol/diff", factory=StudyFactory)
    config.add_route(
        "protocol_version", "/studies/{code}/protocol/{version}/", factory=StudyFactory
    )
    config.add_request_method(
        "bhp_ctms.studies.services.studies_of_request_user", name="my_studies", reify=True
    )
