"""Deployments for the worker tests: throwaway databases, ini files, worker processes.

Each *stack* pairs a broker with a database as a deployment would: the embedded one
(SQLAlchemy transport over SQLite, SQLite database) always, and a production-like
one when ``BHP_CTMS_TEST_BROKER_URL`` (Redis) or ``BHP_CTMS_TEST_DATABASE_URL``
(PostgreSQL) is set. Every stack gets its own database, broker queue and ini file,
so parallel test runs sharing a Redis server or a PostgreSQL cluster do not collide.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyramid.scripting
from celery.result import AsyncResult
from pyramid.paster import get_appsettings

from bhp_ctms.settings import Settings
from bhp_ctms.tasks import CELERY_APP_KEY
from tests.databases import POSTGRESQL_URL, throwaway_database
from tests.worker import probe_app

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("BHP_CTMS_TEST_BROKER_URL", "")
RESULT_TIMEOUT_SECONDS = 30
STARTUP_TIMEOUT_SECONDS = 30
# A warm shutdown with an embedded beat took over 20 s once on a loaded 2-core CI
# machine (the worker was shutting down, not ignoring the signal).
STOP_TIMEOUT_SECONDS = 60
TEST_SECRET_KEY = "worker-test-secret-key-" + "x" * 32


@dataclass(frozen=True)
class Stack:
    """A broker and a database, combined as a deployment would combine them."""

    broker: str
    database: str

    @property
    def id(self) -> str:
        return f"{self.broker}-broker-{self.database}-database"


STACKS = [Stack(broker="sqlite", database="sqlite")]
if REDIS_URL or POSTGRESQL_URL:
    STACKS.append(
        Stack(
            broker="redis" if REDIS_URL else "sqlite",
            database="postgresql" if POSTGRESQL_URL else "sqlite",
        )
    )


def ctms_executable() -> str:
    """The ``ctms`` console script installed beside this interpreter."""
    executable = shutil.which("ctms", path=str(Path(sys.executable).parent))
    assert executable is not None, "ctms is not installed: pip install -e ."
    return executable


def subprocess_environment() -> dict[str, str]:
    # The ini file alone configures the worker: BHP_CTMS_* overrides from the
    # environment of the test run must not leak into it.
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("BHP_CTMS_")
    }
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    return environment


def write_ini(path: Path, *, database_url: str, broker_url: str, result_backend: str) -> Path:
    """An ini file shaped like development.ini, naming the probe application factory."""
    path.write_text(
        f"""\
[app:main]
use = call:tests.worker.probe_app:main

bhp_ctms.environment = testing
bhp_ctms.database_url = {database_url}
bhp_ctms.broker_url = {broker_url}
bhp_ctms.result_backend = {result_backend}
bhp_ctms.secret_key = {TEST_SECRET_KEY}
bhp_ctms.alembic_dir = {REPO_ROOT / "alembic"}

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s][%(processName)s] %(message)s
"""
    )
    return path


@dataclass
class WorkerProcess:
    """A ``ctms -c INI worker`` process and its log."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while " ready." not in self.log:
            assert self.process.poll() is None, f"worker exited early:\n{self.log}"
            assert time.monotonic() < deadline, f"worker not ready:\n{self.log}"
            time.sleep(0.1)

    def stop(self) -> int:
        """SIGTERM (Celery's warm shutdown); returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"worker ignored SIGTERM:\n{self.log}") from None


@dataclass
class Deployment:
    """One stack, deployed: a migrated database, an ini file, and a sending application."""

    stack: Stack
    directory: Path
    ini_path: Path
    database_url: str
    queue: str
    registry: Any = field(repr=False)

    @property
    def celery_app(self) -> Any:
        return self.registry[CELERY_APP_KEY]

    def enqueue(self, function: Callable[..., Any], *args: Any, actor: Any = None) -> AsyncResult:
        """Enqueue as a web request does: through request.enqueue, then commit."""
        with pyramid.scripting.prepare(registry=self.registry) as environment:
            request = environment["request"]
            if actor is not None:
                request.set_property(lambda _request: actor, name="audit_actor", reify=True)
            with request.tm:
                signature = request.task(function).s(*args).set(queue=self.queue)
                task_id = request.enqueue(signature)
        return AsyncResult(task_id, app=self.celery_app)

    def result_of(self, result: AsyncResult, worker: WorkerProcess) -> Any:
        try:
            return result.get(timeout=RESULT_TIMEOUT_SECONDS)
        except Exception as error:
            raise AssertionError(f"{error!r}; worker log:\n{worker.log}") from error
        finally:
            result.forget()

    def start_worker(self, *celery_args: str) -> WorkerProcess:
        name = f"test-{uuid.uuid4().hex[:8]}"
        log_path = self.directory / f"{name}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [
                    ctms_executable(),
                    "-c",
                    str(self.ini_path),
                    "worker",
                    *celery_args,
                    "--queues",
                    self.queue,
                    "--concurrency",
                    "1",
                    "--hostname",
                    f"{name}@%h",
                    # No chatter with the workers of other test runs on a shared broker.
                    "--without-mingle",
                    "--without-gossip",
                    "--without-heartbeat",
                ],
                cwd=self.directory,
                env=subprocess_environment(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return WorkerProcess(process=process, log_path=log_path)


@contextmanager
def deploy(stack: Stack, directory: Path) -> Iterator[Deployment]:
    """Deploy ``stack`` in ``directory``: its own database, broker queue and ini file."""
    suffix = uuid.uuid4().hex[:12]
    with throwaway_database(stack.database, directory, "ctms_worker") as database_url:
        yield from _deploy(stack, directory, suffix, database_url)


def _deploy(stack: Stack, directory: Path, suffix: str, database_url: str) -> Iterator[Deployment]:
    if stack.broker == "redis":
        broker_url = result_backend = REDIS_URL
    else:
        broker_url = f"sqla+sqlite:///{directory / 'celery-broker.sqlite'}"
        result_backend = f"db+sqlite:///{directory / 'celery-results.sqlite'}"
    ini_path = write_ini(
        directory / "test.ini",
        database_url=database_url,
        broker_url=broker_url,
        result_backend=result_backend,
    )
    subprocess.run(
        [ctms_executable(), "-c", str(ini_path), "initdb"],
        check=True,
        capture_output=True,
        env=subprocess_environment(),
    )
    settings = Settings.from_mapping(get_appsettings(str(ini_path)), environ={})
    application = probe_app.main({}, bhp_ctms=settings)
    deployment = Deployment(
        stack=stack,
        directory=directory,
        ini_path=ini_path,
        database_url=database_url,
        queue=f"ctms-test-{suffix}",
        registry=application.registry,
    )
    try:
        yield deployment
    finally:
        # The queue (and, on Redis, its bindings) goes with the deployment.
        queue = deployment.celery_app.amqp.queues[deployment.queue]
        with deployment.celery_app.connection_for_write() as connection:
            bound = queue(connection.default_channel)
            bound.declare()
            bound.delete()
        application.registry["sqlalchemy.engine"].dispose()
