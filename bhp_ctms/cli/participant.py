"""``ctms participant …``: moving a participant to a newer protocol version."""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import cli_actor, command_transaction
from bhp_ctms.participants.migration import (
    MigrationError,
    MigrationPlan,
    apply_migration,
    plan_migration,
)
from bhp_ctms.participants.models import Participant
from bhp_ctms.studies.services import find_study, protocol_versions


@click.group()
def participant() -> None:
    """Work on one participant's records."""


def plan_lines(plan: MigrationPlan) -> list[str]:
    """A migration plan as the terminal shows it."""
    code, current, target = plan.participant.code, plan.current, plan.target
    lines = [f"Moving {code} from protocol version {current.label} to {target.label}:"]
    if plan.moves:
        lines.append(f"  {len(plan.moves)} recorded visit(s) move to version {target.label}:")
        lines += [f"    - {move.description}" for move in plan.moves]
    else:
        lines.append("  No recorded visit to move.")
    if plan.blocked:
        lines.append("  It cannot be done:")
        lines += [f"    - {reason}" for reason in plan.blocked]
    lines.append(
        "  Consent records and eligibility assessments stay on the version they were made on."
    )
    return lines


@participant.command("migrate")
@click.option("--study", "study_code", required=True, help="The study's code, e.g. DEMO.")
@click.option(
    "--participant", "participant_code", required=True, help="The study ID, e.g. DEMO-NTH-0001."
)
@click.option("--to", "label", required=True, help="The protocol version label, e.g. 2.0.")
@click.option("--apply", "apply", is_flag=True, help="Make the move (without it: a dry run).")
@click.option("--reason", default="", help="Why the participant is moved (needed with --apply).")
@click.pass_obj
def migrate(
    context: CommandContext,
    study_code: str,
    participant_code: str,
    label: str,
    apply: bool,
    reason: str,
) -> None:
    """Move a participant's recorded visits to a newer protocol version.

    Without --apply it only prints the plan (a dry run). A move that would drop a
    recorded visit is refused; each change is audited with the reason given.
    """
    if apply and not reason.strip():
        raise click.ClickException("--apply needs --reason: say why the participant is moved")
    blocked = False
    with command_transaction(context) as request:
        db = request.db
        study = find_study(db, study_code)
        if study is None:
            raise click.ClickException(f"no study with code {study_code!r}")
        # The operator at the terminal acts for every site of the study: no site scope.
        found = db.scalars(
            select(Participant).where(
                Participant.study_id == study.id, Participant.code == participant_code
            )
        ).first()
        if found is None:
            raise click.ClickException(f"study {study_code} has no participant {participant_code}")
        versions = protocol_versions(db, study.id)
        target = next((version for version in versions if version.label == label), None)
        if target is None:
            labels = ", ".join(version.label for version in versions) or "none"
            raise click.ClickException(
                f"study {study_code} has no protocol version {label!r} (loaded: {labels})"
            )
        try:
            plan = plan_migration(db, found, target)
            lines = plan_lines(plan)
            blocked = bool(plan.blocked)
            if apply and not blocked:
                apply_migration(cli_actor(), db, found, target, reason)
                lines.append(
                    f"Moved {found.code} to protocol version {target.label}"
                    f" ({len(plan.moves)} recorded visit(s) moved)."
                )
            elif not blocked:
                lines.append(
                    "Dry run: nothing has been changed. Add --apply --reason TEXT to move."
                )
        except MigrationError as error:
            raise click.ClickException(str(error)) from None
    click.echo("\n".join(lines))
    if blocked:
        sys.exit(1)


COMMANDS = [participant]
