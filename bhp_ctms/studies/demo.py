"""The demo study: ``forms/demo`` loaded like any study folder, plus its demo users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.accounts.services import AccountService
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.permissions import Role
from bhp_ctms.settings import Settings
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.definition import STUDY_FILE, DefinitionError
from bhp_ctms.studies.loading import load_study
from bhp_ctms.studies.models import Study


class DemoDefinitionError(ValueError):
    """The demo definition file is not usable; the message names the file and line."""


@dataclass(frozen=True)
class DemoUser:
    username: str
    full_name: str
    role: Role
    where: str


def load_demo(
    db: Session, settings: Settings, actor: AuditActor, path: Path, password: str
) -> tuple[Study, list[DemoUser]]:
    """Load the demo study folder (``path`` is the folder or its ``study.yaml``) with
    :func:`~bhp_ctms.studies.loading.load_study`, then its demo users, one per role.

    Running it again changes nothing but the demo users' password, which is set to
    ``password`` each time so the password printed is always the one that works.
    """
    folder = path if path.is_dir() else path.parent
    if not path.is_dir() and path.name != STUDY_FILE:
        raise DemoDefinitionError(f"{path}: a study folder's file must be named {STUDY_FILE}")
    try:
        result = load_study(db, actor, folder)
    except DefinitionError as error:
        raise DemoDefinitionError(str(error)) from None
    study = result.study
    sites = {site.code: site for site in db.scalars(select(Site).where(Site.study_id == study.id))}
    try:
        users = _upsert_users(
            db, settings, actor, study, sites, list(result.definition.users), password
        )
    except (KeyError, ValueError) as error:
        raise DemoDefinitionError(f"{folder / STUDY_FILE}: users: {error}") from None
    return study, users


def _upsert_users(
    db: Session,
    settings: Settings,
    actor: AuditActor,
    study: Study,
    sites: dict[str, Site],
    entries: list[Mapping[str, str]],
    password: str,
) -> list[DemoUser]:
    accounts = AccountService(db, settings)
    demo_users = []
    for entry in entries:
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
