"""``ctms audit``: verify the audit trail and sign checkpoints."""

from __future__ import annotations

import click
from sqlalchemy import select

from bhp_ctms.audit.chain import chain_of, chains
from bhp_ctms.audit.checkpoints import write_checkpoint
from bhp_ctms.audit.models import CheckpointTrigger
from bhp_ctms.audit.verify import verify_audit_trail
from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import command_transaction
from bhp_ctms.studies.models import Study


@click.group()
def audit() -> None:
    """The audit trail."""


def _study_id(request: object, study_code: str | None) -> int | None:
    if study_code is None:
        return None
    study_id = request.db.scalar(select(Study.id).where(Study.code == study_code))  # type: ignore[attr-defined]
    if study_id is None:
        raise click.ClickException(f"no study with code {study_code!r}")
    return int(study_id)


@audit.command()
@click.option("--study", "study_code", help="Check only this study's chain and rows.")
@click.pass_obj
def verify(context: CommandContext, study_code: str | None) -> None:
    """Check the hash chains, their signed checkpoints, and replay the trail against the
    tables; exit 1 naming the first broken event of each chain and every row that differs."""
    with command_transaction(context) as request:
        study_id = _study_id(request, study_code)
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
        study_id = _study_id(request, study_code)
        selected = chains(request.db) if study_code is None else [chain_of(study_id)]
        for chain in selected:
            signed = write_checkpoint(
                request.db, context.settings.secret_key, chain, CheckpointTrigger.MANUAL
            )
            click.echo(f"chain {chain}: signed at sequence {signed.sequence}")


COMMANDS = [audit]
