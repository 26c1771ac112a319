"""``ctms``: the one command-line entry point.

Each subcommand lives in a module of this package and receives a
:class:`CommandContext`, which bootstraps the application from the ini file only
when a command needs it (``ctms --help`` touches no database).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from bhp_ctms.settings import SettingsError

COMMAND_MODULES = (
    "db",
    "demo",
    "user",
    "study",
    "forms",
    "participant",
    "randomisation",
    "permissions",
    "audit",
    "export",
    "odm",
    "worker",
    "run",
)


@dataclass
class CommandContext:
    config_uri: str
    _env: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def env(self) -> dict[str, Any]:
        """The bootstrapped application (``registry``, ``request``, ``closer``)."""
        if self._env is None:
            from pyramid.paster import bootstrap, setup_logging

            if not Path(self.config_uri.split("#")[0]).exists():
                raise click.ClickException(f"configuration file not found: {self.config_uri}")
            setup_logging(self.config_uri)
            try:
                self._env = bootstrap(self.config_uri)
            except SettingsError as error:
                raise click.ClickException(str(error)) from None
        return self._env

    @property
    def registry(self) -> Any:
        return self.env["registry"]

    @property
    def settings(self) -> Any:
        return self.registry.settings["bhp_ctms"]

    def close(self) -> None:
        if self._env is not None:
            self._env["closer"]()
            self._env = None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_uri",
    default="development.ini",
    show_default=True,
    envvar="BHP_CTMS_CONFIG",
    help="The PasteDeploy ini file of the deployment.",
)
@click.pass_context
def ctms(click_context: click.Context, config_uri: str) -> None:
    """BHP CTMS administration."""
    context = CommandContext(config_uri=config_uri)
    click_context.obj = context
    click_context.call_on_close(context.close)


for _name in COMMAND_MODULES:
    _module = importlib.import_module(f"bhp_ctms.cli.{_name}")
    for _command in getattr(_module, "COMMANDS", ()):
        ctms.add_command(_command)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(ctms())
