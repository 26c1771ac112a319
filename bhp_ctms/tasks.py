"""Asynchronous work: the Celery application, the task base class and ``request.enqueue``.

One Celery application per Pyramid registry, configured from the same ini file as
the web application, so a worker is the web application without HTTP. Every task
run gets a request-like context (:class:`Task`): a Pyramid request made with the
registry, its own explicit transaction manager, ``request.db`` joined to it, and
``request.audit_actor`` rebuilt from whoever enqueued the task, so the audit trail
stays attributable. The task body runs inside that transaction: it commits on
success, aborts on error, and is retried with backoff when the database reports a
transient error (a serialisation failure, or SQLite's "database is locked").

Domains declare tasks with :func:`task` (found by ``config.scan()``) or
``config.add_task``, and schedule them with ``config.add_periodic_task``. Views
enqueue with ``request.enqueue(task, *args, **kwargs)``: the message is sent only
after the request's transaction commits, so an aborted request, or a failed attempt
that ``pyramid_retry`` replays, sends nothing. Delivery is at least once (late
acknowledgement, redelivery when a worker process dies), so tasks must be
idempotent.

The embedded default broker is Celery's SQLAlchemy transport over a local SQLite
file (``sqla+sqlite:///var/celery-broker.sqlite``, results in ``db+sqlite:///...``);
production uses ``redis://`` or ``amqp://``. With ``task_always_eager`` (tests
only) an enqueued task runs in-process, in its own transaction, once the
enqueuing transaction has committed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import celery
import pyramid.scripting
import transaction
import venusian
from celery.canvas import Signature
from celery.result import EagerResult
from celery.utils import uuid
from celery.utils.functional import head_from_fun
from celery.utils.time import get_exponential_backoff_interval
from kombu.utils.json import dumps as json_dumps
from pyramid.exceptions import ConfigurationError
from pyramid.registry import Registry
from pyramid_retry import IRetryableError, RetryableException

from bhp_ctms import sessions
from bhp_ctms.audit.services import AuditActor
from bhp_ctms.settings import Settings

log = logging.getLogger(__name__)

#: The registry key of the Celery application.
CELERY_APP_KEY = "celery.app"
#: The registry key of the mapping from task functions to their Celery task names.
TASK_NAMES_KEY = "bhp_ctms.task_names"
#: The message header that carries the enqueuing request's :class:`AuditActor`.
ACTOR_HEADER = "bhp_ctms_actor"

PURGE_EXPIRED_SESSIONS_INTERVAL = timedelta(minutes=15)

# Registration of tasks must precede finalising the Celery application, which must
# precede building the beat schedule from the registered tasks.
_REGISTER_ORDER = 10
_FINALIZE_ORDER = 20
_SCHEDULE_ORDER = 30


def is_transient_error(error: BaseException) -> bool:
    """Whether ``error`` is worth retrying.

    ``bhp_ctms.db`` marks transient database errors with ``pyramid_retry``'s
    ``IRetryableError``; ``pyramid_tm`` marks the transaction package's own.
    """
    return isinstance(error, RetryableException) or IRetryableError.providedBy(error)


class CeleryApp(celery.Celery):
    """The Celery application of one Pyramid registry."""

    #: The Pyramid registry that task runs build their requests with.
    registry: Registry

    def type_checker(self, fun: Callable[..., Any], bound: bool = False) -> Any:
        # Celery checks a caller's arguments against the task function's signature;
        # a task's first parameter (its request) is supplied by Task.__call__, never
        # by the caller, so the check binds a placeholder for it.
        check = head_from_fun(fun, bound=bound)
        return staticmethod(functools.partial(check, None))


class Task(celery.Task):
    """The base class of every BHP CTMS task.

    The task function receives a request-like context as its first argument (after
    the task itself for ``bind=True``): ``request.db``, ``request.tm``,
    ``request.registry``, ``request.audit_actor`` and ``request.request_id`` (the
    enqueuing request's id, so its audit events and the task's can be correlated).
    ``request.enqueue`` works inside a task too: the follow-up task is sent when this
    task's transaction commits.
    """

    # Retry transient database errors with exponential backoff and full jitter:
    # 1 s, 2 s, 4 s ... at most 60 s between attempts. The names are Celery's own, so a
    # task may override them in its declaration.
    max_retries = 5
    retry_backoff = 1
    retry_backoff_max = 60
    retry_jitter = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Celery's tracer has already pushed this run's context (id, retries,
        # headers); calling super().__call__ would hide it behind an empty one.
        environment = self._prepare_request()
        request = environment["request"]
        try:
            # The transaction's commit happens inside this try, so a transient error
            # raised by COMMIT itself is retried too.
            with request.tm:
                return self.run(request, *args, **kwargs)
        except Exception as error:
            if is_transient_error(error) and not self.request.called_directly:
                raise self.retry(exc=error, countdown=self._retry_countdown()) from error
            raise
        finally:
            environment["closer"]()

    def _prepare_request(self) -> dict[str, Any]:
        actor = self._acting_actor()
        environment = pyramid.scripting.prepare(registry=self.app.registry)
        request = environment["request"]
        request.tm = transaction.TransactionManager(explicit=True)
        # audit_actor is computed from the web request's identity; a task has no
        # identity of its own and acts for whoever enqueued it.
        request.set_property(lambda _request: actor, name="audit_actor", reify=True)
        request.request_id = actor.request_id
        return environment

    def _acting_actor(self) -> AuditActor:
        context = self.request
        fallback_id = context.id or ""
        recorded = (context.headers or {}).get(ACTOR_HEADER)
        if not recorded:
            # Sent by the scheduler or by hand: the system acts.
            return AuditActor.system(name=f"task {self.name}", request_id=fallback_id)
        known = {field.name for field in dataclasses.fields(AuditActor)}
        values = {key: value for key, value in recorded.items() if key in known}
        values["roles"] = tuple(tuple(pair) for pair in values.get("roles", ()))
        actor = AuditActor(**values)
        if not actor.request_id:
            actor = dataclasses.replace(actor, request_id=fallback_id)
        return actor

    def _retry_countdown(self) -> int:
        return get_exponential_backoff_interval(
            factor=self.retry_backoff,
            retries=self.request.retries,
            maximum=self.retry_backoff_max,
            full_jitter=self.retry_jitter,
        )


def create_celery_app(settings: Settings, registry: Registry) -> CeleryApp:
    """Build the Celery application for these settings (not yet finalised)."""
    # An SQLite broker or result store (development) lives in a file whose folder may
    # not exist yet: without it, a message sent after a commit would be lost.
    for url in (settings.broker_url, settings.result_backend):
        for prefix in ("sqla+sqlite:///", "db+sqlite:///"):
            if url and url.startswith(prefix):
                Path(url.removeprefix(prefix)).parent.mkdir(parents=True, exist_ok=True)
    app = CeleryApp("bhp_ctms", task_cls=Task, set_as_current=False, autofinalize=False)
    app.registry = registry
    app.conf.update(
        broker_url=settings.broker_url,
        result_backend=settings.result_backend or None,
        broker_connection_retry_on_startup=True,
        # At-least-once delivery: a message is acknowledged only after its task has
        # finished, and is redelivered if the process running it dies.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # An acknowledgement cannot reach a lost broker, so the message will be
        # redelivered anyway; stopping the run avoids doing the work twice at once.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        # JSON only: a worker never unpickles what a broker hands it.
        task_serializer="json",
        result_serializer="json",
        event_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_always_eager=settings.task_always_eager,
        # Propagating would turn an eager retry into an exception; failed eager runs
        # are logged by _send_after_commit instead, as a worker would log them.
        task_eager_propagates=False,
        beat_schedule={},
    )
    return app


def task(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a task; it is registered when ``config.scan()`` finds it.

    ``options`` are Celery task options (``bind``, ``name``, ``max_retries``,
    ``acks_late``...). The function itself is returned unchanged, so a unit test can
    call it with a request; send it with ``request.enqueue(function, ...)``::

        @task()
        def generate_report(request, report_job_id: int) -> None: ...
    """

    def attach(function: Callable[..., Any]) -> Callable[..., Any]:
        def register(scanner: Any, name: str, wrapped: Callable[..., Any]) -> None:
            scanner.config.add_task(wrapped, **options)

        # The "pyramid" category is the one config.scan() looks at by default.
        venusian.attach(function, register, category="pyramid")
        return function

    return attach


