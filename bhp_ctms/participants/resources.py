"""The context factory of a participant's pages: found only through the user's site
scope, so a participant of another site is a 404, never a 403."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPForbidden, HTTPNotFound
from sqlalchemy import select

from bhp_ctms.participants.models import Participant
from bhp_ctms.permissions import site_acl
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.models import Study
from bhp_ctms.studies.resources import StudyFactory


class ParticipantResource:
    """One participant: reached by their site's own staff and by study-wide roles."""

    def __init__(self, study: Study, site: Site, participant: Participant) -> None:
        self.study = study
        self.site = site
        self.participant = participant

    @property
    def __acl__(self) -> list[tuple[str, str, str]]:
        return site_acl(self.study.id, self.site.id)


def ParticipantFactory(request: Any) -> ParticipantResource:
    """The participant whose study ID is ``{participant}``, if the user's scope holds it."""
    study = StudyFactory(request).study
    if request.identity is None:
        # Not signed in: the forbidden view sends them to log in, and back here after.
        raise HTTPForbidden()
    scope = SiteScope.for_memberships(study.id, request.memberships)
    statement = select(Participant).where(
        Participant.study_id == study.id, Participant.code == request.matchdict["participant"]
    )
    participant = request.db.scalars(scope.apply(statement, Participant.site_id)).first()
    if participant is None:
        raise HTTPNotFound()
    site = request.db.get(Site, participant.site_id)
    return ParticipantResource(study, site, participant)
