"""``ctms user …``: accounts and roles from the command line, every change audited."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from bhp_ctms.accounts.models import User
from bhp_ctms.accounts.services import AccountError, AccountService
from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import cli_actor, command_transaction, study_and_site_ids
from bhp_ctms.permissions import Role

ROLE_CHOICE = click.Choice([role.value for role in Role])


@click.group()
def user() -> None:
    """Add users, grant and revoke roles, disable and unlock accounts."""


def _service(request: object, context: CommandContext) -> AccountService:
    return AccountService(request.db, context.settings)  # type: ignore[attr-defined]


def _find(service: AccountService, username: str) -> User:
    found = service.find_user(username)
    if found is None:
        raise click.ClickException(f"no user called {username!r}")
    return found


@user.command("add")
@click.argument("username")
@click.option("--full-name", required=True, help="The person's name as shown in the audit trail.")
@click.option("--email", default="")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input instead of prompting.",
)
@click.pass_obj
def add(
    context: CommandContext, username: str, full_name: str, email: str, password_stdin: bool
) -> None:
    """Add a user."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with command_transaction(context) as request:
            created = _service(request, context).create_user(
                cli_actor(), username=username, full_name=full_name, password=password, email=email
            )
            name = created.username
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Added user {name}.")


@user.command("grant")
@click.argument("username")
@click.argument("role", type=ROLE_CHOICE)
@click.option("--study", "study_code", help="Study code; without it, the role covers all studies.")
@click.option("--site", "site_code", help="Site code within the study; without it, all its sites.")
@click.pass_obj
def grant(
    context: CommandContext, username: str, role: str, study_code: str | None, site_code: str | None
) -> None:
    """Grant ROLE to USERNAME in a study (or all studies), at a site (or all sites)."""
    with command_transaction(context) as request:
        service = _service(request, context)
        study_id, site_id = study_and_site_ids(request, study_code, site_code)
        try:
            service.grant_role(
                cli_actor(),
                _find(service, username),
                Role(role),
                study_id=study_id,
                site_id=site_id,
            )
        except AccountError as error:
            raise click.ClickException(str(error)) from None
    where = f"study {study_code}" if study_code else "all studies"
    if site_code:
        where += f", site {site_code}"
    click.echo(f"Granted {Role(role).label} to {username} in {where}.")


@user.command("revoke")
@click.argument("username")
@click.argument("role", type=ROLE_CHOICE)
@click.option("--study", "study_code")
@click.option("--site", "site_code")
@click.option(
    "--reason", required=True, help="Why the role is taken away (kept in the audit trail)."
)
@click.pass_obj
def revoke(
    context: CommandContext,
    username: str,
    role: str,
    study_code: str | None,
    site_code: str | None,
    reason: str,
) -> None:
    """Revoke a role granted with the same study and site."""
    with command_transaction(context) as request:
        service = _service(request, context)
        target = _find(service, username)
        study_id, site_id = study_and_site_ids(request, study_code, site_code)
        membership = service.find_membership(target, Role(role), study_id=study_id, site_id=site_id)
        if membership is None:
            raise click.ClickException(f"{username} holds no such role")
        service.revoke_role(cli_actor(), membership, reason=reason)
    click.echo(f"Revoked {Role(role).label} from {username}.")


@user.command("disable")
@click.argument("username")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.pass_obj
def disable(context: CommandContext, username: str, reason: str) -> None:
    """Disable a user; all their sessions end at once."""
    with command_transaction(context) as request:
        service = _service(request, context)
        ended = service.set_active(cli_actor(), _find(service, username), False, reason=reason)
    click.echo(f"Disabled {username}; ended {ended} session(s).")


@user.command("enable")
@click.argument("username")
@click.option("--reason", required=True, help="Why (kept in the audit trail).")
@click.pass_obj
def enable(context: CommandContext, username: str, reason: str) -> None:
    """Enable a disabled user."""
    with command_transaction(context) as request:
        service = _service(request, context)
        service.set_active(cli_actor(), _find(service, username), True, reason=reason)
    click.echo(f"Enabled {username}.")


@user.command("unlock")
@click.argument("username")
@click.pass_obj
def unlock(context: CommandContext, username: str) -> None:
    """End a lock-out after too many failed log-in attempts."""
    with command_transaction(context) as request:
        _service(request, context).unlock(cli_actor(), username)
    click.echo(f"Unlocked {username}.")


@user.command("list")
@click.pass_obj
def list_users(context: CommandContext) -> None:
    """List users with their roles."""
    with command_transaction(context) as request:
        users = request.db.scalars(select(User).order_by(User.username)).all()
        for listed in users:
            state = "" if listed.is_active else " [disabled]"
            roles = ", ".join(sorted(m.role.label for m in listed.memberships)) or "no roles"
            click.echo(f"{listed.username:<20} {listed.full_name}{state}: {roles}")


COMMANDS = [user]
