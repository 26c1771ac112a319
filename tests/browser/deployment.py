"""A throwaway local deployment, set up the way a newcomer's is: an ini file shaped
like development.ini, with its SQLite database and Celery broker in a folder of its
own, migrated and loaded by the real ``ctms`` command.

Used by the browser tests' live server and by the ``ctms run`` acceptance test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]

# The venv's console script, as `make run` calls it after the install.
CTMS = Path(sys.executable).with_name("ctms")

DEMO_PASSWORD = "correct horse battery staple"
DEMO_PASSWORD_VARIABLE = "BHP_CTMS_DEMO_PASSWORD"

CONFIG_TEMPLATE = """\
# Written by tests/browser/deployment.py for one test session.
[app:main]
use = egg:bhp_ctms

bhp_ctms.environment = development
bhp_ctms.database_url = sqlite:///{directory}/ctms.sqlite
bhp_ctms.broker_url = sqla+sqlite:///{directory}/celery-broker.sqlite
bhp_ctms.result_backend = db+sqlite:///{directory}/celery-results.sqlite
bhp_ctms.secret_key = browser-tests-only-secret-key-{directory_name}
bhp_ctms.alembic_dir = {repository}/alembic
bhp_ctms.forms_dir = {repository}/forms
bhp_ctms.cookie_secure = false
bhp_ctms.hsts = false
bhp_ctms.mfa_required_roles =

pyramid.reload_templates = false
pyramid.default_locale_name = en

[server:main]
use = egg:waitress#main
listen = {listen}
threads = 4

[loggers]
keys = root, bhp_ctms, sqlalchemy, celery

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[logger_bhp_ctms]
level = INFO
handlers =
qualname = bhp_ctms

[logger_sqlalchemy]
level = WARN
handlers =
qualname = sqlalchemy.engine

[logger_celery]
level = INFO
handlers =
qualname = celery

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s][%(threadName)s] %(message)s
"""


def write_config(directory: Path, *, listen: str = "127.0.0.1:0") -> Path:
    """Write ``ctms.ini`` into ``directory``, keeping all of its state beside it.

    ``listen`` is waitress's ``host:port``; port 0 lets the system choose a free one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "ctms.ini"
    config.write_text(
        CONFIG_TEMPLATE.format(
            directory=directory,
            directory_name=directory.name,
            repository=REPOSITORY,
            listen=listen,
        ),
        encoding="utf-8",
    )
    return config


def command_environment() -> dict[str, str]:
    """This process's environment without any ``BHP_CTMS_*`` overrides (CI sets some,
    e.g. for PostgreSQL), so the ini file alone decides; plus the demo password."""
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("BHP_CTMS_")
    }
    environment[DEMO_PASSWORD_VARIABLE] = DEMO_PASSWORD
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def run_ctms(config: Path, *arguments: str) -> str:
    """Run ``ctms -c CONFIG ARGUMENTS`` to completion; its output, or a failure that shows it."""
    completed = subprocess.run(
        [str(CTMS), "-c", str(config), *arguments],
        env=command_environment(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"ctms {' '.join(arguments)} exited with {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed.stdout


def free_port() -> int:
    """A TCP port nothing listens on now, for a server that must be told its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Deployment:
    """A local deployment for one test session: its ini file, folder and demo password."""

    config: Path
    directory: Path
    password: str = DEMO_PASSWORD

    def ctms(self, *arguments: str) -> str:
        """Run a ``ctms`` command against this deployment and return its output."""
        return run_ctms(self.config, *arguments)
