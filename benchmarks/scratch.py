"""Scratch databases for the benchmarks, and fast bulk loading of audit events.

The databases are made and migrated by the same helpers as the test suite's
(:mod:`tests.databases`), beside ``BHP_CTMS_TEST_DATABASE_URL`` (the local server
when unset), and dropped afterwards.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, Table, insert

DEFAULT_POSTGRESQL_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# tests.databases reads the server's URL when imported.
os.environ.setdefault("BHP_CTMS_TEST_DATABASE_URL", DEFAULT_POSTGRESQL_URL)

from bhp_ctms.audit.models import AuditEvent  # noqa: E402
from tests.databases import migrate, throwaway_database  # noqa: E402

# Every column but the id, which the database numbers in insertion order.
EVENT_COLUMNS = tuple(column.name for column in AuditEvent.__table__.columns if column.name != "id")


@contextmanager
def scratch_database(backend: str, prefix: str = "ctms_bench") -> Iterator[str]:
    """Yield the URL of a new database on ``backend``, migrated to head; drop it afterwards."""
    with (
        tempfile.TemporaryDirectory(prefix="ctms-bench-") as directory,
        throwaway_database(backend, Path(directory), prefix) as url,
    ):
        started = time.perf_counter()
        migrate(url)
        print(f"scratch {backend} database migrated in {time.perf_counter() - started:.1f} s")
        yield url
    print(f"scratch {backend} database dropped")


def load_events(engine: Engine, rows: Iterable[Sequence[Any]], chunk: int = 50_000) -> int:
    """Append events given as tuples in :data:`EVENT_COLUMNS` order; the number loaded.

    PostgreSQL takes them through one COPY; SQLite through executemany, ``chunk`` rows
    a transaction. Rows are consumed as they come, so a generator keeps memory flat.
    """
    if engine.dialect.name == "postgresql":
        return _copy(engine, rows)
    return _insert_in_chunks(engine, rows, chunk)


def _copy(engine: Engine, rows: Iterable[Sequence[Any]]) -> int:
    loaded = 0
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        with connection.cursor() as cursor:
            statement = f"COPY audit_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
            with cursor.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
                    loaded += 1
        connection.commit()
    finally:
        raw.close()
    return loaded


def _insert_in_chunks(engine: Engine, rows: Iterable[Sequence[Any]], chunk: int) -> int:
    loaded = 0
    statement = insert(cast(Table, AuditEvent.__table__))
    batch: list[dict[str, Any]] = []
    with engine.connect() as connection:
        for row in rows:
            batch.append(dict(zip(EVENT_COLUMNS, row, strict=True)))
            if len(batch) >= chunk:
                with connection.begin():
                    connection.execute(statement, batch)
                loaded += len(batch)
                batch = []
        if batch:
            with connection.begin():
                connection.execute(statement, batch)
            loaded += len(batch)
    return loaded


def vacuum_analyze(engine: Engine) -> None:
    """Make the loaded table look like a settled production one: statistics, hint bits."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM (ANALYZE) audit_events")
    else:
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE")


def machine_load() -> str:
    """The load average over the last minute, against the cores there are to share."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def print_table(title: str, rows: Sequence[tuple[str, str]]) -> None:
    """Figures as two aligned columns under a title."""
    width = max(len(label) for label, _ in rows)
    print()
    print(title)
    print("-" * len(title))
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    print()
