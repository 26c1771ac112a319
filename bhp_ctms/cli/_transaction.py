"""Running a command's work inside one audited transaction."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy import select

from bhp_ctms.audit.capture import use_actor
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.cli import CommandContext
from bhp_ctms.locks.state import DataLocked
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.services import find_study


def cli_actor() -> AuditActor:
    """The operator at the terminal; the audit trail names the operating-system user."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return AuditActor(user_id=None, name=f"ctms command ({who})", role="operator")


def study_and_site_ids(
    request: Any, study_code: str | None, site_code: str | None = None
) -> tuple[int | None, int | None]:
    """The ids of the study and site named on the command line (None: not named)."""
    if study_code is None:
        if site_code is not None:
            raise click.ClickException("--site needs --study")
        return None, None
    study = find_study(request.db, study_code)
    if study is None:
        raise click.ClickException(f"no study with code {study_code!r}")
    if site_code is None:
        return study.id, None
    site = request.db.scalars(
        select(Site).where(Site.study_id == study.id, Site.code == site_code)
    ).first()
    if site is None:
        raise click.ClickException(f"study {study_code} has no site with code {site_code!r}")
    return study.id, site.id


@contextmanager
def command_transaction(context: CommandContext) -> Iterator[Any]:
    """Yield a request whose ``db`` commits when the block ends without error."""
    request = context.env["request"]
    actor = cli_actor()
    # Tasks the command enqueues act for the operator too.
    request.set_property(lambda _request: actor, name="audit_actor", reify=True)
    try:
        with request.tm:
            use_actor(request.db, actor)
            yield request
    except DataLocked as error:
        # A lock refuses the command's writes as it refuses a page's: say so plainly.
        raise click.ClickException(error.message) from None
