"""Alembic owns the schema: migrations and models must agree, both ways."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from bhp_ctms.db import create_database_engine
from bhp_ctms.migrations import alembic_config
from bhp_ctms.models import metadata


def _differences(url: str) -> list:
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            return compare_metadata(context, metadata)
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_database_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_migrated_schema_equals_the_models(database_url):
    assert _differences(database_url) == []


def test_downgrade_to_base_and_back(fresh_database_url, database_url):
    backend = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    url = fresh_database_url(backend)
    config = alembic_config(database_url=url)
    command.upgrade(config, "head")
    assert _tables(url) == set(metadata.tables)
    command.downgrade(config, "base")
    assert _tables(url) == set()
    command.upgrade(config, "head")
    assert _differences(url) == []
