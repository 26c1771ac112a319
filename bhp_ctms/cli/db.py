"""``ctms initdb`` and ``ctms db …``: the schema, through Alembic only."""

from __future__ import annotations

import click
from alembic import command

from bhp_ctms.cli import CommandContext
from bhp_ctms.migrations import alembic_config
from bhp_ctms.settings import Settings, SettingsError


def read_settings(context: CommandContext) -> Settings:
    """The settings of the ini file, without building the application.

    Migrating needs nothing else, and the schema may not exist yet.
    """
    from pyramid.paster import get_appsettings

    try:
        return Settings.from_mapping(get_appsettings(context.config_uri))
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    except FileNotFoundError:
        raise click.ClickException(f"configuration file not found: {context.config_uri}") from None


@click.command()
@click.pass_obj
def initdb(context: CommandContext) -> None:
    """Create or migrate the database to the newest schema."""
    command.upgrade(alembic_config(read_settings(context)), "head")
    click.echo("Database is at the newest schema.")


@click.group()
def db() -> None:
    """Schema migrations (Alembic)."""


@db.command()
@click.argument("revision", default="head")
@click.pass_obj
def upgrade(context: CommandContext, revision: str) -> None:
    """Migrate up to REVISION (default: head)."""
    command.upgrade(alembic_config(read_settings(context)), revision)


@db.command()
@click.argument("revision")
@click.pass_obj
def downgrade(context: CommandContext, revision: str) -> None:
    """Migrate down to REVISION (e.g. -1 or base)."""
    command.downgrade(alembic_config(read_settings(context)), revision)


@db.command()
@click.option("-m", "--message", required=True, help="What the change is, in a few words.")
@click.pass_obj
def revision(context: CommandContext, message: str) -> None:
    """Write a new migration from the difference between the models and the database."""
    command.revision(alembic_config(read_settings(context)), message=message, autogenerate=True)


@db.command()
@click.pass_obj
def current(context: CommandContext) -> None:
    """Show the database's current revision."""
    command.current(alembic_config(read_settings(context)), verbose=True)


COMMANDS = [initdb, db]
