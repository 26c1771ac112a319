"""``ctms audit verify``: check the audit trail's hash chains."""

from __future__ import annotations

import click
from sqlalchemy import select

from bhp_ctms.audit.chain import chains, count_events, verify_chain
from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import command_transaction
from bhp_ctms.studies.models import Study


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@click.option("--study", "study_code", help="Check only this study's chain.")
@click.pass_obj
def verify(context: CommandContext, study_code: str | None) -> None:
    """Check every hash chain; exit 1 naming the first broken event of each bad chain."""
    broken = 0
    with command_transaction(context) as request:
        study_id = None
        if study_code is not None:
            study_id = request.db.scalar(select(Study.id).where(Study.code == study_code))
            if study_id is None:
                raise click.ClickException(f"no study with code {study_code!r}")
        for chain in chains(request.db, study_id, all_chains=study_code is None):
            problem = verify_chain(request.db, chain)
            if problem is None:
                click.echo(f"chain {chain}: {count_events(request.db, chain)} events, intact")
            else:
                broken += 1
                click.echo(f"BROKEN {problem}", err=True)
    if broken:
        raise click.exceptions.Exit(1)


COMMANDS = [audit]
