"""Acceptance 4: on PostgreSQL the application's role cannot UPDATE, DELETE or TRUNCATE
the audit tables, yet does all of its ordinary work, audited."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from bhp_ctms.audit.capture import use_actor
from bhp_ctms.audit.models import AuditEvent
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.db import create_database_engine
from bhp_ctms.sites.models import Site
from bhp_ctms.studies.models import Study
from tests.conftest import TEST_SECRET_KEY
from tests.databases import POSTGRESQL_URL, migrate, throwaway_database

APP_ROLE = "bhp_ctms_app"


@pytest.fixture(scope="module", params=["postgresql"] if POSTGRESQL_URL else [])
def app_engine(request, tmp_path_factory):
    """A migrated database, and an engine that acts as the application role."""
    directory = tmp_path_factory.mktemp("role")
    with throwaway_database(request.param, directory, "ctms_role") as url:
        migrate(url)
        engine = create_database_engine(url, role=APP_ROLE)
        yield engine
        engine.dispose()


def test_the_application_role_works_and_its_changes_are_audited(app_engine):
    with Session(app_engine) as db, db.begin():
        assert db.scalar(text("SELECT current_user")) == APP_ROLE
        use_actor(db, AuditActor(user_id=None, name="role test"))
        study = Study(code="ROLE", title="Role test")
        db.add(study)
        db.flush()
        site = Site(study_id=study.id, code="S1", name="First")
        db.add(site)
        db.flush()
        site.name = "Renamed"
    with Session(app_engine) as db:
        updated = db.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == "site.updated")
        )
        assert updated == 1
        assert verify_audit_trail(db, TEST_SECRET_KEY).ok


@pytest.mark.parametrize("table", ["audit_events", "audit_checkpoints", "audit_reviews"])
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {table} SET id = id", "DELETE FROM {table}", "TRUNCATE {table}"],
    ids=["update", "delete", "truncate"],
)
def test_the_application_role_cannot_rewrite_the_audit_tables(app_engine, table, statement):
    with (
        Session(app_engine) as db,
        db.begin(),
        pytest.raises(ProgrammingError, match="permission denied"),
    ):
        db.execute(text(statement.format(table=table)))
