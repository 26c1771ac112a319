"""``ctms study …``: check, load and compare study definitions (folders in ``forms/``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from bhp_ctms.audit.capture import ReasonRequired
from bhp_ctms.cli import CommandContext
from bhp_ctms.cli._transaction import cli_actor, command_transaction
from bhp_ctms.participants.migration import amendment_impact, participants_on_versions
from bhp_ctms.sites.services import SiteScope
from bhp_ctms.studies.definition import (
    DefinitionError,
    Problem,
    StudyDefinition,
    check_study,
    read_study,
)
from bhp_ctms.studies.diff import DefinitionChange
from bhp_ctms.studies.loading import load_study, protocol_changes
from bhp_ctms.studies.models import ProtocolVersion
from bhp_ctms.studies.services import find_study, protocol_definition, protocol_versions

FOLDER = click.Path(file_okay=False, path_type=Path)

# The areas of a definition, in the order changes are listed, with their headings.
AREAS = {
    "study": "Study",
    "arm": "Arms",
    "event": "Events",
    "form": "Forms",
    "criterion": "Eligibility criteria",
    "consent": "Consent documents",
    "randomisation": "Randomisation",
}


@click.group()
def study() -> None:
    """Check, load and compare study definitions (study folders such as forms/demo)."""


def _refuse(problems: Sequence[Problem]) -> None:
    """Print every problem as ``path:line:col: message`` and end with status 1."""
    for problem in problems:
        click.echo(str(problem), err=True)
    sys.exit(1)


def _plural(count: int, singular: str, plural: str = "") -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def summary(folder: Path, definition: StudyDefinition) -> str:
    """One line saying what a study folder defines."""
    scheduled = sum(1 for event in definition.events if event.scheduled)
    repeating = len(definition.events) - scheduled
    events = "event" if scheduled + repeating == 1 else "events"
    parts = [
        _plural(len(definition.arms), "arm"),
        f"{scheduled} scheduled and {repeating} repeating {events}",
        _plural(len(definition.criteria), "eligibility criterion", "eligibility criteria"),
    ]
    if definition.forms:
        parts.append(_plural(len(definition.forms), "form"))
    return (
        f"{folder}: {definition.code} protocol version {definition.protocol_version}"
        f" \N{EM DASH} {', '.join(parts)}"
    )


@study.command("check")
@click.argument("folder", type=FOLDER)
def check(folder: Path) -> None:
    """Check the study folder FOLDER and report every problem with file and line.

    Needs no database: run it before loading, or in CI.
    """
    problems = check_study(folder)
    if problems:
        _refuse(problems)
    click.echo(summary(folder, read_study(folder)))


@study.command("load")
@click.argument("folder", type=FOLDER)
@click.pass_obj
def load(context: CommandContext, folder: Path) -> None:
    """Load the study folder FOLDER: a new study, an amendment, or nothing if unchanged.

    An amendment needs a new protocol_version label, an effective_on date no earlier
    than the latest version's, and an amendment_summary.
    """
    try:
        with command_transaction(context) as request:
            result = load_study(request.db, cli_actor(), folder)
            lines = [result.describe()]
            if result.created_study:
                sites = ", ".join(site.code for site in result.study.sites)
                lines.append(f"Sites: {sites or 'none'}.")
            lines += [f"  {change.description}" for change in result.changes]
    except DefinitionError as error:
        _refuse(error.problems)
    except ReasonRequired as error:
        # A locked or archived study changes only with a reason: not by reloading a file.
        raise click.ClickException(str(error)) from None
    click.echo("\n".join(lines))


@dataclass(frozen=True)
class _Side:
    """One side of a comparison: a folder, or a protocol version already loaded."""

    name: str
    definition: StudyDefinition
    version: ProtocolVersion | None = None


def _loaded_version(request: object, name: str) -> _Side:
    code, _, label = name.partition("@")
    db = request.db  # type: ignore[attr-defined]
    found = find_study(db, code)
    if found is None:
        raise click.ClickException(f"{name}: no study with code {code!r}")
    versions = protocol_versions(db, found.id)
    version = next((version for version in versions if version.label == label), None)
    if version is None:
        labels = ", ".join(version.label for version in versions) or "none"
        raise click.ClickException(
            f"{name}: study {code} has no protocol version {label!r} (loaded: {labels})"
        )
    return _Side(name, protocol_definition(version), version)


def _side(request: object, name: str) -> _Side:
    return _loaded_version(request, name) if _is_loaded_version(name) else _read_folder(name)


def _is_loaded_version(name: str) -> bool:
    return "@" in name and not Path(name).exists()


def _read_folder(name: str) -> _Side:
    try:
        return _Side(name, read_study(Path(name)))
    except DefinitionError as error:
        _refuse(error.problems)
        raise  # unreachable: _refuse ends the command


def _diff_lines(
    old: _Side, new: _Side, changes: list[DefinitionChange], request: object
) -> list[str]:
    lines = [f"Changes from {old.name} to {new.name}:"]
    impacts: dict[int, tuple[int, int]] = {}
    if old.version is not None:
        db = request.db  # type: ignore[attr-defined]
        scope = SiteScope(old.version.study_id, True, frozenset())
        on_version = participants_on_versions(db, scope).get(old.version.id, 0)
        lines.append(
            f"Existing entries: recorded visits on {old.name}"
            f" ({_plural(on_version, 'participant is', 'participants are')} on this version)"
        )
        for index, impact in enumerate(amendment_impact(db, scope, old.version, changes)):
            impacts[index] = (impact.visits, impact.participants)
    for area, heading in AREAS.items():
        in_area = [(index, change) for index, change in enumerate(changes) if change.area == area]
        if not in_area:
            continue
        lines += ["", heading]
        for index, change in in_area:
            lines.append(f"  - {change.description}")
            if index in impacts:
                visits, participants = impacts[index]
                if visits:
                    lines.append(
                        f"      affects {_plural(visits, 'recorded visit')}"
                        f" of {_plural(participants, 'participant')}"
                    )
                else:
                    lines.append("      affects no recorded visit")
    return lines


@study.command("diff")
@click.argument("old")
@click.argument("new")
@click.pass_obj
def diff(context: CommandContext, old: str, new: str) -> None:
    """Show what changes from OLD to NEW, area by area and form by form.

    Each of OLD and NEW is a study folder, or CODE@LABEL for a protocol version already
    loaded (e.g. DEMO@1.0). When OLD is a loaded version, each change is shown with the
    existing entries it would affect.
    """
    if not (_is_loaded_version(old) or _is_loaded_version(new)):
        old_side, new_side = _read_folder(old), _read_folder(new)
        lines = _compare(old_side, new_side, None)
    else:
        with command_transaction(context) as request:
            old_side = _side(request, old)
            new_side = _side(request, new)
            lines = _compare(old_side, new_side, request)
    click.echo("\n".join(lines))


def _compare(old: _Side, new: _Side, request: object) -> list[str]:
    changes = protocol_changes(old.definition, new.definition)
    if not changes:
        return [f"No changes: {old.name} and {new.name} define the same protocol."]
    return _diff_lines(old, new, changes, request)


COMMANDS = [study]
