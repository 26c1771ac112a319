"""Context factories carrying the ACLs of sites."""

from __future__ import annotations

from typing import Any

from pyramid.httpexceptions import HTTPNotFound
from sqlalchemy import select

from bhp_ctms.permissions import site_acl
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.models import Study
from bhp_ctms.studies.resources import StudyFactory


class SiteResource:
    """One site of one study: its own staff, and study-wide and global roles, reach it."""

    def __init__(self, study: Study, site: Site) -> None:
        self.study = study
        self.site = site

    @property
    def __acl__(self) -> list[tuple[str, str, str]]:
        return site_acl(self.study.id, self.site.id)


def SiteFactory(request: Any) -> SiteResource:
    """The site named by ``{code}`` (the study) and ``{site}`` (its code in the study),
    if the user's site scope holds it."""
    study = StudyFactory(request).study
    site = request.db.scalars(
        select(Site).where(Site.study_id == study.id, Site.code == request.matchdict["site"])
    ).first()
    if site is None:
        raise HTTPNotFound()
    # Site staff of another site get a 404, as for any object outside their scope.
    # Someone not logged in is left to the permission check, which asks them to log in.
    if request.identity is not None:
        scope = SiteScope.for_memberships(study.id, request.memberships)
        if not scope.allows(site.id):
            raise HTTPNotFound()
    return SiteResource(study, site)
