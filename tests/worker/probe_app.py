"""A test-only application factory: the real application plus probe tasks.

The worker tests name this factory in their ini files (``use = call:...``), so the
worker process they start and the test process that enqueues build the same
application, with tasks that report what a task run sees, that fail transiently,
and that can be killed.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from pyramid.router import Router

from bhp_ctms import tasks
from bhp_ctms.config import configure
from bhp_ctms.sessions import UserSession
from tests.worker.database_errors import provoke_transient_error

# Far longer than any test waits: the first attempt only ends by being killed.
BLOCK_SECONDS = 120


@tasks.task()
def report_context(request: Any) -> dict[str, Any]:
    """What a task run sees of its request-like context."""
    return {
        "actor": dataclasses.asdict(request.audit_actor),
        "request_id": request.request_id,
        "transaction_status": request.tm.get().status,
    }


def block_first_attempt(request: Any, attempts_dir: str) -> dict[str, Any]:
    """Record this attempt's process id; the first attempt then waits to be killed."""
    directory = Path(attempts_dir)
    earlier = sorted(int(path.name) for path in directory.iterdir())
    (directory / str(os.getpid())).touch()
    if not earlier:
        time.sleep(BLOCK_SECONDS)
        raise RuntimeError("the first attempt was not killed")
    return {"pid": os.getpid(), "earlier_pids": earlier}


def add_session_conflicting_once(task: Any, request: Any, token_hash: str) -> dict[str, Any]:
    """Add a user session; the first attempt meets a genuine transient database error."""
    request.db.add(UserSession(token_hash=token_hash, data={}))
    if task.request.retries == 0:
        provoke_transient_error(request.db)
    return {"retries": task.request.retries, "actor": dataclasses.asdict(request.audit_actor)}


def main(global_config: Any, **settings: Any) -> Router:
    config = configure(settings)
    # Both ways of declaring a task: the decorator (found by scanning) and the directive.
    config.scan("tests.worker.probe_app")
    config.add_task(block_first_attempt)
    config.add_task(add_session_conflicting_once, bind=True)
    return config.make_wsgi_app()
