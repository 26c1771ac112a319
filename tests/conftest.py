"""Shared fixtures: one migrated database per backend and test worker, each test in a
transaction that is rolled back, and the WSGI application bound to that transaction.

Database tests run on SQLite always and on PostgreSQL too when
``BHP_CTMS_TEST_DATABASE_URL`` is set (``make test`` and ``.ci/run`` set it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker
from webtest import TestApp

from bhp_ctms.config import configure
from bhp_ctms.db import create_database_engine
from bhp_ctms.migrations import alembic_config
from bhp_ctms.settings import Environment, Settings
from tests.databases import BACKENDS, throwaway_database
from tests.factories import bind_factories

TEST_SECRET_KEY = "test-secret-key-" + "x" * 32


@pytest.fixture(scope="session")
def fresh_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """A factory of new, empty databases on a backend ("sqlite" or "postgresql")."""
    with ExitStack() as databases:

        def make(backend: str) -> str:
            directory = tmp_path_factory.mktemp("db")
            return databases.enter_context(throwaway_database(backend, directory, "ctms_test"))

        yield make


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, fresh_database_url: Callable[[str], str]) -> str:
    """A database migrated to head with Alembic, one per backend and worker."""
    url = fresh_database_url(request.param)
    command.upgrade(alembic_config(database_url=url), "head")
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_database_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        transaction = connection.begin()
        try:
            yield connection
        finally:
            transaction.rollback()


@pytest.fixture
def session_factory(db_connection: Connection) -> sessionmaker[Session]:
    # Each session commits only a savepoint of the test's outer transaction.
    return sessionmaker(bind=db_connection, join_transaction_mode="create_savepoint")


@pytest.fixture
def db_session(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    session = session_factory()
    bind_factories(session)
    yield session
    session.close()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": Environment.TESTING,
        "database_url": database_url,
        "broker_url": "memory://",
        "result_backend": "cache+memory://",
        "secret_key": TEST_SECRET_KEY,
        "task_always_eager": True,
        "alembic_dir": str(Path(__file__).resolve().parent.parent / "alembic"),
        "forms_dir": str(Path(__file__).resolve().parent.parent / "forms"),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def _shared_wsgi_app(database_url: str) -> Any:
    return configure({"bhp_ctms": make_settings(database_url)}).make_wsgi_app()


@pytest.fixture
def make_app(
    database_url: str, session_factory: sessionmaker[Session], db_session: Session
) -> Callable[..., TestApp]:
    """Build the application with some settings changed, bound to the test's transaction."""

    def make(**overrides: Any) -> TestApp:
        wsgi_app = configure({"bhp_ctms": make_settings(database_url, **overrides)}).make_wsgi_app()
        wsgi_app.registry["sqlalchemy.sessionmaker"] = session_factory
        return TestApp(wsgi_app, extra_environ={"REMOTE_ADDR": "192.0.2.10"})

    return make


@pytest.fixture
def app(
    _shared_wsgi_app: Any, session_factory: sessionmaker[Session], db_session: Session
) -> Iterator[TestApp]:
    """The application with test settings, bound to the test's transaction."""
    registry = _shared_wsgi_app.registry
    registry["sqlalchemy.sessionmaker"] = session_factory
    original_settings = registry.settings["bhp_ctms"]
    yield TestApp(_shared_wsgi_app, extra_environ={"REMOTE_ADDR": "192.0.2.10"})
    registry.settings["bhp_ctms"] = original_settings


@pytest.fixture
def change_settings(app: TestApp) -> Callable[..., Settings]:
    """Change settings read per request (time-outs, lock-out, MFA roles) for one test."""

    def change(**overrides: Any) -> Settings:
        registry = app.app.registry
        registry.settings["bhp_ctms"] = dataclasses.replace(
            registry.settings["bhp_ctms"], **overrides
        )
        return registry.settings["bhp_ctms"]

    return change
