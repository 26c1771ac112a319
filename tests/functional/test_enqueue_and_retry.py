"""A request retried after a serialisation failure commits once and enqueues once.

The application is the real one, with one test-only page that records a row and
enqueues a task, and whose first attempt meets a genuine transient database error
from the real driver (PostgreSQL: a serialisation failure; SQLite: "database is
locked"). ``pyramid_retry`` replays the request; the messages that reach the broker
(Celery's SQLAlchemy transport over a SQLite file) are counted afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu.message import Message
from pyramid.security import NO_PERMISSION_REQUIRED
from sqlalchemy import String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from webtest import TestApp

from bhp_ctms.config import configure
from bhp_ctms.db import create_database_engine
from bhp_ctms.settings import Environment, Settings
from bhp_ctms.tasks import CELERY_APP_KEY, purge_expired_sessions
from tests.databases import BACKENDS, migrate, throwaway_database
from tests.worker.database_errors import provoke_transient_error

TEST_SECRET_KEY = "enqueue-test-secret-key-" + "x" * 32
PURGE_TASK_NAME = "bhp_ctms.tasks.purge_expired_sessions"


class ProbeBase(DeclarativeBase):
    """Tables of this test only, kept apart from the application's models."""


class EnqueueProbeRow(ProbeBase):
    __tablename__ = "enqueue_probe_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(64), unique=True)


@pytest.fixture(scope="module", params=BACKENDS)
def enqueue_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A throwaway database, migrated, with the probe table."""
    directory = tmp_path_factory.mktemp("enqueue")
    with throwaway_database(request.param, directory, "ctms_enqueue") as url:
        migrate(url, ProbeBase.metadata)
        yield url


@pytest.fixture
def attempts() -> list[int]:
    """The retry attempt numbers (0, 1, ...) of each run of the test page."""
    return []


@pytest.fixture
def enqueue_app(
    enqueue_database_url: str, tmp_path: Path, attempts: list[int]
) -> Iterator[TestApp]:
    """The real application plus two test-only pages, with a broker of its own."""

    def record_and_enqueue(request: Any) -> str:
        attempts.append(request.environ["retry.attempt"])
        label = request.matchdict["label"]
        request.db.add(EnqueueProbeRow(label=label))
        task_id = request.enqueue(purge_expired_sessions)
        if request.environ["retry.attempt"] == 0:
            provoke_transient_error(request.db)
        return f"Recorded {label}; task {task_id}; request {request.request_id}"

    def record_enqueue_and_fail(request: Any) -> str:
        attempts.append(request.environ["retry.attempt"])
        label = request.matchdict["label"]
        request.db.add(EnqueueProbeRow(label=label))
        request.enqueue(purge_expired_sessions)
        # A duplicate label: an integrity error, which no retry can cure.
        request.db.add(EnqueueProbeRow(label=label))
        request.db.flush()
        return f"Recorded {label} twice"

    settings = Settings(
        environment=Environment.TESTING,
        database_url=enqueue_database_url,
        broker_url=f"sqla+sqlite:///{tmp_path / 'celery-broker.sqlite'}",
        secret_key=TEST_SECRET_KEY,
    )
    config = configure({"bhp_ctms": settings})
    config.add_route("test_record_and_enqueue", "/test/record-and-enqueue/{label}")
    config.add_view(
        record_and_enqueue,
        route_name="test_record_and_enqueue",
        request_method="POST",
        renderer="string",
        permission=NO_PERMISSION_REQUIRED,
        require_csrf=False,
    )
    config.add_route("test_record_enqueue_and_fail", "/test/record-enqueue-and-fail/{label}")
    config.add_view(
        record_enqueue_and_fail,
        route_name="test_record_enqueue_and_fail",
        request_method="POST",
        renderer="string",
        permission=NO_PERMISSION_REQUIRED,
        require_csrf=False,
    )
    wsgi_app = config.make_wsgi_app()
    yield TestApp(wsgi_app, extra_environ={"REMOTE_ADDR": "192.0.2.10"})
    wsgi_app.registry["sqlalchemy.engine"].dispose()


@pytest.fixture
def sent_messages(enqueue_app: TestApp) -> Callable[[], list[Message]]:
    """Take every message off the broker's default queue."""
    celery_app = enqueue_app.app.registry[CELERY_APP_KEY]

    def take() -> list[Message]:
        queue = celery_app.amqp.queues[celery_app.conf.task_default_queue]
        messages = []
        with celery_app.connection_for_read() as connection:
            bound = queue(connection.default_channel)
            while (message := bound.get(no_ack=True)) is not None:
                messages.append(message)
        return messages

    return take


def _labels(database_url: str, label: str) -> list[str]:
    engine = create_database_engine(database_url)
    try:
        with Session(engine) as session:
            return list(
                session.scalars(select(EnqueueProbeRow.label).where(EnqueueProbeRow.label == label))
            )
    finally:
        engine.dispose()


def test_a_request_retried_after_a_transient_error_commits_once_and_enqueues_once(
    enqueue_app: TestApp,
    enqueue_database_url: str,
    attempts: list[int],
    sent_messages: Callable[[], list[Message]],
) -> None:
    label = uuid.uuid4().hex

    response = enqueue_app.post(f"/test/record-and-enqueue/{label}")

    assert response.status_int == 200
    assert response.text.startswith(f"Recorded {label}; ")
    assert attempts == [0, 1]
    assert _labels(enqueue_database_url, label) == [label]
    task_id, request_id = (part.split()[-1] for part in response.text.split("; ")[1:])
    messages = sent_messages()
    assert [(m.headers["task"], m.headers["id"]) for m in messages] == [(PURGE_TASK_NAME, task_id)]
    # The task will act for the user and request that committed, not the failed attempt.
    actor = messages[0].headers["bhp_ctms_actor"]
    assert (actor["user_id"], actor["client_addr"], actor["request_id"]) == (
        None,
        "192.0.2.10",
        request_id,
    )


def test_a_request_that_fails_for_good_enqueues_nothing(
    enqueue_app: TestApp,
    enqueue_database_url: str,
    attempts: list[int],
    sent_messages: Callable[[], list[Message]],
) -> None:
    label = uuid.uuid4().hex

    enqueue_app.post(f"/test/record-enqueue-and-fail/{label}", status=500)

    assert attempts == [0]
    assert _labels(enqueue_database_url, label) == []
    assert sent_messages() == []
