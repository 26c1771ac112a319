"""The demo study: loaded from ``forms/demo/study.yaml``, idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.services import AccountService
from bhp_ctms.audit.capture import acting_as
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.permissions import Role
from bhp_ctms.settings import Settings
from bhp_ctms.sites.models import Site, SiteStatus
from bhp_ctms.studies.models import Blinding, Study, StudyStatus
from bhp_ctms.studies.services import find_study


class DemoDefinitionError(ValueError):
    """The demo definition file is not usable; the message names the file and line."""


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    role: Role
    where: str


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open(encoding="utf-8") as handle:
            definition = yaml.safe_load(handle)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DemoDefinitionError(f"{path}{line}: {error.problem}") from None
    except OSError as error:
        raise DemoDefinitionError(f"{path}: {error.strerror}") from None
    if not isinstance(definition, dict):
        raise DemoDefinitionError(f"{path}: expected a mapping of study settings")
    return definition


def load_demo(
    db: Session, settings: Settings, actor: AuditActor, path: Path, password: str
) -> tuple[Study, list[DemoUser]]:
    """Create or update the demo study, its sites and one user per role.

    Running it again changes nothing but the demo users' password, which is set to
    ``password`` each time so the password printed is always the one that works.
    """
    definition = _read(path)
    try:
        study = _upsert_study(db, actor, definition)
        sites = {site.code: site for site in _upsert_sites(db, actor, study, definition)}
        users = _upsert_users(db, settings, actor, study, sites, definition, password)
    except (KeyError, ValueError, TypeError) as error:
        raise DemoDefinitionError(f"{path}: {error}") from None
    return study, users


def _upsert_study(db: Session, actor: AuditActor, definition: dict[str, Any]) -> Study:
    code = definition["code"]
    study = find_study(db, code)
    if study is not None:
        return study
    study = Study(
        code=code,
        title=definition["title"],
        blinding=Blinding(definition.get("blinding", "open")),
        status=StudyStatus(definition.get("status", "set_up")),
        target_sample_size=definition.get("target_sample_size"),
    )
    with acting_as(db, actor):
        db.add(study)
    return study


def _upsert_sites(
    db: Session, actor: AuditActor, study: Study, definition: dict[str, Any]
) -> list[Site]:
    sites = []
    for entry in definition.get("sites", []):
        site = db.scalars(
            select(Site).where(Site.study_id == study.id, Site.code == entry["code"])
        ).first()
        if site is None:
            site = Site(
                study_id=study.id,
                code=entry["code"],
                name=entry["name"],
                status=SiteStatus(entry.get("status", "pending")),
                recruitment_target=entry.get("recruitment_target"),
            )
            with acting_as(db, actor):
                db.add(site)
        sites.append(site)
    return sites


def _upsert_users(
    db: Session,
    settings: Settings,
    actor: AuditActor,
    study: Study,
    sites: dict[str, Site],
    definition: dict[str, Any],
    password: str,
) -> list[DemoUser]:
    accounts = AccountService(db, settings)
    demo_users = []
    for entry in definition.get("users", []):
        role = Role(entry["role"])
        user = accounts.find_user(entry["username"])
        if user is None:
            user = accounts.create_user(
                actor, username=entry["username"], full_name=entry["full_name"], password=password
            )
        elif not accounts.verify_password(user, password):
            accounts.set_password(actor, user, password)
        if entry.get("scope") == "all_studies":
            accounts.grant_role(actor, user, role)
            where = "all studies"
        elif "site" in entry:
            site = sites[entry["site"]]
            accounts.grant_role(actor, user, role, study_id=study.id, site_id=site.id)
            where = f"{study.code}, site {site.code}"
        else:
            accounts.grant_role(actor, user, role, study_id=study.id)
            where = f"{study.code}, all sites"
        demo_users.append(DemoUser(user.username, user.full_name, role, where))
    return demo_users
