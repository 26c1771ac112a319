"""Throwaway databases for tests: an SQLite file, or a PostgreSQL database beside
``BHP_CTMS_TEST_DATABASE_URL``, dropped again afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url

from bhp_ctms.db import create_database_engine
from bhp_ctms.migrations import alembic_config

POSTGRESQL_URL = os.environ.get("BHP_CTMS_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", "postgresql"] if POSTGRESQL_URL else ["sqlite"]


def _administer(statement: str) -> None:
    admin = create_database_engine(POSTGRESQL_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(statement))
    finally:
        admin.dispose()


@contextmanager
def throwaway_database(backend: str, directory: Path, prefix: str) -> Iterator[str]:
    """Yield the URL of a new, empty database on ``backend`` ("sqlite" or "postgresql")."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{prefix}_{worker}_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        yield f"sqlite:///{directory / (name + '.sqlite')}"
        return
    _administer(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRESQL_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        _administer(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str, *extra: MetaData) -> None:
    """Bring a database to the newest schema, plus any test-only tables in ``extra``."""
    command.upgrade(alembic_config(database_url=url), "head")
    engine = create_database_engine(url)
    try:
        for metadata in extra:
            metadata.create_all(engine)
    finally:
        engine.dispose()
