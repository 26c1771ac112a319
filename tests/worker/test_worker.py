"""Real ``ctms worker`` processes running real tasks, on each broker and database."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bhp_ctms.audit.services import AuditActor
from bhp_ctms.db import create_database_engine, utcnow
from bhp_ctms.sessions import UserSession, hash_token
from bhp_ctms.tasks import purge_expired_sessions
from tests.worker.deployments import Deployment, WorkerProcess
from tests.worker.probe_app import (
    add_session_conflicting_once,
    block_first_attempt,
    report_context,
)

pytestmark = pytest.mark.worker

FIRST_ATTEMPT_TIMEOUT_SECONDS = 30
ACTOR = AuditActor(
    user_id=42,
    name="Grace Hopper",
    role="data_manager",
    client_addr="192.0.2.10",
    request_id="request-of-the-enqueuing-page",
    roles=((None, "data_manager"),),
)


def _add_sessions(database_url: str, **ages: tuple[timedelta, timedelta]) -> dict[str, str]:
    """Sessions named by their (age since creation, time since last seen)."""
    now = utcnow()
    token_hashes = {name: hash_token(secrets.token_urlsafe(16)) for name in ages}
    engine = create_database_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            session.add_all(
                UserSession(
                    token_hash=token_hashes[name],
                    created_at=now - created_ago,
                    last_seen_at=now - seen_ago,
                    data={},
                )
                for name, (created_ago, seen_ago) in ages.items()
            )
    finally:
        engine.dispose()
    return token_hashes


def _remaining_sessions(database_url: str, token_hashes: dict[str, str]) -> set[str]:
    engine = create_database_engine(database_url)
    try:
        with Session(engine) as session:
            remaining = set(
                session.scalars(
                    select(UserSession.token_hash).where(
                        UserSession.token_hash.in_(token_hashes.values())
                    )
                )
            )
    finally:
        engine.dispose()
    return {name for name, token_hash in token_hashes.items() if token_hash in remaining}


def test_a_worker_purges_expired_sessions(
    deployment: Deployment, running_worker: WorkerProcess
) -> None:
    token_hashes = _add_sessions(
        deployment.database_url,
        idle=(timedelta(hours=2), timedelta(minutes=45)),
        too_old=(timedelta(hours=13), timedelta(minutes=1)),
        live=(timedelta(hours=1), timedelta(minutes=5)),
    )

    purged = deployment.result_of(deployment.enqueue(purge_expired_sessions), running_worker)

    assert purged == 2
    assert _remaining_sessions(deployment.database_url, token_hashes) == {"live"}
    # Delivery is at least once: running it again changes nothing.
    again = deployment.result_of(deployment.enqueue(purge_expired_sessions), running_worker)
    assert again == 0
    assert _remaining_sessions(deployment.database_url, token_hashes) == {"live"}


def test_a_task_acts_for_the_user_who_enqueued_it(
    deployment: Deployment, running_worker: WorkerProcess
) -> None:
    seen = deployment.result_of(deployment.enqueue(report_context, actor=ACTOR), running_worker)

    assert seen == {
        "actor": {
            "user_id": 42,
            "name": "Grace Hopper",
            "role": "data_manager",
            "client_addr": "192.0.2.10",
            "request_id": "request-of-the-enqueuing-page",
            "roles": [[None, "data_manager"]],
        },
        "request_id": "request-of-the-enqueuing-page",
        "transaction_status": "Active",
    }


def test_a_transient_database_error_is_retried_by_the_worker(
    deployment: Deployment, running_worker: WorkerProcess
) -> None:
    token_hash = hash_token(secrets.token_urlsafe(16))

    outcome = deployment.result_of(
        deployment.enqueue(add_session_conflicting_once, token_hash, actor=ACTOR),
        running_worker,
    )

    # The retry is a new message: it still carries the user who enqueued the task.
    assert outcome == {
        "retries": 1,
        "actor": {**dataclasses.asdict(ACTOR), "roles": [[None, "data_manager"]]},
    }
    assert _remaining_sessions(deployment.database_url, {"added": token_hash}) == {"added"}


def _first_attempt_pid(attempts_dir: Path, worker: WorkerProcess) -> int:
    deadline = time.monotonic() + FIRST_ATTEMPT_TIMEOUT_SECONDS
    while not (started := list(attempts_dir.iterdir())):
        assert time.monotonic() < deadline, f"the task never started:\n{worker.log}"
        time.sleep(0.05)
    return int(started[0].name)


def test_a_task_whose_worker_process_is_killed_runs_again_elsewhere(
    deployment: Deployment, running_worker: WorkerProcess, tmp_path: Path
) -> None:
    attempts_dir = tmp_path / "attempts"
    attempts_dir.mkdir()
    result = deployment.enqueue(block_first_attempt, str(attempts_dir))

    killed_pid = _first_attempt_pid(attempts_dir, running_worker)
    # The pool process running the task dies as if the OOM killer had struck.
    assert killed_pid != running_worker.process.pid
    os.kill(killed_pid, signal.SIGKILL)

    completed = deployment.result_of(result, running_worker)
    assert completed["earlier_pids"] == [killed_pid]
    assert completed["pid"] != killed_pid
    assert running_worker.process.poll() is None


def test_the_worker_runs_the_scheduler_when_asked(
    deployment: Deployment, running_worker: WorkerProcess
) -> None:
    deadline = time.monotonic() + 10
    while "beat: Starting" not in running_worker.log:
        assert time.monotonic() < deadline, running_worker.log
        time.sleep(0.1)
    # Beat keeps its schedule beside the ini file's other local state.
    schedule_files = list((deployment.ini_path.parent / "var").glob("celerybeat-schedule*"))
    assert schedule_files, running_worker.log
