"""What a user can see of studies: their studies, roles and sites."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.models import Membership
from bhp_ctms.db import utc_today
from bhp_ctms.permissions import Role
from bhp_ctms.sites.models import Site
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.definition import StudyDefinition
from bhp_ctms.studies.models import ProtocolVersion, Study


def find_study(db: Session, code: str) -> Study | None:
    """The study with this code, if there is one."""
    return db.scalars(select(Study).where(Study.code == code)).first()


@dataclass(frozen=True)
class StudyAccess:
    """One study as one user sees it."""

    study: Study
    roles: tuple[Role, ...]
    sites: tuple[Site, ...]
    all_sites: bool

    @property
    def role_labels(self) -> str:
        return ", ".join(role.label for role in self.roles)


def studies_for_user(db: Session, memberships: list[Membership]) -> list[StudyAccess]:
    """Every study a user's memberships give a role in, with their roles and visible sites."""
    global_roles = {m.role for m in memberships if m.study_id is None}
    if global_roles:
        studies = list(db.scalars(select(Study).order_by(Study.code)))
    else:
        study_ids = {m.study_id for m in memberships}
        studies = list(
            db.scalars(select(Study).where(Study.id.in_(study_ids)).order_by(Study.code))
        )
    sites_by_study: dict[int, list[Site]] = {}
    for site in db.scalars(
        select(Site).where(Site.study_id.in_([s.id for s in studies])).order_by(Site.code)
    ):
        sites_by_study.setdefault(site.study_id, []).append(site)
    result = []
    for study in studies:
        scope = SiteScope.for_memberships(study.id, memberships)
        roles = global_roles | {m.role for m in memberships if m.study_id == study.id}
        result.append(
            StudyAccess(
                study=study,
                roles=tuple(sorted(roles, key=list(Role).index)),
                sites=tuple(s for s in sites_by_study.get(study.id, []) if scope.allows(s.id)),
                all_sites=scope.all_sites,
            )
        )
    return result


def studies_of_request_user(request: Any) -> list[StudyAccess]:
    return studies_for_user(request.db, request.memberships)


def study_access(request: Any, study_id: int) -> StudyAccess | None:
    """The signed-in user's roles and sites in one study (None: they hold none there)."""
    return next((access for access in request.my_studies if access.study.id == study_id), None)


# -- protocol versions ---------------------------------------------------------------

_DEFINITIONS: dict[str, StudyDefinition] = {}


def protocol_definition(version: ProtocolVersion) -> StudyDefinition:
    """The study definition a protocol version was loaded with (parsed once per content)."""
    definition = _DEFINITIONS.get(version.definition_sha256)
    if definition is None:
        definition = StudyDefinition.from_json(version.definition)
        _DEFINITIONS[version.definition_sha256] = definition
    return definition


def current_protocol_version(
    db: Session, study_id: int, on: date | None = None
) -> ProtocolVersion | None:
    """The version in effect on a day (today by default): the latest whose effective date
    has come. New participants and new visits use it; an amendment loaded ahead of its
    effective date is not used before then."""
    on = on or utc_today()
    return db.scalars(
        select(ProtocolVersion)
        .where(ProtocolVersion.study_id == study_id, ProtocolVersion.effective_on <= on)
        .order_by(ProtocolVersion.effective_on.desc(), ProtocolVersion.number.desc())
        .limit(1)
    ).first()


def protocol_versions(db: Session, study_id: int) -> list[ProtocolVersion]:
    return list(
        db.scalars(
            select(ProtocolVersion)
            .where(ProtocolVersion.study_id == study_id)
            .order_by(ProtocolVersion.number)
        )
    )
