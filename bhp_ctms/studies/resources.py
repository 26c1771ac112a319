"""Context factories carrying the ACLs of studies."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound

from bhp_ctms.permissions import study_acl
from bhp_ctms.studies.models import Study
from bhp_ctms.studies.services import find_study


class StudyResource:
    def __init__(self, study: Study) -> None:
        self.study = study

    @property
    def __acl__(self) -> list[tuple[str, str, str]]:
        return study_acl(self.study.id)


def StudyFactory(request: Any) -> StudyResource:
    code = request.matchdict["code"]
    study = find_study(request.db, code)
    if study is None:
        raise HTTPNotFound()
    return StudyResource(study)
