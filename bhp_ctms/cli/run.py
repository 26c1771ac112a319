"""``ctms run``: the whole system on one machine, for a newcomer or a demo.

Migrates the database, loads the demo study, then runs the Celery worker (as a child
process) and the web server (waitress, in the foreground) together. Ctrl-C stops both.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from types import FrameType

import click
import waitress
from alembic import command
from pyramid.paster import get_app

from bhp_ctms.cli import CommandContext
from bhp_ctms.cli.db import read_settings
from bhp_ctms.cli.demo import load_demo_study
from bhp_ctms.migrations import alembic_config

WORKER_STOP_SECONDS = 15


class _Stop(Exception):
    """Raised by the SIGTERM handler so the server loop unwinds like on Ctrl-C."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=6543, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int)
@click.option("--demo/--no-demo", default=True, show_default=True, help="Load the demo study.")
@click.pass_obj
def run(context: CommandContext, host: str, port: int, threads: int, demo: bool) -> None:
    """Migrate, load the demo study, and serve the web app with a Celery worker."""
    command.upgrade(alembic_config(read_settings(context)), "head")
    summary = load_demo_study(context) if demo else ""
    worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "bhp_ctms.cli", "-c", context.config_uri, "worker", "--beat"]
    )
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        app = get_app(context.config_uri)
        url = f"http://{host}:{port}/"
        click.echo(f"\nBHP CTMS is running at {url}  (Ctrl-C stops the web server and the worker)")
        if summary:
            click.echo(summary)
        sys.stdout.flush()
        waitress.serve(app, host=host, port=port, threads=threads, _quiet=True)
    except (KeyboardInterrupt, _Stop):
        click.echo("Stopping…")
    finally:
        _stop_worker(worker)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        # SIGTERM is Celery's warm shutdown: running tasks finish (or go back to the queue).
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(WORKER_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


COMMANDS = [run]
