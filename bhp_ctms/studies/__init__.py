"""Studies (protocols): the dashboard of a user's studies and each study's overview."""

from __future__ import annotations

from typing import Any

from bhp_ctms.studies.resources import StudyFactory


def includeme(config: Any) -> None:
    config.add_route("dashboard", "/studies/")
    config.add_route("study_switch", "/studies/switch")
    config.add_route("study", "/studies/{code}/", factory=StudyFactory)
    config.add_request_method(
        "bhp_ctms.studies.services.studies_of_request_user", name="my_studies", reify=True
    )
