"""Helpers for tests of many writers at once: a database of its own where every
transaction really commits, a transaction retried as pyramid_retry retries a request,
and a crowd of threads released together."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pyramid_retry import IRetryableError
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bhp_ctms.db import create_database_engine
from tests.databases import migrate, throwaway_database

Result = TypeVar("Result")

MAX_ATTEMPTS = 200
JOIN_SECONDS = 120
BACKOFF_SECONDS = 0.002
# Not a secret: only spreads the retries of a test's threads apart.
_backoff = random.Random()  # noqa: S311


@contextmanager
def committed_engine(backend: str, directory: Path, prefix: str) -> Iterator[Engine]:
    """An engine on a new, migrated database of its own (an SQLite file, or PostgreSQL),
    with connections enough for fifty threads, dropped afterwards."""
    with throwaway_database(backend, directory, prefix) as url:
        migrate(url)
        engine = create_database_engine(url, pool_size=10, max_overflow=50)
        try:
            yield engine
        finally:
            engine.dispose()


def retried(engine: Engine, work: Callable[[Session], Result]) -> tuple[Result, int]:
    """Run ``work(session)`` in a transaction, again from the start whenever the database
    reports a transient failure, as pyramid_retry replays a request; returns what
    ``work`` returned and how many attempts it took. Any other exception leaves the
    transaction rolled back and is raised."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with Session(engine) as session, session.begin():
                result = work(session)
            return result, attempt
        except DBAPIError as error:
            if not IRetryableError.providedBy(error):
                raise
            # A random, growing pause: writers that failed together do not all come back
            # together, and fewer attempts are wasted (on SQLite they share one writer).
            time.sleep(_backoff.uniform(0, BACKOFF_SECONDS * 2 ** min(attempt, 7)))
    raise AssertionError(f"still failing after {MAX_ATTEMPTS} attempts")


def all_at_once(
    jobs: list[Callable[[], Result]],
) -> tuple[list[Result], list[BaseException]]:
    """Run each job in a thread of its own, all released together by a barrier; returns
    what the jobs returned and what they raised (in the order they finished)."""
    start = threading.Barrier(len(jobs))
    results: list[Result] = []
    raised: list[BaseException] = []

    def run(job: Callable[[], Result]) -> None:
        try:
            start.wait()
            results.append(job())
        except BaseException as error:  # the caller judges each thread's failure
            raised.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    stuck = sum(thread.is_alive() for thread in threads)
    assert not stuck, f"{stuck} threads still running after {JOIN_SECONDS} s"
    return results, raised
