"""Database plumbing: the model base, engines, and the per-request session.

One SQLAlchemy session per request, joined to the request's transaction through
zope.sqlalchemy; ``pyramid_tm`` commits or aborts it, views never commit.
Serialisation failures (PostgreSQL) and "database is locked" (SQLite) are marked
retryable here, once, so ``pyramid_retry`` replays the whole request.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import zope.sqlalchemy
from pyramid_retry import mark_error_retryable
from sqlalchemy import DateTime, Engine, MetaData, String, create_engine, event
from sqlalchemy import Enum as SQLEnum
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 5000


def utcnow() -> datetime:
    """The server's time, timezone-aware UTC; never the client's."""
    return datetime.now(UTC)


def utc_today() -> date:
    """Today's date in UTC, the day every date in the trial is counted in."""
    return utcnow().date()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    SQLite keeps no time zone; PostgreSQL's ``timestamptz`` does. Naive datetimes are
    refused on the way in, so local times cannot slip into the audit trail.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC timestamp column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def enum_by_value(enum_class: type[enum.Enum], length: int = 32) -> SQLEnum:
    """An enum column that stores the member's value (not its name), as a checked string."""
    return SQLEnum(
        enum_class,
        values_callable=lambda members: [member.value for member in members],
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        name=enum_class.__name__.lower(),
    )


class ModelBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), str: String()}


def _is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _tag_retryable(context: Any) -> None:
    """Mark transient database errors so the whole request (or task) is retried."""
    original = context.original_exception
    sqlstate = getattr(original, "sqlstate", None)
    transient = (sqlstate is not None and sqlstate.startswith("40")) or (
        "database is locked" in str(original)
    )
    if transient and context.sqlalchemy_exception is not None:
        mark_error_retryable(context.sqlalchemy_exception)


def create_database_engine(url: str, *, role: str = "", **kwargs: Any) -> Engine:
    """Create an engine with the project's connection policy for either backend.

    ``role`` is a PostgreSQL role every connection takes on (``SET ROLE``): the
    migrations give ``bhp_ctms_app`` every privilege it needs and none that would let
    it rewrite the audit trail, while the log-in role keeps ownership for migrations.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = kwargs.pop("connect_args", {})
        connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kwargs)
        _configure_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True, **kwargs)
        if role:
            _set_role_on_connect(engine, role)
    event.listen(engine, "handle_error", _tag_retryable)
    return engine


def _set_role_on_connect(engine: Engine, role: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET ROLE "{role}"')
        cursor.close()
        dbapi_connection.commit()


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; hand
    # transaction control to SQLAlchemy (the documented recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


def _create_request_session(request: Any) -> Session:
    factory: sessionmaker[Session] = request.registry["sqlalchemy.sessionmaker"]
    session = factory(info={"request": request})
    zope.sqlalchemy.register(session, transaction_manager=request.tm)
    return session


def includeme(config: Any) -> None:
    settings = config.registry.settings["bhp_ctms"]
    engine = create_database_engine(settings.database_url, role=settings.database_role)
    config.registry["sqlalchemy.engine"] = engine
    config.registry["sqlalchemy.sessionmaker"] = sessionmaker(bind=engine)
    config.add_request_method(_create_request_session, name="db", reify=True)
