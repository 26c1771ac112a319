"""``ctms demo``: the demo study with one user per role."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import click

from bhp_ctms.accounts.services import password_problems
from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import cli_actor, command_transaction
from bhp_ctms.studies.demo import DemoDefinitionError, load_demo

PASSWORD_VARIABLE = "BHP_CTMS_DEMO_PASSWORD"


def _demo_password() -> str:
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is None:
        # Four random words' worth of entropy, easy to type from the terminal.
        return "-".join(secrets.token_hex(3) for _ in range(4))
    problems = password_problems(password)
    if problems:
        raise click.ClickException(f"{PASSWORD_VARIABLE}: {problems[0]}")
    return password


def load_demo_study(context: CommandContext, definition: Path | None = None) -> str:
    """Load the demo study and return what to tell the person at the terminal."""
    path = definition or Path(context.settings.forms_dir or "forms") / "demo" / "study.yaml"
    password = _demo_password()
    try:
        with command_transaction(context) as request:
            study, users = load_demo(request.db, context.settings, cli_actor(), path, password)
            study_code = study.code
    except DemoDefinitionError as error:
        raise click.ClickException(str(error)) from None
    width = max(len(user.username) for user in users)
    lines = [f"Demo study {study_code} is ready. Log in as any of these users:"]
    lines += [f"  {user.username:<{width}}  {user.role.label} ({user.where})" for user in users]
    lines.append(f"Password for every demo user: {password}")
    return "\n".join(lines)


@click.command()
@click.option(
    "--definition",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The demo study file (default: forms/demo/study.yaml beside the ini file).",
)
@click.pass_obj
def demo(context: CommandContext, definition: Path | None) -> None:
    """Load the demo study DEMO with two sites and one user per role (idempotent)."""
    click.echo(load_demo_study(context, definition))


COMMANDS = [demo]