def _add_task(config: Any, function: Callable[..., Any], **options: Any) -> None:
    """``config.add_task(function, **celery_options)``: declare ``function`` as a task."""
    celery_app: CeleryApp = config.registry[CELERY_APP_KEY]
    name = options.pop("name", None) or celery_app.gen_task_name(
        function.__name__, function.__module__
    )
    # Known at once, so that add_periodic_task can name the task before it exists.
    config.registry[TASK_NAMES_KEY][function] = name

    def register() -> None:
        # shared=False: the task belongs to this application only, not to every
        # Celery application created in the process (tests build many).
        celery_app.task(name=name, shared=False, **options)(function)

    config.action(("bhp_ctms.task", name), register, order=_REGISTER_ORDER)


def _add_periodic_task(
    config: Any,
    schedule: Any,
    function: Callable[..., Any],
    *,
    name: str | None = None,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> None:
    """``config.add_periodic_task(schedule, function, ...)``: run a task on a schedule.

    ``schedule`` is a ``timedelta``, a number of seconds or a ``celery.schedules``
    schedule (``crontab(...)``); ``function`` must be declared as a task.
    """
    entry_name = name or f"{function.__module__}.{function.__name__}"

    def schedule_task() -> None:
        task_name = config.registry[TASK_NAMES_KEY].get(function)
        if task_name is None:
            raise ConfigurationError(
                f"periodic task {entry_name!r}: {function!r} is not declared as a task"
            )
        config.registry[CELERY_APP_KEY].conf.beat_schedule[entry_name] = {
            "task": task_name,
            "schedule": schedule,
            "args": tuple(args),
            "kwargs": dict(kwargs or {}),
            "options": options,
        }

    config.action(("bhp_ctms.periodic_task", entry_name), schedule_task, order=_SCHEDULE_ORDER)


def find_task(registry: Registry, task: Any) -> celery.Task:
    """The Celery task for a declared task function (or a Celery task itself)."""
    if isinstance(task, celery.Task):
        return task
    name = registry[TASK_NAMES_KEY].get(task)
    if name is None:
        raise LookupError(f"{task!r} is not declared as a task")
    celery_app: CeleryApp = registry[CELERY_APP_KEY]
    return celery_app.tasks[name]


def _request_task(request: Any) -> Callable[[Any], celery.Task]:
    return functools.partial(find_task, request.registry)


def enqueue(request: Any, task: Any, /, *args: Any, **kwargs: Any) -> str:
    """Send a task once this request's transaction commits; returns its task id.

    ``task`` is a declared task function, a Celery task, or a Celery signature for
    sending options (``request.task(function).s(...).set(countdown=60)``). Arguments
    must be JSON-serialisable (ids, not ORM objects). The acting user travels with
    the message and becomes the task's ``request.audit_actor``. Nothing is sent if
    the transaction aborts, or for a failed attempt that ``pyramid_retry`` replays.
    Requires an active transaction (``pyramid_tm`` begins one for every web request).
    """
    if isinstance(task, Signature):
        if args or kwargs:
            raise TypeError("give a signature's arguments in the signature itself")
        signature = task
    else:
        signature = find_task(request.registry, task).signature(args, kwargs)
    # Fail here, where the request can still abort, rather than after the commit
    # when the message is built and the task would be lost.
    json_dumps([signature.args, signature.kwargs])
    task_id = signature.options.get("task_id") or uuid()
    headers = {
        **(signature.options.get("headers") or {}),
        ACTOR_HEADER: dataclasses.asdict(request.audit_actor),
    }
    request.tm.get().addAfterCommitHook(_send_after_commit, args=(signature, task_id, headers))
    return task_id


def _send_after_commit(
    committed: bool, signature: Signature, task_id: str, headers: dict[str, Any]
) -> None:
    if not committed:
        return
    try:
        result = signature.apply_async(task_id=task_id, headers=headers)
    except Exception:
        # The transaction has committed and cannot be undone; the transaction
        # package would swallow this, so say which task was lost.
        log.exception("could not send task %s (id %s) after commit", signature.task, task_id)
        return
    if isinstance(result, EagerResult) and result.failed():
        log.error(
            "task %s (id %s) failed when run eagerly:\n%s",
            signature.task,
            task_id,
            result.traceback,
        )


def purge_expired_sessions(request: Any) -> int:
    """Delete the user sessions that have timed out; returns how many were deleted.

    Idempotent: a second run finds nothing left to delete.
    """
    settings: Settings = request.registry.settings["bhp_ctms"]
    return sessions.purge_expired_sessions(request.db, settings)


def includeme(config: Any) -> None:
    settings: Settings = config.registry.settings["bhp_ctms"]
    celery_app = create_celery_app(settings, config.registry)
    config.registry[CELERY_APP_KEY] = celery_app
    config.registry[TASK_NAMES_KEY] = {}

    config.add_directive("add_task", _add_task, action_wrap=False)
    config.add_directive("add_periodic_task", _add_periodic_task, action_wrap=False)
    config.add_request_method(enqueue, name="enqueue")
    config.add_request_method(_request_task, name="task", reify=True)
    config.action(("bhp_ctms", "celery.finalize"), celery_app.finalize, order=_FINALIZE_ORDER)

    config.add_task(purge_expired_sessions)
    config.add_periodic_task(
        PURGE_EXPIRED_SESSIONS_INTERVAL,
        purge_expired_sessions,
        name="purge-expired-sessions",
    )
