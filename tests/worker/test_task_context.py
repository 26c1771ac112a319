"""What a task run sees and does, run eagerly in this process (``task_always_eager``).

Each task run has its own request-like context and transaction: it commits on
success, aborts on error, is retried on a transient database error as the same
user, and its own ``request.enqueue`` sends only when it commits.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pyramid.scripting
import pytest
from pyramid.exceptions import ConfigurationError
from pyramid.registry import Registry
from sqlalchemy import String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from transaction.interfaces import NoTransaction

from bhp_ctms.audit.services import AuditActor
from bhp_ctms.config import configure
from bhp_ctms.db import create_database_engine
from bhp_ctms.settings import Environment, Settings
from bhp_ctms.tasks import CELERY_APP_KEY, find_task, purge_expired_sessions
from tests.databases import BACKENDS, migrate, throwaway_database
from tests.worker.database_errors import provoke_transient_error
from tests.worker.deployments import (
    TEST_SECRET_KEY,
)

ACTOR = AuditActor(
    user_id=7, name="Rosalind Franklin", role="statistician", request_id="enqueuing-request"
)


class ProbeBase(DeclarativeBase):
    """Tables of these tests only, kept apart from the application's models."""


class ProbeRow(ProbeBase):
    __tablename__ = "task_probe_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(64))


