"""``ctms worker``: a Celery worker for the deployment, in the foreground.

The worker is the Pyramid application bootstrapped from the ini file, so tasks see
the same settings, database and registry as the web application. Arguments after
the options go to Celery's own ``celery worker`` (``-c 4``, ``-Q reports``,
``-l DEBUG``...). Ctrl-C or SIGTERM is Celery's warm shutdown: running tasks finish
or go back to the queue, then the process exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from celery.signals import worker_process_init

from bhp_ctms.cli import CommandContext
from bhp_ctms.tasks import CELERY_APP_KEY

SCHEDULE_OPTIONS = ("-s", "--schedule-filename", "--schedule")


def _default_schedule_file(config_uri: str) -> Path:
    # Beside the ini file's other local state (development.ini keeps its SQLite files
    # in var/); a production deployment names its own with -s.
    directory = Path(config_uri.split("#")[0]).resolve().parent / "var"
    directory.mkdir(exist_ok=True)
    return directory / "celerybeat-schedule"


def _names_schedule_file(celery_args: tuple[str, ...]) -> bool:
    return any(
        argument.split("=", 1)[0] in SCHEDULE_OPTIONS
        or (argument.startswith("-s") and not argument.startswith("--"))
        for argument in celery_args
    )


@click.command(context_settings={"ignore_unknown_options": True})
@click.option(
    "--beat",
    is_flag=True,
    help="Also run the periodic task scheduler in this worker (run exactly one per deployment).",
)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def worker(context: CommandContext, beat: bool, celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker; CELERY_ARGS go to `celery worker` (e.g. -c 4 -Q reports)."""
    registry = context.registry
    celery_app = registry[CELERY_APP_KEY]
    engine = registry["sqlalchemy.engine"]

    def forget_parent_connections(**_kwargs: Any) -> None:
        # A forked pool process must not share the parent's database connections;
        # close=False leaves them open for the parent (SQLAlchemy's documented recipe).
        engine.dispose(close=False)

    worker_process_init.connect(forget_parent_connections, weak=False)
    argv = ["worker", "--loglevel=INFO"]
    if beat:
        argv.append("--beat")
        if not _names_schedule_file(celery_args):
            argv.append(f"--schedule-filename={_default_schedule_file(context.config_uri)}")
    argv.extend(celery_args)
    try:
        celery_app.worker_main(argv)
    finally:
        worker_process_init.disconnect(forget_parent_connections)


COMMANDS = [worker]
