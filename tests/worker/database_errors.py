"""Genuine transient database errors, raised by the real driver, for retry tests."""

from __future__ import annotations

import sqlite3

from sqlalchemy import text
from sqlalchemy.orm import Session

SERIALIZATION_FAILURE = (
    "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'serialization_failure'; END $$"
)


def provoke_transient_error(session: Session) -> None:
    """Write the session's pending changes so that the database refuses them.

    PostgreSQL raises a serialisation failure (SQLSTATE 40001) after the flush;
    SQLite reports "database is locked" for the flush itself, because a second
    connection holds an exclusive lock and this connection is told not to wait.
    The error propagates; the session's transaction must then be aborted.
    """
    if session.get_bind().dialect.name != "sqlite":
        session.flush()
        session.execute(text(SERIALIZATION_FAILURE))
        raise AssertionError("the database did not raise a serialisation failure")
    if not (session.new or session.dirty or session.deleted):
        raise ValueError("nothing to write: add a row to the session first")
    connection = session.connection().connection.driver_connection
    assert isinstance(connection, sqlite3.Connection)
    (busy_timeout,) = connection.execute("PRAGMA busy_timeout").fetchone()
    blocker = sqlite3.connect(session.get_bind().url.database or "", isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            connection.execute("PRAGMA busy_timeout = 0")
            session.flush()
        finally:
            # The pooled connection outlives this request: give back its patience.
            connection.execute(f"PRAGMA busy_timeout = {busy_timeout}")
            blocker.execute("ROLLBACK")
    finally:
        blocker.close()
    raise AssertionError("SQLite did not report that the database is locked")
