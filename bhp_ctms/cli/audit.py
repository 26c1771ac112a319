"""``ctms audit``: verify the audit trail and sign checkpoints."""

from __future__ import annotations

import click

from bhp_ctms.audit.chain import chains
from bhp_ctms.audit.checkpoints import write_checkpoint
from bhp_ctms.audit.models import CheckpointTrigger
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import command_transaction, study_and_site_ids


@click.group()
def audit() -> None:
    """The audit trail."""


@audit.command()
@click.option("--study", "study_code", help="Check only this study's chain and rows.")
@click.pass_obj
def verify(context: CommandContext, study_code: str | None) -> None:
    """Check the hash chains, their signed checkpoints, and replay the trail against the
    tables; exit 1 naming the first broken event of each chain and every row that differs."""
    with command_transaction(context) as request:
        study_id, _ = study_and_site_ids(request, study_code)
        report = verify_audit_trail(
            request.db,
            context.settings.secret_key,
            study_id,
            all_chains=study_code is None,
        )
    for line in report.lines():
        click.echo(line, err=line.startswith(("BROKEN", "DIFFERS")))
    if not report.ok:
        raise click.exceptions.Exit(1)


@audit.command()
@click.option("--study", "study_code", help="Sign only this study's chain.")
@click.pass_obj
def checkpoint(context: CommandContext, study_code: str | None) -> None:
    """Sign the head of every chain (or one study's) now."""
    with command_transaction(context) as request:
        study_id, _ = study_and_site_ids(request, study_code)
        for chain in chains(request.db, study_id, all_chains=study_code is None):
            signed = write_checkpoint(
                request.db, context.settings.secret_key, chain, CheckpointTrigger.MANUAL
            )
            click.echo(f"chain {chain}: signed at sequence {signed.sequence}")


COMMANDS = [audit]