@pytest.fixture(scope="module", params=BACKENDS)
def task_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database of its own, with the probe table."""
    directory = tmp_path_factory.mktemp("tasks")
    with throwaway_database(request.param, directory, "ctms_tasks") as url:
        migrate(url, ProbeBase.metadata)
        yield url


@pytest.fixture
def make_registry(task_database_url: str) -> Iterator[Callable[..., Registry]]:
    """The application, running tasks eagerly, with some probe tasks declared."""
    registries: list[Registry] = []

    def make(*tasks: Callable[..., Any], **options: Any) -> Registry:
        settings = Settings(
            environment=Environment.TESTING,
            database_url=task_database_url,
            broker_url="memory://",
            result_backend="cache+memory://",
            secret_key=TEST_SECRET_KEY,
            task_always_eager=True,
        )
        config = configure({"bhp_ctms": settings})
        for task in tasks:
            config.add_task(task, **options)
        registry = config.make_wsgi_app().registry
        registries.append(registry)
        return registry

    yield make
    for registry in registries:
        registry["sqlalchemy.engine"].dispose()


def _enqueue(registry: Registry, task: Callable[..., Any], *args: Any) -> str:
    """Enqueue from a request acting for ACTOR, and commit."""
    with pyramid.scripting.prepare(registry=registry) as environment:
        request = environment["request"]
        request.set_property(lambda _request: ACTOR, name="audit_actor", reify=True)
        with request.tm:
            return request.enqueue(task, *args)


def _rows_labelled(database_url: str, label: str) -> int:
    engine = create_database_engine(database_url)
    try:
        with Session(engine) as session:
            return session.scalar(
                select(func.count()).select_from(ProbeRow).where(ProbeRow.label == label)
            )
    finally:
        engine.dispose()


def _label() -> str:
    return uuid.uuid4().hex


def test_a_task_commits_its_work(
    make_registry: Callable[..., Registry], task_database_url: str
) -> None:
    def add_row(request: Any, label: str) -> None:
        request.db.add(ProbeRow(label=label))

    label = _label()
    _enqueue(make_registry(add_row), add_row, label)

    assert _rows_labelled(task_database_url, label) == 1


def test_a_failing_task_commits_nothing(
    make_registry: Callable[..., Registry], task_database_url: str
) -> None:
    def add_row_then_fail(request: Any, label: str) -> None:
        request.db.add(ProbeRow(label=label))
        request.db.flush()
        raise ValueError("the eligibility data are inconsistent")

    label = _label()
    registry = make_registry(add_row_then_fail)

    result = find_task(registry, add_row_then_fail).apply(args=(label,))

    assert result.failed()
    with pytest.raises(ValueError, match="inconsistent"):
        result.get()
    assert _rows_labelled(task_database_url, label) == 0


def test_a_task_failing_after_the_request_committed_is_logged(
    make_registry: Callable[..., Registry], caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(request: Any) -> None:
        raise ValueError("the randomisation list is exhausted")

    with caplog.at_level(logging.ERROR, logger="bhp_ctms.tasks"):
        task_id = _enqueue(make_registry(refuse), refuse)

    assert any(
        record.name == "bhp_ctms.tasks"
        and task_id in record.getMessage()
        and "the randomisation list is exhausted" in record.getMessage()
        for record in caplog.records
    )


def test_a_transient_database_error_is_retried_as_the_same_user(
    make_registry: Callable[..., Registry], task_database_url: str
) -> None:
    attempts: list[tuple[int, AuditActor]] = []

    def add_row_conflicting_once(task: Any, request: Any, label: str) -> None:
        attempts.append((task.request.retries, request.audit_actor))
        request.db.add(ProbeRow(label=label))
        if task.request.retries == 0:
            provoke_transient_error(request.db)

    label = _label()
    _enqueue(make_registry(add_row_conflicting_once, bind=True), add_row_conflicting_once, label)

    assert attempts == [(0, ACTOR), (1, ACTOR)]
    assert _rows_labelled(task_database_url, label) == 1


def test_a_task_enqueues_follow_ups_that_run_after_it_commits(
    make_registry: Callable[..., Registry], task_database_url: str
) -> None:
    seen: list[tuple[AuditActor, int]] = []

    def check_row(request: Any, label: str) -> None:
        seen.append((request.audit_actor, _rows_labelled(task_database_url, label)))

    def add_row_and_follow_up(request: Any, label: str) -> None:
        request.db.add(ProbeRow(label=label))
        request.enqueue(check_row, label)

    label = _label()
    _enqueue(make_registry(add_row_and_follow_up, check_row), add_row_and_follow_up, label)

    # The follow-up saw the row, so it ran after the first task committed.
    assert seen == [(ACTOR, 1)]


def test_enqueueing_needs_a_transaction(make_registry: Callable[..., Registry]) -> None:
    with (
        pyramid.scripting.prepare(registry=make_registry()) as environment,
        pytest.raises(NoTransaction),
    ):
        environment["request"].enqueue(purge_expired_sessions)


def test_arguments_that_cannot_travel_as_json_fail_in_the_request(
    make_registry: Callable[..., Registry],
) -> None:
    def generate_report(request: Any, participant: Any) -> None:
        """Takes a participant's id, never the ORM object."""

    registry = make_registry(generate_report)
    with pyramid.scripting.prepare(registry=registry) as environment:
        request = environment["request"]
        with request.tm, pytest.raises(TypeError):
            request.enqueue(generate_report, object())


def test_every_scheduled_task_is_declared(make_registry: Callable[..., Registry]) -> None:
    celery_app = make_registry()[CELERY_APP_KEY]

    scheduled = {entry["task"] for entry in celery_app.conf.beat_schedule.values()}

    assert "bhp_ctms.tasks.purge_expired_sessions" in scheduled
    assert scheduled <= set(celery_app.tasks)


def test_scheduling_an_undeclared_function_stops_start_up(task_database_url: str) -> None:
    def not_a_task(request: Any) -> None:
        """Never declared with @task or config.add_task."""

    settings = Settings(
        database_url=task_database_url,
        broker_url="memory://",
        secret_key=TEST_SECRET_KEY,
        task_always_eager=True,
    )
    config = configure({"bhp_ctms": settings})
    config.add_periodic_task(60, not_a_task, name="never")

    try:
        with pytest.raises(ConfigurationError, match="not declared as a task"):
            config.commit()
    finally:
        config.registry["sqlalchemy.engine"].dispose()
