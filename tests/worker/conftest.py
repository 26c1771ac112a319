"""Real Celery workers for the worker tests, one deployment per stack and module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.worker.deployments import STACKS, Deployment, WorkerProcess, deploy


@pytest.fixture(scope="module", params=STACKS, ids=lambda stack: stack.id)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with deploy(request.param, tmp_path_factory.mktemp(request.param.id)) as deployed:
        yield deployed


@pytest.fixture(scope="module")
def running_worker(deployment: Deployment) -> Iterator[WorkerProcess]:
    """One worker with the embedded scheduler, shared by a module's tests.

    It runs one pool process, and waits one second (not Celery's ten) for the result
    of a pool process that died, so a redelivery test is quick. Stopping it is part
    of the test: SIGTERM must be a clean, warm shutdown (exit status 0).
    """
    worker = deployment.start_worker("--beat", "worker.lost_wait=1")
    worker.wait_until_ready()
    yield worker
    status = worker.stop()
    assert status == 0, f"worker did not stop cleanly on SIGTERM:\n{worker.log}"
